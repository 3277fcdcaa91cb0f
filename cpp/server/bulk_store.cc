#include "server/bulk_store.h"

#include "common/socket_io.h"

namespace vineyard {

BulkStore::BulkStore(std::unique_ptr<Arena> arena, uint64_t limit, IdGenerator* ids)
    : arena_(std::move(arena)), limit_(limit), ids_(ids) {}

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

Result<Payload> BulkStore::Create(uint64_t size) {
  if (size == 0) return PayloadOf(kEmptyBlobID, Blob{});
  std::lock_guard<std::mutex> lock(mu_);
  if (size > limit_ - std::min(usage_, limit_)) {
    return Status::NotEnoughMemory("cannot allocate a blob of ", FormatBytes(size), ": ",
                                   FormatBytes(usage_), " of ", FormatBytes(limit_),
                                   " in use (start vineyardd with a larger --size)");
  }
  VY_ASSIGN_OR_RETURN(uint64_t offset, arena_->Allocate(size));
  ObjectID id = ids_->NextBlobID();
  Blob& b = blobs_[id];
  b.offset = offset;
  b.size = size;
  b.charged = size;
  usage_ += size;
  return PayloadOf(id, b);
}

Status BulkStore::Seal(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("cannot seal blob ", ObjectIDToString(id),
                                   ": it does not exist");
  }
  if (it->second.sealed) {
    return Status::ObjectSealed("blob ", ObjectIDToString(id), " is already sealed");
  }
  it->second.sealed = true;
  it->second.refs += 1;
  return Status::OK();
}

Result<Payload> BulkStore::Get(ObjectID id, bool unsafe) {
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

Status BulkStore::Shrink(ObjectID id, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  Blob& b = it->second;
  if (b.sealed) return Status::ObjectSealed("cannot shrink sealed blob ", ObjectIDToString(id));
  if (size > b.size) {
    return Status::Invalid("cannot shrink blob ", ObjectIDToString(id), " of ", b.size,
                           " bytes to a larger size ", size);
  }
  // Keep at least one byte allocated (the blob keeps its place); its data size may be 0.
  const uint64_t keep = std::max<uint64_t>(size, 1);
  arena_->Shrink(b.offset, keep);
  usage_ -= b.charged - keep;
  b.charged = keep;
  b.size = size;
  return Status::OK();
}

Status BulkStore::Abort(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  if (it->second.sealed) {
    return Status::ObjectSealed("blob ", ObjectIDToString(id),
                                " is sealed: delete it instead of dropping it");
  }
  if (it->second.refs > 0) {
    it->second.deleted = true;  // an unsafe reader still maps it
  } else {
    FreeLocked(it);
  }
  return Status::OK();
}

Status BulkStore::Delete(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blobs_.find(id);
  if (it == blobs_.end() || it->second.deleted) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id), " does not exist");
  }
  if (it->second.refs > 0) {
    it->second.deleted = true;  // freed by the last Release
  } else {
    FreeLocked(it);
  }
  return Status::OK();
}

void BulkStore::FreeLocked(std::unordered_map<ObjectID, Blob>::iterator it) {
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

uint64_t BulkStore::usage() const {
  std::lock_guard<std::mutex> lock(mu_);
  return usage_;
}

}  // namespace vineyard
