// RPCClient (vineyard::RPCClient), RemoteBlob and RemoteBlobBuilder.
//
// Pure bindings, like client.cc: metadata, names and the rest come from the
// ClientBase binding; this file adds what differs over TCP — blobs whose
// bytes are sent and fetched. RemoteBlob is a Blob (read-only buffer over
// this process's copy); RemoteBlobBuilder exports a writable buffer.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "client/rpc_client.h"
#include "python/bindings.h"

namespace vineyard::py {

namespace {

using Gil = nb::call_guard<nb::gil_scoped_release>;

int RemoteWriterGetBuffer(PyObject* self, Py_buffer* view, int flags) {
  RemoteBlobWriter* w = nb::inst_ptr<RemoteBlobWriter>(self);
  if (!nb::inst_ready(self) || w == nullptr || w->aborted()) {
    view->obj = nullptr;
    PyErr_SetString(PyExc_BufferError, "the RemoteBlobBuilder was aborted");
    return -1;
  }
  return PyBuffer_FillInfo(view, self, w->data(), static_cast<Py_ssize_t>(w->size()),
                           /*readonly=*/w->writable() ? 0 : 1, flags);
}

PyType_Slot kRemoteWriterSlots[] = {
    {Py_bf_getbuffer, reinterpret_cast<void*>(RemoteWriterGetBuffer)}, {0, nullptr}};

/// Read-only views of Python buffers, released together (with the GIL held).
class Views {
 public:
  ~Views() {
    for (auto& v : views_) PyBuffer_Release(&v);
  }
  const Py_buffer& Add(nb::handle h) {
    views_.emplace_back();
    if (PyObject_GetBuffer(h.ptr(), &views_.back(), PyBUF_C_CONTIGUOUS) != 0) {
      views_.pop_back();
      throw nb::python_error();
    }
    return views_.back();
  }

 private:
  std::vector<Py_buffer> views_;
};

/// A RemoteBlobWriter over the memory of a Python buffer (writable if the
/// buffer is), holding a view of it until the writer goes.
std::unique_ptr<RemoteBlobWriter> WrapBuffer(nb::handle data, std::optional<size_t> size) {
  auto view = std::make_unique<Py_buffer>();
  bool writable = true;
  if (PyObject_GetBuffer(data.ptr(), view.get(), PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) != 0) {
    PyErr_Clear();
    writable = false;
    if (PyObject_GetBuffer(data.ptr(), view.get(), PyBUF_C_CONTIGUOUS) != 0) {
      throw nb::python_error();
    }
  }
  std::shared_ptr<Py_buffer> owner(view.release(), [](Py_buffer* v) {
    nb::gil_scoped_acquire gil;
    PyBuffer_Release(v);
    delete v;
  });
  size_t n = static_cast<size_t>(owner->len);
  if (size.has_value()) {
    if (*size > n) {
      throw nb::value_error(("cannot wrap " + std::to_string(*size) + " bytes of a buffer of " +
                             std::to_string(n))
                                .c_str());
    }
    n = *size;
  }
  const auto* bytes = static_cast<const uint8_t*>(owner->buf);
  return RemoteBlobWriter::Wrap(bytes, n, std::move(owner), writable);
}

std::vector<const RemoteBlobWriter*> Writers(nb::list builders) {
  std::vector<const RemoteBlobWriter*> out;
  for (nb::handle h : builders) out.push_back(&Cast<RemoteBlobWriter>(h, "RemoteBlobBuilder"));
  return out;
}

}  // namespace

void BindRpcClient(nb::module_& m) {
  nb::class_<RemoteBlob, Blob>(m, "RemoteBlob",
                               "A blob fetched over TCP into this process: a read-only buffer "
                               "(memoryview, numpy.frombuffer) like Blob.")
      .def_prop_ro("instance_id", &RemoteBlob::instance_id,
                   "The instance the blob lives on.")
      .def("__repr__", [](const RemoteBlob& b) {
        return "RemoteBlob <\"" + ObjectIDToString(b.id()) + "\", size=" +
               std::to_string(b.size()) + ", instance_id=" + std::to_string(b.instance_id()) +
               ">";
      });

  nb::class_<RemoteBlobWriter>(m, "RemoteBlobBuilder", nb::type_slots(kRemoteWriterSlots),
                               "The bytes of a blob to create over TCP, built in this process "
                               "(memoryview(builder) is writable), then sent by "
                               "RPCClient.create_remote_blob.")
      .def("__init__",
           [](RemoteBlobWriter* self, size_t size) {
             auto made = Unwrap(RemoteBlobWriter::Make(size));
             new (self) RemoteBlobWriter(std::move(*made));
           },
           nb::arg("size"))
      .def_static(
          "wrap",
          [](uintptr_t address, size_t size) {
            return RemoteBlobWriter::Wrap(reinterpret_cast<const uint8_t*>(address), size,
                                          nullptr, /*writable=*/true);
          },
          nb::arg("data"), nb::arg("size"),
          "A builder over `size` bytes at the raw address `data`, without copying them: "
          "they must stay alive until the builder is sent.")
      .def_static("wrap", &WrapBuffer, nb::arg("data"), nb::arg("size").none() = nb::none(),
                  "A builder over the memory of a bytes-like object (its first `size` bytes; "
                  "all by default), without copying it; the builder keeps it alive. Writable "
                  "through the builder only if the object is.")
      .def_prop_ro("size", &RemoteBlobWriter::size)
      .def_prop_ro("writable", &RemoteBlobWriter::writable,
                   "False when it wraps read-only bytes.")
      .def_prop_ro("address",
                   [](RemoteBlobWriter& w) { return reinterpret_cast<uintptr_t>(w.data()); })
      .def_prop_ro("aborted", &RemoteBlobWriter::aborted)
      .def("__len__", &RemoteBlobWriter::size)
      .def(
          "copy",
          [](RemoteBlobWriter& w, size_t offset, uintptr_t address, size_t size, int concurrency) {
            Check(w.Copy(offset, reinterpret_cast<const void*>(address), size, concurrency));
          },
          nb::arg("offset"), nb::arg("address"), nb::arg("size"), nb::arg("concurrency") = 0,
          Gil(), "Copies `size` bytes from the raw address `address` to `offset`.")
      .def(
          "copy",
          [](RemoteBlobWriter& w, size_t offset, nb::handle data, int concurrency) {
            Views views;
            const Py_buffer& v = views.Add(data);
            Status st;
            {
              nb::gil_scoped_release release;
              st = w.Copy(offset, v.buf, static_cast<size_t>(v.len), concurrency);
            }
            Check(std::move(st));
          },
          nb::arg("offset"), nb::arg("data"), nb::arg("concurrency") = 0,
          "Copies a bytes-like object (any C-contiguous buffer) to `offset`.")
      .def("abort", &RemoteBlobWriter::Abort, "Frees the bytes; the builder cannot be sent.")
      .def("__repr__", [](const RemoteBlobWriter& w) {
        return "RemoteBlobBuilder <size=" + std::to_string(w.size()) +
               (w.aborted() ? ", aborted" : "") + ">";
      });

  nb::class_<RPCClient, ClientBase> c(m, "RPCClient",
                                      "A session with vineyardd over TCP (make one with "
                                      "connect_rpc). Thread-safe: requests are serialised.");

  m.def(
      "connect_rpc",
      [](const std::string& host, int port, const std::string& username,
         const std::string& password, const std::string& tls_ca) {
        return Unwrap(RPCClient::Connect(host, port, username, password, tls_ca));
      },
      nb::arg("host"), nb::arg("port"), nb::arg("username") = "", nb::arg("password") = "",
      nb::arg("tls_ca") = "", Gil(),
      "Connects to the RPC endpoint host:port. ConnectionFailedException names it if nobody "
      "answers there. tls_ca: speak TLS, trusting the CA certificates of this PEM file "
      "('system': the system store; empty: $VINEYARD_RPC_TLS_CA, else plain TCP).");

  c.def_prop_ro("is_ipc", [](const RPCClient&) { return false; })
      .def_prop_ro("is_rpc", [](const RPCClient&) { return true; })
      .def_prop_ro("remote_instance_id", &RPCClient::remote_instance_id,
                   "The instance id of the connected vineyardd.")
      .def_prop_rw("compression", &RPCClient::compression, &RPCClient::set_compression,
                   "zstd on the wire for blob bytes (only if the server offers it).")
      .def("is_fetchable", &RPCClient::IsFetchable, nb::arg("meta"),
           "True if the object's blobs live on the connected instance.")
      .def("__repr__", [](const RPCClient& self) {
        return "RPCClient <endpoint=" + self.rpc_endpoint() +
               ", instance_id=" + std::to_string(self.instance_id()) +
               (self.Connected() ? "" : ", closed") + ">";
      });

  // --- remote blobs -------------------------------------------------------------------
  c.def(
       "create_remote_blob",
       [](RPCClient& self, RemoteBlobWriter& builder) {
         return Unwrap(NoGil([&] { return self.CreateRemoteBlob(builder); }));
       },
       nb::arg("blob_builder"),
       "Sends the builder's bytes; returns the new blob's ObjectMeta (use it as a member).")
      .def(
          "create_remote_blob",
          [](RPCClient& self, nb::list builders) {
            auto writers = Writers(builders);
            return Unwrap(NoGil([&] { return self.CreateRemoteBlobs(writers); }));
          },
          nb::arg("blob_builders"), "Sends several builders in one request.")
      .def(
          "create_remote_blobs_from",
          [](RPCClient& self, nb::list buffers) {
            // Straight from the caller's memory: no copy into a builder first.
            Views views;
            std::vector<RPCClient::Bytes> parts;
            for (nb::handle h : buffers) {
              const Py_buffer& v = views.Add(h);
              parts.push_back({v.buf, static_cast<size_t>(v.len)});
            }
            return Unwrap(NoGil([&] { return self.CreateRemoteBlobs(parts); }));
          },
          nb::arg("buffers"),
          "Creates one blob per bytes-like object, sending the bytes without copying them "
          "first; returns the blobs' ObjectMeta.")
      .def(
          "get_remote_blob",
          [](RPCClient& self, const PyObjectID& id, bool unsafe) {
            return Unwrap(self.GetRemoteBlob(id.value, unsafe));
          },
          nb::arg("object_id"), nb::arg("unsafe") = false, Gil(),
          "Fetches the blob's bytes into this process.")
      .def(
          "get_remote_blobs",
          [](RPCClient& self, const std::vector<PyObjectID>& ids, bool unsafe) {
            return Unwrap(self.GetRemoteBlobs(Ids(ids), unsafe));
          },
          nb::arg("object_ids"), nb::arg("unsafe") = false, Gil(),
          "Fetches several blobs in one request.");

  // --- objects --------------------------------------------------------------------------
  c.def(
       "put_object",
       [](RPCClient& self, ObjectMeta& meta, nb::list builders, bool persist,
          const std::optional<std::string>& name) {
         if (nb::len(builders) != 0) {
           throw nb::type_error("an RPC client sends blobs with create_remote_blob(s) first; "
                                "put_object takes none");
         }
         return PyObjectID(
             Unwrap(NoGil([&] { return self.Put(meta, persist, name.value_or("")); })));
       },
       nb::arg("meta"), nb::arg("builders") = nb::list(), nb::arg("persist") = false,
       nb::arg("name").none() = nb::none(),
       "Creates `meta` (filling in its id), and optionally persists and names it: one round "
       "trip. Returns the ObjectID.")
      .def(
          "get_object_meta",
          [](RPCClient& self, const PyObjectID& id) { return Unwrap(self.GetObject(id.value)); },
          nb::arg("object_id"), Gil(),
          "The metadata with every blob of the tree fetched (meta.get_buffer(id)).")
      .def(
          "get_object_metas",
          [](RPCClient& self, const std::vector<PyObjectID>& ids) {
            return Unwrap(self.GetObjects(Ids(ids)));
          },
          nb::arg("object_ids"), Gil());
}

}  // namespace vineyard::py
