// MemoryStore: blocks in vineyard shared memory, one host-wide index.
//
// Each block is a vineyard blob of its payload alone (a header would push an
// 8 MiB block into the allocator's 10 MiB size class), adopted by a small
// object of type vineyard::llm::Block (key, tokens, index, creation time), so
// it outlives its writer; the ShmIndex maps block keys to them. A writer fills its blobs, seals them with the object
// (Client::Put), and only then publishes them in the index: a process killed
// before that leaves nothing visible (the server drops an unsealed blob with
// its connection). A reader maps the blobs (one request for all the blocks of
// a lookup) and holds a server reference on each for as long as it keeps the
// BlockView: eviction deletes the object, but the server frees the memory only
// when the last reader lets go, so a block being read is never overwritten.
//
// Eviction is LRU over the whole host, bounded by the capacity in tokens
// given by the first process; `on_evict` sees each evicted block before its
// object is deleted (to write it down to a lower tier).
//
// Across hosts (a server in a cluster of several instances through etcd,
// `cluster_name` set): a writer also persists its blocks and names each one
// "vineyard.llm:<cluster_name>:<key>", cluster-wide. A lookup that misses
// locally asks for the names of the next blocks; the local server migrates
// the objects found (it fetches their blobs from the owner over the RPC
// port), and they enter the local index: the next hit is local. Evicting a
// named block drops its name.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "client/client.h"
#include "llm/block_store.h"
#include "llm/shm_index.h"

namespace vineyard::llm {

class MemoryStore : public BlockStore {
 public:
  using EvictHook = std::function<void(const BlockSpec& spec, const BlockView& view)>;

  /// `index_name`: the shm segment shared by the processes of this cache.
  /// `cluster_name`: share blocks with the other instances under this name
  /// ("" for this host only).
  static Result<std::unique_ptr<MemoryStore>> Make(std::shared_ptr<Client> client,
                                                   const Shape& shape, uint64_t capacity_tokens,
                                                   const std::string& index_name,
                                                   const std::string& cluster_name = "");
  ~MemoryStore() override;

  Result<size_t> Has(const std::vector<BlockSpec>& blocks) override;
  Result<std::vector<BlockView>> Get(const std::vector<BlockSpec>& blocks) override;
  Result<size_t> Put(const std::vector<BlockSpec>& blocks, const Gather& gather) override;

  void set_on_evict(EvictHook hook) { on_evict_ = std::move(hook); }
  /// Deletes this cache's Block objects (and roots) older than `min_age`
  /// seconds that the index does not hold: what writers killed between their
  /// put and the index left behind. Returns how many objects went.
  size_t CollectOrphans(int64_t min_age);
  ShmIndex& index() { return *index_; }

 private:
  MemoryStore(std::shared_ptr<Client> client, Shape shape, std::unique_ptr<ShmIndex> index,
              std::string cluster_name);
  std::string NameOf(const BlockKey& key) const;
  /// How many of `blocks` (from the first) are named in the cluster.
  size_t CountRemote(const std::vector<BlockSpec>& blocks);
  /// Migrates the named objects of the leading `blocks` here and indexes them.
  void FetchRemote(const std::vector<BlockSpec>& blocks);
  /// Names `keys`' objects cluster-wide (they were persisted with the put).
  void Publish(const std::vector<BlockKey>& keys, const std::vector<IndexEntry>& entries,
               const std::vector<bool>& inserted);
  /// Deletes the objects of blocks no longer indexed (best effort).
  void DeleteObjects(const std::vector<ObjectID>& ids);
  void Evicted(std::vector<EvictedEntry> evicted);
  /// Maps a blob's pages in one call the first time this process reads it,
  /// rather than one fault per page.
  void MapOnce(const Blob& blob);

  std::shared_ptr<Client> client_;
  Shape shape_;
  std::unique_ptr<ShmIndex> index_;
  EvictHook on_evict_;
  std::string cluster_name_;  // "" when blocks stay on this host
  std::mutex mapped_mu_;
  std::unordered_set<ObjectID> mapped_;  // blobs MapOnce populated; guarded by mapped_mu_
};

}  // namespace vineyard::llm
