#include "llm/memory_store.h"

#include <ctime>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "common/pages.h"

namespace vineyard::llm {

namespace {
constexpr char kBlockType[] = "vineyard::llm::Block";
constexpr char kBlocksType[] = "vineyard::llm::Blocks";

std::vector<BlockKey> Keys(const std::vector<BlockSpec>& blocks) {
  std::vector<BlockKey> keys;
  keys.reserve(blocks.size());
  for (const auto& b : blocks) keys.push_back(b.key);
  return keys;
}
}  // namespace

Result<std::unique_ptr<MemoryStore>> MemoryStore::Make(std::shared_ptr<Client> client,
                                                       const Shape& shape,
                                                       uint64_t capacity_tokens,
                                                       const std::string& index_name,
                                                       const std::string& cluster_name) {
  VY_ASSIGN_OR_RETURN(auto index, ShmIndex::Open(index_name, shape, capacity_tokens));
  return std::unique_ptr<MemoryStore>(
      new MemoryStore(std::move(client), shape, std::move(index), cluster_name));
}

MemoryStore::MemoryStore(std::shared_ptr<Client> client, Shape shape,
                         std::unique_ptr<ShmIndex> index, std::string cluster_name)
    : client_(std::move(client)),
      shape_(shape),
      index_(std::move(index)),
      cluster_name_(std::move(cluster_name)) {}

std::string MemoryStore::NameOf(const BlockKey& key) const {
  // A name is a key in the cluster's store: no '/'.
  std::string cache = cluster_name_;
  std::replace(cache.begin(), cache.end(), '/', '_');
  return "vineyard.llm:" + cache + ":" + key.Hex();
}

size_t MemoryStore::CountRemote(const std::vector<BlockSpec>& blocks) {
  size_t n = 0;
  for (const auto& b : blocks) {
    if (!client_->GetName(NameOf(b.key)).ok()) break;
    n++;
  }
  return n;
}

void MemoryStore::FetchRemote(const std::vector<BlockSpec>& blocks) {
  std::vector<BlockKey> keys;
  std::vector<IndexEntry> entries;
  for (const auto& b : blocks) {
    auto named = client_->GetName(NameOf(b.key));
    if (!named.ok()) break;
    // The server copies the object's blobs from their owner (RPC); an object
    // of this instance migrates to itself.
    auto local = client_->MigrateObject(*named);
    if (!local.ok()) break;
    auto meta = client_->GetMetaData(*local);
    if (!meta.ok()) break;
    auto blob = meta->GetMemberId("buffer_");
    if (!blob.ok()) break;
    keys.push_back(b.key);
    entries.push_back({*local, *blob, static_cast<uint32_t>(b.tokens.size())});
  }
  if (keys.empty()) return;
  std::vector<bool> inserted;
  std::vector<EvictedEntry> evicted;
  std::vector<IndexEntry> orphans;
  index_->Insert(keys, entries, &inserted, &evicted, &orphans);
  std::vector<ObjectID> losers;
  for (size_t k = 0; k < keys.size(); ++k) {
    // A copy another process indexed first is not needed; the named original stays.
    if (inserted[k]) continue;
    auto named = client_->GetName(NameOf(keys[k]));
    if (!named.ok() || *named != entries[k].object) losers.push_back(entries[k].object);
  }
  for (const auto& o : orphans) losers.push_back(o.object);
  DeleteObjects(losers);
  Evicted(std::move(evicted));
}

void MemoryStore::Publish(const std::vector<BlockKey>& keys,
                          const std::vector<IndexEntry>& entries,
                          const std::vector<bool>& inserted) {
  for (size_t k = 0; k < keys.size(); ++k) {
    if (inserted[k]) (void)client_->PutName(entries[k].object, NameOf(keys[k]));
  }
}

MemoryStore::~MemoryStore() = default;

void MemoryStore::DeleteObjects(const std::vector<ObjectID>& ids) {
  if (ids.empty()) return;
  // deep: the Block's blob goes with it (readers keep theirs mapped).
  Status st = client_->Delete(ids, /*force=*/false, /*deep=*/true);
  if (!st.ok()) {
    // One may be gone already (deleted by another process's recovery): the rest still go.
    for (ObjectID id : ids) (void)client_->Delete(id, false, true);
  }
}

void MemoryStore::Evicted(std::vector<EvictedEntry> evicted) {
  if (evicted.empty()) return;
  std::vector<ObjectID> objects;
  for (const auto& e : evicted) objects.push_back(e.entry.object);
  if (!cluster_name_.empty()) {
    for (const auto& e : evicted) {
      // Only our own name: another instance may have named its copy since.
      auto named = client_->GetName(NameOf(e.key));
      if (named.ok() && *named == e.entry.object) (void)client_->DropName(NameOf(e.key));
    }
  }
  if (on_evict_) {
    // The tokens are a field of each Block object; the payload is its blob.
    std::vector<ObjectID> blob_ids;
    for (const auto& e : evicted) blob_ids.push_back(e.entry.blob);
    auto metas = client_->GetMetaData(objects);
    auto blobs = client_->GetBlobs(blob_ids);
    if (metas.ok() && blobs.ok() && metas->size() == evicted.size()) {
      std::unordered_map<ObjectID, std::shared_ptr<Blob>> by_id;
      for (auto& b : *blobs) by_id[b->id()] = b;
      for (size_t k = 0; k < evicted.size(); ++k) {
        const EvictedEntry& e = evicted[k];
        auto it = by_id.find(e.entry.blob);
        auto tokens = (*metas)[k].GetKeyValue("tokens");
        if (it == by_id.end() || !tokens.ok() || !tokens->is_array()) continue;
        BlockSpec spec{e.key, tokens->get<std::vector<Token>>()};
        uint32_t n = static_cast<uint32_t>(spec.tokens.size());
        if (n != e.entry.ntokens || it->second->size() != shape_.PayloadBytes(n)) continue;
        on_evict_(spec, BlockView{it->second->data(), n, it->second});
      }
    }
  }
  DeleteObjects(objects);
}

void MemoryStore::MapOnce(const Blob& blob) {
  {
    std::lock_guard<std::mutex> lock(mapped_mu_);
    if (mapped_.size() > (1u << 20)) mapped_.clear();  // bounded: a few MiB at most
    if (!mapped_.insert(blob.id()).second) return;
  }
  PopulatePages(blob.data(), blob.size(), false);  // a reader's first read: one call
}

size_t MemoryStore::CollectOrphans(int64_t min_age) {
  const int64_t now = time(nullptr);
  size_t removed = 0;
  std::vector<IndexEntry> orphans;
  auto old_enough = [&](const ObjectMeta& m) {
    auto index = m.GetKeyValueAs<std::string>("index");
    auto created = m.GetKeyValueAs<int64_t>("created");
    return index.ok() && *index == index_->name() && created.ok() && now - *created >= min_age;
  };
  // Roots first (a root still holds its Blocks), then the Blocks.
  auto roots = client_->ListMetaData(kBlocksType, false, 1u << 20);
  if (roots.ok()) {
    for (const auto& m : *roots) {
      if (old_enough(m) && client_->Delete(m.GetId(), false, /*deep=*/false).ok()) removed++;
    }
  }
  auto blocks = client_->ListMetaData(kBlockType, false, 1u << 20);
  if (!blocks.ok()) return removed;
  for (const auto& m : *blocks) {
    if (!old_enough(m)) continue;
    auto hex = m.GetKeyValueAs<std::string>("key");
    if (!hex.ok() || hex->size() != 32) continue;
    BlockKey key{std::stoull(hex->substr(0, 16), nullptr, 16),
                 std::stoull(hex->substr(16), nullptr, 16)};
    if (index_->Peek(key, &orphans).object == m.GetId()) continue;
    if (client_->Delete(m.GetId(), false, /*deep=*/true).ok()) removed++;
  }
  for (const auto& o : orphans) DeleteObjects({o.object});
  return removed;
}

Result<size_t> MemoryStore::Has(const std::vector<BlockSpec>& blocks) {
  std::vector<IndexEntry> orphans;
  auto found = index_->Lookup(Keys(blocks), &orphans);
  for (const auto& o : orphans) DeleteObjects({o.object});
  size_t n = found.size();
  if (!cluster_name_.empty() && n < blocks.size()) {
    n += CountRemote(std::vector<BlockSpec>(blocks.begin() + n, blocks.end()));
  }
  return n;
}

Result<std::vector<BlockView>> MemoryStore::Get(const std::vector<BlockSpec>& blocks) {
  std::vector<IndexEntry> orphans;
  auto found = index_->Lookup(Keys(blocks), &orphans);
  for (const auto& o : orphans) DeleteObjects({o.object});
  if (!cluster_name_.empty() && found.size() < blocks.size()) {
    FetchRemote(std::vector<BlockSpec>(blocks.begin() + found.size(), blocks.end()));
    found = index_->Lookup(Keys(blocks), &orphans);
  }
  std::vector<BlockView> views;
  if (found.empty()) return views;
  std::vector<ObjectID> ids;
  for (const auto& e : found) ids.push_back(e.blob);
  auto got = client_->GetBlobs(ids);
  std::unordered_map<ObjectID, std::shared_ptr<Blob>> by_id;
  if (got.ok()) {
    for (auto& b : *got) by_id[b->id()] = b;
  } else {
    // One of them went meanwhile: take them one at a time, up to the first gone.
    for (ObjectID id : ids) {
      auto one = client_->GetBlob(id);
      if (!one.ok()) break;
      by_id[id] = *one;
    }
  }
  for (size_t i = 0; i < found.size(); ++i) {
    auto it = by_id.find(found[i].blob);
    // Blob ids are never reused by a server, and the index is per server: a
    // blob of the entry's id and the block's size is the block.
    uint32_t n = static_cast<uint32_t>(blocks[i].tokens.size());
    bool ok = it != by_id.end() && found[i].ntokens == n &&
              it->second->size() == shape_.PayloadBytes(n);
    if (!ok) {
      // Evicted between the lookup and the mapping, or an entry left by an
      // earlier server: not a hit, and not to be found again.
      std::vector<IndexEntry> more;
      index_->Remove(blocks[i].key, found[i].object, &more);
      break;
    }
    MapOnce(*it->second);
    views.push_back(BlockView{it->second->data(), n, it->second});
  }
  return views;
}

Result<size_t> MemoryStore::Put(const std::vector<BlockSpec>& blocks, const Gather& gather) {
  if (blocks.empty()) return size_t{0};
  // Blocks already present need nothing; the chain is walked in order, but a
  // block may be present while an earlier one was evicted, so test each.
  // From the last to the first, so that the first present block ends up the
  // most recently used (as ShmIndex::Lookup orders a chain).
  std::vector<size_t> todo;
  {
    std::vector<IndexEntry> orphans;
    for (size_t i = blocks.size(); i-- > 0;) {
      if (index_->Lookup({blocks[i].key}, &orphans).empty()) todo.push_back(i);
    }
    std::reverse(todo.begin(), todo.end());
    for (const auto& o : orphans) DeleteObjects({o.object});
  }
  if (todo.empty()) return blocks.size();

  std::vector<size_t> sizes;
  for (size_t i : todo) {
    uint32_t n = static_cast<uint32_t>(blocks[i].tokens.size());
    // The payload alone: a header would push a block of 8 MiB into the
    // allocator's next size class (10 MiB). Key and tokens go in the object.
    sizes.push_back(shape_.PayloadBytes(n));
  }
  auto writers_or = client_->CreateBlobs(sizes);
  // The server is full: evict this cache's least recently used blocks (as
  // many tokens as we write) and try again, a few times; then store what fits.
  for (int attempt = 0; attempt < 4 && !writers_or.ok() &&
                        writers_or.status().IsNotEnoughMemory();
       ++attempt) {
    uint64_t tokens = 0;
    for (size_t i : todo) tokens += blocks[i].tokens.size();
    std::vector<EvictedEntry> evicted;
    std::vector<IndexEntry> orphans;
    index_->EvictOldest(tokens << attempt, &evicted, &orphans);
    if (evicted.empty() && orphans.empty()) break;
    for (const auto& o : orphans) DeleteObjects({o.object});
    Evicted(std::move(evicted));
    (void)client_->FlushReleases();
    writers_or = client_->CreateBlobs(sizes);
  }
  if (!writers_or.ok()) {
    if (!writers_or.status().IsNotEnoughMemory()) return writers_or.status();
    writers_or = std::vector<std::unique_ptr<BlobWriter>>();
    for (size_t k = 0; k < sizes.size(); ++k) {
      auto w = client_->CreateBlob(sizes[k]);
      if (!w.ok()) break;
      writers_or->push_back(std::move(*w));
    }
  }
  auto writers = std::move(*writers_or);

  // All the blocks in one put: a transient root holding one Block object per
  // blob, deleted right after (not deeply), so each Block stands alone and
  // eviction deletes it (and its blob) by itself. Three requests (after the
  // one that created the blobs) for any number of blocks. A writer killed
  // after the put and before the index holds the blocks leaves them on the
  // server, unreachable, until it restarts: never visible half-written.
  ObjectMeta root;
  root.SetTypeName(kBlocksType);
  root.AddKeyValue("index", index_->name());
  root.AddKeyValue("created", static_cast<int64_t>(time(nullptr)));
  std::vector<BlobWriter*> sealing;
  for (size_t k = 0; k < writers.size(); ++k) {
    const BlockSpec& spec = blocks[todo[k]];
    uint8_t* dst = writers[k]->data();
    PopulatePages(dst, writers[k]->size(), false);  // a new block: one call, not a fault per page
    std::vector<Piece> pieces;
    gather(todo[k], &pieces);
    uint8_t* at = dst;
    for (const Piece& piece : pieces) {
      std::memcpy(at, piece.data, piece.size);
      at += piece.size;
    }
    ObjectMeta meta;
    meta.SetTypeName(kBlockType);
    meta.AddKeyValue("key", spec.key.Hex());
    meta.AddKeyValue("ntokens", spec.tokens.size());
    meta.AddKeyValue("tokens", json(spec.tokens));
    meta.AddKeyValue("index", index_->name());
    meta.AddKeyValue("created", static_cast<int64_t>(time(nullptr)));
    meta.AddMember("buffer_", *writers[k]);
    root.AddMember("block_" + std::to_string(k), meta);
    sealing.push_back(writers[k].get());
  }
  std::vector<BlockKey> keys;
  std::vector<IndexEntry> entries;
  if (!writers.empty()) {
    // In a cluster the tree is persisted (visible to every instance) so that
    // its Blocks can be named cluster-wide.
    VY_ASSIGN_OR_RETURN(ObjectID root_id,
                        client_->Put(root, sealing, /*persist=*/!cluster_name_.empty()));
    auto tree = client_->GetMetaData(root_id);
    if (tree.ok()) {
      for (size_t k = 0; k < writers.size(); ++k) {
        auto member = tree->GetMemberId("block_" + std::to_string(k));
        if (!member.ok()) continue;
        const BlockSpec& spec = blocks[todo[k]];
        keys.push_back(spec.key);
        entries.push_back({*member, writers[k]->id(), static_cast<uint32_t>(spec.tokens.size())});
      }
    }
    // The Blocks stay: only the root goes.
    Status dropped = client_->Delete(root_id, /*force=*/false, /*deep=*/false);
    if (!tree.ok()) return tree.status();
    VY_RETURN_NOT_OK(dropped);
  }
  writers.clear();  // our references go; the Block objects keep the blobs

  std::vector<bool> inserted;
  std::vector<EvictedEntry> evicted;
  std::vector<IndexEntry> orphans;
  index_->Insert(keys, entries, &inserted, &evicted, &orphans);
  if (!cluster_name_.empty()) Publish(keys, entries, inserted);
  std::vector<ObjectID> losers;
  for (size_t k = 0; k < keys.size(); ++k) {
    // Another process stored the same block meanwhile: ours goes.
    if (!inserted[k]) losers.push_back(entries[k].object);
  }
  for (const auto& o : orphans) losers.push_back(o.object);
  DeleteObjects(losers);
  Evicted(std::move(evicted));
  // What is there now, from the first block: an update larger than the
  // capacity, or one the server had no room for, stores less than asked.
  std::vector<IndexEntry> more;
  return index_->Lookup(Keys(blocks), &more).size();
}

}  // namespace vineyard::llm
