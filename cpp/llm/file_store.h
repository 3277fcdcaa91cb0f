// FileStore: blocks ("chunks") as files under a root directory, shared by every
// process (and host) that sees the directory.
//
// A chunk's file is named by its chain key (32 hex digits) under
// `hash_chunk_size` levels of directories taken from the key's leading hex
// pairs: root/ab/cd/abcd....kv for two levels. A writer writes the whole file
// under a temporary name in root/.tmp and renames it into place, so a reader
// sees a complete file or none. Every file carries the block header and an
// XXH3 checksum of its payload; a file that is truncated, corrupted or of
// another shape is removed when read and counts as a miss.
//
// A hit refreshes the file's modification time; a background thread removes,
// every `gc_interval` seconds, chunk files unused for `ttl` seconds and
// temporary files left by writers that died.
//
// Thread-safety: all methods are thread-safe; processes coordinate through
// the filesystem only (rename is atomic).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "llm/block_store.h"

namespace vineyard::llm {

struct FileStoreOptions {
  std::string root;
  uint32_t hash_chunk_size = 2;  // directory levels
  int64_t gc_interval = 30 * 60;  // seconds; <= 0: no background GC
  int64_t ttl = 30 * 60;          // seconds
};

class FileStore : public BlockStore {
 public:
  static Result<std::unique_ptr<FileStore>> Make(const Shape& shape, FileStoreOptions options);
  ~FileStore() override;

  Result<size_t> Has(const std::vector<BlockSpec>& blocks) override;
  Result<std::vector<BlockView>> Get(const std::vector<BlockSpec>& blocks) override;
  Result<size_t> Put(const std::vector<BlockSpec>& blocks, const Gather& gather) override;

  /// Writes one block whose payload is already assembled.
  Status PutPayload(const BlockSpec& spec, const uint8_t* payload);
  /// Removes chunk files unused for `ttl` seconds; returns how many went.
  size_t CollectGarbage();
  std::string PathOf(const BlockKey& key) const;

 private:
  FileStore(const Shape& shape, FileStoreOptions options);
  Status Write(const BlockSpec& spec, const std::vector<Piece>& pieces);
  void GcLoop();

  Shape shape_;
  FileStoreOptions options_;
  std::atomic<uint64_t> tmp_counter_{0};
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  bool stopping_ = false;  // guarded by gc_mu_
  std::thread gc_thread_;
};

}  // namespace vineyard::llm
