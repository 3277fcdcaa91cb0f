#include "client/blob.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "client/client_core.h"
#include "common/pages.h"
#include "common/protocol.h"

namespace vineyard {

Mapping::~Mapping() {
  if (base != nullptr && size > 0) munmap(base, size);
}

Blob::Blob(ObjectID id, size_t size, const uint8_t* data, std::shared_ptr<const void> holder,
           std::weak_ptr<ClientCore> owner)
    : id_(id), size_(size), data_(data), holder_(std::move(holder)), owner_(std::move(owner)) {}

Blob::~Blob() {
  if (IsEmptyBlob(id_)) return;
  if (auto owner = owner_.lock()) owner->QueueRelease(id_);
}

std::shared_ptr<Blob> Blob::MakeEmpty() {
  static const uint8_t kNothing[1] = {0};
  return std::make_shared<Blob>(kEmptyBlobID, 0, kNothing, nullptr, std::weak_ptr<ClientCore>());
}

namespace {
// Cache-line aligned, uninitialised: the bytes are about to be overwritten.
// Large buffers get their own mapping backed by huge pages where the kernel
// allows: filling them then costs one page fault per 2 MiB, not per 4 KiB.
Result<std::shared_ptr<uint8_t>> AllocateBytes(size_t size) {
  constexpr size_t kHuge = 2ULL << 20;
  if (size >= 2 * kHuge) {
    size_t mapped = (size + kHuge - 1) / kHuge * kHuge;
    void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      return Status::NotEnoughMemory("cannot allocate ", size, " bytes in this process");
    }
    (void)madvise(p, mapped, MADV_HUGEPAGE);
    return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p),
                                    [mapped](uint8_t* q) { munmap(q, mapped); });
  }
  constexpr size_t kAlign = 64;
  size_t rounded = std::max<size_t>(kAlign, (size + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(kAlign, rounded);
  if (p == nullptr) {
    return Status::NotEnoughMemory("cannot allocate ", size, " bytes in this process");
  }
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}
}  // namespace

RemoteBlob::RemoteBlob(ObjectID id, InstanceID instance, size_t size,
                       std::shared_ptr<uint8_t> buffer)
    : Blob(id, size, buffer.get(), buffer, std::weak_ptr<ClientCore>()), instance_id_(instance) {}

Result<std::shared_ptr<RemoteBlob>> RemoteBlob::Allocate(ObjectID id, InstanceID instance,
                                                         size_t size) {
  VY_ASSIGN_OR_RETURN(auto buffer, AllocateBytes(size));
  return std::make_shared<RemoteBlob>(id, instance, size, std::move(buffer));
}

RemoteBlobWriter::RemoteBlobWriter(size_t size, std::shared_ptr<uint8_t> buffer)
    : size_(size), buffer_(std::move(buffer)) {}

Result<std::unique_ptr<RemoteBlobWriter>> RemoteBlobWriter::Make(size_t size) {
  VY_ASSIGN_OR_RETURN(auto buffer, AllocateBytes(size));
  return std::make_unique<RemoteBlobWriter>(size, std::move(buffer));
}

std::unique_ptr<RemoteBlobWriter> RemoteBlobWriter::Wrap(const uint8_t* data, size_t size,
                                                        std::shared_ptr<const void> owner,
                                                        bool writable) {
  // aliasing: shares `owner`'s lifetime, points at `data`
  std::shared_ptr<uint8_t> bytes(std::const_pointer_cast<void>(owner),
                                 const_cast<uint8_t*>(data));
  auto writer = std::make_unique<RemoteBlobWriter>(size, std::move(bytes));
  writer->writable_ = writable;
  return writer;
}

Status RemoteBlobWriter::Copy(size_t offset, const void* src, size_t n, int concurrency) {
  if (aborted_) return Status::Invalid("the remote blob writer was aborted");
  if (!writable_) return Status::Invalid("the remote blob writer wraps read-only bytes");
  if (offset > size_ || n > size_ - offset) {
    return Status::Invalid("copy of ", n, " bytes at offset ", offset,
                           " exceeds the blob's ", size_, " bytes");
  }
  ParallelMemcpy(buffer_.get() + offset, src, n, concurrency);
  return Status::OK();
}

void RemoteBlobWriter::Abort() {
  aborted_ = true;
  buffer_.reset();
}

BlobWriter::BlobWriter(const Payload& payload, uint8_t* data, std::shared_ptr<Mapping> mapping,
                       std::shared_ptr<ClientCore> owner)
    : payload_(payload),
      id_(payload.object_id),
      size_(payload.data_size),
      data_(data),
      mapping_(std::move(mapping)),
      owner_(std::move(owner)) {}

BlobWriter::~BlobWriter() {
  if (IsEmptyBlob(id_) || aborted_ || stream_chunk_) return;
  if (sealed_) {
    owner_->QueueRelease(id_);  // the reference that sealing gave us
  } else if (owner_->connected()) {
    (void)Abort();  // never sealed: give the memory back now
  }
}

namespace {

// Copies with up to `threads` threads; with `populate`, each thread first maps
// its part of `dst` (shared memory) in one call, not one page fault per page.
void CopyInParts(void* dst, const void* src, size_t n, int threads, bool populate) {
  constexpr size_t kMinChunk = 4ULL << 20;  // below this, threads cost more than they give
  auto copy = [populate](void* to, const void* from, size_t len) {
    if (populate) PopulatePages(to, len, false);
    memcpy(to, from, len);
  };
  if (n < 2 * kMinChunk) {
    copy(dst, src, n);
    return;
  }
  if (threads <= 0) {
    // hardware_concurrency() reads /sys on every call: ask once.
    static const int kCores =
        static_cast<int>(std::min<unsigned>(std::max(1u, std::thread::hardware_concurrency()), 8));
    threads = kCores;
  }
  size_t useful = std::max<size_t>(1, n / kMinChunk);
  threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), useful));
  if (threads <= 1) {
    copy(dst, src, n);
    return;
  }
  size_t chunk = (n + threads - 1) / threads;
  chunk = (chunk + 4095) & ~size_t{4095};
  std::vector<std::thread> workers;
  for (int i = 1; i < threads; ++i) {
    size_t begin = chunk * i;
    if (begin >= n) break;
    size_t len = std::min(chunk, n - begin);
    workers.emplace_back([=] {
      copy(static_cast<char*>(dst) + begin, static_cast<const char*>(src) + begin, len);
    });
  }
  copy(dst, src, std::min(chunk, n));
  for (auto& w : workers) w.join();
}

// A copy into a blob this big maps its pages first: a fresh client's mapping
// would otherwise take one fault per page.
constexpr size_t kPopulateAtLeast = 1ULL << 20;

}  // namespace

void ParallelMemcpy(void* dst, const void* src, size_t n, int threads) {
  CopyInParts(dst, src, n, threads, false);
}

Status BlobWriter::Copy(size_t offset, const void* src, size_t n, int concurrency) {
  if (sealed_ || aborted_) return Status::ObjectSealed("blob ", ObjectIDToString(id_),
                                                       " is sealed or dropped: it is immutable");
  if (offset > size_ || n > size_ - offset) {
    return Status::Invalid("copy of ", n, " bytes at offset ", offset, " overflows blob ",
                           ObjectIDToString(id_), " of ", size_, " bytes");
  }
  if (n > 0) CopyInParts(data_ + offset, src, n, concurrency, n >= kPopulateAtLeast);
  return Status::OK();
}

Status BlobWriter::Shrink(size_t size) {
  if (sealed_ || aborted_) return Status::ObjectSealed("blob ", ObjectIDToString(id_),
                                                       " is sealed or dropped");
  VY_RETURN_NOT_OK(owner_->Request(WriteShrinkBufferRequest(id_, size)).status());
  size_ = size;
  payload_.data_size = size;
  return Status::OK();
}

Status BlobWriter::Abort() {
  if (sealed_) return Status::ObjectSealed("blob ", ObjectIDToString(id_),
                                           " is sealed: delete it instead");
  if (aborted_ || IsEmptyBlob(id_)) return Status::OK();
  aborted_ = true;
  return owner_->Request(WriteDropBufferRequest(id_)).status();
}

Result<std::shared_ptr<Blob>> BlobWriter::Seal() {
  if (sealed_ || aborted_) return Status::ObjectSealed("blob ", ObjectIDToString(id_),
                                                       " is already sealed or dropped");
  if (!IsEmptyBlob(id_)) VY_RETURN_NOT_OK(owner_->Request(WriteSealRequest(id_)).status());
  sealed_ = true;
  aborted_ = true;  // the reference now belongs to the returned Blob
  if (IsEmptyBlob(id_)) return Blob::MakeEmpty();
  payload_.data_size = size_;
  return owner_->MakeBlob(payload_);  // read-only from now on
}

Result<ObjectID> BlobWriter::Seal(Client& /*client*/) {
  VY_ASSIGN_OR_RETURN(auto blob, Seal());
  return blob->id();
}

}  // namespace vineyard
