// pyarrow Tables and RecordBatches put and got natively, through Arrow's C
// data interface (https://arrow.apache.org/docs/format/CDataInterface.html):
// no Python per chunk or per column.
//
// put_arrow walks the table's batches (an ArrowArrayStream from
// __arrow_c_stream__) and makes the tree arrow.py's builders make — Table,
// RecordBatch, one SchemaProxy shared by all batches, NumericArray<T>,
// BooleanArray, BaseBinaryArray<arrow::Large{String,Binary}Array> — with the
// buffers as byte runs of one whole-tree put (Client::Put). arrow_stream turns
// a got Table or RecordBatch back into an ArrowArrayStream whose buffers are
// the mapped blobs (zero-copy), for pyarrow to import. Anything else (nested,
// dictionary or extension columns, a user's builder or resolver) is left to
// arrow.py: both return None before doing anything.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "client/blob.h"
#include "client/client.h"
#include "python/bindings.h"
#include "python/blob_arena.h"

// The C data interface's ABI structures, as its specification defines them.
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
extern "C" {
struct ArrowSchema {
  const char* format;
  const char* name;
  const char* metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema** children;
  struct ArrowSchema* dictionary;
  void (*release)(struct ArrowSchema*);
  void* private_data;
};

struct ArrowArray {
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void** buffers;
  struct ArrowArray** children;
  struct ArrowArray* dictionary;
  void (*release)(struct ArrowArray*);
  void* private_data;
};
}
#endif

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE
extern "C" {
struct ArrowArrayStream {
  int (*get_schema)(struct ArrowArrayStream*, struct ArrowSchema* out);
  int (*get_next)(struct ArrowArrayStream*, struct ArrowArray* out);
  const char* (*get_last_error)(struct ArrowArrayStream*);
  void (*release)(struct ArrowArrayStream*);
  void* private_data;
};
}
#endif

namespace vineyard::py {

namespace {

// --- column kinds -------------------------------------------------------------

enum class Kind { kFixed, kBool, kString, kBinary };

struct ColumnType {
  Kind kind = Kind::kFixed;
  int width = 0;           // bytes per value (kFixed)
  bool large = true;       // 64-bit offsets (kString / kBinary)
  std::string type_name;   // the vineyard typename
  std::string format;      // the format it reads back as
};

// The column type of an Arrow format string, or false (left to arrow.py).
bool TypeOfFormat(std::string_view format, ColumnType* t) {
  struct Fixed {
    const char* format;
    int width;
    const char* name;
  };
  static const Fixed kFixed[] = {{"c", 1, "int8"},      {"C", 1, "uint8"},  {"s", 2, "int16"},
                                 {"S", 2, "uint16"},    {"i", 4, "int32"},  {"I", 4, "uint32"},
                                 {"l", 8, "int64"},     {"L", 8, "uint64"}, {"e", 2, "halffloat"},
                                 {"f", 4, "float"},     {"g", 8, "double"}};
  for (const auto& f : kFixed) {
    if (format == f.format) {
      *t = ColumnType{Kind::kFixed, f.width, true,
                      std::string("vineyard::NumericArray<") + f.name + ">", f.format};
      return true;
    }
  }
  if (format == "b") {
    *t = ColumnType{Kind::kBool, 0, true, "vineyard::BooleanArray", "b"};
  } else if (format == "u" || format == "U") {
    *t = ColumnType{Kind::kString, 0, format == "U",
                    "vineyard::BaseBinaryArray<arrow::LargeStringArray>", "U"};
  } else if (format == "z" || format == "Z") {
    *t = ColumnType{Kind::kBinary, 0, format == "Z",
                    "vineyard::BaseBinaryArray<arrow::LargeBinaryArray>", "Z"};
  } else {
    return false;
  }
  return true;
}

// The column type of a vineyard typename, or false.
bool TypeOfName(const std::string& name, ColumnType* t) {
  static const char* kFormats[] = {"c", "C", "s", "S", "i", "I", "l", "L", "e", "f", "g",
                                   "b", "U", "Z"};
  for (const char* f : kFormats) {
    if (TypeOfFormat(f, t) && t->type_name == name) return true;
  }
  // the reference's other spellings of the same arrays
  if (name == "vineyard::LargeStringArray") return TypeOfFormat("U", t);
  if (name == "vineyard::LargeBinaryArray") return TypeOfFormat("Z", t);
  return false;
}

int64_t BitBytes(int64_t bits) { return (bits + 7) / 8; }

int64_t CountNulls(const uint8_t* bits, int64_t offset, int64_t length) {
  int64_t valid = 0;
  for (int64_t i = offset; i < offset + length; ++i) valid += (bits[i / 8] >> (i % 8)) & 1;
  return length - valid;
}

// --- put ------------------------------------------------------------------------

struct StreamHolder {
  ArrowArrayStream stream{};
  ~StreamHolder() {
    if (stream.release != nullptr) stream.release(&stream);
  }
};

struct SchemaHolder {
  ArrowSchema schema{};
  ~SchemaHolder() {
    if (schema.release != nullptr) schema.release(&schema);
  }
};

struct ArrayHolder {
  ArrowArray array{};
  ArrayHolder() = default;
  ArrayHolder(ArrayHolder&& o) noexcept : array(o.array) { o.array.release = nullptr; }
  ArrayHolder(const ArrayHolder&) = delete;
  ~ArrayHolder() {
    if (array.release != nullptr) array.release(&array);
  }
};

// The byte runs of one put and the tree nodes that name them: a run that
// starts a blob of the session's BlobArena is that blob (sealed by the put),
// any other is copied.
class TreeMaker {
 public:
  explicit TreeMaker(BlobArena* arena) : arena_(arena) {
    ObjectMeta scratch;
    object_ = scratch.MetaData();
    scratch.AddMember("blob", *Blob::MakeEmpty());
    empty_blob_ = scratch.MetaData()["blob"];
  }
  // Claims of a put that did not happen go back (sealed blobs are the object's).
  ~TreeMaker() {
    if (arena_ != nullptr) arena_->Unclaim(claimed_);
  }
  TreeMaker(const TreeMaker&) = delete;
  TreeMaker& operator=(const TreeMaker&) = delete;

  json Object(const std::string& type_name) const {
    json node = object_;
    node[meta_key::kTypename] = type_name;
    return node;
  }

  // A blob member of `bytes` (the empty blob when there are none).
  json Run(const void* data, int64_t size) {
    if (data == nullptr || size <= 0) return empty_blob_;
    if (arena_ != nullptr) {
      if (BlobWriter* w = arena_->Claim(data, static_cast<size_t>(size))) {
        claimed_.push_back(w);
        ObjectMeta scratch;
        scratch.AddMember("blob", *w);
        return scratch.MetaData()["blob"];
      }
    }
    const size_t index = runs_.size();
    runs_.emplace_back(static_cast<const char*>(data), static_cast<size_t>(size));
    return json{{meta_key::kTypename, kBlobTypename},
                {kInlineBlobKey, index},
                {meta_key::kLength, size},
                {meta_key::kNBytes, size}};
  }

  // Widened int32 offsets kept for the put.
  const int64_t* Widen(const int32_t* offsets, int64_t count) {
    auto& v = widened_.emplace_back(offsets, offsets + count);
    return v.data();
  }

  const std::vector<std::string_view>& runs() const { return runs_; }
  const std::vector<BlobWriter*>& claimed() const { return claimed_; }

 private:
  BlobArena* arena_;
  std::vector<BlobWriter*> claimed_;
  json object_;
  json empty_blob_;
  std::vector<std::string_view> runs_;
  std::deque<std::vector<int64_t>> widened_;
};

// One column of a batch as arrow.py's builders write it; false when it cannot
// be read (the stream broke a rule of the interface).
bool MakeColumn(TreeMaker* maker, const ColumnType& t, const ArrowArray& a, json* out,
                uint64_t* nbytes) {
  const int64_t end = a.offset + a.length;
  const int64_t want_buffers = t.kind == Kind::kString || t.kind == Kind::kBinary ? 3 : 2;
  if (a.n_buffers != want_buffers || a.n_children != 0 || a.offset < 0 || a.length < 0) {
    return false;
  }
  const auto* validity = static_cast<const uint8_t*>(a.buffers[0]);
  int64_t null_count = a.null_count;
  if (validity == nullptr) {
    null_count = 0;
  } else if (null_count < 0) {
    null_count = CountNulls(validity, a.offset, a.length);
  }
  json node = maker->Object(t.type_name);
  node["length_"] = a.length;
  node["null_count_"] = null_count;
  node["offset_"] = a.offset;
  uint64_t bytes = 0;
  const int64_t validity_bytes = validity == nullptr ? 0 : BitBytes(end);
  node["null_bitmap_"] = maker->Run(validity, validity_bytes);
  bytes += validity_bytes;
  if (t.kind == Kind::kFixed || t.kind == Kind::kBool) {
    const int64_t size = t.kind == Kind::kBool ? BitBytes(end) : end * t.width;
    node["buffer_"] = maker->Run(a.buffers[1], size);
    bytes += size;
  } else {
    const int64_t* offsets = nullptr;
    if (a.buffers[1] != nullptr) {
      offsets = t.large ? static_cast<const int64_t*>(a.buffers[1])
                        : maker->Widen(static_cast<const int32_t*>(a.buffers[1]), end + 1);
    } else if (a.length != 0) {
      return false;
    }
    const int64_t data_bytes = offsets == nullptr ? 0 : offsets[end];
    if (data_bytes < 0) return false;
    node["buffer_offsets_"] = maker->Run(offsets, offsets == nullptr ? 0 : (end + 1) * 8);
    node["buffer_data_"] = maker->Run(a.buffers[2], data_bytes);
    bytes += (offsets == nullptr ? 0 : (end + 1) * 8) + data_bytes;
  }
  node[meta_key::kNBytes] = bytes;
  *nbytes += bytes;
  *out = std::move(node);
  return true;
}

// (id, [ids of the blobs and members made with it]) of the put Table (or
// RecordBatch, `as_batch`), or None when a column's type is not one this path
// writes (nothing is made then).
nb::object PutArrow(Client& self, nb::handle stream_capsule, const std::string& schema_binary,
                    uint64_t schema_nbytes, bool as_batch, bool persist,
                    const std::optional<std::string>& name, const std::string& fields_text) {
  json fields = json::parse(fields_text, nullptr, /*allow_exceptions=*/false);
  if (!fields.is_object()) throw nb::value_error("fields must be the JSON text of an object");
  auto* source = static_cast<ArrowArrayStream*>(
      PyCapsule_GetPointer(stream_capsule.ptr(), "arrow_array_stream"));
  if (source == nullptr) throw nb::python_error();
  StreamHolder holder;
  holder.stream = *source;  // moved out: released here, not by the capsule
  source->release = nullptr;
  ArrowArrayStream& stream = holder.stream;
  if (stream.release == nullptr) throw nb::value_error("the Arrow stream was already consumed");
  auto fail = [&](const char* what) {
    const char* why = stream.get_last_error != nullptr ? stream.get_last_error(&stream) : nullptr;
    return Status::IOError("reading the table's Arrow stream: ", what,
                           why != nullptr ? std::string(": ") + why : std::string());
  };
  SchemaHolder schema;
  if (stream.get_schema(&stream, &schema.schema) != 0) Check(fail("no schema"));
  std::vector<ColumnType> types(static_cast<size_t>(schema.schema.n_children));
  for (size_t i = 0; i < types.size(); ++i) {
    const ArrowSchema* field = schema.schema.children[i];
    if (field->dictionary != nullptr || field->n_children != 0 ||
        !TypeOfFormat(field->format, &types[i])) {
      return nb::none();
    }
  }
  std::vector<ArrayHolder> batches;
  {
    nb::gil_scoped_release release;  // pyarrow's reader may need other threads
    while (true) {
      ArrayHolder batch;
      if (stream.get_next(&stream, &batch.array) != 0) Check(fail("a batch"));
      if (batch.array.release == nullptr) break;  // the end
      batches.push_back(std::move(batch));
    }
  }
  if (as_batch && batches.size() != 1) return nb::none();

  // A reference of the session's arena, if it has one, for the put.
  std::unique_ptr<BlobArena, void (*)(BlobArena*)> arena(
      BlobArena::Acquire(&self), [](BlobArena* a) {
        if (a != nullptr) a->Release();
      });
  TreeMaker maker(arena.get());
  json schema_node = maker.Object("vineyard::SchemaProxy");
  schema_node["schema_binary_"] = schema_binary;
  schema_node[meta_key::kNBytes] = schema_nbytes;
  static uint64_t tokens = 0;
  const std::string token = "arrow-native-schema-" + std::to_string(++tokens);
  std::vector<json> parts;
  parts.reserve(batches.size());
  uint64_t total_bytes = 0;
  int64_t total_rows = 0;
  for (const auto& holder_ : batches) {
    const ArrowArray& b = holder_.array;
    if (b.n_children != static_cast<int64_t>(types.size()) || b.offset != 0 ||
        (b.n_buffers > 0 && b.buffers[0] != nullptr && b.null_count != 0)) {
      return nb::none();  // a sliced or nullable batch: arrow.py reads it through pyarrow
    }
    json node = maker.Object("vineyard::RecordBatch");
    node["row_num_"] = b.length;
    node["column_num_"] = types.size();
    node["__columns_-size"] = types.size();
    node["schema_"] = json{{kShareKey, token}};
    uint64_t bytes = 0;
    for (size_t j = 0; j < types.size(); ++j) {
      const ArrowArray* column = b.children[j];
      if (column->length != b.length) Check(Status::Invalid("a column shorter than its batch"));
      json member;
      if (!MakeColumn(&maker, types[j], *column, &member, &bytes)) {
        Check(Status::Invalid("column ", j, " of a batch breaks the Arrow C data interface"));
      }
      node["__columns_-" + std::to_string(j)] = std::move(member);
    }
    node[meta_key::kNBytes] = bytes;
    total_bytes += bytes;
    total_rows += b.length;
    parts.push_back(std::move(node));
  }
  json root;
  schema_node[kShareKey] = token;
  if (as_batch) {
    root = std::move(parts[0]);
    schema_node.erase(kShareKey);
    root["schema_"] = std::move(schema_node);
  } else {
    root = maker.Object("vineyard::Table");
    root["num_rows_"] = total_rows;
    root["num_columns_"] = types.size();
    root["batch_num_"] = parts.size();
    root["partitions_-size"] = parts.size();
    root["schema_"] = std::move(schema_node);
    for (size_t i = 0; i < parts.size(); ++i) {
      root["partitions_-" + std::to_string(i)] = std::move(parts[i]);
    }
    root[meta_key::kNBytes] = total_bytes;
  }
  for (auto& [key, value] : fields.items()) root[key] = std::move(value);
  ObjectMeta meta = ObjectMeta::FromJSON(std::move(root));
  std::vector<ObjectID> made;
  const std::string label = name.value_or("");
  ObjectID id = Unwrap(
      NoGil([&] { return self.Put(meta, maker.claimed(), persist, label, maker.runs(), &made); }));
  nb::list members;
  for (ObjectID m : made) members.append(PyObjectID(m));
  return nb::make_tuple(PyObjectID(id), members);
}

// --- get ------------------------------------------------------------------------

// One column as the stream hands it out: buffers point into mapped blobs.
struct ColumnView {
  int64_t length = 0, null_count = 0, offset = 0;
  int n_buffers = 2;
  const void* buffers[3] = {nullptr, nullptr, nullptr};
};

struct BatchView {
  int64_t length = 0;
  std::vector<ColumnView> columns;
};

// What an exported column owns (each column on its own, as the interface
// lets a consumer move a child out and release its parent).
struct ExportedColumn {
  std::shared_ptr<const void> keep;  // the mappings
  const void* buffers[3] = {nullptr, nullptr, nullptr};
};

// What an exported batch owns: its columns' structures.
struct ExportedBatch {
  std::vector<ArrowArray*> children;
  const void* buffers[1] = {nullptr};
};

void ReleaseColumn(ArrowArray* array) {
  if (array == nullptr || array->release == nullptr) return;
  delete static_cast<ExportedColumn*>(array->private_data);
  array->release = nullptr;
}

void ReleaseBatch(ArrowArray* array) {
  if (array == nullptr || array->release == nullptr) return;
  auto* exported = static_cast<ExportedBatch*>(array->private_data);
  for (ArrowArray* child : exported->children) {
    if (child->release != nullptr) child->release(child);
    delete child;
  }
  delete exported;
  array->release = nullptr;
}

struct StreamState {
  ArrowSchema schema{};  // handed out once
  std::shared_ptr<const void> keep;  // the blobs: their bytes stay mapped
  std::vector<BatchView> batches;
  size_t next = 0;
  std::string error;

  ~StreamState() {
    if (schema.release != nullptr) schema.release(&schema);
  }
};

int StreamGetSchema(ArrowArrayStream* stream, ArrowSchema* out) {
  auto* s = static_cast<StreamState*>(stream->private_data);
  if (s->schema.release == nullptr) {
    s->error = "the schema of this stream was already taken";
    return EINVAL;
  }
  *out = s->schema;
  s->schema.release = nullptr;
  return 0;
}

int StreamGetNext(ArrowArrayStream* stream, ArrowArray* out) {
  auto* s = static_cast<StreamState*>(stream->private_data);
  if (s->next >= s->batches.size()) {
    std::memset(out, 0, sizeof(*out));  // release == NULL: the end
    return 0;
  }
  const BatchView& view = s->batches[s->next++];
  auto* e = new ExportedBatch();
  const size_t n = view.columns.size();
  e->children.reserve(n);
  for (size_t j = 0; j < n; ++j) {
    const ColumnView& c = view.columns[j];
    auto* owned = new ExportedColumn();
    owned->keep = s->keep;
    auto* a = new ArrowArray();
    std::memset(a, 0, sizeof(*a));
    a->length = c.length;
    a->null_count = c.null_count;
    a->offset = c.offset;
    a->n_buffers = c.n_buffers;
    for (int k = 0; k < c.n_buffers; ++k) owned->buffers[k] = c.buffers[k];
    a->buffers = owned->buffers;
    a->release = ReleaseColumn;
    a->private_data = owned;
    e->children.push_back(a);
  }
  std::memset(out, 0, sizeof(*out));
  out->length = view.length;
  out->n_buffers = 1;
  out->buffers = e->buffers;
  out->n_children = static_cast<int64_t>(n);
  out->children = e->children.data();
  out->release = ReleaseBatch;
  out->private_data = e;
  return 0;
}

const char* StreamLastError(ArrowArrayStream* stream) {
  auto* s = static_cast<StreamState*>(stream->private_data);
  return s->error.empty() ? nullptr : s->error.c_str();
}

void StreamRelease(ArrowArrayStream* stream) {
  if (stream->release == nullptr) return;
  delete static_cast<StreamState*>(stream->private_data);
  stream->release = nullptr;
}

void CapsuleRelease(PyObject* capsule) {
  auto* stream =
      static_cast<ArrowArrayStream*>(PyCapsule_GetPointer(capsule, "arrow_array_stream"));
  if (stream == nullptr) {
    PyErr_Clear();
    return;
  }
  if (stream->release != nullptr) stream->release(stream);
  delete stream;
}

bool IntField(const json& node, const char* key, int64_t* out) {
  auto it = node.find(key);
  if (it == node.end()) return false;
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return true;
  }
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0') return false;
    *out = v;
    return true;
  }
  return false;
}

class BlobLookup {
 public:
  explicit BlobLookup(const ObjectMeta& meta) : meta_(meta) {}

  // The mapped bytes of blob member `key` of `node` (null, 0 for the empty
  // blob); false when it is missing or not mapped here.
  bool Get(const json& node, const char* key, const uint8_t** data, int64_t* size) const {
    auto it = node.find(key);
    if (it == node.end() || !it->is_object()) return false;
    auto id_text = it->find(meta_key::kId);
    if (id_text == it->end() || !id_text->is_string()) return false;
    auto id = ObjectIDFromString(id_text->get_ref<const std::string&>());
    if (!id.ok()) return false;
    if (IsEmptyBlob(*id)) {
      *data = nullptr;
      *size = 0;
      return true;
    }
    auto blob = meta_.GetBuffer(*id);
    if (!blob.ok()) return false;
    *data = (*blob)->data();
    *size = static_cast<int64_t>((*blob)->size());
    if (used_.empty() || used_.back() != *blob) used_.push_back(*blob);
    return true;
  }

  // The blobs read so far (they keep their bytes mapped).
  std::shared_ptr<const void> Keep() const {
    return std::make_shared<std::vector<std::shared_ptr<Blob>>>(used_);
  }

 private:
  const ObjectMeta& meta_;
  mutable std::vector<std::shared_ptr<Blob>> used_;
};

// Zero bytes for the buffers of empty arrays (pyarrow wants non-null ones).
const uint8_t* Zeros() {
  alignas(64) static const uint8_t kZeros[512] = {};
  return kZeros;
}

std::string NameOf(const json& node) {
  auto tn = node.find(meta_key::kTypename);
  auto id = node.find(meta_key::kId);
  return (tn != node.end() && tn->is_string() ? tn->get<std::string>() : std::string("object")) +
         " " + (id != node.end() && id->is_string() ? id->get<std::string>() : std::string());
}

Status TooSmall(const json& node, const char* member, int64_t size, int64_t need) {
  return Status::Invalid(NameOf(node), ": its ", member, " blob holds ", size,
                         " bytes, but its length_ and offset_ need ", need);
}

// One column's buffers: true when read, false when it is not a column this
// path reads (arrow.py's resolvers do), an error when its blobs are too small
// for what its fields say (so that nothing reads past them).
Result<bool> ReadColumn(const json& node, const std::string& want_format, const BlobLookup& blobs,
                        ColumnView* c) {
  auto tn = node.find(meta_key::kTypename);
  ColumnType t;
  if (tn == node.end() || !tn->is_string() || !TypeOfName(tn->get_ref<const std::string&>(), &t) ||
      t.format != want_format) {
    return false;
  }
  if (!IntField(node, "length_", &c->length) || !IntField(node, "null_count_", &c->null_count) ||
      !IntField(node, "offset_", &c->offset)) {
    return false;
  }
  if (c->length < 0 || c->offset < 0 || c->null_count < 0 || c->null_count > c->length ||
      c->length > (int64_t{1} << 48) || c->offset > (int64_t{1} << 48)) {
    return Status::Invalid(NameOf(node), ": length_ ", c->length, ", offset_ ", c->offset,
                           " and null_count_ ", c->null_count, " do not make an array");
  }
  const int64_t end = c->offset + c->length;
  const uint8_t* data = nullptr;
  int64_t size = 0;
  if (!blobs.Get(node, "null_bitmap_", &data, &size)) return false;
  if (data != nullptr && size < BitBytes(end)) {
    return TooSmall(node, "null_bitmap_", size, BitBytes(end));
  }
  if (data == nullptr && c->null_count != 0) {
    return Status::Invalid(NameOf(node), ": null_count_ ", c->null_count,
                           " without a null_bitmap_");
  }
  c->buffers[0] = data;
  if (t.kind == Kind::kFixed || t.kind == Kind::kBool) {
    c->n_buffers = 2;
    if (!blobs.Get(node, "buffer_", &data, &size)) return false;
    const int64_t need = t.kind == Kind::kBool ? BitBytes(end) : end * t.width;
    if (data == nullptr && need <= 512) {
      data = Zeros();
    } else if (data == nullptr || size < need) {
      return TooSmall(node, "buffer_", size, need);
    }
    c->buffers[1] = data;
    return true;
  }
  c->n_buffers = 3;
  const uint8_t* offsets = nullptr;
  int64_t offsets_size = 0;
  if (!blobs.Get(node, "buffer_offsets_", &offsets, &offsets_size)) return false;
  if (offsets == nullptr && c->length == 0 && (end + 1) * 8 <= 512) {
    offsets = Zeros();  // an empty array written without offsets
    offsets_size = 512;
  }
  if (offsets == nullptr || offsets_size < (end + 1) * 8) {
    return TooSmall(node, "buffer_offsets_", offsets_size, (end + 1) * 8);
  }
  const auto* o = reinterpret_cast<const int64_t*>(offsets);
  if (!blobs.Get(node, "buffer_data_", &data, &size)) return false;
  if (o[c->offset] < 0 || o[end] < o[c->offset] || o[end] > size) {
    return Status::Invalid(NameOf(node), ": its offsets run from ", o[c->offset], " to ",
                           o[end], ", outside the ", size, " bytes of its buffer_data_ blob");
  }
  c->buffers[1] = offsets;
  c->buffers[2] = data != nullptr ? data : Zeros();
  return true;
}

Result<bool> ReadBatch(const json& node, const std::vector<std::string>& formats,
                       const BlobLookup& blobs, BatchView* out) {
  auto tn = node.find(meta_key::kTypename);
  int64_t columns = 0;
  if (tn == node.end() || *tn != "vineyard::RecordBatch" ||
      !IntField(node, "__columns_-size", &columns) ||
      columns != static_cast<int64_t>(formats.size()) || !IntField(node, "row_num_", &out->length)) {
    return false;
  }
  out->columns.resize(formats.size());
  for (size_t j = 0; j < formats.size(); ++j) {
    auto it = node.find("__columns_-" + std::to_string(j));
    if (it == node.end() || !it->is_object()) return false;
    VY_ASSIGN_OR_RETURN(bool read, ReadColumn(*it, formats[j], blobs, &out->columns[j]));
    if (!read) return false;
    if (out->columns[j].length != out->length) {
      return Status::Invalid(NameOf(node), ": column ", j, " has ", out->columns[j].length,
                             " rows, the batch ", out->length);
    }
  }
  return true;
}

// A capsule of an ArrowArrayStream over a got Table or RecordBatch, with
// `schema` (pyarrow's, from the SchemaProxy), or None when a column is not one
// this path reads (arrow.py's resolvers then do).
nb::object ArrowStream(const ObjectMeta& meta, nb::handle schema_capsule) {
  auto* source =
      static_cast<ArrowSchema*>(PyCapsule_GetPointer(schema_capsule.ptr(), "arrow_schema"));
  if (source == nullptr) throw nb::python_error();
  std::vector<std::string> formats;
  for (int64_t i = 0; i < source->n_children; ++i) {
    const ArrowSchema* field = source->children[i];
    ColumnType t;
    if (field->dictionary != nullptr || field->n_children != 0 ||
        !TypeOfFormat(field->format, &t) || t.format != field->format) {
      return nb::none();  // e.g. a schema of string (not large_string) columns
    }
    formats.emplace_back(field->format);
  }
  const json& root = meta.MetaData();
  auto tn = root.find(meta_key::kTypename);
  if (tn == root.end() || !tn->is_string()) return nb::none();
  BlobLookup blobs(meta);
  auto state = std::make_unique<StreamState>();
  if (*tn == "vineyard::RecordBatch") {
    state->batches.resize(1);
    if (!Unwrap(ReadBatch(root, formats, blobs, &state->batches[0]))) return nb::none();
  } else if (*tn == "vineyard::Table") {
    int64_t count = 0;
    if (!IntField(root, "batch_num_", &count) || count < 0 ||
        count > static_cast<int64_t>(root.size())) {  // each batch is a key of the root
      return nb::none();
    }
    state->batches.resize(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      auto it = root.find("partitions_-" + std::to_string(i));
      if (it == root.end() || !it->is_object() ||
          !Unwrap(ReadBatch(*it, formats, blobs, &state->batches[static_cast<size_t>(i)]))) {
        return nb::none();
      }
    }
  } else {
    return nb::none();
  }
  state->keep = blobs.Keep();  // the blobs, not the metadata tree
  state->schema = *source;  // moved: the capsule no longer releases it
  source->release = nullptr;
  auto* stream = new ArrowArrayStream();
  stream->get_schema = StreamGetSchema;
  stream->get_next = StreamGetNext;
  stream->get_last_error = StreamLastError;
  stream->release = StreamRelease;
  stream->private_data = state.release();
  PyObject* capsule = PyCapsule_New(stream, "arrow_array_stream", CapsuleRelease);
  if (capsule == nullptr) {
    StreamRelease(stream);
    delete stream;
    throw nb::python_error();
  }
  return nb::steal(capsule);
}

}  // namespace

void BindArrowPath(nb::module_& m, nb::class_<Client, ClientBase>& c) {
  c.def("put_arrow", &PutArrow, nb::arg("stream"), nb::arg("schema_binary"),
        nb::arg("schema_nbytes"), nb::arg("as_batch") = false, nb::arg("persist") = false,
        nb::arg("name").none() = nb::none(), nb::arg("fields") = "{}",
        "Puts the batches of an Arrow C stream capsule (Table.__arrow_c_stream__()) as a "
        "vineyard::Table (or, `as_batch`, its one RecordBatch) in one whole-tree put: (id, "
        "[ids of the blobs and members made with it]), with `fields` (JSON text of an "
        "object) added to its root; "
        "None, with nothing made, when a column's type is not a numeric, bool, string or "
        "binary one.");
  m.def("arrow_stream", &ArrowStream, nb::arg("meta"), nb::arg("schema"),
        "An Arrow C stream capsule over the batches of a got vineyard::Table or "
        "vineyard::RecordBatch (zero-copy), with `schema` (an 'arrow_schema' capsule, "
        "taken over); None when a column is not one it reads.");
}

}  // namespace vineyard::py
