// Handlers for spilling: evict, load, unpin, is_spilled, is_in_use. The ids
// may name blobs or whole objects (an object stands for its local blobs).
#include "server/dispatcher.h"

namespace vineyard {

namespace {

// The local blobs of `ids`: a blob is itself, an object its blob members.
Result<std::vector<ObjectID>> BlobsOf(Connection& conn, const std::vector<ObjectID>& ids) {
  std::vector<ObjectID> blobs;
  for (ObjectID id : ids) {
    if (IsBlob(id)) {
      blobs.push_back(id);
      continue;
    }
    VY_ASSIGN_OR_RETURN(json trees, conn.ctx().meta->Get({id}));
    conn.ctx().meta->CollectLocalBlobs(trees, &blobs);
  }
  return blobs;
}

Status Evict(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> ids, ReadEvictRequest(request));
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> blobs, BlobsOf(conn, ids));
  VY_RETURN_NOT_OK(conn.ctx().store->Evict(blobs));
  reply->body = WriteTypeOnly("evict_reply");
  return Status::OK();
}

Status Load(Connection& conn, json& request, Reply* reply) {
  std::vector<ObjectID> ids;
  bool pin = false;
  VY_RETURN_NOT_OK(ReadLoadRequest(request, &ids, &pin));
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> blobs, BlobsOf(conn, ids));
  VY_RETURN_NOT_OK(conn.ctx().store->Load(blobs, pin));
  reply->body = WriteTypeOnly("load_reply");
  return Status::OK();
}

Status Unpin(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> ids, ReadUnpinRequest(request));
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> blobs, BlobsOf(conn, ids));
  conn.ctx().store->Unpin(blobs);
  reply->body = WriteTypeOnly("unpin_reply");
  return Status::OK();
}

Status IsSpilled(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadIsSpilledRequest(request));
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> blobs, BlobsOf(conn, {id}));
  bool spilled = false;
  for (ObjectID b : blobs) {
    VY_ASSIGN_OR_RETURN(bool s, conn.ctx().store->IsSpilled(b));
    spilled = spilled || s;
  }
  reply->body = WriteIsSpilledReply(spilled);
  return Status::OK();
}

Status IsInUse(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadIsInUseRequest(request));
  VY_ASSIGN_OR_RETURN(std::vector<ObjectID> blobs, BlobsOf(conn, {id}));
  bool in_use = false;
  for (ObjectID b : blobs) {
    VY_ASSIGN_OR_RETURN(bool u, conn.ctx().store->IsInUse(b));
    in_use = in_use || u;
  }
  reply->body = WriteIsInUseReply(in_use);
  return Status::OK();
}

}  // namespace

void RegisterSpillHandlers(Dispatcher* d) {
  // evict and load move blob bytes to and from disk: on a worker.
  d->Register(req::kEvict, Evict, kSlow);
  d->Register(req::kLoad, Load, kSlow);
  d->Register(req::kUnpin, Unpin);
  d->Register(req::kIsSpilled, IsSpilled);
  d->Register(req::kIsInUse, IsInUse);
}

}  // namespace vineyard
