#include "llm/shm_index.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace vineyard::llm {

namespace {
constexpr uint64_t kIndexMagic = 0x3158444e494d4c4cULL;  // "LLMINDX1"
constexpr uint32_t kEmpty = 0;
constexpr uint32_t kLive = 1;

uint64_t NextPow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}
}  // namespace

struct ShmIndex::Header {
  std::atomic<uint64_t> magic;  // set last by the creator: the segment is ready
  uint32_t layer;
  uint32_t block_size;
  uint64_t tensor_nbytes;
  uint64_t capacity_tokens;
  uint64_t nslots;        // a power of two
  uint64_t max_live;      // nslots / 2: the load factor bound
  uint64_t live;          // entries in the table
  uint64_t used_tokens;   // tokens of those entries
  int64_t lru_head;       // most recently used, -1 if none
  int64_t lru_tail;       // least recently used
  pthread_mutex_t mu;
};

struct ShmIndex::Slot {
  uint64_t key_hi;
  uint64_t key_lo;
  uint64_t object;
  uint64_t blob;
  uint32_t state;
  uint32_t ntokens;
  int64_t prev;  // towards the head (more recent)
  int64_t next;  // towards the tail
};

// Takes the robust mutex; a dead owner's half-done change empties the table.
class ShmIndex::Lock {
 public:
  Lock(ShmIndex* index, std::vector<IndexEntry>* orphans) : index_(index) {
    int rc = pthread_mutex_lock(&index_->header_->mu);
    if (rc == EOWNERDEAD) {
      index_->Clear(orphans);
      pthread_mutex_consistent(&index_->header_->mu);
    }
  }
  ~Lock() { pthread_mutex_unlock(&index_->header_->mu); }

 private:
  ShmIndex* index_;
};

Result<std::unique_ptr<ShmIndex>> ShmIndex::Open(const std::string& name, const Shape& shape,
                                                 uint64_t capacity_tokens) {
  auto opened = OpenOnce(name, shape, capacity_tokens);
  if (!opened.ok() && opened.status().IsIOError() &&
      opened.status().message().find("never initialised") != std::string::npos) {
    // Its creator died before initialising it: start it again.
    shm_unlink(name.c_str());
    opened = OpenOnce(name, shape, capacity_tokens);
  }
  return opened;
}

Result<std::unique_ptr<ShmIndex>> ShmIndex::OpenOnce(const std::string& name, const Shape& shape,
                                                     uint64_t capacity_tokens) {
  uint64_t blocks = (capacity_tokens + shape.block_size - 1) / shape.block_size;
  uint64_t nslots = NextPow2(2 * blocks + 64);
  size_t size = sizeof(Header) + nslots * sizeof(Slot);
  size = (size + 4095) & ~size_t{4095};

  bool creator = false;
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd >= 0) {
    creator = true;
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
      Status st = Status::IOError("ftruncate of the KV cache index ", name, ": ", strerror(errno));
      close(fd);
      shm_unlink(name.c_str());
      return st;
    }
  } else if (errno == EEXIST) {
    fd = shm_open(name.c_str(), O_RDWR, 0600);
    if (fd < 0) return Status::IOError("opening the KV cache index ", name, ": ", strerror(errno));
    // The creator sizes it right after creating it.
    struct stat st {};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (fstat(fd, &st) == 0 && st.st_size == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (st.st_size < static_cast<off_t>(sizeof(Header))) {
      close(fd);
      return Status::IOError("the KV cache index ", name, " was never initialised");
    }
    size = static_cast<size_t>(st.st_size);
  } else {
    return Status::IOError("creating the KV cache index ", name, ": ", strerror(errno));
  }

  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    return Status::IOError("mapping the KV cache index ", name, ": ", strerror(errno));
  }
  std::unique_ptr<ShmIndex> index(new ShmIndex(name, base, size));
  Header* h = index->header_;
  if (creator) {
    h->layer = shape.layer;
    h->block_size = shape.block_size;
    h->tensor_nbytes = shape.tensor_nbytes;
    h->capacity_tokens = capacity_tokens;
    h->nslots = nslots;
    h->max_live = nslots / 2;
    h->live = 0;
    h->used_tokens = 0;
    h->lru_head = h->lru_tail = -1;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    // Slots are zero (kEmpty) from ftruncate.
    h->magic.store(kIndexMagic, std::memory_order_release);
  } else {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (h->magic.load(std::memory_order_acquire) != kIndexMagic) {
      if (std::chrono::steady_clock::now() > deadline) {
        return Status::IOError("the KV cache index ", name, " was never initialised");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (size < sizeof(Header) + h->nslots * sizeof(Slot)) {
      return Status::IOError("the KV cache index ", name, " is truncated");
    }
    if (h->layer != shape.layer || h->block_size != shape.block_size ||
        h->tensor_nbytes != shape.tensor_nbytes) {
      return Status::Invalid("the KV cache on this server was created with layer=", h->layer,
                             ", tensor_nbytes=", h->tensor_nbytes, ", block_size=",
                             h->block_size, "; this cache asks for layer=", shape.layer,
                             ", tensor_nbytes=", shape.tensor_nbytes,
                             ", block_size=", shape.block_size,
                             " (use another llm_cache_object_name for another shape)");
    }
  }
  return index;
}

ShmIndex::ShmIndex(std::string name, void* base, size_t size)
    : name_(std::move(name)),
      base_(base),
      size_(size),
      header_(static_cast<Header*>(base)),
      slots_(reinterpret_cast<Slot*>(static_cast<uint8_t*>(base) + sizeof(Header))) {}

ShmIndex::~ShmIndex() { munmap(base_, size_); }

uint64_t ShmIndex::capacity_tokens() const { return header_->capacity_tokens; }
uint64_t ShmIndex::max_entries() const { return header_->max_live; }

Status ShmIndex::Validate() {
  std::vector<IndexEntry> orphans;
  Lock lock(this, &orphans);
  uint64_t mask = header_->nslots - 1;
  uint64_t live = 0, tokens = 0;
  for (uint64_t i = 0; i < header_->nslots; ++i) {
    const Slot& s = slots_[i];
    if (s.state != kLive) continue;
    live++;
    tokens += s.ntokens;
    for (uint64_t j = s.key_lo & mask; j != i; j = (j + 1) & mask) {
      if (slots_[j].state == kEmpty) return Status::Invalid("slot ", i, " is cut off from home");
    }
  }
  if (live != header_->live) return Status::Invalid("live ", live, " != ", header_->live);
  if (tokens != header_->used_tokens) {
    return Status::Invalid("tokens ", tokens, " != ", header_->used_tokens);
  }
  uint64_t walked = 0;
  int64_t prev = -1;
  for (int64_t i = header_->lru_head; i >= 0; i = slots_[i].next) {
    if (++walked > live) return Status::Invalid("the LRU list loops");
    if (slots_[i].state != kLive) return Status::Invalid("the LRU list holds a free slot");
    if (slots_[i].prev != prev) return Status::Invalid("a broken prev link at ", i);
    prev = i;
  }
  if (walked != live || header_->lru_tail != prev) return Status::Invalid("the LRU list is short");
  return Status::OK();
}

uint64_t ShmIndex::used_tokens() const { return header_->used_tokens; }
uint64_t ShmIndex::size() const { return header_->live; }

int64_t ShmIndex::Find(const BlockKey& key) const {
  uint64_t mask = header_->nslots - 1;
  for (uint64_t i = key.lo & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.state == kEmpty) return -1;
    if (s.key_hi == key.hi && s.key_lo == key.lo) return static_cast<int64_t>(i);
  }
}

void ShmIndex::Unlink(int64_t i) {
  Slot& s = slots_[i];
  if (s.prev >= 0) slots_[s.prev].next = s.next; else header_->lru_head = s.next;
  if (s.next >= 0) slots_[s.next].prev = s.prev; else header_->lru_tail = s.prev;
  s.prev = s.next = -1;
}

void ShmIndex::PushFront(int64_t i) {
  Slot& s = slots_[i];
  s.prev = -1;
  s.next = header_->lru_head;
  if (s.next >= 0) slots_[s.next].prev = i; else header_->lru_tail = i;
  header_->lru_head = i;
}

// Removes slot i, then shifts later slots of its probe run back so that no
// lookup stops early at the hole.
void ShmIndex::Erase(int64_t i) {
  uint64_t mask = header_->nslots - 1;
  Unlink(i);
  header_->live--;
  header_->used_tokens -= slots_[i].ntokens;
  slots_[i].state = kEmpty;
  uint64_t hole = static_cast<uint64_t>(i);
  for (uint64_t j = (hole + 1) & mask; slots_[j].state != kEmpty; j = (j + 1) & mask) {
    uint64_t home = slots_[j].key_lo & mask;
    // Slot j may move to the hole when its home is not cyclically in (hole, j].
    bool between = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (between) continue;
    Slot moved = slots_[j];
    slots_[hole] = moved;
    if (moved.prev >= 0) slots_[moved.prev].next = hole; else header_->lru_head = hole;
    if (moved.next >= 0) slots_[moved.next].prev = hole; else header_->lru_tail = hole;
    slots_[j].state = kEmpty;
    hole = j;
  }
}

void ShmIndex::Clear(std::vector<IndexEntry>* orphans) {
  for (uint64_t i = 0; i < header_->nslots; ++i) {
    Slot& s = slots_[i];
    if (s.state == kLive && orphans) orphans->push_back({s.object, s.blob, s.ntokens});
    s.state = kEmpty;
  }
  header_->live = 0;
  header_->used_tokens = 0;
  header_->lru_head = header_->lru_tail = -1;
}

std::vector<IndexEntry> ShmIndex::Lookup(const std::vector<BlockKey>& keys,
                                         std::vector<IndexEntry>* orphans) {
  std::vector<IndexEntry> found;
  found.reserve(keys.size());
  std::vector<int64_t> hits;
  Lock lock(this, orphans);
  for (const BlockKey& key : keys) {
    int64_t i = Find(key);
    if (i < 0) break;
    const Slot& s = slots_[i];
    found.push_back({s.object, s.blob, s.ntokens});
    hits.push_back(i);
  }
  // The first block ends up the most recent: a chain is evicted from its end,
  // never cut at its start (which would strand every block after it).
  for (auto it = hits.rbegin(); it != hits.rend(); ++it) {
    Unlink(*it);
    PushFront(*it);
  }
  return found;
}

void ShmIndex::Insert(const std::vector<BlockKey>& keys, const std::vector<IndexEntry>& entries,
                      std::vector<bool>* inserted, std::vector<EvictedEntry>* evicted,
                      std::vector<IndexEntry>* orphans) {
  inserted->assign(keys.size(), false);
  Lock lock(this, orphans);
  Header* h = header_;
  uint64_t mask = h->nslots - 1;
  // From the last block to the first, for the same reason as in Lookup: when
  // the batch outgrows the capacity, its tail is what goes.
  for (size_t k = keys.size(); k-- > 0;) {
    const BlockKey& key = keys[k];
    const IndexEntry& e = entries[k];
    if (e.ntokens > h->capacity_tokens) continue;
    int64_t existing = Find(key);
    if (existing >= 0) {
      Unlink(existing);
      PushFront(existing);
      continue;
    }
    while (h->lru_tail >= 0 &&
           (h->used_tokens + e.ntokens > h->capacity_tokens || h->live + 1 > h->max_live)) {
      int64_t t = h->lru_tail;
      Slot& s = slots_[t];
      evicted->push_back({BlockKey{s.key_hi, s.key_lo}, {s.object, s.blob, s.ntokens}});
      Erase(t);
    }
    uint64_t i = key.lo & mask;
    while (slots_[i].state != kEmpty) i = (i + 1) & mask;
    Slot& s = slots_[i];
    s.key_hi = key.hi;
    s.key_lo = key.lo;
    s.object = e.object;
    s.blob = e.blob;
    s.ntokens = e.ntokens;
    s.state = kLive;
    h->live++;
    h->used_tokens += e.ntokens;
    PushFront(static_cast<int64_t>(i));
    (*inserted)[k] = true;
  }
}

void ShmIndex::EvictOldest(uint64_t tokens, std::vector<EvictedEntry>* evicted,
                           std::vector<IndexEntry>* orphans) {
  Lock lock(this, orphans);
  uint64_t freed = 0;
  while (header_->lru_tail >= 0 && freed < tokens) {
    int64_t t = header_->lru_tail;
    Slot& s = slots_[t];
    freed += s.ntokens;
    evicted->push_back({BlockKey{s.key_hi, s.key_lo}, {s.object, s.blob, s.ntokens}});
    Erase(t);
  }
}

IndexEntry ShmIndex::Peek(const BlockKey& key, std::vector<IndexEntry>* orphans) {
  Lock lock(this, orphans);
  int64_t i = Find(key);
  if (i < 0) return IndexEntry{};
  return IndexEntry{slots_[i].object, slots_[i].blob, slots_[i].ntokens};
}

void ShmIndex::Remove(const BlockKey& key, ObjectID object, std::vector<IndexEntry>* orphans) {
  Lock lock(this, orphans);
  int64_t i = Find(key);
  if (i >= 0 && slots_[i].object == object) Erase(i);
}

}  // namespace vineyard::llm
