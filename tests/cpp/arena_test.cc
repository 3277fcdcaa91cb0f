// Tests for the shared-memory Arena (server/arena.h).
#include "server/arena.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace vineyard {
namespace {

constexpr uint64_t kMiB = 1ULL << 20;

std::unique_ptr<Arena> MakeArena(uint64_t capacity, bool prefault = false) {
  auto arena = Arena::Create(capacity, prefault);
  EXPECT_TRUE(arena.ok()) << arena.status().ToString();
  return arena.ok() ? std::move(arena).value() : nullptr;
}

TEST(ArenaTest, AllocationsAre64ByteAlignedAndInside) {
  auto arena = MakeArena(512 * kMiB);
  ASSERT_NE(arena, nullptr);
  EXPECT_EQ(arena->capacity(), 512 * kMiB);
  std::vector<uint64_t> sizes = {1, 63, 64, 65, 100, 4097, kMiB + 3, 100 * kMiB};
  for (uint64_t s = 1; s < 20000; s = s * 3 + 1) sizes.push_back(s);
  std::vector<uint64_t> offsets;
  for (uint64_t size : sizes) {
    auto offset = arena->Allocate(size);
    ASSERT_TRUE(offset.ok()) << size << ": " << offset.status().ToString();
    EXPECT_EQ(*offset % 64, 0u) << "size " << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(arena->base() + *offset) % 64, 0u);
    EXPECT_GE(arena->UsableSize(*offset), size);
    EXPECT_LE(*offset + arena->UsableSize(*offset), arena->capacity());
    arena->base()[*offset] = 1;
    arena->base()[*offset + size - 1] = 2;
    offsets.push_back(*offset);
  }
  for (uint64_t offset : offsets) arena->Free(offset);
  EXPECT_TRUE(arena->Allocate(0).status().IsInvalid());
}

TEST(ArenaTest, CannotExceedCapacity) {
  auto arena = MakeArena(256 * kMiB);
  ASSERT_NE(arena, nullptr);
  auto too_big = arena->Allocate(arena->capacity() + 1);
  ASSERT_FALSE(too_big.ok());
  EXPECT_TRUE(too_big.status().IsNotEnoughMemory());
  EXPECT_FALSE(arena->Allocate(1ULL << 62).ok());

  std::vector<uint64_t> live;
  Result<uint64_t> r = 0ULL;
  while ((r = arena->Allocate(100 * kMiB)).ok()) {
    live.push_back(*r);
    ASSERT_LE(live.size(), 3u);  // 3 x 100 MiB cannot fit in 256 MiB
  }
  ASSERT_GE(live.size(), 1u);
  EXPECT_TRUE(r.status().IsNotEnoughMemory());
  EXPECT_NE(r.status().message().find("104857600"), std::string::npos) << r.status().message();
  arena->Free(live.back());
  auto again = arena->Allocate(100 * kMiB);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  arena->Free(*again);
  live.pop_back();
  for (uint64_t offset : live) arena->Free(offset);
}

TEST(ArenaTest, SecondMappingOfFdSeesTheSameBytes) {
  auto arena = MakeArena(64 * kMiB);
  ASSERT_NE(arena, nullptr);
  const uint64_t size = 3 * kMiB + 5;
  auto offset = arena->Allocate(size);
  ASSERT_TRUE(offset.ok());
  uint8_t* mine = arena->base() + *offset;
  for (uint64_t i = 0; i < size; ++i) mine[i] = static_cast<uint8_t>(i * 7 + 3);

  void* view = mmap(nullptr, arena->capacity(), PROT_READ | PROT_WRITE, MAP_SHARED,
                    arena->fd(), 0);
  ASSERT_NE(view, MAP_FAILED);
  uint8_t* theirs = static_cast<uint8_t*>(view) + *offset;
  EXPECT_EQ(memcmp(mine, theirs, size), 0);
  theirs[0] = 0xEE;  // and the other way round
  EXPECT_EQ(mine[0], 0xEE);
  munmap(view, arena->capacity());
  arena->Free(*offset);
}

// Thousands of random alloc/free cycles, live bytes kept below half the
// capacity: the region must never run out (freed address space is reused).
void Churn(uint64_t seed) {
  const uint64_t capacity = 1024 * kMiB;
  auto arena = MakeArena(capacity);
  ASSERT_NE(arena, nullptr);
  std::mt19937_64 rng(seed);
  struct Live {
    uint64_t offset, size;
  };
  std::vector<Live> live;
  uint64_t live_bytes = 0, peak = 0, allocated_total = 0;
  for (int i = 0; i < 5000; ++i) {
    // Log-uniform sizes from 1 byte to capacity / 8.
    const uint64_t size = 1 + rng() % (uint64_t{1} << (rng() % 28));
    ASSERT_LE(size, capacity / 8);
    while (!live.empty() && (live_bytes + size > capacity / 2 || rng() % 2 == 0)) {
      const size_t k = rng() % live.size();
      arena->Free(live[k].offset);
      live_bytes -= live[k].size;
      live[k] = live.back();
      live.pop_back();
    }
    auto offset = arena->Allocate(size);
    ASSERT_TRUE(offset.ok()) << "iteration " << i << ", live " << live_bytes << ": "
                             << offset.status().ToString();
    arena->base()[*offset + size - 1] = 1;  // touch one page at most
    live.push_back({*offset, size});
    live_bytes += size;
    peak = std::max(peak, live_bytes);
    allocated_total += size;
  }
  EXPECT_GT(peak, capacity * 4 / 10);
  EXPECT_GT(allocated_total, 4 * capacity);  // far more than the region: space is reused
  for (const Live& l : live) arena->Free(l.offset);
  arena->Trim();
  EXPECT_LT(arena->ResidentBytes(), 8 * kMiB);
}

TEST(ArenaTest, RandomChurnReusesAddressSpace) {
  for (uint64_t seed : {1, 7, 42}) {
    SCOPED_TRACE(seed);
    Churn(seed);
  }
}

TEST(ArenaTest, CapacityIsOneExtent) {
  // Rounded up to a jemalloc page-size class; the whole region is one free run.
  auto arena = MakeArena(100 * kMiB);
  ASSERT_NE(arena, nullptr);
  EXPECT_GE(arena->capacity(), 100 * kMiB);
  EXPECT_LE(arena->capacity(), 125 * kMiB);
  EXPECT_EQ(arena->ResidentBytes(), 0u);
  auto big = arena->Allocate(arena->capacity() * 3 / 4);
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  arena->Free(*big);
  EXPECT_EQ(MakeArena(1)->capacity(), 2 * kMiB);
  EXPECT_TRUE(Arena::Create(0, false).status().IsInvalid());
}

TEST(ArenaTest, TrimReturnsPagesToTheKernel) {
  auto arena = MakeArena(256 * kMiB);
  ASSERT_NE(arena, nullptr);
  const uint64_t size = 64 * kMiB;
  auto offset = arena->Allocate(size);
  ASSERT_TRUE(offset.ok());
  memset(arena->base() + *offset, 0xAB, size);
  EXPECT_GE(arena->ResidentBytes(), size);
  arena->Free(*offset);
  const uint64_t before = arena->ResidentBytes();
  const uint64_t released = arena->Trim();
  const uint64_t after = arena->ResidentBytes();
  EXPECT_GE(before - after, 60 * kMiB) << "before " << before << " after " << after;
  EXPECT_GE(released, 60 * kMiB);
  // The space is reusable and reads back as zero.
  auto again = arena->Allocate(size);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(arena->base()[*again + size / 2], 0);
  arena->Free(*again);
}

TEST(ArenaTest, ShrinkInPlaceReturnsTheTail) {
  auto arena = MakeArena(64 * kMiB);
  ASSERT_NE(arena, nullptr);
  auto big = arena->Allocate(40 * kMiB);
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(arena->Allocate(40 * kMiB).ok());  // 40 + 40 > 64
  const uint64_t usable = arena->Shrink(*big, 8 * kMiB);
  EXPECT_GE(usable, 8 * kMiB);
  EXPECT_LT(usable, 40 * kMiB);
  EXPECT_EQ(arena->UsableSize(*big), usable);
  auto second = arena->Allocate(40 * kMiB);  // fits into the returned tail
  ASSERT_TRUE(second.ok()) << second.status().ToString();

  auto small = arena->Allocate(1000);
  ASSERT_TRUE(small.ok());
  const uint64_t small_usable = arena->UsableSize(*small);
  const uint64_t shrunk = arena->Shrink(*small, 10);
  EXPECT_GE(shrunk, 10u);
  EXPECT_LE(shrunk, small_usable);
  EXPECT_EQ(arena->Shrink(*big, usable), usable);  // no-op
  arena->Free(*small);
  arena->Free(*second);
  arena->Free(*big);
}

TEST(ArenaTest, TwoArenasAreIndependent) {
  auto a = MakeArena(64 * kMiB);
  auto b = MakeArena(32 * kMiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->fd(), b->fd());
  auto oa = a->Allocate(kMiB);
  auto ob = b->Allocate(kMiB);
  ASSERT_TRUE(oa.ok() && ob.ok());
  memset(a->base() + *oa, 0xA, kMiB);
  memset(b->base() + *ob, 0xB, kMiB);
  EXPECT_EQ(a->base()[*oa + 100], 0xA);
  EXPECT_EQ(b->base()[*ob + 100], 0xB);
  EXPECT_FALSE(b->Allocate(40 * kMiB).ok());  // b is full long before a
  auto oa2 = a->Allocate(40 * kMiB);
  ASSERT_TRUE(oa2.ok());
  a->Free(*oa);
  a->Free(*oa2);
  a.reset();  // destroying one leaves the other working
  b->Free(*ob);
  auto ob2 = b->Allocate(16 * kMiB);
  ASSERT_TRUE(ob2.ok());
  b->Free(*ob2);
}

TEST(ArenaTest, DestroyAndRecreate) {
  for (int round = 0; round < 8; ++round) {
    auto arena = MakeArena(128 * kMiB);
    ASSERT_NE(arena, nullptr);
    std::vector<uint64_t> offsets;
    for (uint64_t size = 1; size <= 16 * kMiB; size *= 4) {
      auto offset = arena->Allocate(size);
      ASSERT_TRUE(offset.ok()) << "round " << round;
      memset(arena->base() + *offset, round, size);
      offsets.push_back(*offset);
    }
    // Leave half allocated: destroying the arena releases them too.
    for (size_t i = 0; i < offsets.size(); i += 2) arena->Free(offsets[i]);
  }
}

TEST(ArenaTest, PrefaultBacksAllPages) {
  auto arena = MakeArena(32 * kMiB, /*prefault=*/true);
  ASSERT_NE(arena, nullptr);
  EXPECT_GE(arena->ResidentBytes(), 32 * kMiB);
  auto offset = arena->Allocate(8 * kMiB);
  ASSERT_TRUE(offset.ok());
  memset(arena->base() + *offset, 1, 8 * kMiB);
  arena->Free(*offset);
  arena->Trim();
  EXPECT_GE(arena->ResidentBytes(), 32 * kMiB);  // reserved memory is kept
}

TEST(ArenaTest, ConcurrentAllocateFree) {
  auto arena = MakeArena(256 * kMiB);
  ASSERT_NE(arena, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<uint64_t> mine;
      for (int i = 0; i < 2000; ++i) {
        auto offset = arena->Allocate(1 + rng() % (256 * 1024));
        if (!offset.ok()) {
          ++failures;
          continue;
        }
        arena->base()[*offset] = static_cast<uint8_t>(t);
        mine.push_back(*offset);
        if (mine.size() > 16) {
          arena->Free(mine.front());
          mine.erase(mine.begin());
        }
      }
      for (uint64_t offset : mine) arena->Free(offset);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace vineyard
