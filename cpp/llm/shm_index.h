// ShmIndex: the block index of one host's shared-memory KV cache, itself in
// shared memory (a POSIX shm segment), so that every process of the host sees
// a block the moment its writer publishes it.
//
// The segment holds an open-addressing hash table (linear probing, deletion by
// backward shift, so no tombstones) from block key to the vineyard object
// holding the block, and an LRU list threaded through the slots. One
// process-shared, robust mutex guards it; critical sections touch only the
// table (a few slots per block), never payload bytes, which are copied
// outside it. A process that dies holding the mutex leaves the table
// possibly half-changed: the next locker is told (EOWNERDEAD) and empties
// the table, handing the objects it held back for deletion. Losing cached
// blocks is allowed; returning wrong ones is not.
//
// The first process creates and initialises the segment; the shape (layers,
// bytes per tensor, block size) and capacity are fixed then, and a process
// opening it with another shape is refused.
//
// Thread-safety: all methods are thread- and process-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/result.h"
#include "llm/block.h"

namespace vineyard::llm {

struct IndexEntry {
  ObjectID object = 0;  // the object holding the block (deleted to evict it)
  ObjectID blob = 0;    // its blob (mapped by readers)
  uint32_t ntokens = 0;
};

struct EvictedEntry {
  BlockKey key;
  IndexEntry entry;
};

class ShmIndex {
 public:
  /// Opens (or creates) the segment `name` ("/..."), for a cache of `shape`
  /// holding at most `capacity_tokens` tokens.
  static Result<std::unique_ptr<ShmIndex>> Open(const std::string& name, const Shape& shape,
                                                uint64_t capacity_tokens);
  ~ShmIndex();
  ShmIndex(const ShmIndex&) = delete;
  ShmIndex& operator=(const ShmIndex&) = delete;

  /// Entries of the leading present `keys` (a chain of blocks); the hits become
  /// the most recently used, the first one most of all.
  /// `orphans` gets what a crashed locker left (see above), to delete.
  std::vector<IndexEntry> Lookup(const std::vector<BlockKey>& keys,
                                 std::vector<IndexEntry>* orphans);
  /// Inserts entries[i] under keys[i] (a chain of blocks, inserted from the
  /// last so that the first is the most recent) unless the key is present
  /// (then inserted[i] is false and the caller deletes its object). Evicts
  /// least recently used entries while the tokens held would exceed the
  /// capacity; an entry larger than the whole capacity is not inserted.
  void Insert(const std::vector<BlockKey>& keys, const std::vector<IndexEntry>& entries,
              std::vector<bool>* inserted, std::vector<EvictedEntry>* evicted,
              std::vector<IndexEntry>* orphans);
  /// Evicts least recently used entries holding at least `tokens` tokens (all
  /// of them if fewer): room for a writer the server refused memory.
  void EvictOldest(uint64_t tokens, std::vector<EvictedEntry>* evicted,
                   std::vector<IndexEntry>* orphans);
  /// The entry of `key` (object 0 if absent), without touching the LRU order.
  IndexEntry Peek(const BlockKey& key, std::vector<IndexEntry>* orphans);
  /// Removes `key` if it still maps to `object` (a stale entry).
  void Remove(const BlockKey& key, ObjectID object, std::vector<IndexEntry>* orphans);

  /// Checks the table's invariants (every entry reachable from its home slot,
  /// the LRU list holding each entry once, the token count); for tests.
  Status Validate();

  uint64_t capacity_tokens() const;
  uint64_t max_entries() const;
  uint64_t used_tokens() const;
  uint64_t size() const;
  const std::string& name() const { return name_; }

 private:
  struct Header;
  struct Slot;
  ShmIndex(std::string name, void* base, size_t size);
  static Result<std::unique_ptr<ShmIndex>> OpenOnce(const std::string& name, const Shape& shape,
                                                    uint64_t capacity_tokens);
  class Lock;

  int64_t Find(const BlockKey& key) const;
  void Unlink(int64_t i);
  void PushFront(int64_t i);
  void Erase(int64_t i);
  void Clear(std::vector<IndexEntry>* orphans);

  std::string name_;
  void* base_;
  size_t size_;
  Header* header_;
  Slot* slots_;
};

}  // namespace vineyard::llm
