// The fast path of put and get for numpy arrays: one native call each.
//
// put_ndarray writes the layout tensor.py writes (vineyard::Tensor<T>, the
// reference's), so what it puts reads back everywhere; a small payload travels
// inside the put request (one round trip, allocation included), a larger one
// goes to a blob created first. get_fast fetches an object in one round trip
// and, for a C-ordered numeric tensor, makes the zero-copy read-only array
// here. Anything else (object/str arrays, Fortran order, non-contiguous
// arrays) returns None / no value and the Python builders and resolvers do it.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>

#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client/client.h"
#include "python/bindings.h"

namespace vineyard::py {

namespace {

struct DtypeInfo {
  bool fast = false;
  std::string type_name;  // vineyard::Tensor<T>
  std::string name;       // dtype.name
  std::string spec;       // dtype.str
};

// dtype objects of the built-in types are singletons: cache by identity, and
// hold a reference so that the key is never reused by another object.
const DtypeInfo& InfoOf(nb::handle dtype) {
  static auto& cache = *new std::unordered_map<PyObject*, DtypeInfo>();
  auto it = cache.find(dtype.ptr());
  if (it != cache.end()) return it->second;
  DtypeInfo info;
  std::string kind = nb::cast<std::string>(dtype.attr("kind"));
  bool plain = !nb::cast<bool>(dtype.attr("hasobject")) && dtype.attr("fields").is_none() &&
               dtype.attr("subdtype").is_none();
  // datetime64/timedelta64 export no buffer: tensor.py puts those.
  info.fast = plain && kind.size() == 1 && std::strchr("biufc", kind[0]) != nullptr;
  info.name = nb::cast<std::string>(dtype.attr("name"));
  info.spec = nb::cast<std::string>(dtype.attr("str"));
  static const std::unordered_map<std::string, std::string> kCpp = {
      {"int32", "int"},       {"uint32", "uint32"}, {"int64", "int64"},
      {"uint64", "uint64"},   {"float32", "float"}, {"float64", "double"}};
  auto cpp = kCpp.find(info.name);
  info.type_name = "vineyard::Tensor<" + (cpp == kCpp.end() ? info.name : cpp->second) + ">";
  dtype.inc_ref();
  return cache.emplace(dtype.ptr(), std::move(info)).first->second;
}

// json.dumps of a list of ints, as the reference writes shapes: "[2, 3]".
std::string ShapeText(const Py_ssize_t* shape, int ndim) {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

class BufferView {
 public:
  bool Get(nb::handle obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_C_CONTIGUOUS | PyBUF_ND) != 0) {
      PyErr_Clear();
      return false;
    }
    held_ = true;
    return true;
  }
  ~BufferView() {
    if (held_) PyBuffer_Release(&view_);
  }
  const Py_buffer& view() const { return view_; }

 private:
  Py_buffer view_{};
  bool held_ = false;
};

nb::object PutNdarray(Client& self, nb::handle array, bool persist,
                      const std::optional<std::string>& name) {
  nb::object dtype = array.attr("dtype");
  const DtypeInfo& info = InfoOf(dtype);
  if (!info.fast) return nb::none();
  BufferView buffer;
  if (!buffer.Get(array)) return nb::none();  // not C-contiguous: tensor.py copies it
  const Py_buffer& view = buffer.view();
  const uint64_t nbytes = static_cast<uint64_t>(view.len);

  ObjectMeta meta;
  meta.SetTypeName(info.type_name);
  json& tree = meta.MutableMetaData();
  tree["shape_"] = ShapeText(view.shape, view.ndim);
  tree["partition_index_"] = "[]";
  tree["order_"] = "\"C\"";
  tree["value_type_"] = info.name;
  tree["value_type_meta_"] = info.spec;
  meta.SetNBytes(nbytes);
  const std::string label = name.value_or("");

  ObjectID id;
  if (nbytes == 0) {
    meta.AddMember("buffer_", *Blob::MakeEmpty());
    id = Unwrap(NoGil([&] { return self.Put(meta, {}, persist, label); }));
  } else {
    // Small: in the put request itself; large: into a blob created first.
    meta.AddInlineBlob("buffer_", 0, nbytes);
    std::string_view bytes(static_cast<const char*>(view.buf), nbytes);
    id = Unwrap(NoGil([&] { return self.Put(meta, {}, persist, label, {bytes}); }));
  }
  return nb::cast(PyObjectID(id));
}

// The dtype of a value_type_meta_ string, or None when get_fast leaves it to
// tensor.py (object, str, bytes, void and structured types).
// The cached objects are never released: they live as long as the interpreter
// (releasing them from static destructors would run after it finalized).
nb::object FastDtype(const std::string& spec) {
  static auto& cache = *new std::unordered_map<std::string, nb::handle>();
  auto it = cache.find(spec);
  if (it != cache.end()) return nb::borrow(it->second);
  static nb::handle np_dtype = nb::object(nb::module_::import_("numpy").attr("dtype")).release();
  nb::object dtype;
  try {
    dtype = np_dtype(spec);
  } catch (nb::python_error&) {
    dtype = nb::none();
  }
  if (!dtype.is_none()) {
    std::string kind = nb::cast<std::string>(dtype.attr("kind"));
    bool plain = !nb::cast<bool>(dtype.attr("hasobject")) && dtype.attr("fields").is_none();
    if (!plain || kind.size() != 1 || std::strchr("biufcmM", kind[0]) == nullptr) {
      dtype = nb::none();
    }
  }
  if (cache.size() < 1024) cache.emplace(spec, nb::object(dtype).release());
  return dtype;
}

// (meta, array, blob) for a C-ordered numeric tensor; (meta, None, None) otherwise.
nb::object GetFast(Client& self, const PyObjectID& id) {
  ObjectMeta meta = Unwrap(NoGil([&] { return self.GetObject(id.value); }));
  const json& tree = meta.MetaData();
  nb::object value = nb::none();
  nb::object blob_py = nb::none();
  auto field = [&](const char* key) -> const std::string* {
    auto it = tree.find(key);
    return it != tree.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  const std::string* type_name = field(meta_key::kTypename);
  const std::string* spec = field("value_type_meta_");
  const std::string* shape_text = field("shape_");
  const std::string* order = field("order_");
  auto member = tree.find("buffer_");
  if (type_name != nullptr && type_name->rfind("vineyard::Tensor<", 0) == 0 && spec != nullptr &&
      shape_text != nullptr && (order == nullptr || *order == "\"C\"") && member != tree.end() &&
      member->is_object() && meta.IsLocal()) {
    nb::object dtype = FastDtype(*spec);
    json shape = json::parse(*shape_text, nullptr, false);
    auto blob_id = member->find(meta_key::kId);
    if (!dtype.is_none() && shape.is_array() && blob_id != member->end() && blob_id->is_string()) {
      int64_t count = 1;
      nb::list dims;
      bool ok = true;
      for (const auto& d : shape) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) {
          ok = false;
          break;
        }
        count *= d.get<int64_t>();
        dims.append(d.get<int64_t>());
      }
      auto bid = ObjectIDFromString(blob_id->get<std::string>());
      if (ok && count > 0 && bid.ok()) {
        auto blob = meta.GetBuffer(*bid);
        int64_t itemsize = nb::cast<int64_t>(dtype.attr("itemsize"));
        if (blob.ok() && static_cast<uint64_t>(count * itemsize) <= (*blob)->size()) {
          static nb::handle frombuffer = nb::object(nb::module_::import_("numpy").attr("frombuffer")).release();
          blob_py = nb::cast(*blob);
          value = frombuffer(blob_py, dtype, count).attr("reshape")(nb::tuple(dims));
        }
      }
    }
  }
  return nb::make_tuple(nb::cast(std::move(meta)), value, blob_py);
}

// The items of a 1-d, contiguous numpy object array (false for anything else).
class ObjectItems {
 public:
  bool Get(nb::handle array) {
    if (PyObject_GetBuffer(array.ptr(), &view_, PyBUF_RECORDS_RO) != 0) {
      PyErr_Clear();
      return false;
    }
    held_ = true;
    return view_.ndim == 1 && view_.format != nullptr && std::strcmp(view_.format, "O") == 0 &&
           view_.itemsize == static_cast<Py_ssize_t>(sizeof(PyObject*)) &&
           (view_.strides == nullptr || view_.strides[0] == view_.itemsize);
  }
  ~ObjectItems() {
    if (held_) PyBuffer_Release(&view_);
  }
  Py_ssize_t size() const { return view_.shape[0]; }
  PyObject* const* items() const { return static_cast<PyObject* const*>(view_.buf); }

 private:
  Py_buffer view_{};
  bool held_ = false;
};

// A 1-d object array of str/None as the buffers of an Arrow large_string array:
// (validity bytes or None, int64 offsets, UTF-8 data, null count); None when an
// element is neither str nor None (or is not valid UTF-8). One pass to size,
// one to copy, with the bytes each str object already holds.
nb::object EncodeStrArray(nb::handle array) {
  ObjectItems view;
  if (!view.Get(array)) return nb::none();
  const Py_ssize_t n = view.size();
  PyObject* const* items = view.items();
  Py_ssize_t total = 0, nulls = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* o = items[i];
    if (o == Py_None) {
      ++nulls;
      continue;
    }
    if (!PyUnicode_Check(o)) return nb::none();
    Py_ssize_t size = 0;
    if (PyUnicode_AsUTF8AndSize(o, &size) == nullptr) {
      PyErr_Clear();
      return nb::none();
    }
    total += size;
  }
  nb::object offsets = nb::steal(PyBytes_FromStringAndSize(nullptr, (n + 1) * 8));
  nb::object data = nb::steal(PyBytes_FromStringAndSize(nullptr, total));
  nb::object validity = nb::none();
  if (!offsets.is_valid() || !data.is_valid()) throw nb::python_error();
  uint8_t* bits = nullptr;
  if (nulls > 0) {
    validity = nb::steal(PyBytes_FromStringAndSize(nullptr, (n + 7) / 8));
    if (!validity.is_valid()) throw nb::python_error();
    bits = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(validity.ptr()));
    std::memset(bits, 0, (n + 7) / 8);
  }
  auto* off = reinterpret_cast<int64_t*>(PyBytes_AS_STRING(offsets.ptr()));
  char* out = PyBytes_AS_STRING(data.ptr());
  int64_t at = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    off[i] = at;
    PyObject* o = items[i];
    if (o == Py_None) continue;
    if (bits != nullptr) bits[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(o, &size);
    std::memcpy(out + at, utf8, size);
    at += size;
  }
  off[n] = at;
  return nb::make_tuple(validity, offsets, data, nulls);
}

// The UTF-8 bytes of a str without creating anything: compact ASCII strings
// hold them inline. False for any other object (the caller falls back).
inline bool AsciiBytes(PyObject* o, const char** data, Py_ssize_t* size) {
  if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_COMPACT_ASCII(o)) return false;
  *data = reinterpret_cast<const char*>(reinterpret_cast<PyASCIIObject*>(o) + 1);
  *size = PyUnicode_GET_LENGTH(o);
  return true;
}

// Writes items [begin, end) of a str/None array as Arrow large_string buffers
// starting at byte `at`; stops early (returns the index reached) at an item it
// may not read on this thread (not compact ASCII, unless `main`: the thread
// holding the GIL may ask for any str's UTF-8) or at bytes past `limit`.
struct EncodeRange {
  PyObject* const* items;
  int64_t* offsets;
  char* data;
  uint8_t* bits;  // null when the array has no None
  Py_ssize_t nulls = 0;
  int64_t at = 0;
  bool bad = false;  // not str/None, or more bytes than sized: the array changed

  Py_ssize_t Run(Py_ssize_t begin, Py_ssize_t end, int64_t limit, bool main) {
    for (Py_ssize_t i = begin; i < end; ++i) {
      offsets[i] = at;
      PyObject* o = items[i];
      if (o == Py_None) {
        ++nulls;
        if (bits == nullptr) {
          bad = true;
          return i;
        }
        continue;
      }
      const char* utf8 = nullptr;
      Py_ssize_t size = 0;
      if (!AsciiBytes(o, &utf8, &size)) {
        if (!main) return i;
        if (!PyUnicode_Check(o) || (utf8 = PyUnicode_AsUTF8AndSize(o, &size)) == nullptr) {
          PyErr_Clear();
          bad = true;
          return i;
        }
      }
      if (at + size > limit) {
        bad = true;
        return i;
      }
      std::memcpy(data + at, utf8, size);
      at += size;
      if (bits != nullptr) bits[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    }
    return end;
  }
};

// EncodeStrArray straight into new blobs of `client`: one pass to size, one
// request for the blobs, one pass (two threads for large arrays) to write the
// offsets, bytes and validity where they are to stay. (validity writer or
// None, offsets writer, data writer, null count), or None when an item is not
// a str/None, the array is small or empty, or it changed while the blobs were
// made (writers aborted).
nb::object EncodeStrArrayInto(nb::handle array, nb::handle client_handle) {
  Client* client = AsIpcClient(client_handle);
  if (client == nullptr) return nb::none();
  ObjectItems view;
  if (!view.Get(array)) return nb::none();
  const Py_ssize_t n = view.size();
  PyObject* const* items = view.items();
  // Sizes; `half` items (a multiple of 64: the validity bytes of the two
  // halves are apart) hold `half_bytes`.
  const Py_ssize_t half = n >= (Py_ssize_t{1} << 16) ? (n / 2) & ~Py_ssize_t{63} : n;
  int64_t total = 0, half_bytes = 0;
  Py_ssize_t nulls = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (i == half) half_bytes = total;
    PyObject* o = items[i];
    if (o == Py_None) {
      ++nulls;
      continue;
    }
    const char* utf8 = nullptr;
    Py_ssize_t size = 0;
    if (!AsciiBytes(o, &utf8, &size)) {
      if (!PyUnicode_Check(o) || PyUnicode_AsUTF8AndSize(o, &size) == nullptr) {
        PyErr_Clear();
        return nb::none();
      }
    }
    total += size;
  }
  if (half == n) half_bytes = total;
  if (total == 0 || n < 4096) return nb::none();  // the byte-run path is as good
  std::vector<size_t> sizes{static_cast<size_t>(n + 1) * 8, static_cast<size_t>(total)};
  if (nulls > 0) sizes.push_back(static_cast<size_t>(n + 7) / 8);
  auto writers = Unwrap(NoGil([&] { return client->CreateBlobs(sizes); }));
  // The GIL is held from here on: no Python code runs, so no item can change
  // under the helper thread (which reads only compact ASCII strs, never
  // creating anything).
  auto* offsets = reinterpret_cast<int64_t*>(writers[0]->data());
  char* data = reinterpret_cast<char*>(writers[1]->data());
  uint8_t* bits = nulls > 0 ? writers[2]->data() : nullptr;
  if (bits != nullptr) std::memset(bits, 0, sizes[2]);
  EncodeRange first{items, offsets, data, bits};
  EncodeRange second{items, offsets, data, bits};
  second.at = half_bytes;
  Py_ssize_t reached = half;
  if (half < n) {
    std::thread helper([&] { reached = second.Run(half, n, total, false); });
    first.Run(0, half, half_bytes, true);
    helper.join();
    if (!second.bad && reached < n) second.Run(reached, n, total, true);  // the rest, here
  } else {
    first.Run(0, n, total, true);
    second.at = first.at;
  }
  const bool ok = !first.bad && !second.bad && first.at == half_bytes && second.at == total &&
                  first.nulls + second.nulls == nulls;
  if (!ok) {
    for (auto& w : writers) (void)w->Abort();
    return nb::none();
  }
  offsets[n] = total;
  nb::object validity = nulls > 0 ? nb::cast(std::move(writers[2])) : nb::none();
  return nb::make_tuple(validity, nb::cast(std::move(writers[0])), nb::cast(std::move(writers[1])),
                        nulls);
}

}  // namespace

void BindFastPath(nb::module_& m, nb::class_<Client, ClientBase>& c) {
  m.def("encode_str_array", &EncodeStrArray, nb::arg("array"),
        "A 1-d numpy object array of str/None as the buffers of an Arrow large_string "
        "array: (validity bytes or None, int64 offsets, UTF-8 data, null count); None when "
        "an element is neither str nor None.");
  m.def("encode_str_array_into", &EncodeStrArrayInto, nb::arg("array"), nb::arg("client"),
        "encode_str_array() written straight into new blobs of an IPC client: (validity "
        "BlobBuilder or None, offsets BlobBuilder, data BlobBuilder, null count), unsealed; "
        "None when an element is neither str nor None, the array is small or all empty, "
        "or it changed meanwhile.");
  c.def("put_ndarray", &PutNdarray, nb::arg("array"), nb::arg("persist") = false,
        nb::arg("name").none() = nb::none(),
        "Puts a C-contiguous numeric numpy array as vineyard::Tensor<T> in one call (a small "
        "one in one round trip); None when the array needs the Python builder.")
      .def("get_fast", &GetFast, nb::arg("object_id"),
           "(meta, array, blob): the object's metadata in one round trip and, for a "
           "C-ordered numeric tensor, its zero-copy read-only array (else None).");
}

}  // namespace vineyard::py
