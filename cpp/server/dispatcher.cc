#include "server/dispatcher.h"

#include "server/metrics.h"

namespace vineyard {

const Dispatcher& Dispatcher::Get() {
  static const Dispatcher* instance = [] {
    auto* d = new Dispatcher();
    RegisterMiscHandlers(d);
    RegisterBlobHandlers(d);
    RegisterMetaHandlers(d);
    RegisterRemoteHandlers(d);
    RegisterStreamHandlers(d);
    RegisterSpillHandlers(d);
    return d;
  }();
  return *instance;
}

void Dispatcher::Register(const char* type, Handler handler, unsigned flags) {
  table_[type] = Entry{handler, flags};
}

const Dispatcher::Entry* Dispatcher::Find(const json& request) const {
  auto type = ReadMessageType(request);
  if (!type.ok()) return nullptr;
  auto it = table_.find(*type);
  return it == table_.end() ? nullptr : &it->second;
}

Status Dispatcher::Dispatch(Connection& conn, json& request, Reply* reply) const {
  VY_ASSIGN_OR_RETURN(std::string type, ReadMessageType(request));
  auto it = table_.find(type);
  if (it == table_.end()) {
    return Status::NotImplemented("unknown request type '", type.substr(0, 64),
                                  "': this server does not support it");
  }
  const Entry& e = it->second;
  if (type != req::kVyPut && request.contains(kAttachmentKey)) {
    return Status::Invalid("'", type, "' carries bytes after its JSON text (a NUL and more): "
                           "only vy_put_request takes inline bytes");
  }
  if (!(e.flags & kBeforeRegister) && !conn.registered()) {
    return Status::Invalid("'", type, "' before register_request: a session must start with "
                           "register_request");
  }
  if ((e.flags & kIpcOnly) && !conn.is_ipc()) {
    return Status::Invalid("'", type, "' needs shared memory and is only served over the IPC "
                           "socket; over TCP use the remote blob requests");
  }
  RequestTimer timer(conn.ctx().metrics, it->first);
  Status st = e.handler(conn, request, reply);
  if (!reply->to_worker) timer.Done(st.ok());  // else counted once, when the worker runs it
  return st;
}

std::vector<std::string> Dispatcher::Types() const {
  std::vector<std::string> types;
  for (const auto& [type, entry] : table_) types.push_back(type);
  return types;
}

}  // namespace vineyard
