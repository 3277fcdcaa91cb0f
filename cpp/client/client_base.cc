#include "client/client_base.h"

#include "client/client_core.h"

namespace vineyard {

ClientBase::ClientBase(std::shared_ptr<ClientCore> core) : core_(std::move(core)) {}
ClientBase::~ClientBase() { (void)core_->Disconnect(); }

Status ClientBase::Disconnect() { return core_->Disconnect(); }
bool ClientBase::Connected() const { return core_->connected(); }
InstanceID ClientBase::instance_id() const { return core_->info().instance_id; }
const std::string& ClientBase::ipc_socket() const { return core_->info().ipc_socket; }
const std::string& ClientBase::rpc_endpoint() const { return core_->info().rpc_endpoint; }
const std::string& ClientBase::version() const { return core_->info().version; }
bool ClientBase::whole_tree_put() const { return core_->info().whole_tree_put; }
const std::string& ClientBase::endpoint() const { return core_->endpoint(); }

void ClientBase::PrepareForCreate(ObjectMeta& meta) const {
  InstanceID instance = instance_id();
  json& tree = meta.MutableMetaData();
  tree[meta_key::kInstanceId] = instance;
  if (!tree.contains(meta_key::kTransient)) tree[meta_key::kTransient] = true;
  for (auto& [key, value] : tree.items()) {
    if (value.is_object() && !value.contains(meta_key::kInstanceId)) {
      value[meta_key::kInstanceId] = instance;
    }
  }
}

void ClientBase::ApplyCreated(ObjectMeta& meta, const CreatedObject& c) {
  meta.SetId(c.id);
  meta.MutableMetaData()[meta_key::kSignature] = c.signature;
  meta.SetInstanceId(c.instance_id);
}

Result<ObjectID> ClientBase::CreateMetaData(ObjectMeta& meta) {
  PrepareForCreate(meta);
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteCreateDataRequest(meta.MetaData())));
  VY_ASSIGN_OR_RETURN(CreatedObject c, ReadCreateDataReply(reply));
  ApplyCreated(meta, c);
  return c.id;
}

Result<std::vector<ObjectID>> ClientBase::CreateMetaData(std::vector<ObjectMeta>& metas) {
  std::vector<json> trees;
  for (auto& m : metas) {
    PrepareForCreate(m);
    trees.push_back(m.MetaData());
  }
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteCreateDatasRequest(trees)));
  VY_ASSIGN_OR_RETURN(std::vector<CreatedObject> cs, ReadCreateDatasReply(reply));
  std::vector<ObjectID> ids;
  for (size_t i = 0; i < cs.size() && i < metas.size(); ++i) {
    ApplyCreated(metas[i], cs[i]);
    ids.push_back(cs[i].id);
  }
  return ids;
}

Result<std::vector<ObjectMeta>> ClientBase::GetMetaData(const std::vector<ObjectID>& ids,
                                                    bool sync_remote, bool wait) {
  GetDataRequest r{ids, sync_remote, wait};
  auto answered = core_->Request(WriteGetDataRequest(r));
  if (answered.status().IsObjectNotExists() && !sync_remote && !wait) {
    // Maybe persisted elsewhere a moment ago: ask again behind the barrier.
    r.sync_remote = true;
    answered = core_->Request(WriteGetDataRequest(r));
  }
  VY_ASSIGN_OR_RETURN(json reply, std::move(answered));
  VY_ASSIGN_OR_RETURN(json trees, ReadGetDataReply(reply));
  std::vector<ObjectMeta> metas;
  for (ObjectID id : ids) {
    auto it = trees.find(ObjectIDToString(id));
    if (it == trees.end()) {
      return Status::ObjectNotExists("object ", ObjectIDToString(id), " does not exist");
    }
    metas.push_back(ObjectMeta::FromJSON(*it));
    metas.back().SetViewer(instance_id());
  }
  return metas;
}

Result<ObjectMeta> ClientBase::GetMetaData(ObjectID id, bool sync_remote, bool wait) {
  VY_ASSIGN_OR_RETURN(auto metas, GetMetaData(std::vector<ObjectID>{id}, sync_remote, wait));
  return std::move(metas[0]);
}

Result<std::vector<ObjectMeta>> ClientBase::ListMetaData(const std::string& pattern, bool regex,
                                                     size_t limit) {
  ListQuery q{pattern, regex, limit};
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteListDataRequest(q)));
  VY_ASSIGN_OR_RETURN(json trees, ReadGetDataReply(reply));
  std::vector<ObjectMeta> metas;
  for (auto& [key, tree] : trees.items()) {
    metas.push_back(ObjectMeta::FromJSON(tree));
    metas.back().SetViewer(instance_id());
  }
  return metas;
}

Status ClientBase::Delete(ObjectID id, bool force, bool deep) {
  return Delete(std::vector<ObjectID>{id}, force, deep, false);
}

Status ClientBase::Delete(const std::vector<ObjectID>& ids, bool force, bool deep, bool memory_trim) {
  DeleteRequest r;
  r.ids = ids;
  r.force = force;
  r.deep = deep;
  r.memory_trim = memory_trim;
  // References this client dropped go first (in the same request), so what is
  // deleted is freed now (and a put right after finds the memory).
  if (core_->is_ipc() && whole_tree_put()) {
    r.release = core_->TakeReleases();
  } else {
    VY_RETURN_NOT_OK(core_->FlushReleases());  // an older server: a request of its own
  }
  return core_->Request(WriteDeleteRequest(r)).status();
}

Result<bool> ClientBase::Exists(ObjectID id) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteIdRequest(req::kExists, id)));
  return ReadExistsReply(reply);
}

Status ClientBase::Persist(ObjectID id) {
  return core_->Request(WriteIdRequest(req::kPersist, id)).status();
}

Result<bool> ClientBase::IsPersisted(ObjectID id) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteIdRequest(req::kIfPersist, id)));
  return ReadIfPersistReply(reply);
}

Result<ObjectID> ClientBase::ShallowCopy(ObjectID id, const json& extra) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteShallowCopyRequest(id, extra)));
  return ReadShallowCopyReply(reply);
}

Status ClientBase::Label(ObjectID id, const std::string& key, const std::string& value) {
  return core_->Request(WriteLabelRequest(id, {key}, {value})).status();
}

Status ClientBase::Label(ObjectID id, const std::map<std::string, std::string>& labels) {
  std::vector<std::string> keys, values;
  for (const auto& [k, v] : labels) {
    keys.push_back(k);
    values.push_back(v);
  }
  return core_->Request(WriteLabelRequest(id, keys, values)).status();
}

Status ClientBase::PutName(ObjectID id, const std::string& name) {
  return core_->Request(WritePutNameRequest(id, name)).status();
}

Result<ObjectID> ClientBase::GetName(const std::string& name, bool wait) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteGetNameRequest(name, wait)));
  return ReadGetNameReply(reply);
}

Status ClientBase::CreateStream(ObjectID id) {
  return core_->Request(WriteCreateStreamRequest(id)).status();
}

Status ClientBase::OpenStream(ObjectID id, int64_t mode) {
  return core_->Request(WriteOpenStreamRequest(id, mode)).status();
}

Status ClientBase::PushNextStreamChunk(ObjectID id, ObjectID chunk) {
  return core_->Request(WritePushNextStreamChunkRequest(id, chunk)).status();
}

Result<ObjectID> ClientBase::PullNextStreamChunk(ObjectID id) {
  // The chunks read before are given back on the way (their memory is the
  // writer's next chunk).
  VY_ASSIGN_OR_RETURN(json reply,
                      core_->Request(WritePullNextStreamChunkRequest(id, core_->TakeReleases())));
  return ReadPullNextStreamChunkReply(reply);
}

Status ClientBase::StopStream(ObjectID id, bool failed) {
  return core_->Request(WriteStopStreamRequest(id, failed)).status();
}

Status ClientBase::DropStream(ObjectID id) {
  return core_->Request(WriteDropStreamRequest(id)).status();
}

Status ClientBase::DropName(const std::string& name) {
  return core_->Request(WriteDropNameRequest(name)).status();
}

Result<std::map<std::string, ObjectID>> ClientBase::ListNames(const std::string& pattern, bool regex,
                                                          size_t limit) {
  ListQuery q{pattern, regex, limit};
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteListNameRequest(q)));
  return ReadListNameReply(reply);
}

Status ClientBase::Clear() { return core_->Request(WriteTypeOnly(req::kClear)).status(); }

Result<bool> ClientBase::MemoryTrim() {
  VY_RETURN_NOT_OK(core_->FlushReleases());
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteTypeOnly(req::kMemoryTrim)));
  return ReadMemoryTrimReply(reply);
}

Result<InstanceStatus> ClientBase::GetInstanceStatus() {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteTypeOnly(req::kInstanceStatus)));
  VY_ASSIGN_OR_RETURN(json meta, ReadMetaReply(reply));
  return ReadInstanceStatus(meta);
}

Result<json> ClientBase::ClusterInfo() {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteTypeOnly(req::kClusterMeta)));
  return ReadMetaReply(reply);
}

Status ClientBase::SyncMetaData() {
  GetDataRequest r;
  r.sync_remote = true;  // no ids: only the barrier
  return core_->Request(WriteGetDataRequest(r)).status();
}

Result<ObjectID> ClientBase::MigrateObject(ObjectID id) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteMigrateObjectRequest(id)));
  return ReadMigrateObjectReply(reply);
}

// --- spilling -------------------------------------------------------------------

Status ClientBase::Evict(const std::vector<ObjectID>& ids) {
  // References this client has let go of must reach the server first, or they
  // would keep the blobs "in use".
  VY_RETURN_NOT_OK(core_->FlushReleases());
  return core_->Request(WriteEvictRequest(ids)).status();
}

Status ClientBase::Load(const std::vector<ObjectID>& ids, bool pin) {
  return core_->Request(WriteLoadRequest(ids, pin)).status();
}

Status ClientBase::Unpin(const std::vector<ObjectID>& ids) {
  return core_->Request(WriteUnpinRequest(ids)).status();
}

Result<bool> ClientBase::IsSpilled(ObjectID id) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteIsSpilledRequest(id)));
  return ReadIsSpilledReply(reply);
}

Result<bool> ClientBase::IsInUse(ObjectID id) {
  VY_RETURN_NOT_OK(core_->FlushReleases());
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteIsInUseRequest(id)));
  return ReadIsInUseReply(reply);
}

}  // namespace vineyard
