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
//
// Thread-safety: all public methods are thread-safe (one internal mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/ids.h"
#include "common/protocol.h"
#include "common/result.h"
#include "server/arena.h"

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

  /// Allocates an unsealed blob of `size` bytes for `owner` (size 0: the empty
  /// blob). NotEnoughMemory when it would exceed the limit or the owner's quota.
  Result<Payload> Create(uint64_t size, Owner owner);
  /// Seals `owner`'s unsealed blob; the sealer takes one reference.
  Status Seal(ObjectID id, Owner owner);
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

 private:
  struct Blob {
    uint64_t offset = 0;  // in the arena
    uint64_t size = 0;    // data size, as requested (or shrunk)
    uint64_t charged = 0; // bytes counted against the limit
    Owner owner = kNoOwner;  // its creator until adopted
    bool sealed = false;
    bool deleted = false;   // logically deleted, waiting for its last release
    int64_t refs = 0;       // references held by connections
  };

  using Iter = std::unordered_map<ObjectID, Blob>::iterator;

  Payload PayloadOf(ObjectID id, const Blob& b) const;
  void FreeLocked(Iter it);
  // The unsealed blob `id` if `caller` created it; `verb` words the error.
  Result<Iter> OwnUnsealedLocked(ObjectID id, Owner caller, const char* verb);
  // Removes `id` from its owner's index (and its unsealed bytes, if unsealed).
  void DisownLocked(ObjectID id, Blob& b);
  // Frees now, or marks deleted until the last reference goes.
  void DeleteLocked(Iter it);

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
  uint64_t usage_ = 0;                        // guarded by mu_
  std::unordered_map<Owner, Holdings> owners_;  // guarded by mu_; only owners holding blobs
};

}  // namespace vineyard
