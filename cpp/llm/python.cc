// vineyard.llm._llm: the native layer of vineyard.llm (the KV cache), a
// module of its own beside vineyard._C. Thin: parsing the nested
// kv_cache_list, then llm::KVCache with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <utility>

#include "llm/kv_cache.h"

namespace nb = nanobind;
using vineyard::Status;
using vineyard::llm::KVCache;
using vineyard::llm::KVCacheOptions;
using vineyard::llm::KVTensor;
using vineyard::llm::LayerKV;
using vineyard::llm::Token;

namespace {

// Raises the vineyard exception of `st`'s code (vineyard._C knows the classes).
// Bad input (Invalid) is a ValueError, as Python code expects.
[[noreturn]] void Raise(const Status& st) {
  if (st.IsInvalid()) throw nb::value_error(st.message().c_str());
  nb::object to_exc = nb::module_::import_("vineyard._C").attr("status_to_exception");
  nb::object exc = to_exc(static_cast<int>(st.code()), st.message());
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw nb::python_error();
}

template <typename T>
T Unwrap(vineyard::Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).value();
}

int GetBuffer(PyObject* self, Py_buffer* view, int flags) {
  KVTensor* t = nb::inst_ptr<KVTensor>(nb::handle(self));
  bool readonly = t->owner != nullptr;  // points into the cache: immutable
  if (readonly && (flags & PyBUF_WRITABLE)) {
    PyErr_SetString(PyExc_BufferError, "a KVTensor from the cache is read-only");
    view->obj = nullptr;
    return -1;
  }
  return PyBuffer_FillInfo(view, self, reinterpret_cast<void*>(t->data),
                           static_cast<Py_ssize_t>(t->length), readonly ? 1 : 0, flags);
}

void ReleaseBuffer(PyObject*, Py_buffer*) {}

PyType_Slot kKVTensorSlots[] = {
    {Py_bf_getbuffer, reinterpret_cast<void*>(GetBuffer)},
    {Py_bf_releasebuffer, reinterpret_cast<void*>(ReleaseBuffer)},
    {0, nullptr}};

// kv_cache_list[i][j] = (K, V) -> one LayerKV per token; `objects` keeps the
// Python KVTensors in the same order (K, V of each layer). For a query
// (`objects` given), a KVTensor still pointing into the cache from an earlier
// query is asked for again without a copy: its memory is read-only.
// `*shared` (with `objects`): some KVTensor object appears more than once.
//
// Lists and tuples (what callers build) are read through CPython's own
// accessors, 2 x layers x tokens objects per call; other sequences take the
// generic path.
class Parser {
 public:
  Parser(std::vector<KVTensor*>* objects, bool* shared) : objects_(objects), shared_(shared) {
    static uint64_t parses = 0;  // under the GIL
    mark_ = ++parses;
  }

  std::vector<LayerKV> Parse(nb::handle list) {
    if (!PySequence_Check(list.ptr())) {
      throw nb::type_error("kv_cache_list must be a list (one entry per token)");
    }
    const size_t n = static_cast<size_t>(nb::len(list));
    std::vector<LayerKV> kv(n);
    const bool fast = PyList_Check(list.ptr());
    for (size_t i = 0; i < n; ++i) {
      nb::object layers = fast ? nb::borrow(PyList_GET_ITEM(list.ptr(), i)) : list[i];
      if (PyList_Check(layers.ptr())) {
        const size_t nl = static_cast<size_t>(PyList_GET_SIZE(layers.ptr()));
        kv[i].resize(nl);
        for (size_t j = 0; j < nl; ++j) Pair(nb::handle(PyList_GET_ITEM(layers.ptr(), j)), &kv[i][j]);
      } else {
        const size_t nl = static_cast<size_t>(nb::len(layers));
        kv[i].resize(nl);
        for (size_t j = 0; j < nl; ++j) Pair(layers[j], &kv[i][j]);
      }
    }
    return kv;
  }

 private:
  [[noreturn]] static void NotAPair() {
    throw nb::type_error("each kv_cache_list[i][j] must be a (K, V) pair of KVTensor");
  }

  KVTensor* Tensor(nb::handle h) {
    KVTensor* t = nullptr;
    if (!nb::try_cast<KVTensor*>(h, t) || t == nullptr) NotAPair();
    return t;
  }

  void Pair(nb::handle pair, std::pair<KVTensor, KVTensor>* out) {
    KVTensor* k;
    KVTensor* v;
    if (PyTuple_Check(pair.ptr()) && PyTuple_GET_SIZE(pair.ptr()) == 2) {
      k = Tensor(PyTuple_GET_ITEM(pair.ptr(), 0));
      v = Tensor(PyTuple_GET_ITEM(pair.ptr(), 1));
    } else {
      if (!PySequence_Check(pair.ptr()) || nb::len(pair) != 2) {
        throw nb::value_error("each kv_cache_list[i][j] must be a (K, V) pair of KVTensor");
      }
      k = Tensor(pair[0]);
      v = Tensor(pair[1]);
    }
    *out = {KVTensor{k->data, k->length, nullptr}, KVTensor{v->data, v->length, nullptr}};
    if (objects_ == nullptr) return;
    if (k->owner) out->first = KVTensor{};
    if (v->owner) out->second = KVTensor{};
    for (KVTensor* t : {k, v}) {
      if (t->seen == mark_) *shared_ = true;
      t->seen = mark_;
      objects_->push_back(t);
    }
  }

  std::vector<KVTensor*>* objects_;
  bool* shared_;
  uint64_t mark_;
};

std::vector<Token> Tokens(nb::handle seq) {
  std::vector<Token> out;
  if (seq.is_none()) return out;
  return nb::cast<std::vector<Token>>(seq);
}

class PyKVCache {
 public:
  explicit PyKVCache(const KVCacheOptions& o) {
    nb::gil_scoped_release release;
    auto made = KVCache::Make(o);
    if (!made.ok()) {
      nb::gil_scoped_acquire acquire;
      Raise(made.status());
    }
    cache_ = std::shared_ptr<KVCache>(std::move(made).value());
  }

  size_t Update(nb::handle prefix, nb::handle tokens, nb::handle kv_list) {
    std::vector<Token> p = Tokens(prefix), t = Tokens(tokens);
    std::vector<LayerKV> kv = Parser(nullptr, nullptr).Parse(kv_list);
    std::shared_ptr<KVCache> cache = Open();  // alive even if closed meanwhile
    vineyard::Result<size_t> r = size_t{0};
    {
      nb::gil_scoped_release release;
      r = cache->Update(p, t, kv);
    }
    return Unwrap(std::move(r));
  }

  size_t Query(nb::handle prefix, nb::handle tokens, nb::handle kv_list) {
    std::vector<Token> p = Tokens(prefix), t = Tokens(tokens);
    std::vector<KVTensor*> objects;
    bool shared = false;
    std::vector<LayerKV> kv = Parser(&objects, &shared).Parse(kv_list);
    std::shared_ptr<KVCache> cache = Open();
    vineyard::Result<size_t> r = size_t{0};
    {
      nb::gil_scoped_release release;
      r = cache->Query(p, t, kv);
    }
    size_t matched = Unwrap(std::move(r));
    // Tensors handed back without a copy: the caller's KVTensor objects take
    // the address (no object made per tensor). Where one object stands in
    // more than one place (e.g. `[(k, v)] * layers`), a list of layers gets a
    // new (K, V) per place instead, as vineyard does.
    size_t at = 0;
    for (size_t i = 0; i < kv.size() && i < matched; ++i) {
      nb::object layers = shared ? nb::borrow(kv_list)[i] : nb::object();
      bool is_list = shared && PyList_Check(layers.ptr());
      for (size_t j = 0; j < kv[i].size(); ++j, at += 2) {
        KVTensor& k = kv[i][j].first;
        KVTensor& v = kv[i][j].second;
        if (!k.owner && !v.owner) continue;  // copied into caller buffers
        if (is_list) {
          nb::object nk = nb::cast(KVTensor(k));
          nb::object nv = nb::cast(KVTensor(v));
          PyList_SetItem(layers.ptr(), static_cast<Py_ssize_t>(j),
                         nb::make_tuple(nk, nv).release().ptr());
        } else {
          *objects[at] = std::move(k);
          *objects[at + 1] = std::move(v);
        }
      }
    }
    return matched;
  }

  /// Calls in flight keep the cache; it closes when the last one returns.
  void Close() {
    std::shared_ptr<KVCache> gone = std::move(cache_);
    nb::gil_scoped_release release;
    gone.reset();
  }

  KVCache& cache() { return *Open(); }

 private:
  std::shared_ptr<KVCache> Open() {
    if (!cache_) Raise(Status::Invalid("the KV cache is closed"));
    return cache_;
  }

  std::shared_ptr<KVCache> cache_;
};

}  // namespace

NB_MODULE(_llm, m) {
  m.doc() = "Native layer of vineyard.llm: the KV cache over shared memory and files.";
  nb::set_leak_warnings(false);

  nb::class_<KVTensor>(m, "KVTensor", nb::type_slots(kKVTensorSlots),
                       "A K or V tensor of one token at one layer: an address and a size "
                       "(a buffer: numpy.frombuffer(t, dtype) reads it).")
      .def(
          "__init__",
          [](KVTensor* self, uintptr_t data, size_t length) {
            new (self) KVTensor{data, length, nullptr};
          },
          nb::arg("data"), nb::arg("length"))
      .def_prop_rw(
          "data", [](const KVTensor& t) { return t.data; },
          [](KVTensor& t, uintptr_t d) {
            t.data = d;
            t.owner.reset();
          })
      .def_prop_rw(
          "length", [](const KVTensor& t) { return t.length; },
          [](KVTensor& t, size_t n) { t.length = n; })
      .def_prop_ro("address", [](const KVTensor& t) { return t.data; })
      .def_prop_ro("nbytes", [](const KVTensor& t) { return t.length; })
      .def_prop_ro(
          "cached", [](const KVTensor& t) { return t.owner != nullptr; },
          "True when it points into the cache (read-only, kept alive by this object).")
      .def("__repr__", [](const KVTensor& t) {
        return "KVTensor(data=" + std::to_string(t.data) + ", length=" +
               std::to_string(t.length) + ")";
      });

  nb::class_<PyKVCache>(m, "KVCacheCore")
      .def(
          "__init__",
          [](PyKVCache* self, uint64_t tensor_nbytes, uint64_t cache_capacity, uint32_t layer,
             bool shared_memory, std::string socket, uint32_t block_size,
             std::string llm_cache_object_name, bool filesystem, uint32_t chunk_size,
             std::string root, uint32_t hash_chunk_size, int64_t gc_interval, int64_t ttl) {
            KVCacheOptions o;
            o.tensor_nbytes = tensor_nbytes;
            o.cache_capacity = cache_capacity;
            o.layer = layer;
            o.shared_memory = shared_memory;
            o.socket = std::move(socket);
            o.block_size = block_size;
            o.llm_cache_object_name = std::move(llm_cache_object_name);
            o.filesystem = filesystem;
            o.chunk_size = chunk_size;
            o.root = std::move(root);
            o.hash_chunk_size = hash_chunk_size;
            o.gc_interval = gc_interval;
            o.ttl = ttl;
            new (self) PyKVCache(o);
          },
          nb::kw_only(), nb::arg("tensor_nbytes"), nb::arg("cache_capacity"), nb::arg("layer"),
          nb::arg("shared_memory") = false, nb::arg("socket") = "", nb::arg("block_size") = 16,
          nb::arg("llm_cache_object_name") = "llm_cache_object", nb::arg("filesystem") = false,
          nb::arg("chunk_size") = 16, nb::arg("root") = "", nb::arg("hash_chunk_size") = 2,
          nb::arg("gc_interval") = 1800, nb::arg("ttl") = 1800)
      .def("update", &PyKVCache::Update, nb::arg("prefix").none(), nb::arg("tokens"),
           nb::arg("kv_cache_list"))
      .def("query", &PyKVCache::Query, nb::arg("prefix").none(), nb::arg("tokens"),
           nb::arg("kv_cache_list"))
      .def("close", &PyKVCache::Close)
      .def_prop_ro("index_name", [](PyKVCache& c) { return c.cache().index_name(); })
      .def_prop_ro("block_size", [](PyKVCache& c) { return c.cache().shape().block_size; })
      .def(
          "collect_garbage",
          [](PyKVCache& c, int64_t min_orphan_age) {
            KVCache& cache = c.cache();
            nb::gil_scoped_release release;
            return cache.CollectGarbage(min_orphan_age);
          },
          nb::arg("min_orphan_age") = 60);
}
