// Handlers for blobs: create, seal, get, shrink, drop, references.
#include "server/dispatcher.h"

namespace vineyard {

namespace {

Status CreateBuffer(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(uint64_t size, ReadCreateBufferRequest(request));
  if (!conn.on_worker() && conn.ctx().store->WouldSpill(size)) {
    reply->to_worker = true;  // it must write blobs to disk first: not on the event loop
    return Status::OK();
  }
  VY_ASSIGN_OR_RETURN(Payload p, conn.ctx().store->Create(size, conn.serial()));
  reply->body = WriteCreateBufferReply(p, conn.PassFd(p.store_fd, reply));
  return Status::OK();
}

Status CreateBuffers(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(std::vector<uint64_t> sizes, ReadCreateBuffersRequest(request));
  uint64_t total = 0;
  for (uint64_t size : sizes) total += size;
  if (!conn.on_worker() && conn.ctx().store->WouldSpill(total)) {
    reply->to_worker = true;  // it must write blobs to disk first: not on the event loop
    return Status::OK();
  }
  std::vector<Payload> created;
  for (uint64_t size : sizes) {
    auto p = conn.ctx().store->Create(size, conn.serial());
    if (!p.ok()) {
      // All or nothing: give back what this request allocated.
      for (const auto& c : created) (void)conn.Abort(c.object_id);
      return p.status();
    }
    created.push_back(*p);
  }
  std::vector<int> fds;
  for (const auto& p : created) {
    if (IsEmptyBlob(p.object_id)) continue;
    int fd = conn.PassFd(p.store_fd, reply);
    if (fd >= 0) fds.push_back(fd);
  }
  reply->body = WriteCreateBuffersReply(created, fds);
  return Status::OK();
}

Status Seal(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadSealRequest(request));
  VY_RETURN_NOT_OK(conn.Seal(id));
  reply->body = WriteTypeOnly("seal_reply");
  return Status::OK();
}

Status GetBuffers(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(GetBuffersRequest r, ReadGetBuffersRequest(request));
  if (!conn.on_worker() && conn.ctx().store->AnySpilled(r.ids)) {
    reply->to_worker = true;  // it must load blobs from disk: not on the event loop
    return Status::OK();
  }
  std::vector<int> fds;
  VY_ASSIGN_OR_RETURN(auto payloads, conn.GetPayloads(r.ids, r.unsafe, reply, &fds));
  reply->body = WriteGetBuffersReply(payloads, fds);
  return Status::OK();
}

Status ShrinkBuffer(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  uint64_t size;
  VY_RETURN_NOT_OK(ReadShrinkBufferRequest(request, &id, &size));
  VY_RETURN_NOT_OK(conn.ctx().store->Shrink(id, size, conn.serial()));
  reply->body = WriteTypeOnly("shrink_buffer_reply");
  return Status::OK();
}

Status DropBuffer(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadDropBufferRequest(request));
  VY_RETURN_NOT_OK(conn.Abort(id));
  reply->body = WriteTypeOnly("drop_buffer_reply");
  return Status::OK();
}

Status IncreaseRefCount(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> ids, ReadIncreaseRefCountRequest(request));
  for (ObjectID id : ids) {
    if (IsEmptyBlob(id)) continue;
    VY_RETURN_NOT_OK(conn.ctx().store->AddRef(id));
    conn.AddRef(id);
  }
  reply->body = WriteTypeOnly("increase_reference_count_reply");
  return Status::OK();
}

Status Release(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadReleaseRequest(request));
  conn.Release(id);
  reply->body = WriteTypeOnly("release_reply");
  return Status::OK();
}

Status CreateDiskBuffer(Connection&, json&, Reply*) {
  return Status::NotImplemented("disk-backed buffers are not supported by this vineyardd");
}

}  // namespace

void RegisterBlobHandlers(Dispatcher* d) {
  d->Register(req::kCreateBuffer, CreateBuffer, kIpcOnly);
  d->Register(req::kCreateBuffers, CreateBuffers, kIpcOnly);
  d->Register(req::kCreateDiskBuffer, CreateDiskBuffer, kIpcOnly);
  d->Register(req::kSeal, Seal);
  d->Register(req::kGetBuffers, GetBuffers, kIpcOnly);
  d->Register(req::kShrinkBuffer, ShrinkBuffer);
  d->Register(req::kDropBuffer, DropBuffer);
  d->Register(req::kIncreaseRefCount, IncreaseRefCount);
  d->Register(req::kRelease, Release);
}

}  // namespace vineyard
