// MetaService: the object trees, names and their lifecycle on one instance.
//
// An object is a metadata tree: typename, fields, and members (other objects
// or blobs, by id). Trees are stored flat — each object keeps its fields and
// its members' ids — and expanded on the way out, so a member shared by many
// objects is stored once and deleting it is a table update.
//
// Blobs are leaves: the bulk store owns them, and their trees are made from it.
// Persisted objects and names are written through to the MetaBackend.
//
// Thread-safety: all public methods are thread-safe (one internal mutex).
// Lock order: MetaService's mutex before BulkStore's, never the reverse.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/protocol.h"
#include "server/bulk_store.h"
#include "server/meta_backend.h"

namespace vineyard {

class MetaService {
 public:
  /// Returns true when a blocking wait should give up (its client went away,
  /// the server is stopping, or a deadline passed).
  using CancelCheck = std::function<bool()>;

  MetaService(InstanceID instance_id, IdGenerator* ids, BulkStore* store, MetaBackend* backend);

  /// `listener` runs after every change a waiting request may be waiting for
  /// (an object created, a name put), with the service's mutex held: it must
  /// not call back into the service (ParkedRequests::WakeAll only posts).
  void SetChangeListener(std::function<void()> listener);

  /// Validates and stores a new object tree; members must exist already.
  Result<CreatedObject> Create(const json& tree);
  /// Expanded trees, "o…" -> tree. ObjectNotExists names the first unknown id.
  /// With `wait`, blocks until every id exists (or `cancelled()`).
  Result<json> Get(const std::vector<ObjectID>& ids, bool wait, const CancelCheck& cancelled);
  /// Objects whose typename matches the glob (or regex), at most `limit`.
  Result<json> List(const ListQuery& query);
  /// Deletes objects (see DeleteRequest: deep, force); appends the blobs freed.
  Status Delete(const DeleteRequest& request, std::vector<ObjectID>* deleted_blobs);
  bool Exists(ObjectID id);
  /// Makes an object and its members non-transient, visible to the cluster.
  Status Persist(ObjectID id);
  Result<bool> IsPersisted(ObjectID id);
  /// A new object with the same fields and members, plus `extra` fields.
  Result<ObjectID> ShallowCopy(ObjectID id, const json& extra);
  Status Label(ObjectID id, const std::vector<std::string>& keys,
               const std::vector<std::string>& values);

  Status PutName(ObjectID id, const std::string& name);
  Result<ObjectID> GetName(const std::string& name, bool wait, const CancelCheck& cancelled);
  Status DropName(const std::string& name);
  Result<std::map<std::string, ObjectID>> ListNames(const ListQuery& query);

  /// Deletes every object, name and sealed blob.
  Status Clear();

  /// The local blob ids found in expanded trees (blob leaves, depth-first).
  void CollectLocalBlobs(const json& trees, std::vector<ObjectID>* blobs) const;

  size_t num_objects();

 private:
  struct Record {
    json fields;  // typename, nbytes and user fields; no standard keys, no members
    std::vector<std::pair<std::string, ObjectID>> members;
    Signature signature = 0;
    InstanceID instance_id = 0;
    bool transient = true;
    bool global = false;
    uint64_t timestamp = 0;  // ms since epoch, at creation
  };

  Result<ObjectID> ResolveMemberLocked(const std::string& name, const json& subtree,
                                       bool parent_global);
  bool ExistsLocked(ObjectID id) const;
  json ExpandLocked(ObjectID id) const;
  void DeleteLocked(ObjectID id, bool deep, bool force, std::set<ObjectID>* visiting,
                    std::vector<ObjectID>* deleted_blobs);
  void PersistLocked(ObjectID id);
  Result<bool> MatcherLocked(const ListQuery& query, std::function<bool(const std::string&)>* m);

  void NotifyChangedLocked();

  const InstanceID instance_id_;
  IdGenerator* const ids_;
  BulkStore* const store_;
  MetaBackend* const backend_;

  std::mutex mu_;
  std::condition_variable changed_;  // signalled on every create and name change
  std::function<void()> on_change_;  // guarded by mu_; see SetChangeListener
  std::unordered_map<ObjectID, Record> objects_;  // guarded by mu_ (objects and remote blobs)
  /// member id -> ids of the objects that hold it (one entry per holding).
  std::unordered_map<ObjectID, std::multiset<ObjectID>> referrers_;  // guarded by mu_
  std::map<std::string, ObjectID> names_;  // guarded by mu_
};

}  // namespace vineyard
