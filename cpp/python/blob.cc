// Blob (sealed, read-only buffer), ObjectBuilder (what makes one object) and
// BlobBuilder (an ObjectBuilder: an unsealed, writable buffer).
//
// Both export the Python buffer protocol over the mapped shared memory: no
// copies. A view holds a reference to the Python object, which holds the C++
// blob (shared_ptr<Blob> / unique_ptr<BlobWriter>), which holds the mapping:
// the bytes stay mapped while any memoryview or numpy array over them exists.
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>

#include "client/blob.h"
#include "client/client.h"
#include "python/bindings.h"

namespace vineyard::py {

namespace {

int BlobGetBuffer(PyObject* self, Py_buffer* view, int flags) {
  Blob* blob = nb::inst_ptr<Blob>(self);
  if (!nb::inst_ready(self) || blob == nullptr) {
    view->obj = nullptr;
    PyErr_SetString(PyExc_BufferError, "the Blob is not initialised");
    return -1;
  }
  // readonly=1: a request for a writable view fails with BufferError, and
  // writes through a memoryview raise TypeError.
  return PyBuffer_FillInfo(view, self, const_cast<uint8_t*>(blob->data()),
                           static_cast<Py_ssize_t>(blob->size()), /*readonly=*/1, flags);
}

int WriterGetBuffer(PyObject* self, Py_buffer* view, int flags) {
  BlobWriter* w = nb::inst_ptr<BlobWriter>(self);
  if (!nb::inst_ready(self) || w == nullptr) {
    view->obj = nullptr;
    PyErr_SetString(PyExc_BufferError, "the BlobBuilder is not initialised");
    return -1;
  }
  if (!w->writable()) {
    view->obj = nullptr;
    PyErr_Format(PyExc_BufferError,
                 "blob %s is sealed or aborted: read it through the sealed Blob",
                 ObjectIDToString(w->id()).c_str());
    return -1;
  }
  return PyBuffer_FillInfo(view, self, w->data(), static_cast<Py_ssize_t>(w->size()),
                           /*readonly=*/0, flags);
}

PyType_Slot kBlobSlots[] = {{Py_bf_getbuffer, reinterpret_cast<void*>(BlobGetBuffer)},
                            {0, nullptr}};
PyType_Slot kWriterSlots[] = {{Py_bf_getbuffer, reinterpret_cast<void*>(WriterGetBuffer)},
                              {0, nullptr}};

uintptr_t Address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

}  // namespace

Client* AsIpcClient(nb::handle h) {
  if (h.is_none()) return nullptr;
  if (nb::isinstance<Client>(h)) return &nb::cast<Client&>(h);
  if (nb::hasattr(h, "native")) {
    nb::object native = h.attr("native");
    if (nb::isinstance<Client>(native)) return &nb::cast<Client&>(native);
  }
  throw nb::type_error(("expected an IPCClient, got " +
                        nb::cast<std::string>(nb::str(h.type().attr("__name__"))))
                           .c_str());
}

void BindBlobs(nb::module_& m) {
  nb::class_<Blob>(m, "Blob", nb::type_slots(kBlobSlots),
                   "A sealed blob: immutable shared memory, exported as a read-only buffer "
                   "(memoryview(blob), numpy.frombuffer(blob)) without copying.")
      .def_prop_ro("id", [](const Blob& b) { return PyObjectID(b.id()); })
      .def_prop_ro("size", &Blob::size)
      .def_prop_ro("address", [](const Blob& b) { return Address(b.data()); },
                   "The address of the first byte in this process.")
      .def_prop_ro("is_empty", &Blob::IsEmpty)
      .def("__len__", &Blob::size)
      .def("__bytes__",
           [](const Blob& b) {
             return nb::bytes(reinterpret_cast<const char*>(b.data()), b.size());
           },
           "A copy of the bytes.")
      .def_prop_ro("typename", [](const Blob&) { return "vineyard::Blob"; })
      .def_prop_ro("nbytes", &Blob::size)
      .def("__repr__",
           [](const Blob& b) {
             return "Object <\"" + ObjectIDToString(b.id()) + "\": vineyard::Blob>";
           })
      .def_static("empty", &Blob::MakeEmpty, "The empty blob (size 0).");

  nb::class_<ObjectBuilder>(m, "ObjectBuilder",
                            "What makes one vineyard object (e.g. BlobBuilder): filled in "
                            "this process, then sealed, after which it cannot change.")
      .def_prop_ro("issealed", &ObjectBuilder::sealed, "True once sealed (or dropped).")
      .def(
          "seal",
          [](ObjectBuilder& b, nb::handle client) {
            Client* c = AsIpcClient(client);
            if (c == nullptr) throw nb::type_error("seal needs the IPCClient to seal through");
            return PyObjectID(Unwrap(NoGil([&] { return b.Seal(*c); })));
          },
          nb::arg("client"), "Makes the object through `client`; returns its ObjectID.");

  nb::class_<BlobWriter, ObjectBuilder>(m, "BlobBuilder", nb::type_slots(kWriterSlots),
                         "An unsealed blob, writable by its creator (memoryview(builder) is "
                         "writable) until sealed by seal() or IPCClient.put_object().")
      .def_prop_ro("id", [](const BlobWriter& w) { return PyObjectID(w.id()); })
      .def_prop_ro("size", &BlobWriter::size)
      .def_prop_ro("address", [](const BlobWriter& w) { return Address(w.data()); })
      .def_prop_ro("sealed", &BlobWriter::sealed)
      .def_prop_ro("writable", &BlobWriter::writable,
                   "Neither sealed nor aborted: the bytes may still be written.")
      .def("__len__", &BlobWriter::size)
      .def(
          "copy",
          [](BlobWriter& w, size_t offset, uintptr_t address, size_t size, int concurrency) {
            Check(w.Copy(offset, reinterpret_cast<const void*>(address), size, concurrency));
          },
          nb::arg("offset"), nb::arg("address"), nb::arg("size"), nb::arg("concurrency") = 0,
          nb::call_guard<nb::gil_scoped_release>(),
          "Copies `size` bytes from the raw address `address` to `offset` "
          "(concurrency 0: automatic).")
      .def(
          "copy",
          [](BlobWriter& w, size_t offset, nb::handle data, int concurrency) {
            Py_buffer view;
            if (PyObject_GetBuffer(data.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) {
              throw nb::python_error();
            }
            Status st;
            {
              nb::gil_scoped_release release;
              st = w.Copy(offset, view.buf, static_cast<size_t>(view.len), concurrency);
            }
            PyBuffer_Release(&view);
            Check(std::move(st));
          },
          nb::arg("offset"), nb::arg("data"), nb::arg("concurrency") = 0,
          "Copies a bytes-like object (any C-contiguous buffer) to `offset`.")
      .def("shrink", [](BlobWriter& w, size_t size) { Check(w.Shrink(size)); }, nb::arg("size"),
           nb::call_guard<nb::gil_scoped_release>(), "Shrinks the blob before sealing.")
      .def("abort", [](BlobWriter& w) { Check(w.Abort()); },
           nb::call_guard<nb::gil_scoped_release>(), "Drops the blob (if not sealed).")
      .def(
          "seal",
          [](BlobWriter& w, nb::handle client) {
            AsIpcClient(client);  // type-checked only: the builder knows its session
            return Unwrap(NoGil([&] { return w.Seal(); }));
          },
          nb::arg("client") = nb::none(),
          "Seals the blob and returns it as a read-only Blob (the client, an IPCClient or "
          "None, is accepted for compatibility; the builder knows its session).")
      .def("__repr__", [](const BlobWriter& w) {
        return "BlobBuilder <id=" + ObjectIDToString(w.id()) + ", size=" +
               std::to_string(w.size()) + (w.sealed() ? ", sealed" : "") + ">";
      });
}

}  // namespace vineyard::py
