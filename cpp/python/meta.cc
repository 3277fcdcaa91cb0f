// ObjectMeta: the metadata tree of an object, dict-like.
//
//   meta = ObjectMeta(); meta.typename = "my::Bytes"; meta["n"] = 3
//   meta.add_member("buffer_", builder)
//   meta["n"]        -> 3 (fields come back as str/int/float/bool)
//   meta["buffer_"]  -> ObjectMeta of the member (a copy: edits do not reach the parent)
//   iter(meta)       -> the keys of the tree (as a dict); meta.items() -> (key, value)
//
// Values follow JSON: a list or tuple is stored as its JSON text (as vineyard
// does), a dict as the text of a JSON object (read back as a dict).
#include <nanobind/make_iterator.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>

#include "client/blob.h"
#include "client/object_meta.h"
#include "python/bindings.h"

namespace vineyard::py {

nb::object JsonToPy(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return nb::none();
    case json::value_t::boolean:
      return nb::bool_(j.get<bool>());
    case json::value_t::number_unsigned:
      return nb::int_(j.get<uint64_t>());
    case json::value_t::number_integer:
      return nb::int_(j.get<int64_t>());
    case json::value_t::number_float:
      return nb::float_(j.get<double>());
    case json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      return nb::str(s.data(), s.size());
    }
    case json::value_t::array: {
      nb::list out;
      for (const auto& v : j) out.append(JsonToPy(v));
      return out;
    }
    case json::value_t::object: {
      nb::dict out;
      for (const auto& [k, v] : j.items()) out[nb::str(k.data(), k.size())] = JsonToPy(v);
      return out;
    }
    default:
      return nb::none();
  }
}

json PyToJson(nb::handle h) {
  if (h.is_none()) return nullptr;
  if (PyBool_Check(h.ptr())) return h.ptr() == Py_True;
  if (nb::isinstance<PyObjectID>(h)) return ObjectIDToString(nb::cast<PyObjectID>(h).value);
  if (nb::isinstance<PyObjectName>(h)) return nb::cast<PyObjectName&>(h).name;
  if (PyLong_Check(h.ptr())) {
    int64_t i;
    if (nb::try_cast(h, i, false)) return i;
    uint64_t u;
    if (nb::try_cast(h, u, false)) return u;
    throw nb::value_error("integer out of the 64-bit range");
  }
  if (PyFloat_Check(h.ptr())) return nb::cast<double>(h);
  if (nb::isinstance<nb::str>(h)) return nb::cast<std::string>(h);
  if (nb::isinstance<nb::list>(h) || nb::isinstance<nb::tuple>(h)) {
    json out = json::array();
    for (nb::handle v : h) out.push_back(PyToJson(v));
    return out;
  }
  if (nb::isinstance<nb::dict>(h)) {
    json out = json::object();
    for (auto [k, v] : nb::borrow<nb::dict>(h)) {
      out[nb::cast<std::string>(nb::str(k))] = PyToJson(v);
    }
    return out;
  }
  throw nb::type_error(("cannot store a value of type " +
                        nb::cast<std::string>(nb::str(h.type().attr("__name__"))) +
                        " in vineyard metadata")
                           .c_str());
}

namespace {

/// vineyard._C.InlineBlob: byte run `index` of a put's buffers, as a blob member.
struct InlineBlobRef {
  size_t index = 0;
  uint64_t size = 0;
};

/// meta[key]: a field's value, or the member's ObjectMeta.
nb::object GetItem(const ObjectMeta& meta, const std::string& key) {
  if (meta.HasMember(key)) return nb::cast(Unwrap(meta.GetMember(key)));
  return JsonToPy(Unwrap(meta.GetKeyValue(key)));
}

void SetItem(ObjectMeta& meta, const std::string& key, nb::handle value) {
  if (nb::isinstance<PyObjectID>(value)) {
    meta.AddMember(key, nb::cast<PyObjectID>(value).value);
  } else if (nb::isinstance<ObjectMeta>(value)) {
    meta.AddMember(key, nb::cast<const ObjectMeta&>(value));
  } else if (nb::isinstance<Blob>(value)) {
    meta.AddMember(key, nb::cast<const Blob&>(value));
  } else if (nb::isinstance<BlobWriter>(value)) {
    meta.AddMember(key, nb::cast<const BlobWriter&>(value));
  } else if (nb::isinstance<nb::list>(value) || nb::isinstance<nb::tuple>(value)) {
    meta.AddKeyValue(key, PyToJson(value).dump());  // as vineyard: the JSON text
  } else {
    meta.AddKeyValue(key, PyToJson(value));
  }
}

}  // namespace

void BindMeta(nb::module_& m) {
  nb::class_<InlineBlobRef>(m, "InlineBlob",
                            "A blob member to be made by the put in progress from byte run "
                            "`index` of its buffers (vineyard.data.utils.build_buffer).")
      .def(nb::init<size_t, uint64_t>(), nb::arg("index"), nb::arg("size"))
      .def_ro("index", &InlineBlobRef::index)
      .def_ro("size", &InlineBlobRef::size)
      .def("__repr__", [](const InlineBlobRef& b) {
        return "InlineBlob <index=" + std::to_string(b.index) + ", size=" +
               std::to_string(b.size) + ">";
      });
  nb::class_<ObjectMeta>(m, "ObjectMeta",
                         "The metadata of a vineyard object: typename, fields, members, and "
                         "(from IPCClient.get_object_meta) its mapped blobs.")
      .def(
          "__init__",
          [](ObjectMeta* self, bool global) {
            new (self) ObjectMeta();
            self->SetGlobal(global);
          },
          nb::arg("global_") = false)
      .def_prop_rw(
          "id", [](const ObjectMeta& meta) { return PyObjectID(meta.GetId()); },
          [](ObjectMeta& meta, const PyObjectID& id) { meta.SetId(id.value); })
      .def_prop_rw("typename", &ObjectMeta::GetTypeName, &ObjectMeta::SetTypeName)
      .def_prop_rw("nbytes", &ObjectMeta::GetNBytes, &ObjectMeta::SetNBytes)
      .def_prop_ro("signature", &ObjectMeta::GetSignature)
      .def_prop_ro("instance_id", &ObjectMeta::GetInstanceId)
      .def_prop_ro("isglobal", &ObjectMeta::IsGlobal)
      .def_prop_ro("islocal", &ObjectMeta::IsLocal,
                   "True if the object lives on the instance it was read from (not global).")
      .def_prop_ro("ispersist", [](const ObjectMeta& meta) { return !meta.IsTransient(); })
      .def_prop_ro("memory_usage", &ObjectMeta::MemoryUsage,
                   "Bytes of the blobs in the tree (mapped size, else the recorded size).")
      .def("set_global", &ObjectMeta::SetGlobal, nb::arg("global_") = true)
      .def("__getitem__", &GetItem, nb::arg("key"))
      .def(
          "get",
          [](const ObjectMeta& meta, const std::string& key, nb::object dflt) {
            if (!meta.HasKey(key) && !meta.HasMember(key)) return dflt;
            return GetItem(meta, key);
          },
          nb::arg("key"), nb::arg("default") = nb::none())
      .def("__setitem__", &SetItem, nb::arg("key"), nb::arg("value"))
      .def("__contains__",
           [](const ObjectMeta& meta, const std::string& key) {
             return meta.HasKey(key) || meta.HasMember(key);
           })
      .def("__len__", [](const ObjectMeta& meta) { return meta.MetaData().size(); })
      .def(
          "__iter__",
          [](const ObjectMeta& meta) {
            nb::list keys;
            for (const auto& [k, v] : meta.MetaData().items()) keys.append(nb::str(k.c_str()));
            return nb::iter(keys);
          },
          "Iterates over the keys of the tree (fields, members and standard keys).")
      .def("keys",
           [](const ObjectMeta& meta) {
             nb::list keys;
             for (const auto& [k, v] : meta.MetaData().items()) keys.append(nb::str(k.c_str()));
             return keys;
           })
      .def(
          "items",
          [](const ObjectMeta& meta) {
            nb::list out;
            for (const auto& [k, v] : meta.MetaData().items()) {
              out.append(nb::make_tuple(nb::str(k.c_str()), GetItem(meta, k)));
            }
            return out;
          },
          "(key, value) pairs: field values, and an ObjectMeta per member.")
      .def("field_names", &ObjectMeta::FieldNames,
           "Plain fields, without members and standard keys (id, typename, ...).")
      .def("member_names", &ObjectMeta::MemberNames)
      .def("add_member",
           [](ObjectMeta& meta, const std::string& key, const ObjectMeta& member) {
             meta.AddMember(key, member);
           },
           nb::arg("key"), nb::arg("value"))
      .def("add_member",
           [](ObjectMeta& meta, const std::string& key, const Blob& blob) {
             meta.AddMember(key, blob);
           },
           nb::arg("key"), nb::arg("value"))
      .def("add_member",
           [](ObjectMeta& meta, const std::string& key, const BlobWriter& blob) {
             meta.AddMember(key, blob);
           },
           nb::arg("key"), nb::arg("value"))
      .def("add_member",
           [](ObjectMeta& meta, const std::string& key, const PyObjectID& id) {
             meta.AddMember(key, id.value);
           },
           nb::arg("key"), nb::arg("value"))
      .def("add_member",
           [](ObjectMeta& meta, const std::string& key, const InlineBlobRef& blob) {
             meta.AddInlineBlob(key, blob.index, blob.size);
           },
           nb::arg("key"), nb::arg("value"))
      .def(
          "add_remote_blob",
          [](ObjectMeta& meta, std::shared_ptr<RemoteBlob> blob) {
            if (!blob) throw nb::type_error("expected a RemoteBlob, got None");
            const auto ids = meta.GetBlobIds();
            if (std::find(ids.begin(), ids.end(), blob->id()) == ids.end()) {
              throw StatusError{Status::ObjectNotExists(
                  "blob ", ObjectIDToString(blob->id()),
                  " is not a member of this object: add_member it first")};
            }
            const ObjectID id = blob->id();
            meta.SetBuffer(id, std::move(blob));
          },
          nb::arg("blob"),
          "Attaches the bytes of a RemoteBlob (fetched or created over RPC) to the blob "
          "member of the same id, so that get_buffer and the resolvers read it.")
      .def("add_inline_blob", &ObjectMeta::AddInlineBlob, nb::arg("key"), nb::arg("index"),
           nb::arg("size"),
           "A blob member made by the put from byte run `index` of its `buffers` (sent in "
           "the put request when small).")
      .def("add_shared_member", &ObjectMeta::AddSharedMember, nb::arg("key"), nb::arg("token"),
           "A member that is the new object marked share(token) elsewhere in the same "
           "put: one object, held in several places.")
      .def("share", &ObjectMeta::Share, nb::arg("token"),
           "Marks this new object as the one add_shared_member(key, token) refers to.")
      .def(
          "get_member",
          [](const ObjectMeta& meta, const std::string& key) -> nb::object {
            if (!meta.HasKey(key) && !meta.HasMember(key)) return nb::none();
            return nb::cast(Unwrap(meta.GetMember(key)));
          },
          nb::arg("key"),
          "The member's ObjectMeta; None if absent; KeyError if `key` is a plain field.")
      .def(
          "member",
          [](const ObjectMeta& meta, const std::string& key) -> nb::object {
            if (!meta.HasKey(key) && !meta.HasMember(key)) return nb::none();
            return nb::cast(Unwrap(meta.GetMember(key)));
          },
          nb::arg("key"))
      .def(
          "get_buffer",
          [](const ObjectMeta& meta, const PyObjectID& id) { return Unwrap(meta.GetBuffer(id.value)); },
          nb::arg("blob_id"), "The mapped Blob `blob_id` of this tree (after get_object_meta).")
      .def("blob_ids",
           [](const ObjectMeta& meta) {
             std::vector<PyObjectID> ids;
             for (ObjectID id : meta.GetBlobIds()) ids.emplace_back(id);
             return ids;
           },
           "Every blob id of the tree, depth first, without repeats.")
      .def("mapped_blobs",
           [](const ObjectMeta& meta) {
             nb::list out;
             for (const auto& [id, blob] : meta.Buffers()) {
               if (IsEmptyBlob(id) || blob == nullptr || blob->size() == 0) continue;
               out.append(nb::make_tuple(id, reinterpret_cast<uintptr_t>(blob->data()),
                                         blob->size()));
             }
             return out;
           },
           "(id as int, address, size) of every blob of the tree mapped in this process.")
      .def("to_json", [](const ObjectMeta& meta) { return meta.ToString(-1); },
           "The tree as compact JSON text.")
      .def("to_dict", [](const ObjectMeta& meta) { return JsonToPy(meta.MetaData()); },
           "The tree as nested dicts.")
      .def("__repr__", [](const ObjectMeta& meta) { return "ObjectMeta " + meta.ToString(4); })
      .def("__str__", [](const ObjectMeta& meta) { return "ObjectMeta " + meta.ToString(4); })
      .def("__copy__", [](const ObjectMeta& meta) { return ObjectMeta(meta); })
      .def("__deepcopy__", [](const ObjectMeta& meta, nb::handle) { return ObjectMeta(meta); },
           nb::arg("memo"))
      // Pickling keeps the tree, not the mapped blobs.
      .def("__getstate__", [](const ObjectMeta& meta) { return meta.ToString(-1); })
      .def("__setstate__", [](ObjectMeta& meta, const std::string& text) {
        new (&meta) ObjectMeta(ObjectMeta::FromJSON(json::parse(text)));
      });
}

}  // namespace vineyard::py
