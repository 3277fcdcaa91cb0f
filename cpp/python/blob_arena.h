// BlobArena: shared memory handed to another allocator (Arrow's memory pool in
// an I/O worker, vineyard._arrow_pool) one blob per large allocation, so that
// what a file reader decodes lands in vineyardd's memory. A put of a pyarrow
// Table or RecordBatch (put_arrow) that meets a buffer starting such a blob
// seals that blob into the object instead of copying the buffer.
//
// Lifetime: reference-counted (the Python BlobArena object holds one reference,
// each pool made from it another); the arena holds its client. Every method
// is thread-safe: Arrow allocates and frees from its own threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "client/blob.h"
#include "python/blob_arena_api.h"

namespace vineyard {
class Client;
}

namespace vineyard::py {

class BlobArena {
 public:
  /// One reference, the caller's. Allocations stop (return null) once they
  /// would hold more than `max_bytes` (0: no bound), so that what a reader
  /// decodes ahead never fills the server under a stream's own bound.
  static BlobArena* Make(std::shared_ptr<Client> client, size_t max_bytes);
  /// The arena of `client` with a reference for the caller (put_arrow asks),
  /// or null when it has none.
  static BlobArena* Acquire(const Client* client);

  void Retain() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Release();

  uint8_t* Allocate(int64_t size);
  uint8_t* Reallocate(uint8_t* p, int64_t old_size, int64_t new_size);
  bool Owns(const uint8_t* p) const;
  void Free(uint8_t* p);

  /// The writer of the unsealed blob that starts at `p` and holds `n` bytes,
  /// claimed for one put (null when there is none: the put copies then).
  BlobWriter* Claim(const void* p, size_t n);
  /// Gives back claims whose put failed (the blobs stay the allocator's).
  void Unclaim(const std::vector<BlobWriter*>& writers);

  /// Allocations alive, and their bytes.
  size_t live() const;
  size_t live_bytes() const;

  const BlobArenaApi* api() const { return &api_; }

 private:
  BlobArena(std::shared_ptr<Client> client, size_t max_bytes);
  ~BlobArena();

  struct Entry {
    std::unique_ptr<BlobWriter> writer;
    bool claimed = false;
  };

  std::shared_ptr<Client> client_;
  const size_t max_bytes_;
  std::atomic<int64_t> refs_{1};
  mutable std::mutex mu_;
  std::unordered_map<const uint8_t*, Entry> live_;
  size_t live_bytes_ = 0;
  size_t reserved_ = 0;  // asked of the server, not yet answered
  BlobArenaApi api_;
};

}  // namespace vineyard::py
