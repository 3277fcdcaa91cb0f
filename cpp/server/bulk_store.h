// BulkStore: the blob table over the shared-memory arena.
//
// A blob is created unsealed (writable by its creator), then sealed
// (immutable, readable by everyone). Each blob counts the references that
// connections hold on it; a deleted blob disappears from the table at once,
// but its memory is freed only when the last reference is released, so a
// reader's mapping is never handed to a new blob.
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
#include <vector>

#include "common/ids.h"
#include "common/protocol.h"
#include "common/result.h"
#include "server/arena.h"

namespace vineyard {

class BulkStore {
 public:
  /// `limit`: the most bytes the blobs may occupy (vineyardd --size).
  BulkStore(std::unique_ptr<Arena> arena, uint64_t limit, IdGenerator* ids);

  /// Allocates an unsealed blob of `size` bytes (size 0: the empty blob).
  /// NotEnoughMemory when it would exceed the limit.
  Result<Payload> Create(uint64_t size);
  /// Seals an unsealed blob and takes one reference for the sealer.
  Status Seal(ObjectID id);
  /// The payload of a blob, taking one reference. Unsealed blobs only if `unsafe`.
  Result<Payload> Get(ObjectID id, bool unsafe);
  /// Takes one more reference on an existing blob.
  Status AddRef(ObjectID id);
  /// Drops one reference; frees a deleted blob when it was the last.
  void Release(ObjectID id);
  /// Shrinks an unsealed blob to `size` bytes.
  Status Shrink(ObjectID id, uint64_t size);
  /// Frees an unsealed blob (drop_buffer, or its creator went away).
  Status Abort(ObjectID id);
  /// Deletes a sealed blob: gone from the table now, memory freed after the last release.
  Status Delete(ObjectID id);

  bool Exists(ObjectID id) const;
  bool IsSealed(ObjectID id) const;
  /// Size of a blob, or ObjectNotExists.
  Result<uint64_t> Size(ObjectID id) const;
  /// Ids of all live sealed blobs (for clear).
  std::vector<ObjectID> SealedBlobs() const;

  /// Returns free pages to the kernel; the bytes released.
  uint64_t Trim();

  uint64_t usage() const;
  uint64_t limit() const { return limit_; }
  int fd() const { return arena_->fd(); }
  uint64_t map_size() const { return arena_->capacity(); }
  uint64_t ResidentBytes() const { return arena_->ResidentBytes(); }

 private:
  struct Blob {
    uint64_t offset = 0;  // in the arena
    uint64_t size = 0;    // data size, as requested (or shrunk)
    uint64_t charged = 0; // bytes counted against the limit
    bool sealed = false;
    bool deleted = false;   // logically deleted, waiting for its last release
    int64_t refs = 0;       // references held by connections
  };

  Payload PayloadOf(ObjectID id, const Blob& b) const;
  void FreeLocked(std::unordered_map<ObjectID, Blob>::iterator it);

  const std::unique_ptr<Arena> arena_;
  const uint64_t limit_;
  IdGenerator* const ids_;

  mutable std::mutex mu_;
  std::unordered_map<ObjectID, Blob> blobs_;  // guarded by mu_; live and deleted-but-referenced
  uint64_t usage_ = 0;                        // guarded by mu_
};

}  // namespace vineyard
