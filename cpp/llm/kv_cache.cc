#include "llm/kv_cache.h"

#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "client/client.h"
#include "llm/file_store.h"
#include "llm/memory_store.h"

namespace vineyard::llm {

namespace {

// The index segment of the cache `object_name` on the server at `socket`:
// the socket file's identity (inode, change time) changes when the server
// restarts, so a new server never inherits an index of objects it lacks.
Result<std::string> IndexName(const std::string& socket, const std::string& object_name) {
  std::error_code ec;
  std::string path = std::filesystem::weakly_canonical(socket, ec).string();
  if (ec) path = socket;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::ConnectionFailed("no vineyard socket at ", socket);
  }
  std::string id = path + '\0' + object_name + '\0' + std::to_string(st.st_ino) + '\0' +
                   std::to_string(st.st_ctim.tv_sec) + '.' + std::to_string(st.st_ctim.tv_nsec);
  char name[64];
  std::snprintf(name, sizeof(name), "/vineyard-llm-%016llx",
                static_cast<unsigned long long>(XXH3_64bits(id.data(), id.size())));
  return std::string(name);
}

// Keys of the blocks of `all`: block k covers [k*B, min((k+1)*B, n)).
std::vector<BlockSpec> Chain(const Shape& shape, const std::vector<Token>& all, size_t nblocks) {
  std::vector<BlockSpec> specs;
  specs.reserve(nblocks);
  BlockKey parent = shape.Root();
  const size_t B = shape.block_size;
  for (size_t k = 0; k < nblocks; ++k) {
    size_t begin = k * B;
    size_t end = std::min(begin + B, all.size());
    BlockSpec spec;
    spec.tokens.assign(all.begin() + begin, all.begin() + end);
    spec.key = ChainKey(parent, spec.tokens.data(), spec.tokens.size());
    parent = spec.key;
    specs.push_back(std::move(spec));
  }
  return specs;
}

BlockSpec Partial(const Shape& shape, const std::vector<BlockSpec>& chain, size_t k,
                  const std::vector<Token>& all, size_t m) {
  BlockKey parent = k == 0 ? shape.Root() : chain[k - 1].key;
  size_t begin = k * shape.block_size;
  BlockSpec spec;
  spec.tokens.assign(all.begin() + begin, all.begin() + begin + m);
  spec.key = ChainKey(parent, spec.tokens.data(), m);
  return spec;
}

Status CheckLayers(const std::vector<LayerKV>& kv, const Shape& shape, bool allow_null) {
  for (size_t i = 0; i < kv.size(); ++i) {
    if (kv[i].size() != shape.layer) {
      return Status::Invalid("kv_cache_list[", i, "] has ", kv[i].size(),
                             " layers, the cache has ", shape.layer);
    }
    for (size_t j = 0; j < kv[i].size(); ++j) {
      for (const KVTensor* t : {&kv[i][j].first, &kv[i][j].second}) {
        if (allow_null && t->data == 0) continue;
        if (t->data == 0) {
          return Status::Invalid("kv_cache_list[", i, "][", j, "] has a null address");
        }
        if (t->length != shape.tensor_nbytes) {
          return Status::Invalid("kv_cache_list[", i, "][", j, "] has ", t->length,
                                 " bytes, the cache's tensors have ", shape.tensor_nbytes);
        }
      }
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<KVCache>> KVCache::Make(const KVCacheOptions& o) {
  if (!o.shared_memory && !o.filesystem) {
    return Status::Invalid("the KV cache needs a shared-memory or a file configuration");
  }
  if (o.tensor_nbytes == 0) return Status::Invalid("tensor_nbytes must be positive");
  if (o.layer == 0) return Status::Invalid("layer must be positive");
  if (o.cache_capacity == 0) return Status::Invalid("cache_capacity must be positive");
  uint32_t block = o.shared_memory ? o.block_size : o.chunk_size;
  if (block == 0) return Status::Invalid("block_size / chunk_size must be positive");
  if (o.shared_memory && o.filesystem && o.block_size != o.chunk_size) {
    return Status::Invalid("with both tiers, block_size (", o.block_size,
                           ") and chunk_size (", o.chunk_size, ") must be equal");
  }
  Shape shape{o.layer, o.tensor_nbytes, block};
  std::unique_ptr<KVCache> cache(new KVCache(shape, o.filesystem));
  if (o.filesystem) {
    FileStoreOptions fo{o.root, o.hash_chunk_size, o.gc_interval, o.ttl};
    VY_ASSIGN_OR_RETURN(cache->files_, FileStore::Make(shape, fo));
  }
  if (o.shared_memory) {
    VY_ASSIGN_OR_RETURN(cache->client_, Client::Connect(o.socket));
    VY_ASSIGN_OR_RETURN(std::string name, IndexName(o.socket, o.llm_cache_object_name));
    // In a cluster of several instances, blocks are shared with the other hosts.
    std::string cluster_name;
    auto instances = cache->client_->ClusterInfo();
    if (instances.ok() && instances->is_object() && instances->size() > 1) {
      cluster_name = o.llm_cache_object_name;
    }
    VY_ASSIGN_OR_RETURN(cache->memory_, MemoryStore::Make(cache->client_, shape, o.cache_capacity,
                                                          name, cluster_name));
    if (cache->files_) {
      FileStore* files = cache->files_.get();
      const Shape s = shape;
      cache->memory_->set_on_evict([files, s](const BlockSpec& spec, const BlockView& view) {
        (void)files->PutPayload(spec, view.payload);
      });
    }
  }
  return cache;
}

KVCache::KVCache(Shape shape, bool aligned_prefix)
    : shape_(shape), aligned_prefix_(aligned_prefix), pid_(getpid()) {}

KVCache::~KVCache() { Close(); }

void KVCache::Close() {
  closed_ = true;
  if (getpid() != pid_) {
    // A forked child: the connection and the collector thread are the
    // parent's (the thread is not even in this process). Leave them be.
    (void)memory_.release();
    (void)files_.release();
    new std::shared_ptr<Client>(std::move(client_));  // not freed, on purpose
    return;
  }
  memory_.reset();
  files_.reset();
  client_.reset();
}

Status KVCache::CheckOpen() const {
  if (closed_) return Status::Invalid("the KV cache is closed");
  // A forked child shares the parent's connection to the server: its requests
  // would interleave with the parent's.
  if (getpid() != pid_) {
    return Status::Invalid("this KV cache was made by process ", pid_,
                           "; make one in each process (after fork)");
  }
  return Status::OK();
}

std::string KVCache::index_name() const { return memory_ ? memory_->index().name() : ""; }

size_t KVCache::CollectGarbage(int64_t min_orphan_age) {
  size_t removed = files_ ? files_->CollectGarbage() : 0;
  if (memory_) removed += memory_->CollectOrphans(min_orphan_age);
  return removed;
}

std::string KVCache::ChunkPath(const BlockKey& key) const {
  return files_ ? files_->PathOf(key) : "";
}

Result<size_t> KVCache::Has(const std::vector<BlockSpec>& blocks) {
  size_t n = 0;
  if (memory_) {
    VY_ASSIGN_OR_RETURN(n, memory_->Has(blocks));
  }
  if (files_ && n < blocks.size()) {
    std::vector<BlockSpec> rest(blocks.begin() + n, blocks.end());
    VY_ASSIGN_OR_RETURN(size_t more, files_->Has(rest));
    n += more;
  }
  return n;
}

Result<std::vector<BlockView>> KVCache::Get(const std::vector<BlockSpec>& blocks) {
  std::vector<BlockView> views;
  if (memory_) {
    VY_ASSIGN_OR_RETURN(views, memory_->Get(blocks));
  }
  if (files_ && views.size() < blocks.size()) {
    std::vector<BlockSpec> rest(blocks.begin() + views.size(), blocks.end());
    VY_ASSIGN_OR_RETURN(auto found, files_->Get(rest));
    if (memory_ && !found.empty()) {
      // Read back into memory: the next hit is a shared-memory one.
      rest.resize(found.size());
      auto promoted = memory_->Put(rest, [&](size_t i, std::vector<Piece>* pieces) {
        AddPiece(pieces, found[i].payload, shape_.PayloadBytes(found[i].ntokens));
      });
      (void)promoted;
    }
    for (auto& v : found) views.push_back(std::move(v));
  }
  return views;
}

Result<size_t> KVCache::Put(const std::vector<BlockSpec>& blocks, const Gather& gather) {
  if (memory_) return memory_->Put(blocks, gather);
  return files_->Put(blocks, gather);
}

Result<size_t> KVCache::Update(const std::vector<Token>& prefix, const std::vector<Token>& tokens,
                               const std::vector<LayerKV>& kv) {
  VY_RETURN_NOT_OK(CheckOpen());
  if (kv.size() != tokens.size()) {
    return Status::Invalid("kv_cache_list has ", kv.size(), " entries for ", tokens.size(),
                           " tokens");
  }
  VY_RETURN_NOT_OK(CheckLayers(kv, shape_, /*allow_null=*/false));
  const size_t B = shape_.block_size;
  if (aligned_prefix_ && prefix.size() % B != 0) {
    return Status::Invalid("the prefix has ", prefix.size(),
                           " tokens; the file cache needs a multiple of chunk_size (", B, ")");
  }
  if (tokens.empty()) return size_t{0};

  std::vector<Token> all;
  all.reserve(prefix.size() + tokens.size());
  all.insert(all.end(), prefix.begin(), prefix.end());
  all.insert(all.end(), tokens.begin(), tokens.end());
  const size_t p = prefix.size();
  const size_t n = all.size();
  const size_t first = p / B;
  const size_t nblocks = (n + B - 1) / B;
  std::vector<BlockSpec> chain = Chain(shape_, all, nblocks);
  std::vector<BlockSpec> todo(chain.begin() + first, chain.end());

  // A first block that starts inside the prefix needs the prefix's tensors.
  BlockView head;
  if (p % B != 0) {
    VY_ASSIGN_OR_RETURN(size_t present, Has({todo[0]}));
    if (present == 0) {
      BlockSpec pre = Partial(shape_, chain, first, all, p % B);
      VY_ASSIGN_OR_RETURN(auto views, Get({pre}));
      if (views.empty()) return size_t{0};  // the prefix is not cached
      head = views[0];
    }
  }

  const uint64_t T = shape_.tensor_nbytes;
  auto gather = [&](size_t i, std::vector<Piece>* pieces) {
    const size_t k = first + i;
    const size_t count = todo[i].tokens.size();
    for (size_t t = 0; t < count; ++t) {
      const size_t g = k * B + t;
      if (g < p) {
        AddPiece(pieces, head.payload + shape_.Offset(t, 0, 0), shape_.TokenBytes());
        continue;
      }
      const LayerKV& layers = kv[g - p];
      for (uint32_t j = 0; j < shape_.layer; ++j) {
        AddPiece(pieces, reinterpret_cast<const void*>(layers[j].first.data), T);
        AddPiece(pieces, reinterpret_cast<const void*>(layers[j].second.data), T);
      }
    }
  };
  VY_ASSIGN_OR_RETURN(size_t stored, Put(todo, gather));
  if (stored >= todo.size()) return tokens.size();
  size_t end = (first + stored) * B;
  return end > p ? std::min(end - p, tokens.size()) : size_t{0};
}

Result<size_t> KVCache::Query(const std::vector<Token>& prefix, const std::vector<Token>& tokens,
                              std::vector<LayerKV>& kv) {
  VY_RETURN_NOT_OK(CheckOpen());
  if (kv.size() != tokens.size()) {
    return Status::Invalid("kv_cache_list has ", kv.size(), " entries for ", tokens.size(),
                           " tokens");
  }
  VY_RETURN_NOT_OK(CheckLayers(kv, shape_, /*allow_null=*/true));
  if (tokens.empty()) return size_t{0};
  const size_t B = shape_.block_size;
  std::vector<Token> all;
  all.reserve(prefix.size() + tokens.size());
  all.insert(all.end(), prefix.begin(), prefix.end());
  all.insert(all.end(), tokens.begin(), tokens.end());
  const size_t p = prefix.size();
  const size_t n = all.size();

  std::vector<BlockSpec> chain = Chain(shape_, all, n / B);
  VY_ASSIGN_OR_RETURN(size_t hits, Has(chain));
  std::vector<BlockSpec> specs(chain.begin(), chain.begin() + hits);
  size_t covered = hits * B;
  if (covered < n) {
    // The sequence may continue in a shorter block (the tail of a cached one).
    for (size_t m = std::min(B - 1, n - covered); m >= 1; --m) {
      BlockSpec tail = Partial(shape_, chain, hits, all, m);
      VY_ASSIGN_OR_RETURN(size_t found, Has({tail}));
      if (found == 1) {
        specs.push_back(std::move(tail));
        covered += m;
        break;
      }
    }
  }
  if (covered <= p) return size_t{0};

  const size_t first = p / B;
  std::vector<BlockSpec> wanted(specs.begin() + first, specs.end());
  VY_ASSIGN_OR_RETURN(auto views, Get(wanted));
  covered = first * B;
  for (const auto& v : views) covered += v.ntokens;
  if (covered <= p) return size_t{0};

  const uint64_t T = shape_.tensor_nbytes;
  // Copies into caller buffers go as runs: consecutive tensors adjacent both
  // in the block and in the caller's memory are one memcpy.
  uint8_t* run_dst = nullptr;
  const uint8_t* run_src = nullptr;
  size_t run = 0;
  auto flush = [&] {
    if (run > 0) std::memcpy(run_dst, run_src, run);
    run = 0;
  };
  for (size_t g = p; g < covered; ++g) {
    const BlockView& view = views[g / B - first];
    const uint32_t t = static_cast<uint32_t>(g % B);
    LayerKV& layers = kv[g - p];
    for (uint32_t j = 0; j < shape_.layer; ++j) {
      for (int side = 0; side < 2; ++side) {
        KVTensor& out = side == 0 ? layers[j].first : layers[j].second;
        const uint8_t* src = view.payload + shape_.Offset(t, j, side);
        if (out.data == 0) {
          out.data = reinterpret_cast<uintptr_t>(src);
          out.length = T;
          out.owner = view.owner;
          continue;
        }
        auto* dst = reinterpret_cast<uint8_t*>(out.data);
        if (run > 0 && run_dst + run == dst && run_src + run == src) {
          run += T;
        } else {
          flush();
          run_dst = dst;
          run_src = src;
          run = T;
        }
      }
    }
  }
  flush();
  return covered - p;
}

}  // namespace vineyard::llm
