// BulkStore: the blob table over the shared-memory arena.
//
// A blob is created unsealed (writable by its creator), then sealed
// (immutable, readable by everyone). Each blob counts the references that
// connections hold on it; a deleted blob disappears from the table at once,
// but its memory is freed only when the last reference is released, so a
// reader's mapping is never handed to a new blob.
//
// Ownership: every blob records its creator (the connection's serial). Only
// the creator may seal, shrink, drop or read (unsafe) an unsealed blob, and an
// unsealed blob cannot be deleted. A sealed blob stays its creator's until it
// is adopted (an object references it, or it is persisted); ReleaseOwner, at
// the creator's disconnect, frees its unsealed blobs and deletes its sealed,
// unadopted ones.
//
// Accounting: a blob is charged the allocator's usable size plus
// kBlobBookkeepingBytes against the limit; unsealed bytes are also counted per
// creator against `unsealed_quota` (0: no quota).
//
// Which connection holds which references is the connection's business (it
// lists them and releases them on disconnect); the store keeps the totals.
// A client that never gives references back (a published one) "holds" what it
// maps instead (Hold/Unhold, until it disconnects): a hold keeps a blob from
// being spilled, but not a deleted blob's memory.
//
// Spilling (EnableSpill, vineyardd --spill_path): a sealed blob that no client
// references or holds, and that is not pinned, may be written to disk and its
// memory freed; it stays in the table (Exists, Size, Delete work as before)
// and Get loads it back first. When usage passes the upper mark, a background
// thread spills the least recently used such blobs until usage is under the
// lower mark; a Create that would not fit spills (on the caller's thread)
// until it fits, and fails with NotEnoughMemory only when that is impossible
// (the rest is in use, or the disk refused: the message says which). A blob
// being written out stays readable; a reader that takes it meanwhile keeps it
// in memory. Pinned blobs (Load with pin) stay in memory until Unpin.
//
// Thread-safety: all public methods are thread-safe. One mutex guards the
// table; spill and load I/O is serialised by a second one (io_mu_, taken
// before the first) and runs without the table's mutex held.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/ids.h"
#include "common/protocol.h"
#include "common/result.h"
#include "server/arena.h"
#include "server/spill_files.h"

namespace vineyard {

class BulkStore {
 public:
  /// Who created a blob: a connection's serial (never 0).
  using Owner = uint64_t;
  /// The owner of adopted blobs (and of none).
  static constexpr Owner kNoOwner = 0;
  /// What one blob costs besides its arena bytes, charged with them: the
  /// table's node (key, record and chain pointer: 64 bytes, 80 with malloc's
  /// header), its bucket (8), the creator's index entry (~40) and one
  /// connection's reference-map entry (~40). Rounded up to a power of two.
  static constexpr uint64_t kBlobBookkeepingBytes = 256;

  /// `limit`: the most bytes the blobs may occupy (vineyardd --size).
  /// `unsealed_quota`: the most bytes of unsealed blobs one creator may hold
  /// (vineyardd --unsealed_quota; 0: only `limit`).
  BulkStore(std::unique_ptr<Arena> arena, uint64_t limit, IdGenerator* ids,
            uint64_t unsealed_quota = 0);
  /// Stops the background spiller.
  ~BulkStore();

  /// Allocates an unsealed blob of `size` bytes for `owner` (size 0: the empty
  /// blob). NotEnoughMemory when it would exceed the limit or the owner's quota.
  Result<Payload> Create(uint64_t size, Owner owner);
  /// Seals `owner`'s unsealed blob; the sealer takes one reference.
  Status Seal(ObjectID id, Owner owner);
  /// Undoes Seal(id, owner) while nothing else has seen the blob (no other
  /// reference; adopted at most by a tree that then failed to be made):
  /// unsealed and `owner`'s again, its reference gone. For a request that
  /// seals and then fails.
  Status Unseal(ObjectID id, Owner owner);
  /// The payload of a blob, taking one reference. Unsealed blobs only if
  /// `unsafe` and `caller` created them.
  Result<Payload> Get(ObjectID id, bool unsafe, Owner caller);
  /// Takes one more reference on an existing blob.
  Status AddRef(ObjectID id);
  /// Drops one reference; frees a deleted blob when it was the last.
  void Release(ObjectID id);
  /// Shrinks `caller`'s unsealed blob to `size` bytes.
  Status Shrink(ObjectID id, uint64_t size, Owner caller);
  /// Frees `caller`'s unsealed blob (drop_buffer).
  Status Abort(ObjectID id, Owner caller);
  /// Deletes a sealed blob: gone from the table now, memory freed after the
  /// last release. ObjectNotSealed for an unsealed blob (its creator drops it).
  Status Delete(ObjectID id);
  /// OK if Delete(id) would not be refused for being unsealed.
  Status CheckDeletable(ObjectID id) const;
  /// A sealed blob becomes nobody's: it no longer dies with its creator
  /// (an object references it, or it is persisted).
  Status Adopt(ObjectID id);
  /// `owner` went away: frees its unsealed blobs and deletes its sealed,
  /// unadopted ones (their memory goes when the last reader releases it).
  /// Returns how many blobs it removed.
  size_t ReleaseOwner(Owner owner);

  bool Exists(ObjectID id) const;
  bool IsSealed(ObjectID id) const;
  /// Size of a blob, or ObjectNotExists.
  Result<uint64_t> Size(ObjectID id) const;
  /// Ids of all live sealed blobs (for clear).
  std::vector<ObjectID> SealedBlobs() const;

  /// Returns free pages to the kernel; the bytes released.
  uint64_t Trim();

  uint64_t usage() const;
  /// Blobs in the table (sealed or not, deleted ones still referenced included).
  size_t num_blobs() const;
  uint64_t limit() const { return limit_; }
  int fd() const { return arena_->fd(); }
  /// The arena opened read-only: the store fd our readers receive.
  int read_only_fd() const { return arena_->read_only_fd(); }
  uint64_t map_size() const { return arena_->capacity(); }
  uint64_t ResidentBytes() const { return arena_->ResidentBytes(); }

  // --- spilling (see the top of this file) -------------------------------------
  /// Turns spilling on, to `files`, with the marks as fractions of the limit
  /// (vineyardd --spill_lower_rate, --spill_upper_rate). Call once, before use.
  void EnableSpill(std::unique_ptr<SpillFiles> files, double lower_rate, double upper_rate);
  bool spill_enabled() const { return spill_ != nullptr; }
  /// True if Create(size) would have to spill first (the caller may move to a
  /// thread that can wait for the disk).
  bool WouldSpill(uint64_t size) const;
  /// True if any of `ids` is on disk (a Get would have to load it).
  bool AnySpilled(const std::vector<ObjectID>& ids) const;
  /// Spills these blobs now. Invalid, and nothing spilled, if spilling is off
  /// or one of them is unsealed, referenced, held or pinned; IOError if the disk
  /// refuses (they stay in memory). Blobs on disk already are skipped.
  Status Evict(const std::vector<ObjectID>& ids);
  /// Loads these blobs back (those in memory already are left as they are);
  /// `pin`: keep them in memory until Unpin.
  Status Load(const std::vector<ObjectID>& ids, bool pin);
  /// Lets pinned blobs be spilled again (unknown ids are ignored).
  void Unpin(const std::vector<ObjectID>& ids);
  /// Whether a blob is on disk; ObjectNotExists for an unknown blob.
  Result<bool> IsSpilled(ObjectID id) const;
  /// Whether a client references or holds a blob; ObjectNotExists if unknown.
  Result<bool> IsInUse(ObjectID id) const;
  /// A client that does not give references back maps this blob: it must not
  /// be spilled until Unhold. No-op for unknown blobs.
  void Hold(ObjectID id);
  void Unhold(ObjectID id);
  /// Spill figures for instance_status.
  SpillStatus spill_status() const;

 private:
  // Where a sealed blob's bytes are. kSpilling: in memory, being written out
  // (readable; freed only when the write is done). kLoading: on disk, being
  // read into a new allocation. Whoever runs the I/O finishes the transition,
  // also for a blob deleted meanwhile.
  enum class Place : uint8_t { kMemory, kSpilling, kDisk, kLoading };

  // One per blob: kept small (a blob's bytes on disk, rare, are in extents_).
  struct Blob {
    uint64_t offset = 0;  // in the arena (while it has memory)
    uint64_t size = 0;    // data size, as requested (or shrunk)
    Owner owner = kNoOwner;  // its creator until adopted
    uint64_t last_use = 0;  // tick of its last create/seal/get/load: least recent spills first
    int32_t refs = 0;       // references held by connections (AddOne)
    int32_t holds = 0;      // clients that map it without giving references back (AddOne)
    Place place = Place::kMemory;
    bool sealed = false;
    bool deleted = false;   // logically deleted, waiting for its last release
    bool pinned = false;    // load(pin): never spilled until unpinned
  };

  using Iter = std::unordered_map<ObjectID, Blob>::iterator;

  // What a blob in memory is charged against the limit: the allocator's usable
  // size of its allocation plus kBlobBookkeepingBytes (derived, not stored).
  uint64_t ChargedLocked(const Blob& b) const;
  // Counts one more reference or hold. Saturates: a blob counted 2^31 - 1 times
  // is never freed by releases (no count can wrap into a premature free).
  static void AddOne(int32_t& n) {
    if (n < INT32_MAX) ++n;
  }
  Payload PayloadOf(ObjectID id, const Blob& b) const;
  void FreeLocked(Iter it);
  // The unsealed blob `id` if `caller` created it; `verb` words the error.
  Result<Iter> OwnUnsealedLocked(ObjectID id, Owner caller, const char* verb);
  // Removes `id` from its owner's index (and its unsealed bytes, if unsealed).
  void DisownLocked(ObjectID id, Blob& b);
  // Frees now, or marks deleted until the last reference goes (or its I/O ends).
  void DeleteLocked(Iter it);
  // Frees a deleted blob once nothing needs it (no reference, no I/O in flight).
  void MaybeFreeLocked(Iter it);

  // --- spilling; *IoLocked: io_mu_ held, mu_ not ---
  // Spills least recently used blobs until usage is at most `target`. Returns
  // the first disk error (blobs written before it stay spilled).
  Status SpillDownIoLocked(uint64_t target);
  // Writes these blobs (kSpilling already) out, in files of kFileBytes.
  Status SpillIoLocked(const std::vector<ObjectID>& ids);
  // Loads one blob if it is on disk; `pin`; `take_ref`: with a reference taken
  // (so that no spiller can take it back before the caller uses it).
  Status LoadIoLocked(ObjectID id, bool pin, bool take_ref);
  bool SpillableLocked(const Blob& b) const;
  void WakeSpillerLocked();  // usage passed the upper mark: spill in the background
  void SpillerLoop();

  // What one creator holds: its unsealed and sealed-unadopted blobs.
  struct Holdings {
    std::unordered_set<ObjectID> blobs;
    uint64_t unsealed_bytes = 0;  // charged bytes of its unsealed blobs
  };

  const std::unique_ptr<Arena> arena_;
  const uint64_t limit_;
  IdGenerator* const ids_;
  const uint64_t unsealed_quota_;

  mutable std::mutex mu_;
  std::unordered_map<ObjectID, Blob> blobs_;  // guarded by mu_; live and deleted-but-referenced
  /// The bytes on disk of the blobs there (kDisk, kLoading).
  std::unordered_map<ObjectID, SpillFiles::Extent> extents_;  // guarded by mu_
  uint64_t usage_ = 0;                        // guarded by mu_
  std::unordered_map<Owner, Holdings> owners_;  // guarded by mu_; only owners holding blobs
  uint64_t tick_ = 0;                         // guarded by mu_; for last_use

  // Spilling: set by EnableSpill before use.
  std::unique_ptr<SpillFiles> spill_;
  uint64_t lower_mark_ = 0;  // bytes
  uint64_t upper_mark_ = 0;
  std::mutex io_mu_;  // serialises spill and load I/O; taken before mu_
  SpillStatus stats_;  // guarded by mu_ (spilled bytes and blobs now, totals)
  // The background spiller.
  std::condition_variable spill_cv_;
  bool spill_wanted_ = false;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::thread spiller_;
};

}  // namespace vineyard
