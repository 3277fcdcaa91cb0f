// Handlers for metadata: objects, names, deletion, and our fused put/get.
#include <algorithm>
#include <cstring>

#include "server/dispatcher.h"
#include "server/migration.h"
#include "server/stream_store.h"

namespace vineyard {

namespace {

// A member persisted on another instance a moment ago may not have reached this
// one yet (the watch of etcd delivers it a little later): when a create names
// an unknown member in a cluster, wait for the cluster once (a read barrier)
// and try again. Creates run on a worker when the backend is remote (kSlow,
// kWritesThrough), so the wait holds no event loop.
template <typename F>
auto CreateSynced(Connection& conn, F create) -> decltype(create()) {
  auto result = create();
  if (!result.ok() && result.status().IsObjectNotExists() && conn.ctx().backend->remote() &&
      conn.on_worker()) {
    VY_RETURN_NOT_OK(conn.ctx().backend->Sync());
    result = create();
  }
  return result;
}

Status CreateData(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(json tree, ReadCreateDataRequest(request));
  VY_ASSIGN_OR_RETURN(CreatedObject c,
                      CreateSynced(conn, [&] { return conn.ctx().meta->Create(tree); }));
  reply->body = WriteCreateDataReply(c);
  return Status::OK();
}

Status CreateDatas(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(std::vector<json> trees, ReadCreateDatasRequest(request));
  std::vector<CreatedObject> created;
  for (const auto& tree : trees) {
    auto c = CreateSynced(conn, [&] { return conn.ctx().meta->Create(tree); });
    if (!c.ok()) {
      // All or nothing: remove what this request created.
      DeleteRequest undo;
      for (const auto& done : created) undo.ids.push_back(done.id);
      undo.deep = false;
      std::vector<ObjectID> unused;
      (void)conn.ctx().meta->Delete(undo, &unused);
      return c.status();
    }
    created.push_back(*c);
  }
  reply->body = WriteCreateDatasReply(created);
  return Status::OK();
}

Status GetData(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(GetDataRequest r, ReadGetDataRequest(request));
  if (r.sync_remote && conn.ctx().backend->remote()) {
    VY_RETURN_NOT_OK(conn.ctx().backend->Sync());  // on a worker (kMaySync)
  }
  auto trees = conn.ctx().meta->Get(r.ids);
  if (r.wait && trees.status().IsObjectNotExists()) {
    reply->defer = true;  // parked until the objects appear (or the client leaves)
    return Status::OK();
  }
  VY_RETURN_NOT_OK(trees.status());
  reply->body = WriteGetDataReply(*trees);
  return Status::OK();
}

Status ListData(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ListQuery q, ReadListDataRequest(request));
  VY_ASSIGN_OR_RETURN(json trees, conn.ctx().meta->List(q));
  reply->body = WriteGetDataReply(trees);
  return Status::OK();
}

Status DelData(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(DeleteRequest r, ReadDeleteRequest(request));
  for (ObjectID id : r.release) conn.Release(id);
  for (ObjectID id : r.ids) VY_RETURN_NOT_OK(conn.ctx().store->CheckDeletable(id));
  std::vector<ObjectID> deleted_blobs;
  VY_RETURN_NOT_OK(conn.ctx().meta->Delete(r, &deleted_blobs));
  conn.ctx().streams->Forget(r.ids);  // a deleted stream object takes its chunks along
  if (r.memory_trim) conn.ctx().store->Trim();
  reply->body = WriteDeleteReply(r.with_feedbacks, deleted_blobs);
  return Status::OK();
}

Status Exists(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadIdRequest(request));
  reply->body = WriteExistsReply(conn.ctx().meta->Exists(id));
  return Status::OK();
}

Status Persist(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadIdRequest(request));
  VY_RETURN_NOT_OK(conn.ctx().meta->Persist(id));
  if (IsBlob(id)) VY_RETURN_NOT_OK(conn.ctx().store->Adopt(id));  // outlives its creator
  reply->body = WriteTypeOnly("persist_reply");
  return Status::OK();
}

Status IfPersist(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadIdRequest(request));
  VY_ASSIGN_OR_RETURN(bool persisted, conn.ctx().meta->IsPersisted(id));
  reply->body = WriteIfPersistReply(persisted);
  return Status::OK();
}

Status ShallowCopy(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  json extra;
  VY_RETURN_NOT_OK(ReadShallowCopyRequest(request, &id, &extra));
  VY_ASSIGN_OR_RETURN(ObjectID target, conn.ctx().meta->ShallowCopy(id, extra));
  reply->body = WriteShallowCopyReply(target);
  return Status::OK();
}

Status Label(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  std::vector<std::string> keys, values;
  VY_RETURN_NOT_OK(ReadLabelRequest(request, &id, &keys, &values));
  VY_RETURN_NOT_OK(conn.ctx().meta->Label(id, keys, values));
  reply->body = WriteTypeOnly("label_reply");
  return Status::OK();
}

Status PutName(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  std::string name;
  VY_RETURN_NOT_OK(ReadPutNameRequest(request, &id, &name));
  VY_RETURN_NOT_OK(conn.ctx().meta->PutName(id, name));
  reply->body = WriteTypeOnly("put_name_reply");
  return Status::OK();
}

Status GetName(Connection& conn, json& request, Reply* reply) {
  std::string name;
  bool wait = false;
  VY_RETURN_NOT_OK(ReadGetNameRequest(request, &name, &wait));
  auto id = conn.ctx().meta->GetName(name);
  if (wait && id.status().IsObjectNotExists()) {
    reply->defer = true;  // parked until the name is put (or the client leaves)
    return Status::OK();
  }
  VY_RETURN_NOT_OK(id.status());
  reply->body = WriteGetNameReply(*id);
  return Status::OK();
}

Status ListName(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ListQuery q, ReadListNameRequest(request));
  VY_ASSIGN_OR_RETURN(auto names, conn.ctx().meta->ListNames(q));
  reply->body = WriteListNameReply(names);
  return Status::OK();
}

Status DropName(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(std::string name, ReadDropNameRequest(request));
  VY_RETURN_NOT_OK(conn.ctx().meta->DropName(name));
  reply->body = WriteTypeOnly("drop_name_reply");
  return Status::OK();
}

Status Clear(Connection& conn, json&, Reply* reply) {
  VY_RETURN_NOT_OK(conn.ctx().meta->Clear());
  conn.ctx().streams->ForgetAll();
  reply->body = WriteTypeOnly("clear_reply");
  return Status::OK();
}

Status MigrateObject(Connection& conn, json& request, Reply* reply) {
  // Blobs of other instances are copied here (on a worker: kSlow).
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadMigrateObjectRequest(request));
  if (!conn.ctx().meta->Exists(id)) {
    return Status::ObjectNotExists("cannot migrate ", ObjectIDToString(id),
                                   ": it does not exist (sync_meta() first if it was just "
                                   "persisted elsewhere)");
  }
  VY_ASSIGN_OR_RETURN(ObjectID local, conn.ctx().migrator->Migrate(id));
  reply->body = WriteMigrateObjectReply(local);
  return Status::OK();
}

// Ours: allocate the inline blobs + seal + create the whole tree (+ persist +
// name) in one round trip, undone on failure.
Status VyPut(Connection& conn, json& request, Reply* reply) {
  VyPutRequest r;
  VY_RETURN_NOT_OK(ReadVyPutRequestHead(request, &r));
  uint64_t inline_total = 0;
  for (uint64_t size : r.inline_sizes) inline_total += size;
  if (!conn.on_worker() && conn.ctx().store->WouldSpill(inline_total)) {
    reply->to_worker = true;  // it must write blobs to disk first: not on the event loop
    return Status::OK();
  }
  r.tree = std::move(request["content"]);  // taken over, not copied: never re-run from here
  for (ObjectID id : r.release) conn.Release(id);
  // Undone on failure: the blobs made here are deleted; the client's own
  // blobs (r.seal) go back to being unsealed and its, as they were (it may
  // still be using their memory).
  std::vector<ObjectID> sealed, sealed_theirs;
  auto undo_seals = [&]() {
    for (ObjectID id : sealed) {
      conn.Release(id);
      (void)conn.ctx().store->Delete(id);
    }
    for (ObjectID id : sealed_theirs) {
      if (!conn.Unseal(id).ok()) {
        conn.Release(id);
        (void)conn.ctx().store->Delete(id);
      }
    }
  };
  std::vector<ObjectID> inline_blobs;
  size_t offset = 0;
  for (uint64_t size : r.inline_sizes) {
    auto p = conn.ctx().store->Create(size, conn.serial());
    if (!p.ok()) {
      undo_seals();
      return p.status();
    }
    if (size > 0) {
      std::memcpy(reinterpret_cast<void*>(p->pointer), r.attachment.data() + offset, size);
    }
    offset += size;
    Status st = conn.Seal(p->object_id);
    if (!st.ok()) {
      (void)conn.Abort(p->object_id);
      undo_seals();
      return st;
    }
    if (!IsEmptyBlob(p->object_id)) sealed.push_back(p->object_id);
    inline_blobs.push_back(p->object_id);
  }
  for (ObjectID id : r.seal) {
    Status st = conn.Seal(id);
    if (!st.ok()) {
      undo_seals();
      return st;
    }
    sealed_theirs.push_back(id);
  }
  std::vector<ObjectID> made;
  auto created = CreateSynced(conn, [&] {
    made.clear();
    // Consumed by CreateTree: kept for the second try only in a cluster.
    json tree = conn.ctx().backend->remote() ? r.tree : std::move(r.tree);
    return conn.ctx().meta->CreateTree(std::move(tree), inline_blobs, &made);
  });
  if (!created.ok()) {
    undo_seals();
    return created.status();
  }
  Status st;
  if (r.persist || !r.name.empty()) st = conn.ctx().meta->Persist(created->id);
  if (st.ok() && !r.name.empty()) st = conn.ctx().meta->PutName(created->id, r.name);
  if (!st.ok()) {
    // What this put made, and only that: members it referenced that existed
    // before stay, and its blobs are undone below.
    DeleteRequest undo;
    undo.ids = {created->id};
    undo.deep = false;
    std::vector<ObjectID> unused;
    (void)conn.ctx().meta->Delete(undo, &unused);
    for (auto it = made.rbegin(); it != made.rend(); ++it) {
      undo.ids = {*it};
      if (conn.ctx().meta->Exists(*it)) (void)conn.ctx().meta->Delete(undo, &unused);
    }
    undo_seals();
    return st;
  }
  // The client never maps the blobs made of its inline runs: the session keeps
  // no reference to them (else a later delete would leave their memory held
  // until the session ends).
  for (ObjectID id : inline_blobs) {
    if (!IsEmptyBlob(id)) conn.Release(id);
  }
  reply->body = WriteVyPutReply(*created, inline_blobs, made);
  return Status::OK();
}

// Ours: metadata trees and every local payload in one round trip.
Status VyGet(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(VyGetRequest r, ReadVyGetRequest(request));
  // Trees this large take milliseconds to build: not on the event loop, whose
  // other clients would wait behind it.
  constexpr uint64_t kLoopNodes = 4096;
  if (!conn.on_worker() && conn.ctx().meta->ExpandedNodes(r.ids) > kLoopNodes) {
    reply->to_worker = true;
    return Status::OK();
  }
  // Our client asks for shared members: the reply is written straight as text.
  json trees;
  std::string content;
  std::vector<ObjectID> blobs;
  if (r.share_members) {
    VY_RETURN_NOT_OK(conn.ctx().meta->GetText(r.ids, &content, &blobs));
  } else {
    VY_ASSIGN_OR_RETURN(trees, conn.ctx().meta->Get(r.ids));
    conn.ctx().meta->CollectLocalBlobs(trees, &blobs);
  }
  std::sort(blobs.begin(), blobs.end());
  blobs.erase(std::unique(blobs.begin(), blobs.end()), blobs.end());
  if (!conn.on_worker() && conn.ctx().store->AnySpilled(blobs)) {
    reply->to_worker = true;  // it must load blobs from disk: not on the event loop
    return Status::OK();
  }
  for (ObjectID id : r.release) conn.Release(id);
  std::vector<int> fds;
  auto payloads = conn.GetPayloads(blobs, false, reply, &fds);
  if (!payloads.ok() && payloads.status().IsIOError()) {
    // A spilled blob could not be loaded back: say which objects it breaks.
    std::string names;
    for (size_t i = 0; i < r.ids.size() && i < 8; ++i) {
      names += (i > 0 ? ", " : "") + ObjectIDToString(r.ids[i]);
    }
    if (r.ids.size() > 8) names += ", ...";
    return payloads.status().WithContext("cannot get " + names);
  }
  VY_RETURN_NOT_OK(payloads.status());
  if (!r.share_members) {
    reply->body = WriteVyGetReply(std::move(trees), *payloads, fds);
    return Status::OK();
  }
  // {"content": <text>, and the rest as WriteVyGetReply writes it}
  std::string rest = WriteVyGetReply(json::object(), *payloads, fds)
                         .dump(-1, ' ', false, json::error_handler_t::replace);
  const std::string placeholder = "\"content\":{}";
  const size_t at = rest.find(placeholder);
  if (at == std::string::npos) return Status::Invalid("internal: no content in a vy_get reply");
  reply->body_text.reserve(rest.size() + content.size());
  reply->body_text.append(rest, 0, at + placeholder.size() - 2);
  reply->body_text += content;
  reply->body_text.append(rest, at + placeholder.size(), std::string::npos);
  return Status::OK();
}

}  // namespace

void RegisterMetaHandlers(Dispatcher* d) {
  d->Register(req::kCreateData, CreateData, kSlow);  // sizes fields of up to a frame
  d->Register(req::kCreateDatas, CreateDatas, kSlow);
  d->Register(req::kGetData, GetData, kMaySync);
  d->Register(req::kListData, ListData, kSlow);  // matches every typename, expands
  d->Register(req::kDelData, DelData, kWritesThrough);
  d->Register(req::kDelDataWithFeedbacks, DelData, kWritesThrough);
  d->Register(req::kExists, Exists);
  d->Register(req::kPersist, Persist, kWritesThrough);
  d->Register(req::kIfPersist, IfPersist);
  d->Register(req::kShallowCopy, ShallowCopy);
  d->Register(req::kLabel, Label);
  d->Register(req::kPutName, PutName, kWritesThrough);
  d->Register(req::kGetName, GetName);
  d->Register(req::kListName, ListName, kSlow);  // matches every name
  d->Register(req::kDropName, DropName, kWritesThrough);
  d->Register(req::kClear, Clear, kSlow);
  d->Register(req::kMigrateObject, MigrateObject, kSlow);  // fetches blobs from the owner
  d->Register(req::kVyPut, VyPut, kWritesThrough);
  d->Register(req::kVyGet, VyGet, kIpcOnly);
}

}  // namespace vineyard
