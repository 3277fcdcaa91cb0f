// KVCache: the LLM KV cache of vineyard.llm, over one or two tiers.
//
// update(prefix, tokens, kv) stores, for every token of `tokens` following
// `prefix`, the K and V tensors of each layer (kv[i][j] = (K, V) of token i,
// layer j); query(prefix, tokens, kv) finds how many tokens of `tokens`,
// following `prefix`, are cached and hands their tensors back. Sequences are
// cut into blocks of `block_size` tokens named by a chain of keys (block.h),
// so a lookup probes one key per block.
//
// Tiers: shared memory (MemoryStore) and/or files (FileStore). With both, a
// block evicted from memory is written to a file, and a block found only in
// a file is read back into memory on a hit.
//
// Query results: a KVTensor whose `data` is 0 is pointed at the cached bytes
// themselves (no copy; its `owner` keeps them valid, and a block held so is
// never reused by eviction); any other KVTensor is a caller buffer of
// `tensor_nbytes` bytes that the bytes are copied into.
//
// Thread-safety: Update and Query may run in several threads at once;
// Close must not run with them. Processes share the cache through the stores,
// each with its own KVCache (one made before a fork refuses calls after it).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "llm/block.h"
#include "llm/block_store.h"

namespace vineyard {
class Client;
}

namespace vineyard::llm {

class MemoryStore;
class FileStore;

struct KVTensor {
  uintptr_t data = 0;
  size_t length = 0;
  std::shared_ptr<const void> owner;  // keeps `data` valid when it points into the cache
  uint64_t seen = 0;  // the Python binding's mark: the last parse that met this object
};

using LayerKV = std::vector<std::pair<KVTensor, KVTensor>>;  // (K, V) per layer

struct KVCacheOptions {
  uint64_t tensor_nbytes = 0;
  uint64_t cache_capacity = 0;  // tokens (in shared memory)
  uint32_t layer = 1;

  bool shared_memory = false;
  std::string socket;               // vineyardd's IPC socket
  uint32_t block_size = 16;
  std::string llm_cache_object_name = "llm_cache_object";  // names the host-wide index

  bool filesystem = false;
  uint32_t chunk_size = 16;
  std::string root;
  uint32_t hash_chunk_size = 2;
  int64_t gc_interval = 30 * 60;
  int64_t ttl = 30 * 60;
};

class KVCache {
 public:
  static Result<std::unique_ptr<KVCache>> Make(const KVCacheOptions& options);
  ~KVCache();

  /// Returns how many tokens of `tokens` are cached afterwards (from the first).
  Result<size_t> Update(const std::vector<Token>& prefix, const std::vector<Token>& tokens,
                        const std::vector<LayerKV>& kv);
  /// Returns how many tokens of `tokens` matched; fills kv[0 .. matched).
  Result<size_t> Query(const std::vector<Token>& prefix, const std::vector<Token>& tokens,
                       std::vector<LayerKV>& kv);
  /// Releases the stores (a closed cache refuses further calls).
  void Close();

  const Shape& shape() const { return shape_; }
  /// The shared-memory index segment's name ("" without the memory tier).
  std::string index_name() const;
  /// Runs the file tier's garbage collection now, and removes from shared
  /// memory the blocks of writers killed before they indexed them (older
  /// than `min_orphan_age` seconds); returns files and objects removed.
  size_t CollectGarbage(int64_t min_orphan_age = 60);
  /// The file a chunk key is stored under ("" without the file tier).
  std::string ChunkPath(const BlockKey& key) const;

 private:
  KVCache(Shape shape, bool aligned_prefix);
  Result<size_t> Has(const std::vector<BlockSpec>& blocks);
  Result<std::vector<BlockView>> Get(const std::vector<BlockSpec>& blocks);
  Result<size_t> Put(const std::vector<BlockSpec>& blocks, const Gather& gather);
  Status CheckOpen() const;

  Shape shape_;
  bool aligned_prefix_;  // the file tier stores whole chunks only
  std::shared_ptr<Client> client_;
  std::unique_ptr<MemoryStore> memory_;
  std::unique_ptr<FileStore> files_;
  bool closed_ = false;
  pid_t pid_;  // the process that made it: a forked child must make its own
};

}  // namespace vineyard::llm
