// vineyard._arrow_pool: an Arrow memory pool whose large allocations are blobs
// of a vineyard session (a BlobArena of vineyard._C), so that what pyarrow's
// file readers decode lands in vineyardd's memory and a put of it copies
// nothing. Built against pyarrow's own libarrow (its headers and library);
// the arena is reached through the functions in its capsule, so this module
// does not link the client.
//
//   arena = client.native.blob_arena()
//   pool = vineyard._arrow_pool.MemoryPool(arena.capsule(), min_size=1 << 20)
//   table = pyarrow.csv.read_csv(path, memory_pool=pool.pool)
//   client.put(table)          # the big buffers are sealed, not copied
//
// Smaller allocations, and any the server has no memory for, come from
// Arrow's default pool. The pool lives until the MemoryPool object and every
// buffer allocated from it are gone.
#include <arrow/memory_pool.h>
#include <arrow/status.h>
#include <nanobind/nanobind.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "python/blob_arena_api.h"

namespace nb = nanobind;

namespace vineyard::py {

namespace {

constexpr int64_t kBlobAlignment = 64;  // vineyardd's blobs start at 64-byte boundaries

class ShmPool final : public arrow::MemoryPool {
 public:
  ShmPool(const BlobArenaApi* api, int64_t min_size)
      : api_(api), min_size_(std::max<int64_t>(1, min_size)),
        default_(arrow::default_memory_pool()) {}

  // The owner's reference (the Python object) goes; the pool goes with the
  // last buffer allocated from it.
  void Drop() { Unref(); }

  arrow::Status Allocate(int64_t size, int64_t alignment, uint8_t** out) override {
    if (Mine(size, alignment)) {
      if (uint8_t* p = api_->allocate(api_->arena, size)) {
        *out = p;
        Counted(size);
        shm_bytes_.fetch_add(size, std::memory_order_relaxed);
        return arrow::Status::OK();
      }
    }
    ARROW_RETURN_NOT_OK(default_->Allocate(size, alignment, out));
    Counted(size);
    return arrow::Status::OK();
  }

  arrow::Status Reallocate(int64_t old_size, int64_t new_size, int64_t alignment,
                           uint8_t** ptr) override {
    const int64_t kept = std::min(old_size, new_size);
    if (api_->owns(api_->arena, *ptr)) {
      uint8_t* q = api_->reallocate(api_->arena, *ptr, old_size, new_size);
      if (q == nullptr) {  // no room in shared memory: move it out
        ARROW_RETURN_NOT_OK(default_->Allocate(new_size, alignment, &q));
        std::memcpy(q, *ptr, static_cast<size_t>(kept));
        api_->free(api_->arena, *ptr);
        shm_bytes_.fetch_sub(old_size, std::memory_order_relaxed);
      } else {
        shm_bytes_.fetch_add(new_size - old_size, std::memory_order_relaxed);
      }
      *ptr = q;
    } else if (uint8_t* q = Mine(new_size, alignment) ? api_->allocate(api_->arena, new_size)
                                                       : nullptr) {
      std::memcpy(q, *ptr, static_cast<size_t>(kept));
      default_->Free(*ptr, old_size, alignment);
      shm_bytes_.fetch_add(new_size, std::memory_order_relaxed);
      *ptr = q;
    } else {
      ARROW_RETURN_NOT_OK(default_->Reallocate(old_size, new_size, alignment, ptr));
    }
    bytes_.fetch_add(new_size - old_size, std::memory_order_relaxed);
    if (new_size > old_size) total_.fetch_add(new_size - old_size, std::memory_order_relaxed);
    return arrow::Status::OK();
  }

  void Free(uint8_t* buffer, int64_t size, int64_t alignment) override {
    if (api_->owns(api_->arena, buffer)) {
      api_->free(api_->arena, buffer);
      shm_bytes_.fetch_sub(size, std::memory_order_relaxed);
    } else {
      default_->Free(buffer, size, alignment);
    }
    bytes_.fetch_sub(size, std::memory_order_relaxed);
    Unref();
  }

  int64_t bytes_allocated() const override { return bytes_.load(std::memory_order_relaxed); }
  int64_t max_memory() const override { return -1; }
  int64_t total_bytes_allocated() const override {
    return total_.load(std::memory_order_relaxed);
  }
  int64_t num_allocations() const override { return count_.load(std::memory_order_relaxed); }
  std::string backend_name() const override { return "vineyard"; }

  int64_t shm_bytes() const { return shm_bytes_.load(std::memory_order_relaxed); }

 private:
  ~ShmPool() override { api_->release(api_->arena); }

  bool Mine(int64_t size, int64_t alignment) const {
    return size >= min_size_ && alignment <= kBlobAlignment;
  }

  void Counted(int64_t size) {
    refs_.fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(size, std::memory_order_relaxed);
    total_.fetch_add(size, std::memory_order_relaxed);
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  const BlobArenaApi* api_;
  const int64_t min_size_;
  arrow::MemoryPool* default_;
  std::atomic<int64_t> refs_{1};  // the owner's, and one per live allocation
  std::atomic<int64_t> bytes_{0}, total_{0}, count_{0}, shm_bytes_{0};
};

// pyarrow's own constructor of a pyarrow.MemoryPool around a C++ pool.
nb::object Box(arrow::MemoryPool* pool) {
  nb::object capi = nb::module_::import_("pyarrow.lib").attr("__pyx_capi__");
  nb::object boxer = capi["box_memory_pool"];
  using BoxFn = PyObject* (*)(arrow::MemoryPool*);
  auto fn = reinterpret_cast<BoxFn>(
      PyCapsule_GetPointer(boxer.ptr(), PyCapsule_GetName(boxer.ptr())));
  if (fn == nullptr) throw nb::python_error();
  PyObject* boxed = fn(pool);
  if (boxed == nullptr) throw nb::python_error();
  return nb::steal(boxed);
}

// The Python MemoryPool: owns the pool (until its last buffer) and the capsule.
struct PoolHandle {
  ShmPool* pool = nullptr;
  nb::object capsule;  // keeps the arena's functions (and the arena) alive
  nb::object boxed;
  PoolHandle() = default;
  PoolHandle(const PoolHandle&) = delete;
  PoolHandle& operator=(const PoolHandle&) = delete;
  ~PoolHandle() {
    boxed.reset();
    if (pool != nullptr) pool->Drop();
  }
};

}  // namespace

}  // namespace vineyard::py

NB_MODULE(_arrow_pool, m) {
  using vineyard::py::BlobArenaApi;
  using vineyard::py::PoolHandle;
  using vineyard::py::ShmPool;
  m.doc() = "An Arrow memory pool of vineyard blobs (large allocations in shared memory).";
  nb::class_<PoolHandle>(m, "MemoryPool",
                         "MemoryPool(capsule, min_size=1 MiB): allocations of at least "
                         "min_size bytes are blobs of the BlobArena whose capsule this is; "
                         "`pool` is the pyarrow.MemoryPool to pass to pyarrow's readers "
                         "(keep this object while they run).")
      .def("__init__",
           [](PoolHandle* self, nb::object capsule, int64_t min_size) {
             auto* api = static_cast<const BlobArenaApi*>(
                 PyCapsule_GetPointer(capsule.ptr(), vineyard::py::kBlobArenaCapsule));
             if (api == nullptr) throw nb::python_error();
             api->retain(api->arena);  // the pool's own reference, released by its end
             auto* pool = new ShmPool(api, min_size);
             nb::object boxed;
             try {
               boxed = vineyard::py::Box(pool);
             } catch (...) {
               pool->Drop();
               throw;
             }
             new (self) PoolHandle();
             self->pool = pool;
             self->capsule = std::move(capsule);
             self->boxed = std::move(boxed);
           },
           nb::arg("capsule"), nb::arg("min_size") = int64_t{1} << 20)
      .def_prop_ro("pool", [](PoolHandle& h) { return h.boxed; })
      .def_prop_ro("shm_bytes", [](PoolHandle& h) { return h.pool->shm_bytes(); },
                   "Bytes allocated from shared memory and not yet freed.")
      .def_prop_ro("bytes_allocated", [](PoolHandle& h) { return h.pool->bytes_allocated(); });
}
