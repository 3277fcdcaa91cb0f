// ObjectID and ObjectName: hashable, comparable, picklable value types.
// An ObjectID equals (and hashes like) the int it wraps; every binding that
// takes an ObjectID also accepts a plain int.
#include <nanobind/stl/string.h>

#include "python/bindings.h"

namespace vineyard::py {

namespace {
Py_hash_t HashOf(nb::handle h) {
  Py_hash_t v = PyObject_Hash(h.ptr());
  if (v == -1 && PyErr_Occurred()) throw nb::python_error();
  return v;
}
}  // namespace

void BindIds(nb::module_& m) {
  nb::class_<PyObjectID>(m, "ObjectID",
                         "Opaque 64-bit id of a vineyard object or blob; repr is 'o<16 hex>'.")
      .def(nb::init_implicit<ObjectID>(), nb::arg("value"))
      .def(
          "__init__",
          [](PyObjectID* self, const std::string& text) {
            // Older releases print ids as bare hex ("000043c5c6d5e646"): accept both forms.
            bool bare_hex = text.size() == 16 &&
                            text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
            new (self) PyObjectID(Unwrap(ObjectIDFromString(bare_hex ? "o" + text : text)));
          },
          nb::arg("value"))
      .def("__init__", [](PyObjectID* self, const PyObjectID& other) { new (self) PyObjectID(other); },
           nb::arg("value"))
      .def("__repr__", [](const PyObjectID& id) { return ObjectIDToString(id.value); })
      .def("__str__",
           [](const PyObjectID& id) { return "ObjectID <\"" + ObjectIDToString(id.value) + "\">"; })
      .def("__int__", [](const PyObjectID& id) { return id.value; })
      .def("__index__", [](const PyObjectID& id) { return id.value; })
      .def("__hash__", [](const PyObjectID& id) { return HashOf(nb::int_(id.value)); })
      .def("__eq__", [](const PyObjectID& a, const PyObjectID& b) { return a.value == b.value; },
           nb::is_operator())
      .def("__ne__", [](const PyObjectID& a, const PyObjectID& b) { return a.value != b.value; },
           nb::is_operator())
      .def("__lt__", [](const PyObjectID& a, const PyObjectID& b) { return a.value < b.value; },
           nb::is_operator())
      .def("__le__", [](const PyObjectID& a, const PyObjectID& b) { return a.value <= b.value; },
           nb::is_operator())
      .def("__gt__", [](const PyObjectID& a, const PyObjectID& b) { return a.value > b.value; },
           nb::is_operator())
      .def("__ge__", [](const PyObjectID& a, const PyObjectID& b) { return a.value >= b.value; },
           nb::is_operator())
      .def("__getstate__", [](const PyObjectID& id) { return id.value; })
      .def("__setstate__", [](PyObjectID& id, ObjectID v) { new (&id) PyObjectID(v); })
      .def_prop_ro("is_blob", [](const PyObjectID& id) { return IsBlob(id.value); },
                   "True for blob ids (top bit set).")
      .def_static("empty_blob", []() { return PyObjectID(kEmptyBlobID); },
                  "The id of the empty blob.")
      .def_static("invalid", []() { return PyObjectID(kInvalidObjectID); },
                  "The id of metadata not yet created.");

  nb::class_<PyObjectName>(m, "ObjectName", "The name of a vineyard object (wraps a str).")
      .def(nb::init_implicit<std::string>(), nb::arg("name"))
      .def("__repr__", [](const PyObjectName& n) { return nb::repr(nb::str(n.name.c_str())); })
      .def("__str__", [](const PyObjectName& n) { return n.name; })
      .def("__hash__", [](const PyObjectName& n) { return HashOf(nb::str(n.name.c_str())); })
      .def("__eq__", [](const PyObjectName& a, const PyObjectName& b) { return a.name == b.name; },
           nb::is_operator())
      .def("__ne__", [](const PyObjectName& a, const PyObjectName& b) { return a.name != b.name; },
           nb::is_operator())
      .def("__getstate__", [](const PyObjectName& n) { return n.name; })
      .def("__setstate__", [](PyObjectName& n, const std::string& s) { new (&n) PyObjectName(s); });
}

}  // namespace vineyard::py
