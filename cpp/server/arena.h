// Arena: the server's bulk memory, one shared-memory file carved by jemalloc.
//
// The Arena owns a memfd of capacity() bytes (sparse: a page costs memory only
// once written) mapped MAP_SHARED at base(). Clients receive fd() and map
// capacity() bytes themselves, so an allocation is named by its OFFSET from the
// base, never by a pointer. read_only_fd() is a second, read-only open of the
// same memfd: mmap(PROT_WRITE, MAP_SHARED) of it fails with EACCES, so a
// process holding only that fd cannot write the store.
//
// Allocation is delegated to a private jemalloc arena ("arenas.create") whose
// extent hooks hand the whole mapping to jemalloc as one extent; every
// allocation is 64-byte aligned and bypasses the thread caches. Freed pages
// stay "dirty" for quick reuse for about a second, then are returned to the
// kernel by punching holes in the memfd; Trim() does that at once.
//
// Capacity planning: capacity() is the requested capacity rounded up to a
// jemalloc page-size class (at most 25% more, free since sparse). jemalloc
// rounds allocations up to size classes (4 per power of two, so up to 25%
// more, plus one page for large ones), needs a free run of the next class up
// to place a large allocation, and address space fragments. So map well beyond
// the memory limit you enforce (BulkStore does); only written bytes cost
// memory. jemalloc's metadata lives outside the mapping: clients cannot
// corrupt it and it takes no capacity.
//
// Thread-safety: all public methods are thread-safe.
// Ownership: the Arena owns the fd and the mapping; both die with it, together
// with every allocation still live (the jemalloc arena is destroyed).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "common/result.h"

namespace vineyard {

struct ArenaHooks;  // the jemalloc extent hooks, defined in arena.cc

class Arena {
 public:
  /// Creates the memfd of `capacity` bytes (rounded up to a jemalloc page-size
  /// class, at least 2 MiB) and maps it. `prefault`: back all capacity() bytes
  /// now (vineyardd --reserve_memory); the memory is then kept for the Arena's
  /// life: nothing is punched out and Trim() releases nothing.
  static Result<std::unique_ptr<Arena>> Create(uint64_t capacity, bool prefault);
  /// Destroys the jemalloc arena, unmaps, closes the fd.
  ~Arena();

  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  /// Allocates `size` > 0 bytes, 64-byte aligned; returns the offset from base().
  /// NotEnoughMemory when the region cannot fit it (after purging dirty pages).
  Result<uint64_t> Allocate(uint64_t size);
  /// Frees an allocation made by Allocate.
  void Free(uint64_t offset);
  /// Tries to shrink an allocation in place to `new_size` (<= current); returns
  /// the new usable size (may stay larger, e.g. for small size classes).
  uint64_t Shrink(uint64_t offset, uint64_t new_size);
  /// The usable size of an allocation (>= requested).
  uint64_t UsableSize(uint64_t offset) const;
  /// The usable size Allocate(size) would give (jemalloc's size class), 0 if too large.
  uint64_t GoodSize(uint64_t size) const;
  /// Returns unused pages to the kernel (purges the jemalloc arena, which
  /// punches holes). Returns the drop of ResidentBytes() (best effort).
  uint64_t Trim();

  int fd() const { return fd_; }
  /// The same memfd opened read-only (O_RDONLY): for clients that only read.
  int read_only_fd() const { return ro_fd_; }
  uint8_t* base() const { return base_; }
  /// The size clients must mmap.
  uint64_t capacity() const { return capacity_; }
  /// Bytes of the memfd backed by memory now (st_blocks * 512).
  uint64_t ResidentBytes() const;

 private:
  friend struct ArenaHooks;

  Arena(int fd, int ro_fd, uint8_t* base, uint64_t capacity, bool prefault);
  Status Init();  // creates and tunes the jemalloc arena

  // Extent-hook helpers; addresses are absolute.
  bool Contains(const void* addr, uint64_t size) const;
  void* Carve(void* new_addr, uint64_t size, uint64_t alignment, bool* zero);
  bool Punch(void* addr, uint64_t size);  // true on success
  void Purge();
  Status Seed();  // hands the whole region to jemalloc as one extent

  const int fd_;
  const int ro_fd_;  // read-only open of the memfd
  uint8_t* const base_;
  const uint64_t capacity_;
  const bool prefault_;
  std::unique_ptr<ArenaHooks> hooks_;
  unsigned arena_index_ = 0;
  bool has_arena_ = false;
  int flags_ = 0;
  uint64_t large_min_ = 0;  // jemalloc's smallest large size class (one extent per allocation)

  std::mutex mu_;
  std::map<uint64_t, uint64_t> free_;  // never-carved ranges: offset -> length
};

}  // namespace vineyard
