#include "client/rpc_client.h"

#include <cstdlib>
#include <map>
#include <set>

#include "client/client_core.h"
#include "common/transfer.h"

namespace vineyard {

namespace {
constexpr int kDefaultRpcPort = 9600;

ObjectMeta BlobMeta(const Payload& p, InstanceID instance) {
  ObjectMeta meta;
  meta.SetTypeName(kBlobTypename);
  meta.SetId(p.object_id);
  meta.SetNBytes(p.data_size);
  meta.SetInstanceId(instance);
  meta.AddKeyValue(meta_key::kLength, p.data_size);
  meta.AddKeyValue(meta_key::kTransient, true);
  return meta;
}
}  // namespace

RPCClient::RPCClient(std::shared_ptr<ClientCore> core) : ClientBase(std::move(core)) {}

Result<std::shared_ptr<RPCClient>> RPCClient::Connect(const std::string& endpoint,
                                                      const std::string& username,
                                                      const std::string& password,
                                                      const std::string& tls_ca) {
  std::string ep = endpoint;
  if (ep.empty()) {
    const char* env = getenv("VINEYARD_RPC_ENDPOINT");
    if (env == nullptr || *env == '\0') {
      return Status::ConnectionFailed(
          "no endpoint given and VINEYARD_RPC_ENDPOINT is not set: pass 'host:port' of a "
          "vineyardd's RPC endpoint");
    }
    ep = env;
  }
  auto colon = ep.rfind(':');
  if (colon == std::string::npos) {
    return Connect(ep, kDefaultRpcPort, username, password, tls_ca);
  }
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(ep.substr(colon + 1), &used);
    if (used != ep.size() - colon - 1) throw std::invalid_argument("port");
  } catch (const std::exception&) {
    return Status::ConnectionFailed("'", ep, "' is not an endpoint of the form host:port");
  }
  return Connect(ep.substr(0, colon), port, username, password, tls_ca);
}

Result<std::shared_ptr<RPCClient>> RPCClient::Connect(const std::string& host, int port,
                                                      const std::string& username,
                                                      const std::string& password,
                                                      const std::string& tls_ca) {
  if (port <= 0 || port > 65535) {
    return Status::ConnectionFailed("port ", port, " of '", host, "' is not a TCP port");
  }
  std::string ca = tls_ca;
  if (ca.empty()) {
    const char* env = getenv("VINEYARD_RPC_TLS_CA");
    if (env != nullptr) ca = env;
  }
  std::shared_ptr<TlsContext> tls;
  if (!ca.empty()) {
    auto made = TlsContext::ForClient(ca == "system" ? "" : ca);
    if (!made.ok()) return made.status().WithContext("TLS for the RPC client");
    tls = std::move(made).value();
  }
  VY_ASSIGN_OR_RETURN(auto core,
                      ClientCore::ConnectTcp(host, port, {username, password}, std::move(tls)));
  auto client = std::shared_ptr<RPCClient>(new RPCClient(std::move(core)));
  client->username_ = username;
  client->password_ = password;
  client->tls_ca_ = tls_ca;
  return client;
}

bool RPCClient::IsFetchable(const ObjectMeta& meta) const {
  if (!meta.MetaData().contains(meta_key::kInstanceId)) return true;  // not created yet
  return meta.GetInstanceId() == remote_instance_id();
}

void RPCClient::set_compression(bool on) { compress_ = on; }
bool RPCClient::compression() const {
  return compress_ && core_->info().support_rpc_compression;
}

Result<std::vector<ObjectMeta>> RPCClient::CreateRemoteBlobs(const std::vector<Bytes>& buffers) {
  CreateRemoteBuffersRequest r;
  for (const auto& b : buffers) r.sizes.push_back(b.size);
  r.compress = compression();
  auto stream = [&](ByteStream& s, const json& reply) -> Status {
    // The server has allocated every blob: now their bytes, in order.
    std::vector<int> no_fds;
    VY_RETURN_NOT_OK(ReadCreateBuffersReply(reply, &no_fds).status());
    BlobSender out(s, r.compress, 0);
    for (const auto& b : buffers) VY_RETURN_NOT_OK(out.Send(b.data, b.size));
    return Status::OK();
  };
  VY_ASSIGN_OR_RETURN(json reply,
                      core_->RequestStreaming(WriteCreateRemoteBuffersRequest(r), stream, true));
  std::vector<int> no_fds;
  VY_ASSIGN_OR_RETURN(std::vector<Payload> ps, ReadCreateBuffersReply(reply, &no_fds));
  if (ps.size() != buffers.size()) {
    return Status::IOError("vineyardd created ", ps.size(), " blobs for ", buffers.size(),
                           " buffers");
  }
  std::vector<ObjectMeta> metas;
  for (const auto& p : ps) metas.push_back(BlobMeta(p, remote_instance_id()));
  return metas;
}

Result<std::vector<ObjectMeta>> RPCClient::CreateRemoteBlobs(
    const std::vector<const RemoteBlobWriter*>& writers) {
  std::vector<Bytes> buffers;
  for (const RemoteBlobWriter* w : writers) {
    if (w == nullptr || w->aborted()) {
      return Status::Invalid("cannot create a remote blob from an aborted writer");
    }
    buffers.push_back({w->data(), w->size()});
  }
  return CreateRemoteBlobs(buffers);
}

Result<ObjectMeta> RPCClient::CreateRemoteBlob(const RemoteBlobWriter& writer) {
  VY_ASSIGN_OR_RETURN(auto metas, CreateRemoteBlobs(std::vector<const RemoteBlobWriter*>{&writer}));
  return std::move(metas[0]);
}

Result<std::vector<std::shared_ptr<RemoteBlob>>> RPCClient::GetRemoteBlobs(
    const std::vector<ObjectID>& ids, bool unsafe) {
  std::map<ObjectID, std::shared_ptr<RemoteBlob>> fetched;
  auto place = [&](ObjectID id, uint64_t size) -> Result<void*> {
    VY_ASSIGN_OR_RETURN(auto blob, RemoteBlob::Allocate(id, remote_instance_id(), size));
    void* data = blob->mutable_data();
    fetched[id] = std::move(blob);
    return data;
  };
  VY_RETURN_NOT_OK(Fetch(ids, unsafe, place));
  std::vector<std::shared_ptr<RemoteBlob>> blobs;
  for (ObjectID id : ids) {
    auto& blob = fetched[id];
    if (!blob) return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
    blobs.push_back(blob);
  }
  return blobs;
}

Status RPCClient::FetchRemoteBlobs(const std::vector<ObjectID>& ids, const Placer& place) {
  return Fetch(ids, false, place);
}

Status RPCClient::Fetch(const std::vector<ObjectID>& ids, bool unsafe, const Placer& place) {
  // Each blob once on the wire, however often it is asked for.
  GetRemoteBuffersRequest r;
  std::set<ObjectID> asked;
  for (ObjectID id : ids) {
    if (asked.insert(id).second) r.ids.push_back(id);
  }
  r.unsafe = unsafe;
  r.compress = compression();
  auto stream = [&](ByteStream& s, const json& reply) -> Status {
    bool compressed = r.compress;  // as asked, unless the reply says otherwise
    VY_ASSIGN_OR_RETURN(std::vector<Payload> ps, ReadGetRemoteBuffersReply(reply, &compressed));
    BlobReceiver in(s, compressed, io_timeout_ms_);
    for (const auto& p : ps) {
      VY_ASSIGN_OR_RETURN(void* dst, place(p.object_id, p.data_size));
      VY_RETURN_NOT_OK(in.Receive(dst, p.data_size));
    }
    return Status::OK();
  };
  return core_->RequestStreaming(WriteGetRemoteBuffersRequest(r), stream, false).status();
}

Result<std::shared_ptr<RemoteBlob>> RPCClient::GetRemoteBlob(ObjectID id, bool unsafe) {
  VY_ASSIGN_OR_RETURN(auto blobs, GetRemoteBlobs({id}, unsafe));
  return blobs[0];
}

Result<ObjectID> RPCClient::Put(ObjectMeta& meta, bool persist, const std::string& name) {
  PrepareForCreate(meta);
  VyPutRequest r;
  r.tree = meta.MetaData();
  r.persist = persist;
  r.name = name;
  VY_ASSIGN_OR_RETURN(json reply, core_->Request(WriteVyPutRequest(r)));
  VY_ASSIGN_OR_RETURN(CreatedObject c, ReadCreateDataReply(reply));
  ApplyCreated(meta, c);
  if (persist || !name.empty()) meta.MutableMetaData()[meta_key::kTransient] = false;
  return c.id;
}

Result<std::vector<ObjectMeta>> RPCClient::GetObjects(const std::vector<ObjectID>& ids) {
  VY_ASSIGN_OR_RETURN(std::vector<ObjectMeta> metas, GetMetaData(ids, true));
  // Every blob of every tree, grouped by the instance that holds it: one
  // transfer per instance, from that instance (found in the cluster's meta).
  std::map<InstanceID, std::vector<ObjectID>> by_owner;
  for (const auto& meta : metas) {
    for (auto& [owner, ids] : BlobsByOwner(meta.MetaData(), remote_instance_id())) {
      for (ObjectID id : ids) {
        if (!IsEmptyBlob(id)) by_owner[owner].push_back(id);
      }
    }
    if (meta.IsBlob() && !IsEmptyBlob(meta.GetId())) {  // a blob is its own tree's only blob
      bool placed = meta.MetaData().contains(meta_key::kInstanceId);
      by_owner[placed ? meta.GetInstanceId() : remote_instance_id()].push_back(meta.GetId());
    }
  }
  json cluster;
  for (auto& [owner, blob_ids] : by_owner) {
    std::vector<std::shared_ptr<RemoteBlob>> blobs;
    if (owner == remote_instance_id()) {
      VY_ASSIGN_OR_RETURN(blobs, GetRemoteBlobs(blob_ids));
    } else {
      if (cluster.is_null()) {
        VY_ASSIGN_OR_RETURN(cluster, ClusterInfo());
      }
      auto entry = cluster.find("i" + std::to_string(owner));
      if (entry == cluster.end() || !entry->contains("rpc_endpoint")) {
        return Status::ObjectNotExists("instance ", owner, ", which holds blob ",
                                       ObjectIDToString(blob_ids.front()),
                                       ", is not in the cluster");
      }
      VY_ASSIGN_OR_RETURN(auto peer, Connect((*entry)["rpc_endpoint"].get<std::string>(),
                                             username_, password_, tls_ca_));
      peer->set_compression(compression());
      VY_ASSIGN_OR_RETURN(blobs, peer->GetRemoteBlobs(blob_ids));
    }
    for (auto& meta : metas) {
      for (const auto& blob : blobs) meta.SetBuffer(blob->id(), blob);
    }
  }
  return metas;
}

Result<ObjectMeta> RPCClient::GetObject(ObjectID id) {
  VY_ASSIGN_OR_RETURN(auto metas, GetObjects({id}));
  return std::move(metas[0]);
}

}  // namespace vineyard
