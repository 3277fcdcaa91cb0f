// Client: the C++ client of vineyardd over its UNIX socket (IPC).
//
//   VY_ASSIGN_OR_RETURN(auto client, Client::Connect("/tmp/vineyard.sock"));
//   VY_ASSIGN_OR_RETURN(auto writer, client->CreateBlob(1024));
//   writer->Copy(0, data, 1024);
//   ObjectMeta meta;
//   meta.SetTypeName("my::Bytes");
//   meta.AddMember("buffer_", *writer);
//   VY_ASSIGN_OR_RETURN(ObjectID id, client->Put(meta, {writer.get()}));
//   VY_ASSIGN_OR_RETURN(ObjectMeta got, client->GetObject(id));   // blobs mapped
//
// Every call returns Status or Result<T>; server errors keep their codes.
// Put costs 2 round trips (allocate; seal + create [+ persist + name]) and
// GetObject 1 (metadata + payloads + fds).
//
// Thread-safety: a Client may be shared by threads; requests are serialised.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/blob.h"
#include "client/object_meta.h"
#include "common/protocol.h"

namespace vineyard {

class ClientCore;

class Client {
 public:
  /// Connects to `socket`, or to $VINEYARD_IPC_SOCKET when it is empty.
  static Result<std::shared_ptr<Client>> Connect(const std::string& socket = "");
  ~Client();

  Status Disconnect();
  bool Connected() const;
  InstanceID instance_id() const;
  const std::string& ipc_socket() const;
  const std::string& rpc_endpoint() const;
  const std::string& version() const;

  // --- blobs -------------------------------------------------------------------
  Result<std::unique_ptr<BlobWriter>> CreateBlob(size_t size);
  Result<std::vector<std::unique_ptr<BlobWriter>>> CreateBlobs(const std::vector<size_t>& sizes);
  /// A sealed blob, mapped read-only (`unsafe`: unsealed ones too).
  Result<std::shared_ptr<Blob>> GetBlob(ObjectID id, bool unsafe = false);
  Result<std::vector<std::shared_ptr<Blob>>> GetBlobs(const std::vector<ObjectID>& ids,
                                                     bool unsafe = false);

  // --- objects -----------------------------------------------------------------
  /// Creates the metadata (members must exist); fills in id, signature, instance.
  Result<ObjectID> CreateMetaData(ObjectMeta& meta);
  Result<std::vector<ObjectID>> CreateMetaData(std::vector<ObjectMeta>& metas);
  /// Seals `blobs`, creates `meta`, optionally persists and names it: one round trip.
  Result<ObjectID> Put(ObjectMeta& meta, const std::vector<BlobWriter*>& blobs,
                       bool persist = false, const std::string& name = "");
  /// The metadata tree only (no blobs mapped). `wait`: until the object exists.
  Result<ObjectMeta> GetMetaData(ObjectID id, bool sync_remote = false, bool wait = false);
  Result<std::vector<ObjectMeta>> GetMetaData(const std::vector<ObjectID>& ids,
                                              bool sync_remote = false, bool wait = false);
  /// The metadata with every local blob of the tree mapped: one round trip.
  Result<ObjectMeta> GetObject(ObjectID id);
  Result<std::vector<ObjectMeta>> GetObjects(const std::vector<ObjectID>& ids);
  /// Objects whose typename matches the glob (or regex), at most `limit`.
  Result<std::vector<ObjectMeta>> ListMetaData(const std::string& pattern, bool regex = false,
                                               size_t limit = 5);

  Status Delete(ObjectID id, bool force = false, bool deep = true);
  Status Delete(const std::vector<ObjectID>& ids, bool force = false, bool deep = true,
                bool memory_trim = false);
  Result<bool> Exists(ObjectID id);
  Status Persist(ObjectID id);
  Result<bool> IsPersisted(ObjectID id);
  Result<ObjectID> ShallowCopy(ObjectID id, const json& extra = json::object());
  Status Label(ObjectID id, const std::string& key, const std::string& value);
  Status Label(ObjectID id, const std::map<std::string, std::string>& labels);

  // --- names -------------------------------------------------------------------
  Status PutName(ObjectID id, const std::string& name);
  /// The object named `name`; with `wait`, blocks until the name appears.
  Result<ObjectID> GetName(const std::string& name, bool wait = false);
  Status DropName(const std::string& name);
  Result<std::map<std::string, ObjectID>> ListNames(const std::string& pattern = "*",
                                                    bool regex = false, size_t limit = 5);

  // --- instance ----------------------------------------------------------------
  Status Clear();
  /// Returns unused memory to the kernel; true if any was released.
  Result<bool> MemoryTrim();
  Result<InstanceStatus> GetInstanceStatus();
  /// cluster_meta: "i<id>" -> instance entry.
  Result<json> ClusterInfo();
  /// Gives back blob references released locally but not yet sent.
  Status FlushReleases();

 private:
  explicit Client(std::shared_ptr<ClientCore> core);
  Result<std::vector<ObjectMeta>> Attach(json trees, const std::vector<Payload>& payloads,
                                         const std::vector<ObjectID>& order);

  std::shared_ptr<ClientCore> core_;
};

}  // namespace vineyard
