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
// Limits (MetaLimits): a tree's nesting depth, its expanded node count and the
// bytes all records cost are bounded at creation, so no later walk, reply or
// table can grow without bound. Every walk is iterative. Large expansions and
// pattern matching run on copies taken under the mutex, never while holding it.
//
// Thread-safety: all public methods are thread-safe (one internal mutex).
// Lock order: MetaService's mutex before BulkStore's, never the reverse.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "common/ids.h"
#include "common/protocol.h"
#include "server/bulk_store.h"
#include "server/cluster_codec.h"
#include "server/meta_backend.h"
#include "server/record_fields.h"

namespace vineyard {

/// Bounds on the metadata a client may create (see docs/architecture.md, "Limits").
struct MetaLimits {
  /// Deepest tree (an object without members, or a blob, is depth 1); also the
  /// deepest nesting of one field's value. --meta_max_depth.
  size_t max_depth = 256;
  /// Most nodes one tree may expand to, counting a shared member each time it
  /// appears. --meta_max_nodes.
  uint64_t max_nodes = 1000000;
  /// Bytes all records and names may cost (MetaService::kRecordOverhead each,
  /// plus their fields' serialized size). --meta_memory_limit.
  uint64_t memory_limit = uint64_t{1} << 30;
};

class MetaService {
 public:
  /// What a record costs besides its fields' serialized bytes: the table node,
  /// the Record, the JSON object, the referrer entries (an estimate, on the high side).
  static constexpr uint64_t kRecordOverhead = 256;
  /// What each member entry and each name costs besides its own characters.
  static constexpr uint64_t kEntryOverhead = 64;
  /// The longest glob or regular expression a list request may carry.
  static constexpr size_t kMaxPatternLength = 4096;


  MetaService(InstanceID instance_id, IdGenerator* ids, BulkStore* store, MetaBackend* backend,
              const MetaLimits& limits = MetaLimits());

  /// `listener` runs after every change a waiting request may be waiting for
  /// (an object created, a name put), with the service's mutex held: it must
  /// not call back into the service (ParkedRequests::WakeAll only posts).
  void SetChangeListener(std::function<void()> listener);

  /// Validates and stores a new object tree; members must exist already.
  Result<CreatedObject> Create(const json& tree);
  /// Create() taking the fields' values out of `tree` instead of copying them.
  Result<CreatedObject> Create(json&& tree);
  /// Create() for a whole tree of new objects (vy_put): a member without an
  /// "id" is created first (innermost first); a {"__vy_inline": k} blob member
  /// is `inline_blobs[k]`; a new member with "__vy_share": "t" is created once,
  /// and members that are just {"__vy_share": "t"} refer to it. All or nothing:
  /// on failure what was made is deleted again. `made` gets the members created.
  Result<CreatedObject> CreateTree(json tree, const std::vector<ObjectID>& inline_blobs,
                                   std::vector<ObjectID>* made);
  /// Expanded trees, "o…" -> tree. ObjectNotExists names the first unknown id.
  /// Never blocks: a waiting request parks (see SetChangeListener).
  /// `share_members`: an object met again in the same reply is sent as
  /// {"__vy_ref": "o…"} (protocol.h, ResolveSharedMembers), so the reply is
  /// linear in distinct objects; only our client asks for it (vy_get).
  Result<json> Get(const std::vector<ObjectID>& ids, bool share_members = false);
  /// Get(ids, share_members = true) written straight as JSON text (the object
  /// "o…" -> tree), without building a document: each record's fields are
  /// written out and spliced with its standard keys and members. `local_blobs`
  /// gets the blobs of this instance the trees hold (unsorted, maybe repeated).
  Status GetText(const std::vector<ObjectID>& ids, std::string* out,
                 std::vector<ObjectID>* local_blobs);
  /// Objects whose typename matches the glob (or regex), at most `limit`.
  Result<json> List(const ListQuery& query);
  /// Deletes objects (see DeleteRequest: deep, force); appends the blobs freed.
  Status Delete(const DeleteRequest& request, std::vector<ObjectID>* deleted_blobs);
  bool Exists(ObjectID id);
  /// Nodes the expanded trees of `ids` have (unknown ids count 0): what a get costs.
  uint64_t ExpandedNodes(const std::vector<ObjectID>& ids);
  /// Makes an object and its members non-transient, visible to the cluster.
  Status Persist(ObjectID id);
  Result<bool> IsPersisted(ObjectID id);
  /// A new object with the same fields and members, plus `extra` fields.
  Result<ObjectID> ShallowCopy(ObjectID id, const json& extra);
  Status Label(ObjectID id, const std::vector<std::string>& keys,
               const std::vector<std::string>& values);

  Status PutName(ObjectID id, const std::string& name);
  /// ObjectNotExists when no object has that name (a waiting request parks
  /// and retries on the next change: see SetChangeListener).
  Result<ObjectID> GetName(const std::string& name);
  Status DropName(const std::string& name);
  Result<std::map<std::string, ObjectID>> ListNames(const ListQuery& query);

  /// Deletes every object, name and sealed blob.
  Status Clear();

  // --- the cluster: called by the backend, from its own threads ---------------
  /// Changes other instances made (decoded from etcd), applied in order:
  /// objects put, objects deleted, names put, names dropped, fields added.
  /// Objects of this instance are never taken from the cluster: this instance
  /// is their truth.
  struct RemoteUpdate {
    std::vector<cluster::DecodedObject> objects;
    std::vector<ObjectID> deleted;
    std::vector<std::pair<std::string, ObjectID>> names;
    std::vector<std::string> dropped_names;
    std::vector<std::tuple<ObjectID, std::string, json>> fields;
    /// The revision that expired this instance's own lease (it was cut off): the
    /// deletes of its own objects in it are etcd's, not another instance's, and
    /// the objects stay (they are published again when it rejoins).
    bool own_lease_expired = false;
  };
  void ApplyRemote(const RemoteUpdate& update);
  /// `listing` is the whole cluster state (after a start or a reconnection):
  /// remote objects and names missing from it are dropped, then it is applied.
  /// Fills `puts` with what this instance owns that the cluster lacks (all of it
  /// with `republish_all`, after the instance's lease was lost) and `deletes`
  /// with keys of its own objects the cluster still has but it deleted.
  void ResetRemote(const RemoteUpdate& listing, bool republish_all, KeyValues* puts,
                   std::vector<std::string>* deletes);
  /// An instance left the cluster: its objects leave every view.
  void DropInstance(InstanceID id);

  /// The local blob ids found in expanded trees (blob leaves, depth-first).
  void CollectLocalBlobs(const json& trees, std::vector<ObjectID>* blobs) const;

  size_t num_objects();
  /// Bytes the records and names cost now (bounded by MetaLimits::memory_limit).
  uint64_t memory_usage();
  const MetaLimits& limits() const { return limits_; }

 private:
  // One per object held: kept small (the server's heap per object is mostly
  // this, its node in objects_, and its members' holders).
  struct Record {
    // typename, nbytes and user fields, encoded and interned; no standard keys,
    // no members. Snapshots for expansion copy a pointer; replaced, never mutated.
    std::shared_ptr<const RecordFields> fields = RecordFields::Empty();
    Members members;
    Signature signature = 0;
    InstanceID instance_id = 0;
    uint64_t timestamp = 0;  // ms since epoch, at creation
    uint64_t nodes = 1;      // nodes of the expanded tree (saturating)
    uint64_t bytes = 0;      // what this record is charged in memory_usage_
    uint32_t depth = 1;      // nesting depth of the expanded tree
    bool transient = true;
    bool global = false;
    bool remote_blob = false;  // a blob of another instance (fields: typename only)
  };
  /// The objects that hold one member, one entry per holding. Most members have
  /// one holder: it is kept inline, any more in a multiset.
  class Holders {
   public:
    void Insert(ObjectID holder);
    /// Removes one holding of `holder`, if any.
    void EraseOne(ObjectID holder);
    bool Empty() const { return first_ == kInvalidObjectID && !more_; }
    /// Each distinct holder once, ascending.
    std::set<ObjectID> Distinct() const;

   private:
    ObjectID first_ = kInvalidObjectID;  // none (no object has this id)
    std::unique_ptr<std::multiset<ObjectID>> more_;
  };
  /// What expansion needs of one object or blob, copied under the mutex.
  struct Node {
    std::shared_ptr<const RecordFields> fields;  // null for a local blob
    Members members;
    Signature signature = 0;
    InstanceID instance_id = 0;
    bool transient = true;
    bool global = false;
    uint64_t timestamp = 0;
    uint64_t blob_size = 0;  // local blobs only
    bool remote_blob = false;
  };
  using Snapshot = std::unordered_map<ObjectID, Node>;

  /// Create(), copying or (`take`) moving the fields' values out of `tree`.
  Result<CreatedObject> CreateFrom(json& tree, bool take);
  /// The new members of `*root` created (innermost first) and replaced by
  /// references; `shared` maps "__vy_share" tokens to the references made.
  Status CreateMembers(json* root, const std::vector<ObjectID>& inline_blobs,
                       std::map<std::string, json>* shared, std::vector<ObjectID>* made);
  Result<ObjectID> ResolveMemberLocked(const std::string& name, const json& subtree,
                                       bool parent_global);
  bool ExistsLocked(ObjectID id) const;
  /// ObjectNotExists naming the first of `ids` that does not exist (kInvalidObjectID,
  /// the published client's whole-store blob, always does).
  Status AllExistLocked(const std::vector<ObjectID>& ids) const;
  /// Copies every distinct object and blob reachable from `roots` into `out`
  /// (linear in distinct objects, not in expanded nodes).
  void SnapshotLocked(const std::vector<ObjectID>& roots, Snapshot* out) const;
  /// The expanded tree of `root` from a snapshot; iterative, needs no lock.
  /// With `seen`, objects already expanded (in this or an earlier root) become
  /// shared-member references.
  json Expand(const Snapshot& snapshot, ObjectID root,
              std::unordered_set<ObjectID>* seen = nullptr) const;
  /// Expanded nodes of `id`'s tree (1 for a blob).
  uint64_t NodesLocked(ObjectID id) const;
  /// Deletes `id` (deep, force as in DeleteRequest). With `unpublish`, the
  /// cluster keys of persisted objects and names it removes are appended to it.
  void DeleteLocked(ObjectID id, bool deep, bool force, std::set<ObjectID>* visiting,
                    std::vector<ObjectID>* deleted_blobs,
                    std::vector<std::string>* unpublish = nullptr);
  /// An object deleted elsewhere: its record, and its blob members nothing else
  /// holds (freed here if this instance owns them). Never cascades into other
  /// objects (their own delete events come if they were deleted too).
  void DropLocked(ObjectID id);
  /// Fields another implementation added to a remote object (vineyard's __name).
  void ApplyFieldsLocked(const RemoteUpdate& update);
  /// Removes one record and its holdings, leaving holders that name it.
  void EraseRecordLocked(ObjectID id, std::vector<ObjectID>* members,
                         std::vector<std::string>* unpublish);
  /// The cluster records of the newly persisted `ids` (objects of this instance).
  void EncodeLocked(const std::vector<ObjectID>& ids, KeyValues* out) const;
  /// Stores a remote object unless known; remote blob members get records.
  void InsertRemoteLocked(const cluster::DecodedObject& object);
  /// Writes through to the backend, without the mutex held.
  Status WriteThrough(const KeyValues& puts, const std::vector<std::string>& deletes);
  void EraseNameLocked(std::map<std::string, ObjectID>::iterator it);
  /// Puts or moves a name in both maps; `charge`: count a new name's memory
  /// here (PutName charged it with a check already).
  void SetNameLocked(const std::string& name, ObjectID id, bool charge);
  /// Marks `id` and its transient members persisted; appends those it changed.
  void PersistLocked(ObjectID id, std::vector<ObjectID>* changed);
  Status ChargeLocked(uint64_t bytes, const char* what);

  void NotifyChangedLocked();

  const InstanceID instance_id_;
  IdGenerator* const ids_;
  BulkStore* const store_;
  MetaBackend* const backend_;
  const MetaLimits limits_;

  std::mutex mu_;
  std::function<void()> on_change_;  // guarded by mu_; see SetChangeListener
  std::unordered_map<ObjectID, Record> objects_;  // guarded by mu_ (objects and remote blobs)
  /// member id -> ids of the objects that hold it (one entry per holding).
  std::unordered_map<ObjectID, Holders> referrers_;  // guarded by mu_
  std::map<std::string, ObjectID> names_;  // guarded by mu_
  /// object -> its names (the reverse of names_: a delete finds them directly).
  std::unordered_map<ObjectID, std::set<std::string>> names_by_object_;  // guarded by mu_
  uint64_t memory_usage_ = 0;  // guarded by mu_: sum of Record::bytes and names' costs
};

}  // namespace vineyard
