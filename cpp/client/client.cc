#include "client/client.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>

#include "client/client_core.h"
#include "common/socket_io.h"

namespace vineyard {

// --- ClientCore ----------------------------------------------------------------

ClientCore::~ClientCore() {
  (void)Disconnect();
  for (const auto& [server_fd, fd] : received_fds_) ::close(fd);
}

Result<std::shared_ptr<ClientCore>> ClientCore::Connect(const std::string& socket) {
  std::shared_ptr<ClientCore> core(new ClientCore());
  core->socket_ = socket;
  VY_ASSIGN_OR_RETURN(core->fd_, ConnectUnixSocket(socket));
  RegisterRequest r;
  r.version = kProtocolVersion;
  r.releases_references = true;  // Blob and BlobWriter give their references back
  auto reply = core->Request(WriteRegisterRequest(r));
  if (!reply.ok()) {
    return Status::ConnectionFailed("vineyardd at '", socket, "' refused the session: ",
                                    reply.status().ToString());
  }
  VY_ASSIGN_OR_RETURN(core->info_, ReadRegisterReply(*reply));
  return core;
}

Status ClientCore::SendAndReceive(const json& request, json* reply) {
  if (fd_ < 0) {
    return Status::ConnectionError("the client is disconnected from vineyardd at '", socket_,
                                   "': connect again");
  }
  std::string frame;
  Status st = SendFrame(fd_, request.dump(-1, ' ', false, json::error_handler_t::replace));
  if (st.ok()) st = RecvFrame(fd_, &frame);
  if (!st.ok()) {
    ::close(fd_);
    fd_ = -1;
    return Status::ConnectionError("lost the connection to vineyardd at '", socket_,
                                   "': ", st.message());
  }
  VY_ASSIGN_OR_RETURN(*reply, ParseMessage(frame));
  return Status::OK();
}

Result<json> ClientCore::Request(const json& request) {
  std::lock_guard<std::mutex> lock(mu_);
  json reply;
  VY_RETURN_NOT_OK(SendAndReceive(request, &reply));
  VY_RETURN_NOT_OK(CheckReply(reply));
  return reply;
}

Result<json> ClientCore::RequestWithFds(const json& request, const char* fds_key) {
  std::lock_guard<std::mutex> lock(mu_);
  json reply;
  VY_RETURN_NOT_OK(SendAndReceive(request, &reply));
  VY_RETURN_NOT_OK(CheckReply(reply));
  // The server follows the reply with each new fd it lists, in order.
  std::vector<int> fds;
  auto it = reply.find(fds_key);
  if (it != reply.end() && it->is_array()) {
    fds = it->get<std::vector<int>>();
  } else if (it != reply.end() && it->is_number_integer()) {
    fds.push_back(it->get<int>());
  }
  for (int server_fd : fds) {
    if (server_fd < 0) continue;
    auto fd = RecvFd(fd_);
    if (!fd.ok()) {
      ::close(fd_);
      fd_ = -1;
      return Status::ConnectionError("lost the connection to vineyardd at '", socket_,
                                     "' while receiving memory: ", fd.status().message());
    }
    auto old = received_fds_.find(server_fd);
    if (old != received_fds_.end()) ::close(old->second);
    received_fds_[server_fd] = *fd;
  }
  return reply;
}

Result<std::shared_ptr<Mapping>> ClientCore::MapRegion(int store_fd, size_t map_size,
                                                       bool writable) {
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(store_fd, writable);
  auto it = mappings_.find(key);
  if (it != mappings_.end() && it->second->size >= map_size) return it->second;
  auto fd = received_fds_.find(store_fd);
  if (fd == received_fds_.end()) {
    return Status::IOError("the server referenced memory region ", store_fd,
                           " that this client never received");
  }
  int prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ;
  void* addr = mmap(nullptr, map_size, prot, MAP_SHARED, fd->second, 0);
  if (addr == MAP_FAILED) {
    return Status::IOError("cannot map ", map_size, " bytes of shared memory: ",
                           strerror(errno));
  }
  auto m = std::make_shared<Mapping>(static_cast<uint8_t*>(addr), map_size);
  mappings_[key] = m;
  return m;
}

Result<std::shared_ptr<Blob>> ClientCore::MakeBlob(const Payload& p) {
  // A blob shrunk to 0 bytes is still a blob of its own (with a reference to give back).
  if (IsEmptyBlob(p.object_id) || p.store_fd < 0) return Blob::MakeEmpty();
  VY_ASSIGN_OR_RETURN(auto m, MapRegion(p.store_fd, p.map_size, false));
  if (p.data_offset < 0 || p.data_offset + p.data_size > m->size) {
    return Status::IOError("blob ", ObjectIDToString(p.object_id), " lies outside its region");
  }
  return std::make_shared<Blob>(p.object_id, p.data_size, m->base + p.data_offset, m,
                                weak_from_this());
}

Result<std::unique_ptr<BlobWriter>> ClientCore::MakeWriter(const Payload& p) {
  if (IsEmptyBlob(p.object_id) || p.store_fd < 0) {
    static uint8_t nothing[1];
    return std::make_unique<BlobWriter>(p, nothing, nullptr, shared_from_this());
  }
  VY_ASSIGN_OR_RETURN(auto m, MapRegion(p.store_fd, p.map_size, true));
  if (p.data_offset < 0 || p.data_offset + p.data_size > m->size) {
    return Status::IOError("blob ", ObjectIDToString(p.object_id), " lies outside its region");
  }
  return std::make_unique<BlobWriter>(p, m->base + p.data_offset, m, shared_from_this());
}

void ClientCore::QueueRelease(ObjectID id) {
  std::lock_guard<std::mutex> lock(release_mu_);
  releases_.push_back(id);
}

std::vector<ObjectID> ClientCore::TakeReleases() {
  std::lock_guard<std::mutex> lock(release_mu_);
  return std::move(releases_);
}

Status ClientCore::FlushReleases() {
  std::vector<ObjectID> ids = TakeReleases();
  if (ids.empty() || !connected()) return Status::OK();
  VyGetRequest r;  // an empty get carries the releases in one round trip
  r.release = std::move(ids);
  return Request(WriteVyGetRequest(r)).status();
}

Status ClientCore::Disconnect() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return Status::OK();
  (void)SendFrame(fd_, WriteExitRequest().dump());
  ::close(fd_);
  fd_ = -1;
  return Status::OK();
}

bool ClientCore::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fd_ >= 0;
}

// --- Client ----------------------------------------------------------------------

Client::Client(std::shared_ptr<ClientCore> core) : core_(std::move(core)) {}
Client::~Client() { (void)core_->Disconnect(); }

Result<std::shared_ptr<Client>> Client::Connect(const std::string& socket) {
  std::string path = socket;
  if (path.empty()) {
    const char* env = getenv("VINEYARD_IPC_SOCKET");
    if (env == nullptr || *env == '\0') {
      return Status::ConnectionFailed(
          "no socket given and VINEYARD_IPC_SOCKET is not set: pass the path of vineyardd's "
          "--socket");
    }
    path = env;
  }
  VY_ASSIGN_OR_RETURN(auto core, ClientCore::Connect(path));
  return std::shared_ptr<Client>(new Client(std::move(core)));
}

Status Client::Disconnect() { return core_->Disconnect(); }
bool Client::Connected() const { return core_->connected(); }
InstanceID Client::instance_id() const { return core_->info().instance_id; }
const std::string& Client::ipc_socket() const { return core_->info().ipc_socket; }
const std::string& Client::rpc_endpoint() const { return core_->info().rpc_endpoint; }
const std::string& Client::version() const { return core_->info().version; }

Result<std::unique_ptr<BlobWriter>> Client::CreateBlob(size_t size) {
  VY_ASSIGN_OR_RETURN(json reply, core_->RequestWithFds(WriteCreateBufferRequest(size), "fd"));
  int fd_sent = -1;
  VY_ASSIGN_OR_RETURN(Payload p, ReadCreateBufferReply(reply, &fd_sent));
  return core_->MakeWriter(p);
}

Result<std::vector<std::unique_ptr<BlobWriter>>> Client::CreateBlobs(
    const std::vector<size_t>& sizes) {
  std::vector<uint64_t> s(sizes.begin(), sizes.end());
  VY_ASSIGN_OR_RETURN(json reply, core_->RequestWithFds(WriteCreateBuffersRequest(s), "fds"));
  std::vector<int> fds;
  VY_ASSIGN_OR_RETURN(std::vector<Payload> ps, ReadCreateBuffersReply(reply, &fds));
  std::vector<std::unique_ptr<BlobWriter>> writers;
  for (const auto& p : ps) {
    VY_ASSIGN_OR_RETURN(auto w, core_->MakeWriter(p));
    writers.push_back(std::move(w));
  }
  return writers;
}

Result<std::vector<std::shared_ptr<Blob>>> Client::GetBlobs(const std::vector<ObjectID>& ids,
                                                           bool unsafe) {
  GetBuffersRequest r{ids, unsafe};
  VY_ASSIGN_OR_RETURN(json reply, core_->RequestWithFds(WriteGetBuffersRequest(r), "fds"));
  std::vector<int> fds;
  VY_ASSIGN_OR_RETURN(std::vector<Payload> ps, ReadGetBuffersReply(reply, &fds));
  std::vector<std::shared_ptr<Blob>> blobs;
  for (const auto& p : ps) {
    VY_ASSIGN_OR_RETURN(auto b, core_->MakeBlob(p));
    blobs.push_back(std::move(b));
  }
  return blobs;
}

Result<std::shared_ptr<Blob>> Client::GetBlob(ObjectID id, bool unsafe) {
  VY_ASSIGN_OR_RETURN(auto blobs, GetBlobs({id}, unsafe));
  if (blobs.size() != 1) return Status::ObjectNotExists("blob ", ObjectIDToString(id));
  return blobs[0];
}

namespace {
void PrepareForCreate(ObjectMeta& meta, InstanceID instance) {
  json& tree = meta.MutableMetaData();
  tree[meta_key::kInstanceId] = instance;
  if (!tree.contains(meta_key::kTransient)) tree[meta_key::kTransient] = true;
  for (auto& [key, value] : tree.items()) {
    if (value.is_object() && !value.contains(meta_key::kInstanceId)) {
      value[meta_key::kInstanceId] = instance;
    }
  }
}

void ApplyCreated(ObjectMeta& meta, const CreatedObject& c) {
  meta.SetId(c.id);
  meta.MutableMetaData()[meta_key::kSignature] = c.signature;
  meta.SetInstanceId(c.instance_id);
}
}  // namespace

Result<ObjectID> Client::CreateMetaData(ObjectMeta& meta) {
  PrepareForCreate(meta, instance_id());
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteCreateDataRequest(meta.MetaData())));
  VY_ASSIGN_OR_RETURN(CreatedObject c, ReadCreateDataReply(reply));
  ApplyCreated(meta, c);
  return c.id;
}

Result<std::vector<ObjectID>> Client::CreateMetaData(std::vector<ObjectMeta>& metas) {
  std::vector<json> trees;
  for (auto& m : metas) {
    PrepareForCreate(m, instance_id());
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

Result<ObjectID> Client::Put(ObjectMeta& meta, const std::vector<BlobWriter*>& blobs,
                             bool persist, const std::string& name) {
  PrepareForCreate(meta, instance_id());
  VyPutRequest r;
  for (BlobWriter* w : blobs) {
    if (w == nullptr) continue;
    if (w->sealed()) return Status::ObjectSealed("blob ", ObjectIDToString(w->id()),
                                                 " is already sealed");
    if (!IsEmptyBlob(w->id())) r.seal.push_back(w->id());
  }
  r.tree = meta.MetaData();
  r.persist = persist;
  r.name = name;
  r.release = core_->TakeReleases();
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteVyPutRequest(r)));
  VY_ASSIGN_OR_RETURN(CreatedObject c, ReadCreateDataReply(reply));
  for (BlobWriter* w : blobs) {
    if (w != nullptr) w->MarkSealed();
  }
  ApplyCreated(meta, c);
  if (persist || !name.empty()) meta.MutableMetaData()[meta_key::kTransient] = false;
  return c.id;
}

Result<std::vector<ObjectMeta>> Client::GetMetaData(const std::vector<ObjectID>& ids,
                                                    bool sync_remote, bool wait) {
  GetDataRequest r{ids, sync_remote, wait};
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteGetDataRequest(r)));
  VY_ASSIGN_OR_RETURN(json trees, ReadGetDataReply(reply));
  std::vector<ObjectMeta> metas;
  for (ObjectID id : ids) {
    auto it = trees.find(ObjectIDToString(id));
    if (it == trees.end()) {
      return Status::ObjectNotExists("object ", ObjectIDToString(id), " does not exist");
    }
    metas.push_back(ObjectMeta::FromJSON(*it));
  }
  return metas;
}

Result<ObjectMeta> Client::GetMetaData(ObjectID id, bool sync_remote, bool wait) {
  VY_ASSIGN_OR_RETURN(auto metas, GetMetaData(std::vector<ObjectID>{id}, sync_remote, wait));
  return std::move(metas[0]);
}

Result<std::vector<ObjectMeta>> Client::Attach(json trees, const std::vector<Payload>& payloads,
                                               const std::vector<ObjectID>& order) {
  std::vector<std::pair<ObjectID, std::shared_ptr<Blob>>> blobs;
  for (const auto& p : payloads) {
    VY_ASSIGN_OR_RETURN(auto b, core_->MakeBlob(p));
    blobs.emplace_back(p.object_id, std::move(b));
  }
  std::vector<ObjectMeta> metas;
  for (ObjectID id : order) {
    auto it = trees.find(ObjectIDToString(id));
    if (it == trees.end()) {
      return Status::ObjectNotExists("object ", ObjectIDToString(id), " does not exist");
    }
    ObjectMeta meta = ObjectMeta::FromJSON(std::move(*it));
    for (const auto& [bid, blob] : blobs) meta.SetBuffer(bid, blob);
    metas.push_back(std::move(meta));
  }
  return metas;
}

Result<std::vector<ObjectMeta>> Client::GetObjects(const std::vector<ObjectID>& ids) {
  VyGetRequest r;
  r.ids = ids;
  r.release = core_->TakeReleases();
  VY_ASSIGN_OR_RETURN(json reply, core_->RequestWithFds(WriteVyGetRequest(r), "fds"));
  json trees;
  std::vector<Payload> payloads;
  std::vector<int> fds;
  VY_RETURN_NOT_OK(ReadVyGetReply(reply, &trees, &payloads, &fds));
  return Attach(std::move(trees), payloads, ids);
}

Result<ObjectMeta> Client::GetObject(ObjectID id) {
  VY_ASSIGN_OR_RETURN(auto metas, GetObjects({id}));
  return std::move(metas[0]);
}

Result<std::vector<ObjectMeta>> Client::ListMetaData(const std::string& pattern, bool regex,
                                                     size_t limit) {
  ListQuery q{pattern, regex, limit};
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteListDataRequest(q)));
  VY_ASSIGN_OR_RETURN(json trees, ReadGetDataReply(reply));
  std::vector<ObjectMeta> metas;
  for (auto& [key, tree] : trees.items()) metas.push_back(ObjectMeta::FromJSON(tree));
  return metas;
}

Status Client::Delete(ObjectID id, bool force, bool deep) {
  return Delete(std::vector<ObjectID>{id}, force, deep, false);
}

Status Client::Delete(const std::vector<ObjectID>& ids, bool force, bool deep, bool memory_trim) {
  DeleteRequest r;
  r.ids = ids;
  r.force = force;
  r.deep = deep;
  r.memory_trim = memory_trim;
  return core_->Request(WriteDeleteRequest(r)).status();
}

Result<bool> Client::Exists(ObjectID id) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteIdRequest(req::kExists, id)));
  return ReadExistsReply(reply);
}

Status Client::Persist(ObjectID id) {
  return core_->Request(WriteIdRequest(req::kPersist, id)).status();
}

Result<bool> Client::IsPersisted(ObjectID id) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteIdRequest(req::kIfPersist, id)));
  return ReadIfPersistReply(reply);
}

Result<ObjectID> Client::ShallowCopy(ObjectID id, const json& extra) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteShallowCopyRequest(id, extra)));
  return ReadShallowCopyReply(reply);
}

Status Client::Label(ObjectID id, const std::string& key, const std::string& value) {
  return core_->Request(WriteLabelRequest(id, {key}, {value})).status();
}

Status Client::Label(ObjectID id, const std::map<std::string, std::string>& labels) {
  std::vector<std::string> keys, values;
  for (const auto& [k, v] : labels) {
    keys.push_back(k);
    values.push_back(v);
  }
  return core_->Request(WriteLabelRequest(id, keys, values)).status();
}

Status Client::PutName(ObjectID id, const std::string& name) {
  return core_->Request(WritePutNameRequest(id, name)).status();
}

Result<ObjectID> Client::GetName(const std::string& name, bool wait) {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteGetNameRequest(name, wait)));
  return ReadGetNameReply(reply);
}

Status Client::DropName(const std::string& name) {
  return core_->Request(WriteDropNameRequest(name)).status();
}

Result<std::map<std::string, ObjectID>> Client::ListNames(const std::string& pattern, bool regex,
                                                          size_t limit) {
  ListQuery q{pattern, regex, limit};
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteListNameRequest(q)));
  return ReadListNameReply(reply);
}

Status Client::Clear() { return core_->Request(WriteTypeOnly(req::kClear)).status(); }

Result<bool> Client::MemoryTrim() {
  VY_RETURN_NOT_OK(core_->FlushReleases());
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteTypeOnly(req::kMemoryTrim)));
  return ReadMemoryTrimReply(reply);
}

Result<InstanceStatus> Client::GetInstanceStatus() {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteTypeOnly(req::kInstanceStatus)));
  VY_ASSIGN_OR_RETURN(json meta, ReadMetaReply(reply));
  return ReadInstanceStatus(meta);
}

Result<json> Client::ClusterInfo() {
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteTypeOnly(req::kClusterMeta)));
  return ReadMetaReply(reply);
}

Status Client::FlushReleases() { return core_->FlushReleases(); }

}  // namespace vineyard
