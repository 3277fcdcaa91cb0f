#include "server/bulk_store.h"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "common/socket_io.h"

namespace vineyard {

BulkStore::BulkStore(std::unique_ptr<Arena> arena, uint64_t limit, IdGenerator* ids,
                     uint64_t unsealed_quota)
    : arena_(std::move(arena)), limit_(limit), ids_(ids), unsealed_quota_(unsealed_quota) {}

BulkStore::~BulkStore() {
  if (!spiller_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  spill_cv_.notify_all();
  spiller_.join();
}

uint64_t BulkStore::ChargedLocked(const Blob& b) const {
  return arena_->UsableSize(b.offset) + kBlobBookkeepingBytes;
}

Payload BulkStore::PayloadOf(ObjectID id, const Blob& b) const {
  Payload p;
  p.object_id = id;
  if (IsEmptyBlob(id)) {
    p.is_sealed = true;
    return p;  // no memory: store_fd -1, sizes 0
  }
  p.store_fd = arena_->fd();
  p.data_offset = static_cast<int64_t>(b.offset);
  p.data_size = b.size;
  p.map_size = arena_->capacity();
  p.pointer = reinterpret_cast<uint64_t>(arena_->base() + b.offset);
  p.is_sealed = b.sealed;
  p.is_owner = true;
  return p;
}

Result<Payload> BulkStore::Create(uint64_t size, Owner owner) {
  if (size == 0) return PayloadOf(kEmptyBlobID, Blob{});
  const uint64_t usable = arena_->GoodSize(size);  // 0: larger than the whole arena
  const uint64_t need = usable == 0 ? UINT64_MAX : usable + kBlobBookkeepingBytes;
  // A blob that does not fit makes room first: least recently used blobs go to
  // disk (another Create may take the room meanwhile: then spill again).
  Status spilled;
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  for (int attempt = 0;; ++attempt) {
    lock.lock();
    if (spill_ == nullptr || need > limit_ || need <= limit_ - std::min(usage_, limit_) ||
        attempt == 3 || !spilled.ok()) {
      break;
    }
    lock.unlock();
    std::lock_guard<std::mutex> io(io_mu_);
    spilled = SpillDownIoLocked(limit_ - need);
  }
  if (need > limit_ - std::min(usage_, limit_) && spill_ != nullptr && need <= limit_) {
    if (!spilled.ok()) {
      return Status::NotEnoughMemory("cannot allocate a blob of ", FormatBytes(size), ": ",
                                     FormatBytes(usage_), " of ", FormatBytes(limit_),
                                     " in use, and spilling to disk failed: ",
                                     spilled.message());
    }
    return Status::NotEnoughMemory("cannot allocate a blob of ", FormatBytes(size), ": ",
                                   FormatBytes(usage_), " of ", FormatBytes(limit_),
                                   " in use, and none of it can be spilled to disk (clients "
                                   "use it, it is pinned, or it is not sealed yet)");
  }
  if (need > limit_ - std::min(usage_, limit_)) {
    return Status::NotEnoughMemory("cannot allocate a blob of ", FormatBytes(size), ": ",
                                   FormatBytes(usage_), " of ", FormatBytes(limit_),
                                   " in use (start vineyardd with a larger --size)");
  }
  if (unsealed_quota_ > 0) {
    auto held = owners_.find(owner);
    const uint64_t unsealed = held == owners_.end() ? 0 : held->second.unsealed_bytes;
    if (need > unsealed_quota_ - std::min(unsealed, unsealed_quota_)) {
      return Status::NotEnoughMemory(
          "cannot allocate a blob of ", FormatBytes(size), ": this client already holds ",
          FormatBytes(unsealed), " of unsealed blobs and may hold ",
          FormatBytes(unsealed_quota_), " (seal or drop blobs first, or start vineyardd "
          "with a larger --unsealed_quota)");
    }
  }
  VY_ASSIGN_OR_RETURN(uint64_t offset, arena_->Allocate(size));
  ObjectID id = ids_->NextBlobID();
  Blob& b = blobs_[id];
  b.offset = offset;
  b.size = size;
  b.owner = owner;
  b.last_use = ++tick_;
  const uint64_t charged = ChargedLocked(b);
  usage_ += charged;
  Holdings& h = owners_[owner];
  h.blobs.insert(id);
  h.unsealed_bytes += charged;
  WakeSpillerLocked();
  return PayloadOf(id, b);
}

Result<BulkStore::Iter> BulkStore::OwnUnsealedLocked(ObjectID id, Owner caller,
                                                     const char* verb) {
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("cannot ", verb, " blob ", ObjectIDToString(id),
                                   ": it does not exist");
  }
  if (it->second.sealed) {
    return Status::ObjectSealed("cannot ", verb, " blob ", ObjectIDToString(id),
                                ": it is already sealed");
  }
  if (it->second.owner != caller) {
    return Status::Invalid("cannot ", verb, " blob ", ObjectIDToString(id),
                           ": it was created by another client, and only its creator may ",
                           verb, " it before it is sealed");
  }
  return it;
}

void BulkStore::DisownLocked(ObjectID id, Blob& b) {
  if (b.owner == kNoOwner) return;
  auto h = owners_.find(b.owner);
  if (h != owners_.end()) {
    h->second.blobs.erase(id);
    if (!b.sealed) h->second.unsealed_bytes -= ChargedLocked(b);
    if (h->second.blobs.empty()) owners_.erase(h);
  }
  b.owner = kNoOwner;
}

Status BulkStore::Seal(ObjectID id, Owner owner) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  VY_ASSIGN_OR_RETURN(Iter it, OwnUnsealedLocked(id, owner, "seal"));
  Blob& b = it->second;
  auto h = owners_.find(owner);
  if (h != owners_.end()) h->second.unsealed_bytes -= ChargedLocked(b);  // still its, unadopted
  b.sealed = true;
  AddOne(b.refs);
  b.last_use = ++tick_;
  return Status::OK();
}

Status BulkStore::Unseal(ObjectID id, Owner owner) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  // Adopted (owner gone) by a tree that then failed to be made, or still its.
  if (it == blobs_.end() || it->second.deleted || !it->second.sealed ||
      (it->second.owner != owner && it->second.owner != kNoOwner) || it->second.refs != 1 ||
      it->second.holds != 0) {
    return Status::Invalid("cannot unseal blob ", ObjectIDToString(id),
                           ": it is not one this client just sealed");
  }
  Blob& b = it->second;
  b.sealed = false;
  b.refs = 0;
  b.owner = owner;
  Holdings& h = owners_[owner];
  h.blobs.insert(id);
  h.unsealed_bytes += ChargedLocked(b);
  return Status::OK();
}

Result<Payload> BulkStore::Get(ObjectID id, bool unsafe, Owner caller) {
  if (IsEmptyBlob(id)) return PayloadOf(kEmptyBlobID, Blob{});
  std::unique_lock<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  if (!it->second.sealed && !unsafe) {
    return Status::ObjectNotSealed("blob ", ObjectIDToString(id),
                                   " is not sealed yet: seal it before reading it");
  }
  if (!it->second.sealed && it->second.owner != caller) {
    return Status::ObjectNotSealed("blob ", ObjectIDToString(id),
                                   " is not sealed: only its creator may read it before it "
                                   "is sealed");
  }
  if (it->second.place == Place::kDisk || it->second.place == Place::kLoading) {
    lock.unlock();
    {
      std::lock_guard<std::mutex> io(io_mu_);
      VY_RETURN_NOT_OK(LoadIoLocked(id, false, /*take_ref=*/true));
    }
    lock.lock();
    it = blobs_.find(id);  // in the table and in memory: we hold a reference
    if (it->second.deleted) {
      --it->second.refs;
      MaybeFreeLocked(it);
      return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
    }
    return PayloadOf(id, it->second);
  }
  AddOne(it->second.refs);
  it->second.last_use = ++tick_;
  return PayloadOf(id, it->second);
}

Status BulkStore::AddRef(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  AddOne(it->second.refs);
  return Status::OK();
}

void BulkStore::Release(ObjectID id) {
  if (IsEmptyBlob(id)) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.refs <= 0) return;
  if (--it->second.refs > 0) return;
  if (it->second.deleted) {
    MaybeFreeLocked(it);
  } else {
    WakeSpillerLocked();  // one more blob may be spilled
  }
}

Status BulkStore::Shrink(ObjectID id, uint64_t size, Owner caller) {
  std::lock_guard<std::mutex> lock(mu_);
  VY_ASSIGN_OR_RETURN(Iter it, OwnUnsealedLocked(id, caller, "shrink"));
  Blob& b = it->second;
  if (size > b.size) {
    return Status::Invalid("cannot shrink blob ", ObjectIDToString(id), " of ", b.size,
                           " bytes to a larger size ", size);
  }
  // Keep at least one byte allocated (the blob keeps its place); its data size
  // may be 0. Charge what the allocator really keeps, which may stay larger.
  const uint64_t before = ChargedLocked(b);
  const uint64_t charged = arena_->Shrink(b.offset, std::max<uint64_t>(size, 1)) +
                           kBlobBookkeepingBytes;
  usage_ = usage_ - before + charged;
  Holdings& h = owners_[caller];
  h.unsealed_bytes = h.unsealed_bytes - before + charged;
  b.size = size;
  return Status::OK();
}

void BulkStore::DeleteLocked(Iter it) {
  DisownLocked(it->first, it->second);
  it->second.deleted = true;  // else freed by the last Release, or when its I/O ends
  MaybeFreeLocked(it);
}

void BulkStore::MaybeFreeLocked(Iter it) {
  const Blob& b = it->second;
  if (b.deleted && b.refs <= 0 && (b.place == Place::kMemory || b.place == Place::kDisk)) {
    FreeLocked(it);
  }
}

Status BulkStore::Abort(ObjectID id, Owner caller) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it != blobs_.end() && !it->second.deleted && it->second.sealed) {
    return Status::ObjectSealed("blob ", ObjectIDToString(id),
                                " is sealed: delete it instead of dropping it");
  }
  VY_ASSIGN_OR_RETURN(it, OwnUnsealedLocked(id, caller, "drop"));
  DeleteLocked(it);
  return Status::OK();
}

Status BulkStore::Delete(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  if (!it->second.sealed) {
    return Status::ObjectNotSealed("blob ", ObjectIDToString(id),
                                   " is not sealed: only its creator may drop it (drop_buffer)");
  }
  DeleteLocked(it);
  return Status::OK();
}

Status BulkStore::CheckDeletable(ObjectID id) const {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it != blobs_.end() && !it->second.deleted && !it->second.sealed) {
    return Status::ObjectNotSealed("cannot delete blob ", ObjectIDToString(id),
                                   ": it is not sealed, and only its creator may drop it "
                                   "(drop_buffer)");
  }
  return Status::OK();
}

Status BulkStore::Adopt(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  if (!it->second.sealed) {
    return Status::ObjectNotSealed("blob ", ObjectIDToString(id),
                                   " is not sealed: seal it before using it");
  }
  DisownLocked(id, it->second);
  return Status::OK();
}

size_t BulkStore::ReleaseOwner(Owner owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto h = owners_.find(owner);
  if (h == owners_.end()) return 0;
  std::vector<ObjectID> ids(h->second.blobs.begin(), h->second.blobs.end());
  for (ObjectID id : ids) {
    auto it = blobs_.find(id);
    if (it != blobs_.end()) DeleteLocked(it);  // erases `h` with its last blob
  }
  owners_.erase(owner);
  return ids.size();
}

void BulkStore::FreeLocked(Iter it) {
  Blob& b = it->second;
  DisownLocked(it->first, b);
  if (b.place == Place::kDisk) {
    auto e = extents_.find(it->first);
    if (e != extents_.end()) {
      spill_->Drop(e->second);  // its bytes on disk go with it
      extents_.erase(e);
    }
    stats_.spilled_bytes -= b.size;
    stats_.spilled_blobs -= 1;
  } else {
    usage_ -= ChargedLocked(b);
    arena_->Free(b.offset);
  }
  blobs_.erase(it);
}

bool BulkStore::Exists(ObjectID id) const {
  if (IsEmptyBlob(id)) return true;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  return it != blobs_.end() && !it->second.deleted;
}

bool BulkStore::IsSealed(ObjectID id) const {
  if (IsEmptyBlob(id)) return true;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  return it != blobs_.end() && !it->second.deleted && it->second.sealed;
}

Result<uint64_t> BulkStore::Size(ObjectID id) const {
  if (IsEmptyBlob(id)) return uint64_t{0};
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  return it->second.size;
}

std::vector<ObjectID> BulkStore::SealedBlobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ObjectID> ids;
  for (const auto& [id, b] : blobs_) {
    if (b.sealed && !b.deleted) ids.push_back(id);
  }
  return ids;
}

uint64_t BulkStore::Trim() { return arena_->Trim(); }

size_t BulkStore::num_blobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return blobs_.size();
}

uint64_t BulkStore::usage() const {
  std::lock_guard<std::mutex> lock(mu_);
  return usage_;
}

// --- spilling -------------------------------------------------------------------

void BulkStore::EnableSpill(std::unique_ptr<SpillFiles> files, double lower_rate,
                            double upper_rate) {
  spill_ = std::move(files);
  lower_mark_ = static_cast<uint64_t>(static_cast<double>(limit_) * lower_rate);
  upper_mark_ = static_cast<uint64_t>(static_cast<double>(limit_) * upper_rate);
  spiller_ = std::thread([this] { SpillerLoop(); });
}

bool BulkStore::SpillableLocked(const Blob& b) const {
  return b.sealed && !b.deleted && b.place == Place::kMemory && b.refs <= 0 && b.holds <= 0 &&
         !b.pinned;
}

void BulkStore::WakeSpillerLocked() {
  if (spill_ == nullptr || usage_ <= upper_mark_ || spill_wanted_) return;
  spill_wanted_ = true;
  spill_cv_.notify_one();
}

void BulkStore::SpillerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    spill_cv_.wait(lock, [&] { return stopping_ || spill_wanted_; });
    if (stopping_) return;
    spill_wanted_ = false;  // a wake during this pass asks for another
    lock.unlock();
    Status st;
    {
      std::lock_guard<std::mutex> io(io_mu_);
      st = SpillDownIoLocked(lower_mark_);
    }
    if (!st.ok()) spdlog::warn("background spill: {}", st.message());
    lock.lock();
    // Wakes come with every release above the mark: a pass at most every
    // 10 ms (a second after a failure: the disk will not free itself at once).
    auto pause = st.ok() ? std::chrono::milliseconds(10) : std::chrono::milliseconds(1000);
    spill_cv_.wait_for(lock, pause, [&] { return stopping_; });
  }
}

Status BulkStore::SpillDownIoLocked(uint64_t target) {
  std::vector<ObjectID> victims;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (usage_ <= target) return Status::OK();
    std::vector<std::pair<uint64_t, ObjectID>> candidates;
    for (const auto& [id, b] : blobs_) {
      if (SpillableLocked(b)) candidates.emplace_back(b.last_use, id);
    }
    std::sort(candidates.begin(), candidates.end());
    uint64_t usage = usage_;
    for (const auto& [tick, id] : candidates) {
      if (usage <= target) break;
      Blob& b = blobs_.at(id);
      b.place = Place::kSpilling;
      usage -= ChargedLocked(b);
      victims.push_back(id);
    }
  }
  return SpillIoLocked(victims);
}

Status BulkStore::SpillIoLocked(const std::vector<ObjectID>& ids) {
  Status first;
  size_t i = 0;
  while (i < ids.size()) {
    std::vector<SpillFiles::Source> batch;
    {
      // kSpilling blobs keep their memory and stay in the table: only we change them.
      std::lock_guard<std::mutex> lock(mu_);
      uint64_t bytes = 0;
      for (; i < ids.size() && (batch.empty() || bytes < SpillFiles::kFileBytes); ++i) {
        const Blob& b = blobs_.at(ids[i]);
        batch.push_back({ids[i], arena_->base() + b.offset, b.size});
        bytes += b.size;
      }
    }
    Result<std::vector<SpillFiles::Extent>> extents =
        first.ok() ? spill_->Write(batch) : Result<std::vector<SpillFiles::Extent>>(first);
    std::lock_guard<std::mutex> lock(mu_);
    if (first.ok() && !extents.ok()) {
      first = extents.status();
      stats_.spill_failures += 1;
    }
    for (size_t k = 0; k < batch.size(); ++k) {
      auto it = blobs_.find(batch[k].id);
      Blob& b = it->second;
      if (!extents.ok()) {
        b.place = Place::kMemory;  // nothing lost: it never left memory
        MaybeFreeLocked(it);
        continue;
      }
      const SpillFiles::Extent& e = (*extents)[k];
      if (b.deleted || b.refs > 0 || b.holds > 0 || b.pinned) {
        // Deleted, or taken by a reader, while it was being written: keep it.
        spill_->Drop(e);
        b.place = Place::kMemory;
        MaybeFreeLocked(it);
        continue;
      }
      usage_ -= ChargedLocked(b);
      arena_->Free(b.offset);
      b.place = Place::kDisk;
      extents_[it->first] = e;
      stats_.spilled_bytes += b.size;
      stats_.spilled_blobs += 1;
      stats_.spills += 1;
    }
  }
  return first;
}

Status BulkStore::LoadIoLocked(ObjectID id, bool pin, bool take_ref) {
  SpillFiles::Extent extent;
  uint8_t* dest = nullptr;
  for (int attempt = 0;; ++attempt) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = blobs_.find(id);
    if (it == blobs_.end() || it->second.deleted) {
      return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
    }
    Blob& b = it->second;
    if (b.place == Place::kMemory) {  // never spilled, or loaded meanwhile
      if (pin) b.pinned = true;
      if (take_ref) AddOne(b.refs);
      b.last_use = ++tick_;
      return Status::OK();
    }
    // On disk (kSpilling and kLoading only happen under io_mu_, which we hold).
    const uint64_t need = arena_->GoodSize(b.size) + kBlobBookkeepingBytes;
    if (need <= limit_ - std::min(usage_, limit_)) {
      VY_ASSIGN_OR_RETURN(uint64_t offset, arena_->Allocate(b.size));
      b.offset = offset;
      usage_ += ChargedLocked(b);
      b.place = Place::kLoading;
      extent = extents_.at(id);
      dest = arena_->base() + offset;
      break;
    }
    if (attempt > 0) {
      return Status::NotEnoughMemory(
          "cannot load blob ", ObjectIDToString(id), " of ", FormatBytes(b.size),
          " back from disk: ", FormatBytes(usage_), " of ", FormatBytes(limit_),
          " in use, and none of it can be spilled (clients use it, or it is pinned)");
    }
    lock.unlock();
    Status st = SpillDownIoLocked(need > limit_ ? 0 : limit_ - need);
    if (!st.ok()) {
      return Status::NotEnoughMemory("cannot load blob ", ObjectIDToString(id),
                                     " back from disk: no room in memory, and spilling "
                                     "others failed: ", st.message());
    }
  }
  Status read = spill_->Read(id, extent, dest);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);  // kLoading blobs stay in the table: only we change them
  Blob& b = it->second;
  if (!read.ok()) {
    usage_ -= ChargedLocked(b);
    arena_->Free(b.offset);
    b.place = Place::kDisk;  // still spilled: each get says what is wrong
    MaybeFreeLocked(it);
    return read;
  }
  spill_->Drop(extent);
  extents_.erase(id);
  stats_.spilled_bytes -= b.size;
  stats_.spilled_blobs -= 1;
  stats_.loads += 1;
  b.place = Place::kMemory;
  if (b.deleted) {
    MaybeFreeLocked(it);
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  if (pin) b.pinned = true;
  if (take_ref) AddOne(b.refs);
  b.last_use = ++tick_;
  WakeSpillerLocked();
  return Status::OK();
}

bool BulkStore::WouldSpill(uint64_t size) const {
  if (spill_ == nullptr || size == 0) return false;
  const uint64_t usable = arena_->GoodSize(size);
  const uint64_t need = usable == 0 ? UINT64_MAX : usable + kBlobBookkeepingBytes;
  std::lock_guard<std::mutex> lock(mu_);
  return need <= limit_ && need > limit_ - std::min(usage_, limit_);
}

bool BulkStore::AnySpilled(const std::vector<ObjectID>& ids) const {
  if (spill_ == nullptr) return false;
  std::lock_guard<std::mutex> lock(mu_);
  for (ObjectID id : ids) {
    auto it = blobs_.find(id);
    if (it != blobs_.end() && it->second.place != Place::kMemory) return true;
  }
  return false;
}

Status BulkStore::Evict(const std::vector<ObjectID>& ids) {
  if (spill_ == nullptr) {
    return Status::Invalid("cannot spill: spilling is off (start vineyardd with --spill_path)");
  }
  std::lock_guard<std::mutex> io(io_mu_);
  std::vector<ObjectID> victims;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::unordered_set<ObjectID> seen;
    for (ObjectID id : ids) {
      if (IsEmptyBlob(id) || !seen.insert(id).second) continue;
      auto it = blobs_.find(id);
      if (it == blobs_.end() || it->second.deleted) {
        return Status::ObjectNotExists("cannot spill blob ", ObjectIDToString(id),
                                       ": it does not exist");
      }
      const Blob& b = it->second;
      if (b.place == Place::kDisk) continue;
      if (!b.sealed) {
        return Status::ObjectNotSealed("cannot spill blob ", ObjectIDToString(id),
                                       ": it is not sealed");
      }
      if (b.refs > 0 || b.holds > 0) {
        return Status::Invalid("cannot spill blob ", ObjectIDToString(id),
                               ": a client is using it (it maps or references it)");
      }
      if (b.pinned) {
        return Status::Invalid("cannot spill blob ", ObjectIDToString(id),
                               ": it is pinned (unpin it first)");
      }
      victims.push_back(id);
    }
    for (ObjectID id : victims) blobs_.at(id).place = Place::kSpilling;
  }
  return SpillIoLocked(victims);
}

Status BulkStore::Load(const std::vector<ObjectID>& ids, bool pin) {
  std::lock_guard<std::mutex> io(io_mu_);
  for (ObjectID id : ids) {
    if (IsEmptyBlob(id)) continue;
    VY_RETURN_NOT_OK(LoadIoLocked(id, pin, /*take_ref=*/false));
  }
  return Status::OK();
}

void BulkStore::Unpin(const std::vector<ObjectID>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (ObjectID id : ids) {
    auto it = blobs_.find(id);
    if (it != blobs_.end()) it->second.pinned = false;
  }
  WakeSpillerLocked();
}

Result<bool> BulkStore::IsSpilled(ObjectID id) const {
  if (IsEmptyBlob(id)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  return it->second.place == Place::kDisk || it->second.place == Place::kLoading;
}

Result<bool> BulkStore::IsInUse(ObjectID id) const {
  if (IsEmptyBlob(id)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  return it->second.refs > 0 || it->second.holds > 0;
}

void BulkStore::Hold(ObjectID id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it != blobs_.end()) AddOne(it->second.holds);
}

void BulkStore::Unhold(ObjectID id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.holds <= 0) return;
  if (--it->second.holds == 0) WakeSpillerLocked();
}

SpillStatus BulkStore::spill_status() const {
  SpillStatus s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s = stats_;
  }
  s.enabled = spill_ != nullptr;
  if (spill_ != nullptr) {
    s.path = spill_->dir();
    s.disk_bytes = spill_->DiskBytes();
  }
  return s;
}

}  // namespace vineyard
