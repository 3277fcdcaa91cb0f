#include "server/connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/socket_io.h"
#include "server/dispatcher.h"

namespace vineyard {

Connection::Connection(ServerContext* ctx, int fd, bool is_ipc, uint64_t serial)
    : ctx_(ctx), fd_(fd), is_ipc_(is_ipc), serial_(serial) {
  (is_ipc_ ? ctx_->ipc_connections : ctx_->rpc_connections) += 1;
}

Connection::~Connection() { ::close(fd_); }

std::string Connection::peer() const {
  return (is_ipc_ ? "ipc#" : "rpc#") + std::to_string(serial_);
}

void Connection::Shutdown() { ::shutdown(fd_, SHUT_RDWR); }

bool Connection::PeerAlive() const {
  if (ctx_->stopping) return false;
  struct pollfd p = {fd_, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) < 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0;
}

void Connection::Serve() {
  std::string frame;
  while (!ctx_->stopping) {
    Status st = RecvFrame(fd_, &frame);
    if (!st.ok()) {
      if (!st.IsEndOfFile()) {
        spdlog::warn("{}: closing the connection: {}", peer(), st.ToString());
        // Tell the client why, if it is still listening (e.g. an oversized frame).
        (void)SendFrame(fd_, WriteErrorReply(st).dump());
      }
      break;
    }
    Reply reply;
    Status hs = HandleOne(frame, &reply);
    if (!hs.ok()) {
      bool close_after = reply.close_after;  // e.g. a failed login or a broken transfer
      reply = Reply{};
      reply.body = WriteErrorReply(hs);
      reply.close_after = close_after;
    }
    if (!SendReply(reply).ok() || reply.close_after) break;
  }
  Teardown();
}

Status Connection::HandleOne(const std::string& frame, Reply* reply) {
  VY_ASSIGN_OR_RETURN(json request, ParseMessage(frame));
  try {
    return Dispatcher::Get().Dispatch(*this, request, reply);
  } catch (const std::exception& e) {
    // nlohmann::json throws on some malformed input; never let it end the server.
    return Status::Invalid("malformed request: ", e.what());
  }
}

Status Connection::SendReply(const Reply& reply) {
  if (!reply.body.is_null()) {
    std::string text = reply.body.dump(-1, ' ', false, json::error_handler_t::replace);
    VY_RETURN_NOT_OK(SendFrame(fd_, text));
  }
  for (int fd : reply.fds) VY_RETURN_NOT_OK(SendFd(fd_, fd));
  return Status::OK();
}

Status Connection::SendInterim(const json& body) {
  Reply r;
  r.body = body;
  return SendReply(r);
}

int Connection::PassFd(int store_fd, Reply* reply) {
  if (store_fd < 0 || !is_ipc_ || !fds_sent_.insert(store_fd).second) return -1;
  reply->fds.push_back(store_fd);
  return store_fd;
}

Status Connection::Seal(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  VY_RETURN_NOT_OK(ctx_->store->Seal(id, serial_));
  AddRef(id);
  return Status::OK();
}

Status Connection::Abort(ObjectID id) { return ctx_->store->Abort(id, serial_); }

Result<std::vector<Payload>> Connection::GetPayloads(const std::vector<ObjectID>& ids,
                                                     bool unsafe, Reply* reply,
                                                     std::vector<int>* fds) {
  std::vector<Payload> payloads;
  for (ObjectID id : ids) {
    auto p = ctx_->store->Get(id, unsafe, serial_);
    if (!p.ok()) {
      for (const auto& got : payloads) ctx_->store->Release(got.object_id);
      return p.status();
    }
    payloads.push_back(*p);
  }
  for (auto& p : payloads) {
    if (!IsEmptyBlob(p.object_id)) AddRef(p.object_id);
    // Our client maps what it reads read-only: give it an fd that cannot map
    // the store writable. Published clients keep the read-write fd.
    if (pins_references_ && p.is_sealed && p.store_fd >= 0) {
      p.store_fd = ctx_->store->read_only_fd();
    }
    int fd = PassFd(p.store_fd, reply);
    if (fd >= 0) fds->push_back(fd);
  }
  return payloads;
}

void Connection::AddRef(ObjectID id) {
  if (pins_references_) {
    ++refs_[id];
  } else {
    ctx_->store->Release(id);
  }
}

void Connection::Release(ObjectID id) {
  auto it = refs_.find(id);
  if (it == refs_.end()) return;
  ctx_->store->Release(id);
  if (--it->second == 0) refs_.erase(it);
}

void Connection::Teardown() {
  // The peer sees the end now, not when the server reaps this session.
  ::shutdown(fd_, SHUT_RDWR);
  // Its unsealed blobs, and its sealed ones no object adopted, die with their
  // creator (first, so that the references released next free them); every
  // reference goes back.
  const size_t owned = ctx_->store->ReleaseOwner(serial_);
  for (const auto& [id, count] : refs_) {
    for (int64_t i = 0; i < count; ++i) ctx_->store->Release(id);
  }
  if (owned > 0 || !refs_.empty()) {
    spdlog::debug("{}: removed {} blobs it owned and released {} references", peer(), owned,
                  refs_.size());
  }
  refs_.clear();
  (is_ipc_ ? ctx_->ipc_connections : ctx_->rpc_connections) -= 1;
}

}  // namespace vineyard
