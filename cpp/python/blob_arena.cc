#include "python/blob_arena.h"

#include <nanobind/stl/shared_ptr.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "client/client.h"
#include "common/pages.h"
#include "python/bindings.h"

namespace vineyard::py {

namespace {

std::mutex registry_mu;
std::unordered_map<const Client*, BlobArena*>& Registry() {
  static auto* arenas = new std::unordered_map<const Client*, BlobArena*>();
  return *arenas;
}

BlobArena* Self(void* arena) { return static_cast<BlobArena*>(arena); }

}  // namespace

BlobArena* BlobArena::Make(std::shared_ptr<Client> client, size_t max_bytes) {
  auto* arena = new BlobArena(std::move(client), max_bytes);
  std::lock_guard<std::mutex> lock(registry_mu);
  Registry()[arena->client_.get()] = arena;  // the newest arena of a client is the one asked
  return arena;
}

BlobArena* BlobArena::Acquire(const Client* client) {
  std::lock_guard<std::mutex> lock(registry_mu);
  auto it = Registry().find(client);
  if (it == Registry().end()) return nullptr;
  BlobArena* arena = it->second;
  // Not one whose last reference is going (it leaves the registry next).
  int64_t refs = arena->refs_.load(std::memory_order_relaxed);
  while (refs > 0) {
    if (arena->refs_.compare_exchange_weak(refs, refs + 1, std::memory_order_acq_rel)) {
      return arena;
    }
  }
  return nullptr;
}

BlobArena::BlobArena(std::shared_ptr<Client> client, size_t max_bytes)
    : client_(std::move(client)), max_bytes_(max_bytes) {
  api_.arena = this;
  api_.allocate = [](void* a, int64_t size) { return Self(a)->Allocate(size); };
  api_.reallocate = [](void* a, uint8_t* p, int64_t old_size, int64_t new_size) {
    return Self(a)->Reallocate(p, old_size, new_size);
  };
  api_.owns = [](void* a, const uint8_t* p) { return Self(a)->Owns(p) ? 1 : 0; };
  api_.free = [](void* a, uint8_t* p) { Self(a)->Free(p); };
  api_.retain = [](void* a) { Self(a)->Retain(); };
  api_.release = [](void* a) { Self(a)->Release(); };
}

BlobArena::~BlobArena() {
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    auto it = Registry().find(client_.get());
    if (it != Registry().end() && it->second == this) Registry().erase(it);
  }
  live_.clear();  // unsealed blobs are dropped, sealed ones released
}

void BlobArena::Release() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

uint8_t* BlobArena::Allocate(int64_t size) {
  if (size <= 0 || !client_->Connected()) return nullptr;
  const auto n = static_cast<size_t>(size);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (max_bytes_ != 0 && live_bytes_ + reserved_ + n > max_bytes_) return nullptr;
    reserved_ += n;
  }
  auto writer = client_->CreateBlob(n);
  // A decoder writes it all, at once: map its pages in one call.
  if (writer.ok()) PopulatePages((*writer)->data(), n, false);
  std::lock_guard<std::mutex> lock(mu_);
  reserved_ -= n;
  if (!writer.ok()) return nullptr;
  uint8_t* p = (*writer)->data();
  live_bytes_ += (*writer)->size();
  live_[p] = Entry{std::move(*writer), false};
  return p;
}

uint8_t* BlobArena::Reallocate(uint8_t* p, int64_t old_size, int64_t new_size) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return nullptr;
    if (new_size > 0 && static_cast<size_t>(new_size) <= it->second.writer->size()) return p;
  }
  uint8_t* q = Allocate(new_size);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, static_cast<size_t>(std::min(old_size, new_size)));
  Free(p);
  return q;
}

bool BlobArena::Owns(const uint8_t* p) const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.count(p) != 0;
}

void BlobArena::Free(uint8_t* p) {
  std::unique_ptr<BlobWriter> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;
    gone = std::move(it->second.writer);
    live_bytes_ -= gone->size();
    live_.erase(it);
  }
  // Outside the lock: an unsealed blob is dropped with a request, a sealed
  // one's reference queued for release.
}

BlobWriter* BlobArena::Claim(const void* p, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(static_cast<const uint8_t*>(p));
  if (it == live_.end()) return nullptr;
  Entry& e = it->second;
  if (e.claimed || !e.writer->writable() || n > e.writer->size()) return nullptr;
  e.claimed = true;
  return e.writer.get();
}

void BlobArena::Unclaim(const std::vector<BlobWriter*>& writers) {
  std::lock_guard<std::mutex> lock(mu_);
  for (BlobWriter* w : writers) {
    auto it = live_.find(w->data());
    if (it != live_.end() && it->second.writer.get() == w && !w->sealed()) {
      it->second.claimed = false;
    }
  }
}

size_t BlobArena::live() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

size_t BlobArena::live_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_bytes_;
}

// --- bindings -------------------------------------------------------------------

namespace {

// The Python BlobArena: one reference of the arena.
struct ArenaHandle {
  BlobArena* arena = nullptr;
  explicit ArenaHandle(BlobArena* a) : arena(a) {}
  ArenaHandle(const ArenaHandle&) = delete;
  ArenaHandle& operator=(const ArenaHandle&) = delete;
  ~ArenaHandle() {
    if (arena != nullptr) arena->Release();
  }
};

}  // namespace

void BindBlobArena(nb::module_& m, nb::class_<Client, ClientBase>& c) {
  nb::class_<ArenaHandle>(
      m, "BlobArena",
      "Shared memory for another allocator: each allocation an unsealed blob of this "
      "client. A put of a pyarrow Table or RecordBatch whose buffers start such blobs "
      "seals them into the object instead of copying (vineyard._arrow_pool makes an Arrow "
      "memory pool of it).")
      .def("capsule",
           [](ArenaHandle& h) {
             h.arena->Retain();  // the capsule's
             return nb::capsule(h.arena->api(), kBlobArenaCapsule, [](void* p) noexcept {
               const auto* api = static_cast<const BlobArenaApi*>(p);
               api->release(api->arena);
             });
           },
           "The arena's functions for a module that does not link the client (a PyCapsule "
           "named 'vineyard.blob_arena'; it keeps the arena alive).")
      .def_prop_ro("live", [](ArenaHandle& h) { return h.arena->live(); },
                   "Allocations not yet freed (sealed into objects or not).")
      .def_prop_ro("live_bytes", [](ArenaHandle& h) { return h.arena->live_bytes(); },
                   "Their bytes.");
  c.def(
      "blob_arena",
      [](std::shared_ptr<Client> self, size_t max_bytes) {
        return new ArenaHandle(BlobArena::Make(self, max_bytes));
      },
      nb::arg("max_bytes") = 0, nb::rv_policy::take_ownership,
      "A BlobArena of this session (a put_arrow of this session claims its blobs); "
      "allocations past `max_bytes` held at once (0: no bound) are refused.");
}

}  // namespace vineyard::py
