// ClientBase: what every vineyardd session offers, over IPC or RPC alike —
// metadata, names, deletion, persistence and the instance's status. Client
// (IPC: shared memory) and RPCClient (TCP: bytes over the network) add the
// ways blobs are made and read.
//
// Every call returns Status or Result<T>; server errors keep their codes.
// Thread-safety: a client may be shared by threads; requests are serialised.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/object_meta.h"
#include "common/protocol.h"

namespace vineyard {

class ClientCore;

class ClientBase {
 public:
  virtual ~ClientBase();
  ClientBase(const ClientBase&) = delete;
  ClientBase& operator=(const ClientBase&) = delete;

  Status Disconnect();
  bool Connected() const;
  /// The instance of the connected vineyardd.
  InstanceID instance_id() const;
  const std::string& ipc_socket() const;
  const std::string& rpc_endpoint() const;
  const std::string& version() const;
  /// The server creates whole trees in one put (inline bytes, new members): ours does.
  bool whole_tree_put() const;
  /// What this client dialled: the socket path, or "host:port".
  const std::string& endpoint() const;

  // --- objects -----------------------------------------------------------------
  /// Creates the metadata (members must exist); fills in id, signature, instance.
  Result<ObjectID> CreateMetaData(ObjectMeta& meta);
  Result<std::vector<ObjectID>> CreateMetaData(std::vector<ObjectMeta>& metas);
  /// The metadata tree only (no blobs attached). `wait`: until the object exists.
  Result<ObjectMeta> GetMetaData(ObjectID id, bool sync_remote = false, bool wait = false);
  Result<std::vector<ObjectMeta>> GetMetaData(const std::vector<ObjectID>& ids,
                                              bool sync_remote = false, bool wait = false);
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
  /// A read barrier: returns once everything persisted anywhere in the cluster
  /// before the call is visible through this instance.
  Status SyncMetaData();
  /// Copies a remote object's blobs to the connected instance and returns the
  /// local object's id (the same id when it is local already).
  Result<ObjectID> MigrateObject(ObjectID id);

  // --- streams -----------------------------------------------------------------
  /// Makes the object `id` (its metadata created first) a stream.
  Status CreateStream(ObjectID id);
  /// Takes the read (kStreamRead) or write (kStreamWrite) side of a stream;
  /// StreamOpened when another client holds it.
  Status OpenStream(ObjectID id, int64_t mode);
  /// Queues the existing object `chunk` on the stream.
  Status PushNextStreamChunk(ObjectID id, ObjectID chunk);
  /// The next chunk's id, waiting for one; StreamDrained after the last one,
  /// StreamFailed when the stream failed.
  Result<ObjectID> PullNextStreamChunk(ObjectID id);
  /// Ends the stream (drained for its reader, or failed).
  Status StopStream(ObjectID id, bool failed);
  /// Fails the stream and frees its queued chunks.
  Status DropStream(ObjectID id);
  // --- spilling (vineyardd --spill_path) ----------------------------------------
  // Ids may name blobs or whole objects (an object stands for its blobs here).
  /// Spills these objects' blobs to disk now; Invalid (nothing spilled) if one
  /// is in use by a client or pinned, or spilling is off.
  Status Evict(const std::vector<ObjectID>& ids);
  /// Loads them back into memory; `pin`: they stay there until Unpin.
  Status Load(const std::vector<ObjectID>& ids, bool pin = false);
  /// Lets pinned objects be spilled again.
  Status Unpin(const std::vector<ObjectID>& ids);
  /// Whether any of the object's blobs is on disk.
  Result<bool> IsSpilled(ObjectID id);
  /// Whether a client maps or references any of the object's blobs.
  Result<bool> IsInUse(ObjectID id);

 protected:
  explicit ClientBase(std::shared_ptr<ClientCore> core);
  /// Sets what the server fills in on create (instance, transient) on `meta`.
  void PrepareForCreate(ObjectMeta& meta) const;
  static void ApplyCreated(ObjectMeta& meta, const CreatedObject& c);

  std::shared_ptr<ClientCore> core_;
};

}  // namespace vineyard
