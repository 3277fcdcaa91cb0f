#include "server/bulk_store.h"

#include "common/socket_io.h"

namespace vineyard {

BulkStore::BulkStore(std::unique_ptr<Arena> arena, uint64_t limit, IdGenerator* ids,
                     uint64_t unsealed_quota)
    : arena_(std::move(arena)), limit_(limit), ids_(ids), unsealed_quota_(unsealed_quota) {}

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
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t usable = arena_->GoodSize(size);  // 0: larger than the whole arena
  const uint64_t need = usable == 0 ? UINT64_MAX : usable + kBlobBookkeepingBytes;
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
  b.charged = arena_->UsableSize(offset) + kBlobBookkeepingBytes;
  b.owner = owner;
  usage_ += b.charged;
  Holdings& h = owners_[owner];
  h.blobs.insert(id);
  h.unsealed_bytes += b.charged;
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
    if (!b.sealed) h->second.unsealed_bytes -= b.charged;
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
  if (h != owners_.end()) h->second.unsealed_bytes -= b.charged;  // still its, unadopted
  b.sealed = true;
  b.refs += 1;
  return Status::OK();
}

Result<Payload> BulkStore::Get(ObjectID id, bool unsafe, Owner caller) {
  if (IsEmptyBlob(id)) return PayloadOf(kEmptyBlobID, Blob{});
  std::lock_guard<std::mutex> lock(mu_);
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
  it->second.refs += 1;
  return PayloadOf(id, it->second);
}

Status BulkStore::AddRef(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  it->second.refs += 1;
  return Status::OK();
}

void BulkStore::Release(ObjectID id) {
  if (IsEmptyBlob(id)) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.refs <= 0) return;
  if (--it->second.refs == 0 && it->second.deleted) FreeLocked(it);
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
  const uint64_t charged = arena_->Shrink(b.offset, std::max<uint64_t>(size, 1)) +
                           kBlobBookkeepingBytes;
  usage_ = usage_ - b.charged + charged;
  Holdings& h = owners_[caller];
  h.unsealed_bytes = h.unsealed_bytes - b.charged + charged;
  b.charged = charged;
  b.size = size;
  return Status::OK();
}

void BulkStore::DeleteLocked(Iter it) {
  DisownLocked(it->first, it->second);
  if (it->second.refs > 0) {
    it->second.deleted = true;  // freed by the last Release
  } else {
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
  DisownLocked(it->first, it->second);
  arena_->Free(it->second.offset);
  usage_ -= it->second.charged;
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

}  // namespace vineyard
