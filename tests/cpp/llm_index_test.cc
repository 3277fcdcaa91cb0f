// The host-wide index of the LLM KV cache (cpp/llm/shm_index.h): a model check
// of lookups, inserts, LRU eviction and removal with keys crowded onto a few
// home slots (long probe runs, deletion shifting across the table's end), and
// several processes changing one index at once.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <csignal>
#include <unistd.h>

#include <list>
#include <map>
#include <random>

#include "llm/shm_index.h"

namespace vineyard::llm {
namespace {

std::string UniqueName(const char* what) {
  return std::string("/vineyard-llm-test-") + what + "-" + std::to_string(getpid());
}

struct Model {
  uint64_t capacity;
  uint64_t max_entries;
  uint64_t used = 0;
  std::list<uint64_t> lru;  // front: most recent; values: key.hi
  std::map<uint64_t, IndexEntry> entries;

  void Touch(uint64_t hi) {
    lru.remove(hi);
    lru.push_front(hi);
  }
  std::vector<uint64_t> Insert(uint64_t hi, const IndexEntry& e) {
    std::vector<uint64_t> evicted;
    if (e.ntokens > capacity) return evicted;
    if (entries.count(hi)) {
      Touch(hi);
      return evicted;
    }
    while (!lru.empty() && (used + e.ntokens > capacity || entries.size() + 1 > max_entries)) {
      uint64_t old = lru.back();
      lru.pop_back();
      used -= entries[old].ntokens;
      entries.erase(old);
      evicted.push_back(old);
    }
    entries[hi] = e;
    used += e.ntokens;
    lru.push_front(hi);
    return evicted;
  }
};

BlockKey KeyOf(uint64_t hi) { return BlockKey{hi, hi % 5 == 0 ? ~uint64_t{0} : hi % 7}; }

TEST(LlmIndex, MatchesAModelUnderRandomOperations) {
  Shape shape{2, 64, 4};
  std::string name = UniqueName("model");
  auto index = ShmIndex::Open(name, shape, 120);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  Model model{120, (*index)->max_entries()};
  std::mt19937_64 rng(42);
  for (int step = 0; step < 20000; ++step) {
    uint64_t hi = 1 + rng() % 200;
    int op = static_cast<int>(rng() % 10);
    std::vector<IndexEntry> orphans;
    if (op < 4) {
      IndexEntry e{hi * 10, hi * 10 + 1, static_cast<uint32_t>(1 + rng() % 4)};
      std::vector<bool> inserted;
      std::vector<EvictedEntry> evicted;
      (*index)->Insert({KeyOf(hi)}, {e}, &inserted, &evicted, &orphans);
      bool fresh = model.entries.count(hi) == 0;
      auto expect = model.Insert(hi, e);
      ASSERT_EQ(inserted[0], fresh && e.ntokens <= 120) << step;
      ASSERT_EQ(evicted.size(), expect.size()) << step;
      for (size_t i = 0; i < expect.size(); ++i) ASSERT_EQ(evicted[i].key.hi, expect[i]);
    } else if (op < 8) {
      auto found = (*index)->Lookup({KeyOf(hi)}, &orphans);
      auto it = model.entries.find(hi);
      ASSERT_EQ(found.size(), it == model.entries.end() ? 0u : 1u) << step;
      if (!found.empty()) {
        ASSERT_EQ(found[0].object, it->second.object);
        ASSERT_EQ(found[0].ntokens, it->second.ntokens);
        model.Touch(hi);
      }
    } else {
      (*index)->Remove(KeyOf(hi), hi * 10, &orphans);
      if (model.entries.count(hi)) {
        model.used -= model.entries[hi].ntokens;
        model.entries.erase(hi);
        model.lru.remove(hi);
      }
    }
    ASSERT_TRUE(orphans.empty());
    ASSERT_EQ((*index)->used_tokens(), model.used) << step;
    ASSERT_LE((*index)->used_tokens(), 120u);
    if (step % 97 == 0) ASSERT_TRUE((*index)->Validate().ok()) << (*index)->Validate().ToString();
  }
  ASSERT_TRUE((*index)->Validate().ok());
  shm_unlink(name.c_str());
}

TEST(LlmIndex, ALookupStopsAtTheFirstMissingBlock) {
  Shape shape{1, 8, 4};
  std::string name = UniqueName("chain");
  auto index = ShmIndex::Open(name, shape, 64);
  ASSERT_TRUE(index.ok());
  std::vector<bool> inserted;
  std::vector<EvictedEntry> evicted;
  std::vector<IndexEntry> orphans;
  (*index)->Insert({KeyOf(1), KeyOf(2), KeyOf(4)}, {{1, 1, 4}, {2, 2, 4}, {4, 4, 4}}, &inserted,
                   &evicted, &orphans);
  EXPECT_EQ((*index)->Lookup({KeyOf(1), KeyOf(2), KeyOf(3), KeyOf(4)}, &orphans).size(), 2u);
  shm_unlink(name.c_str());
}

TEST(LlmIndex, AnotherShapeIsRefused) {
  std::string name = UniqueName("shape");
  auto first = ShmIndex::Open(name, Shape{2, 64, 4}, 64);
  ASSERT_TRUE(first.ok());
  auto other = ShmIndex::Open(name, Shape{3, 64, 4}, 64);
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(other.status().IsInvalid());
  shm_unlink(name.c_str());
}

TEST(LlmIndex, ProcessesChangingOneIndexAtOnceKeepItConsistent) {
  Shape shape{2, 64, 4};
  std::string name = UniqueName("procs");
  auto index = ShmIndex::Open(name, shape, 400);
  ASSERT_TRUE(index.ok());
  std::vector<pid_t> children;
  for (int c = 0; c < 3; ++c) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto mine = ShmIndex::Open(name, shape, 400);
      if (!mine.ok()) _exit(2);
      std::mt19937_64 rng(c);
      for (int step = 0; step < 20000; ++step) {
        uint64_t hi = 1 + rng() % 300;
        std::vector<IndexEntry> orphans;
        if (rng() % 2) {
          std::vector<bool> inserted;
          std::vector<EvictedEntry> evicted;
          (*mine)->Insert({KeyOf(hi)}, {{hi, hi, 1 + static_cast<uint32_t>(rng() % 4)}},
                          &inserted, &evicted, &orphans);
        } else if (rng() % 4) {
          (*mine)->Lookup({KeyOf(hi)}, &orphans);
        } else {
          (*mine)->Remove(KeyOf(hi), hi, &orphans);
        }
      }
      _exit((*mine)->Validate().ok() ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  Status st = (*index)->Validate();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_LE((*index)->used_tokens(), 400u);
  shm_unlink(name.c_str());
}

TEST(LlmIndex, AProcessKilledHoldingTheLockLeavesAUsableEmptyTable) {
  // A child spins on the index (its time goes mostly to critical sections)
  // and is SIGKILLed; when it died holding the lock, the next locker empties
  // the table and gets the entries back to delete. Some kills land outside
  // the lock: try until one lands inside, a bounded number of times.
  Shape shape{2, 64, 4};
  std::string name = UniqueName("killed");
  auto index = ShmIndex::Open(name, shape, 400);
  ASSERT_TRUE(index.ok());
  bool recovered = false;
  for (int attempt = 0; attempt < 50 && !recovered; ++attempt) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto mine = ShmIndex::Open(name, shape, 400);
      if (!mine.ok()) _exit(2);
      std::vector<IndexEntry> orphans;
      for (uint64_t i = 0;; ++i) {
        std::vector<bool> inserted;
        std::vector<EvictedEntry> evicted;
        uint64_t hi = 1 + i % 500;
        (*mine)->Insert({KeyOf(hi)}, {{hi, hi, 1}}, &inserted, &evicted, &orphans);
        (*mine)->Lookup({KeyOf(1 + (i * 7) % 500)}, &orphans);
      }
    }
    usleep(2000 + 1000 * (attempt % 5));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    std::vector<IndexEntry> orphans;
    (*index)->Lookup({KeyOf(1)}, &orphans);
    if (!orphans.empty()) {
      recovered = true;
      EXPECT_EQ((*index)->size(), 0u);
      EXPECT_EQ((*index)->used_tokens(), 0u);
    }
    Status st = (*index)->Validate();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_TRUE(recovered) << "no kill landed inside the lock in 50 tries";
  // The table serves after the recovery.
  std::vector<bool> inserted;
  std::vector<EvictedEntry> evicted;
  std::vector<IndexEntry> orphans;
  (*index)->Insert({KeyOf(7)}, {{7, 7, 2}}, &inserted, &evicted, &orphans);
  EXPECT_TRUE(inserted[0]);
  EXPECT_EQ((*index)->Lookup({KeyOf(7)}, &orphans).size(), 1u);
  shm_unlink(name.c_str());
}

}  // namespace
}  // namespace vineyard::llm
