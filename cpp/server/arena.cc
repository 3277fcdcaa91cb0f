#include "server/arena.h"

#include <fcntl.h>
#include <jemalloc/jemalloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

// Read by jemalloc at start-up. lg_extent_max_active_fit: a free extent up to
// 2^N times the size asked for may be split to serve it (jemalloc's default, 6,
// allows 64x). Blobs freed together merge into one large free extent; with the
// default, later blobs much smaller than it would not reuse those pages and
// would fault fresh ones in instead (a put of 100 columns of 8 MiB after a
// delete of the same: 222k faults, 1.4-1.9 s instead of 0.8 s).
extern "C" const char* malloc_conf = "lg_extent_max_active_fit:30";

namespace vineyard {

namespace {

constexpr uint64_t kHugePage = 2ULL << 20;  // jemalloc's HUGEPAGE on x86-64/arm64
constexpr int kAlignment = 64;
// Freed pages stay dirty (reusable without page faults) for about this long,
// then are punched out. Decay advances only while the arena is used: an idle
// server keeps its dirty pages until Trim(). Muzzy decay is 0: a "lazy" purge
// (MADV_FREE) does not exist for shmem, so dirty pages are purged for real.
constexpr ssize_t kDirtyDecayMs = 1000;

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Maps `size` bytes at an address aligned to `alignment`: the memfd `fd`
// shared, or anonymous private memory when fd < 0. Null on failure.
void* MapAligned(uint64_t size, uint64_t alignment, int fd) {
  const uint64_t span = size + alignment;
  void* raw = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = AlignUp(start, alignment);
  const int flags = MAP_FIXED | (fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS);
  void* p = mmap(reinterpret_cast<void*>(aligned), size, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (p == MAP_FAILED) {
    munmap(raw, span);
    return nullptr;
  }
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + size;
  if (start + span > end) munmap(reinterpret_cast<void*>(end), start + span - end);
  return p;
}

std::string ArenaCtl(unsigned index, const char* leaf) {
  return "arena." + std::to_string(index) + "." + leaf;
}

}  // namespace

// jemalloc calls these with the extent_hooks_t* it was given; `hooks` is the
// first member, so that pointer is also the ArenaHooks*. jemalloc marks the
// calls reentrant, so the hooks may allocate (std::map nodes) from arena 0.
//
// Metadata: jemalloc 5.3 also allocates the arena's own metadata ("base"
// blocks) through these hooks, always with HUGEPAGE alignment, while our
// extents ask for PAGE alignment (all allocations are 64-byte aligned). Such
// requests get private anonymous memory outside the region, so metadata
// neither eats capacity nor sits where clients can write. Any range outside the
// region is one of those blocks: dalloc unmaps it; other hooks refuse it.
struct ArenaHooks {
  extent_hooks_t hooks;  // must stay first
  Arena* arena;

  static Arena* Of(extent_hooks_t* h) { return reinterpret_cast<ArenaHooks*>(h)->arena; }

  static void* Alloc(extent_hooks_t* h, void* new_addr, size_t size, size_t alignment,
                     bool* zero, bool* commit, unsigned) {
    *commit = true;  // the mapping is always readable and writable
    if (new_addr == nullptr && alignment >= kHugePage) {
      *zero = true;
      return MapAligned(size, alignment, -1);
    }
    return Of(h)->Carve(new_addr, size, alignment, zero);
  }

  // The whole region is handed to jemalloc as ONE extent (Arena::Seed), and
  // jemalloc keeps it: dalloc opts out (returns true), so freed ranges become
  // "retained" and coalesce again with their neighbours. This matters because
  // with opt.retain (the Linux default) jemalloc never merges extents that came
  // from different alloc-hook calls, and it asks for size-class-rounded sizes
  // (up to 25% more) keeping the rest; a free list of ours would thus stay cut
  // into pieces that never coalesce (in testing: a 40 MiB request failing with
  // 56 MiB free in a 64 MiB region, random churn failing at 12% occupancy).
  static bool Dalloc(extent_hooks_t* h, void* addr, size_t size, bool, unsigned) {
    if (!Of(h)->Contains(addr, size)) return munmap(addr, size) != 0;  // metadata
    return true;
  }

  // Called at arena destruction; the region is unmapped right after.
  static void Destroy(extent_hooks_t* h, void* addr, size_t size, bool, unsigned) {
    if (!Of(h)->Contains(addr, size)) munmap(addr, size);
  }

  // The mapping is always accessible, and every extent stays "committed":
  // jemalloc does not coalesce committed with decommitted extents, so decommit
  // opts out and jemalloc falls back to purge_forced, which frees the pages.
  static bool Commit(extent_hooks_t* h, void* addr, size_t size, size_t, size_t, unsigned) {
    return !Of(h)->Contains(addr, size);
  }
  static bool Decommit(extent_hooks_t*, void*, size_t, size_t, size_t, unsigned) {
    return true;
  }

  // Both purges punch holes: MADV_DONTNEED would not free shmem pages. With
  // --reserve_memory (prefault) they opt out to keep the memory.
  static bool Purge(extent_hooks_t* h, void* addr, size_t size, size_t offset, size_t length,
                    unsigned) {
    Arena* a = Of(h);
    return !a->Contains(addr, size) || a->prefault_ ||
           !a->Punch(static_cast<uint8_t*>(addr) + offset, length);
  }

  static bool Split(extent_hooks_t* h, void* addr, size_t size, size_t, size_t, bool,
                    unsigned) {
    return !Of(h)->Contains(addr, size);
  }

  static bool Merge(extent_hooks_t* h, void* addr_a, size_t size_a, void* addr_b,
                    size_t size_b, bool, unsigned) {
    return !(Of(h)->Contains(addr_a, size_a) && Of(h)->Contains(addr_b, size_b));
  }
};

Arena::Arena(int fd, int ro_fd, uint8_t* base, uint64_t capacity, bool prefault)
    : fd_(fd), ro_fd_(ro_fd), base_(base), capacity_(capacity), prefault_(prefault) {
  free_.emplace(0, capacity);
}

// Makes jemalloc take the whole region in one alloc-hook call: the first
// allocation of an arena with opt.retain asks the hook for the smallest
// page-size class that holds it plus a page, which is exactly capacity_ for an
// allocation of the size class below it. Freed and purged, it stays retained.
Status Arena::Seed() {
  const uint64_t top = uint64_t{1} << (63 - __builtin_clzll(capacity_));
  const uint64_t below = capacity_ == top ? capacity_ - top / 8 : capacity_ - top / 4;
  void* p = mallocx(below, flags_);
  if (p == nullptr) return Status::IOError("jemalloc could not seed the arena");
  dallocx(p, MALLOCX_TCACHE_NONE);
  Purge();
  return Status::OK();
}

Result<std::unique_ptr<Arena>> Arena::Create(uint64_t capacity, bool prefault) {
  if (capacity == 0) return Status::Invalid("arena capacity must be positive");
  // Round up to a jemalloc page-size class (see Seed).
  capacity = nallocx(std::max(capacity, kHugePage), 0);
  if (capacity == 0) return Status::Invalid("arena capacity too large");
  const int fd = memfd_create("vineyard-arena", MFD_CLOEXEC);
  if (fd < 0) return Status::IOError("memfd_create: ", strerror(errno));
  if (ftruncate(fd, static_cast<off_t>(capacity)) != 0) {
    Status st = Status::IOError("ftruncate of the arena memfd to ", capacity,
                                " bytes: ", strerror(errno));
    close(fd);
    return st;
  }
  if (prefault && fallocate(fd, 0, 0, static_cast<off_t>(capacity)) != 0) {
    const int err = errno;
    close(fd);
    if (err == ENOSPC || err == ENOMEM) {
      return Status::NotEnoughMemory("cannot reserve ", capacity, " bytes: ", strerror(err));
    }
    return Status::IOError("fallocate of the arena memfd: ", strerror(err));
  }
  // A second open file description of the same memfd, read-only: the fd that
  // readers receive. Reopening through /proc gives an O_RDONLY description
  // whatever the first one's mode is; mmap(PROT_WRITE, MAP_SHARED) of it fails.
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  const int ro_fd = open(self.c_str(), O_RDONLY | O_CLOEXEC);
  if (ro_fd < 0) {
    Status st = Status::IOError("cannot reopen the arena memfd read-only (", self,
                                "): ", strerror(errno), " (is /proc mounted?)");
    close(fd);
    return st;
  }
  void* base = MapAligned(capacity, kHugePage, fd);
  if (base == nullptr) {
    Status st = Status::IOError("mmap of ", capacity, " bytes: ", strerror(errno));
    close(ro_fd);
    close(fd);
    return st;
  }
  if (prefault) {
    // fallocate reserved the pages; writing them once (zeroed, in one call)
    // also makes them up to date in the page cache. A client can then map a
    // range of them with MADV_POPULATE_READ, which maps 16 pages per fault
    // and leaves them writable: about half the cost of write faults, page by
    // page, on pages never touched (measured: 0.07 s against 0.14 s to map
    // and fill 512 MiB). Linux 5.14; older kernels refuse it, harmlessly.
    (void)madvise(base, capacity, MADV_POPULATE_WRITE);
  }
  std::unique_ptr<Arena> arena(
      new Arena(fd, ro_fd, static_cast<uint8_t*>(base), capacity, prefault));
  VY_RETURN_NOT_OK(arena->Init());
  return arena;
}

Status Arena::Init() {
  hooks_ = std::make_unique<ArenaHooks>();
  hooks_->hooks = {&ArenaHooks::Alloc,  &ArenaHooks::Dalloc, &ArenaHooks::Destroy,
                   &ArenaHooks::Commit, &ArenaHooks::Decommit,  &ArenaHooks::Purge,
                   &ArenaHooks::Purge,  &ArenaHooks::Split,  &ArenaHooks::Merge};
  hooks_->arena = this;
  extent_hooks_t* hooks = &hooks_->hooks;
  size_t len = sizeof(arena_index_);
  if (int rc = mallctl("arenas.create", &arena_index_, &len, &hooks, sizeof(hooks))) {
    return Status::IOError("jemalloc arenas.create: ", strerror(rc));
  }
  has_arena_ = true;
  flags_ = MALLOCX_ARENA(arena_index_) | MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(kAlignment);
  auto set_decay = [this](const char* leaf, ssize_t ms) -> Status {
    if (int rc = mallctl(ArenaCtl(arena_index_, leaf).c_str(), nullptr, nullptr, &ms, sizeof(ms))) {
      return Status::IOError("jemalloc arena.", arena_index_, ".", leaf, ": ", strerror(rc));
    }
    return Status::OK();
  };
  VY_RETURN_NOT_OK(set_decay("dirty_decay_ms", kDirtyDecayMs));
  VY_RETURN_NOT_OK(set_decay("muzzy_decay_ms", 0));
  // jemalloc purges freed extents >= oversize_threshold (8 MiB) at once;
  // let big blobs decay like the rest so that they are reused warm.
  size_t oversize = size_t{1} << 62;
  if (int rc = mallctl(ArenaCtl(arena_index_, "oversize_threshold").c_str(), nullptr, nullptr,
                       &oversize, sizeof(oversize))) {
    return Status::IOError("jemalloc arena.", arena_index_, ".oversize_threshold: ",
                           strerror(rc));
  }
  size_t large_min = 0;
  len = sizeof(large_min);
  if (int rc = mallctl("arenas.lextent.0.size", &large_min, &len, nullptr, 0)) {
    return Status::IOError("jemalloc arenas.lextent.0.size: ", strerror(rc));
  }
  large_min_ = large_min;
  return Seed();
}

Arena::~Arena() {
  if (has_arena_) mallctl(ArenaCtl(arena_index_, "destroy").c_str(), nullptr, nullptr, nullptr, 0);
  munmap(base_, capacity_);
  close(ro_fd_);
  close(fd_);
}

Result<uint64_t> Arena::Allocate(uint64_t size) {
  if (size == 0) return Status::Invalid("cannot allocate 0 bytes");
  void* p = nullptr;
  if (size <= capacity_) {
    p = mallocx(size, flags_);
    if (p == nullptr) {  // dirty extents may hold the room we need: give them back, retry
      Purge();
      p = mallocx(size, flags_);
    }
  }
  if (p != nullptr && !Contains(p, size)) {  // cannot happen unless jemalloc changes
    dallocx(p, MALLOCX_TCACHE_NONE);
    return Status::AssertionFailed("jemalloc returned memory outside the arena");
  }
  if (p == nullptr) {
    return Status::NotEnoughMemory("cannot allocate ", size,
                                   " bytes in the shared memory arena of ", capacity_,
                                   " bytes");
  }
  return static_cast<uint64_t>(static_cast<uint8_t*>(p) - base_);
}

void Arena::Free(uint64_t offset) { dallocx(base_ + offset, MALLOCX_TCACHE_NONE); }

uint64_t Arena::Shrink(uint64_t offset, uint64_t new_size) {
  void* p = base_ + offset;
  new_size = std::max<uint64_t>(new_size, 1);
  // jemalloc cannot turn a large allocation into a small one in place: it then
  // keeps the whole extent. Shrinking to its smallest large class instead gives
  // all but those pages back.
  if (sallocx(p, MALLOCX_TCACHE_NONE) >= large_min_) new_size = std::max(new_size, large_min_);
  return xallocx(p, new_size, 0, flags_);
}

uint64_t Arena::UsableSize(uint64_t offset) const {
  return sallocx(base_ + offset, MALLOCX_TCACHE_NONE);
}

uint64_t Arena::GoodSize(uint64_t size) const {
  return size == 0 || size > capacity_ ? 0 : nallocx(size, flags_);
}

uint64_t Arena::Trim() {
  const uint64_t before = ResidentBytes();
  Purge();
  const uint64_t after = ResidentBytes();
  return before > after ? before - after : 0;
}

uint64_t Arena::ResidentBytes() const {
  struct stat st;
  if (fstat(fd_, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

void Arena::Purge() {
  mallctl(ArenaCtl(arena_index_, "purge").c_str(), nullptr, nullptr, nullptr, 0);
}

bool Arena::Contains(const void* addr, uint64_t size) const {
  const uint8_t* p = static_cast<const uint8_t*>(addr);
  return p >= base_ && size <= capacity_ && static_cast<uint64_t>(p - base_) <= capacity_ - size;
}

bool Arena::Punch(void* addr, uint64_t size) {
  const off_t offset = static_cast<uint8_t*>(addr) - base_;
  return fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                   static_cast<off_t>(size)) == 0;
}

// First fit by address. The ranges were never handed out before, so they are
// holes (zero) or, with prefault, fallocated zero pages.
void* Arena::Carve(void* new_addr, uint64_t size, uint64_t alignment, bool* zero) {
  if (new_addr != nullptr && !Contains(new_addr, size)) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = free_.end();
  uint64_t start = 0;
  if (new_addr != nullptr) {
    start = static_cast<uint8_t*>(new_addr) - base_;
    it = free_.upper_bound(start);
    if (it == free_.begin()) return nullptr;
    --it;
    if (it->first + it->second < start + size) return nullptr;
  } else {
    const uint64_t base = reinterpret_cast<uintptr_t>(base_);
    for (it = free_.begin(); it != free_.end(); ++it) {
      start = AlignUp(base + it->first, alignment) - base;
      if (start + size <= it->first + it->second) break;
    }
    if (it == free_.end()) return nullptr;
  }
  const uint64_t off = it->first, end = it->first + it->second;
  free_.erase(it);
  if (start > off) free_.emplace(off, start - off);
  if (start + size < end) free_.emplace(start + size, end - start - size);
  *zero = true;
  return base_ + start;
}

}  // namespace vineyard
