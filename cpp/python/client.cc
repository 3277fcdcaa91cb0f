// IPCClient (vineyard::Client) and InstanceStatus.
//
// Pure bindings: the Python facade (put/get, resolvers, builders) wraps them.
// Every call that talks to vineyardd runs with the GIL released. A closed
// client, or one whose server died, raises ConnectionErrorException (a
// ConnectionError) from every request.
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "client/client.h"
#include "client/client_base.h"
#include "python/bindings.h"

namespace vineyard::py {

namespace {

using Gil = nb::call_guard<nb::gil_scoped_release>;

std::string StatusText(const InstanceStatus& s) {
  return "InstanceStatus:\n    instance_id: " + std::to_string(s.instance_id) +
         "\n    deployment: " + s.deployment +
         "\n    memory_usage: " + std::to_string(s.memory_usage) +
         "\n    memory_limit: " + std::to_string(s.memory_limit) +
         "\n    deferred_requests: " + std::to_string(s.deferred_requests) +
         "\n    ipc_connections: " + std::to_string(s.ipc_connections) +
         "\n    rpc_connections: " + std::to_string(s.rpc_connections) +
         "\n    spilled_bytes: " + std::to_string(s.spill.spilled_bytes) +
         "\n    spilled_blobs: " + std::to_string(s.spill.spilled_blobs);
}

}  // namespace

// Spilling: the same on IPC and RPC sessions.
static void BindSpill(nb::class_<ClientBase>& base) {
  base.def(
          "evict", [](ClientBase& self, const std::vector<PyObjectID>& ids) {
            Check(self.Evict(Ids(ids)));
          },
          nb::arg("object_ids"), Gil(),
          "Spills these objects' blobs to disk now (vineyardd --spill_path). Raises if one "
          "is in use by a client or pinned, or spilling is off; nothing is spilled then.")
      .def(
          "load", [](ClientBase& self, const std::vector<PyObjectID>& ids, bool pin) {
            Check(self.Load(Ids(ids), pin));
          },
          nb::arg("object_ids"), nb::arg("pin") = false, Gil(),
          "Loads these objects' spilled blobs back into memory; pin: they stay there until "
          "unpin.")
      .def(
          "unpin", [](ClientBase& self, const std::vector<PyObjectID>& ids) {
            Check(self.Unpin(Ids(ids)));
          },
          nb::arg("object_ids"), Gil(), "Lets pinned objects be spilled again.")
      .def(
          "is_spilled",
          [](ClientBase& self, const PyObjectID& id) { return Unwrap(self.IsSpilled(id.value)); },
          nb::arg("object_id"), Gil(), "Whether any of the object's blobs is on disk.")
      .def(
          "is_in_use",
          [](ClientBase& self, const PyObjectID& id) { return Unwrap(self.IsInUse(id.value)); },
          nb::arg("object_id"), Gil(),
          "Whether a client maps or references any of the object's blobs.");
}

void BindClient(nb::module_& m) {
  nb::class_<SpillStatus>(m, "SpillStatus",
                          "What vineyardd has spilled to disk (--spill_path).")
      .def_ro("enabled", &SpillStatus::enabled, "Whether --spill_path is set.")
      .def_ro("path", &SpillStatus::path, "The spill directory.")
      .def_ro("spilled_bytes", &SpillStatus::spilled_bytes, "Data bytes on disk now.")
      .def_ro("spilled_blobs", &SpillStatus::spilled_blobs, "Blobs on disk now.")
      .def_ro("disk_bytes", &SpillStatus::disk_bytes, "Bytes the spill files occupy.")
      .def_ro("spills", &SpillStatus::spills, "Blobs written out since start.")
      .def_ro("loads", &SpillStatus::loads, "Blobs loaded back since start.")
      .def_ro("spill_failures", &SpillStatus::spill_failures,
              "Spill attempts the disk refused since start.");
  nb::class_<InstanceStatus>(m, "InstanceStatus",
                             "Identity, memory and load of the connected vineyardd instance.")
      .def_ro("instance_id", &InstanceStatus::instance_id)
      .def_ro("deployment", &InstanceStatus::deployment)
      .def_ro("memory_usage", &InstanceStatus::memory_usage)
      .def_ro("memory_limit", &InstanceStatus::memory_limit)
      .def_ro("deferred_requests", &InstanceStatus::deferred_requests)
      .def_ro("ipc_connections", &InstanceStatus::ipc_connections)
      .def_ro("rpc_connections", &InstanceStatus::rpc_connections)
      .def_ro("spill", &InstanceStatus::spill, "Blobs spilled to disk (--spill_path).")
      .def("__repr__", &StatusText)
      .def("__str__", &StatusText);

  nb::class_<ClientBase> base(m, "ClientBase",
                             "What IPC and RPC sessions share: metadata, names, deletion, "
                             "persistence and the instance's status.");
  nb::class_<Client, ClientBase> c(m, "IPCClient",
                                   "A session with vineyardd over its UNIX socket (make one "
                                   "with connect_ipc). Thread-safe: requests are serialised.");

  m.def(
      "connect_ipc",
      [](const std::string& socket, const std::string& username, const std::string& password) {
        return Unwrap(Client::Connect(socket, username, password));
      },
      nb::arg("socket") = "", nb::arg("username") = "", nb::arg("password") = "", Gil(),
      "Connects to vineyardd at `socket` (empty: $VINEYARD_IPC_SOCKET). "
      "ConnectionFailedException if nobody answers there.");

  // --- session -------------------------------------------------------------------
  base.def_prop_ro("instance_id", &ClientBase::instance_id)
      .def_prop_ro("ipc_socket", &ClientBase::ipc_socket)
      .def_prop_ro("rpc_endpoint", &ClientBase::rpc_endpoint)
      .def_prop_ro("version", &ClientBase::version)
      .def_prop_ro("whole_tree_put", &ClientBase::whole_tree_put,
                   "The server creates a whole tree in one put (inline bytes, new members).")
      .def_prop_ro("endpoint", &ClientBase::endpoint,
                   "What this client dialled: the socket path, or host:port.")
      .def_prop_ro("connected", &ClientBase::Connected)
      .def("close", [](ClientBase& self) { Check(self.Disconnect()); }, Gil(),
           "Ends the session; later requests raise ConnectionErrorException.");
  c.def_prop_ro("is_ipc", [](const Client&) { return true; })
      .def_prop_ro("is_rpc", [](const Client&) { return false; })
      .def("__repr__", [](const Client& self) {
        return "IPCClient <socket=" + self.ipc_socket() +
               ", instance_id=" + std::to_string(self.instance_id()) +
               (self.Connected() ? "" : ", closed") + ">";
      });

  // --- blobs ---------------------------------------------------------------------
  c.def("create_blob",
        [](Client& self, size_t size) { return Unwrap(self.CreateBlob(size)); }, nb::arg("size"),
        Gil(), "Allocates an unsealed blob of `size` bytes.")
      .def(
          "create_blob",
          [](Client& self, const std::vector<size_t>& sizes) {
            auto writers = Unwrap(NoGil([&] { return self.CreateBlobs(sizes); }));
            nb::list out;
            for (auto& w : writers) out.append(nb::cast(std::move(w)));
            return out;
          },
          nb::arg("sizes"), "Allocates one unsealed blob per size, in one request.")
      .def("create_empty_blob", [](Client&) { return Blob::MakeEmpty(); })
      .def(
          "get_blob",
          [](Client& self, const PyObjectID& id, bool unsafe) {
            return Unwrap(self.GetBlob(id.value, unsafe));
          },
          nb::arg("object_id"), nb::arg("unsafe") = false, Gil(),
          "The sealed blob, mapped read-only (`unsafe`: unsealed ones too).")
      .def(
          "get_blobs",
          [](Client& self, const std::vector<PyObjectID>& ids, bool unsafe) {
            return Unwrap(self.GetBlobs(Ids(ids), unsafe));
          },
          nb::arg("object_ids"), nb::arg("unsafe") = false, Gil());

  // --- metadata --------------------------------------------------------------------
  base.def(
       "create_metadata",
       [](ClientBase& self, nb::list metas) {
         std::vector<ObjectMeta*> targets;
         std::vector<ObjectMeta> copies;
         for (nb::handle h : metas) {
           targets.push_back(&Cast<ObjectMeta>(h, "ObjectMeta"));
           copies.push_back(*targets.back());
         }
         Unwrap(NoGil([&] { return self.CreateMetaData(copies); }));
         for (size_t i = 0; i < targets.size(); ++i) *targets[i] = std::move(copies[i]);
         return metas;
       },
       nb::arg("metadata"), "Creates several metadata in one request; returns the list.")
      .def(
          "create_metadata",
          [](ClientBase& self, nb::object meta) {
            ObjectMeta& m = Cast<ObjectMeta>(meta, "ObjectMeta or a list of them");
            Unwrap(NoGil([&] { return self.CreateMetaData(m); }));
            return meta;
          },
          nb::arg("metadata"),
          "Creates the metadata (its members must exist) and fills in its id, signature and "
          "instance_id; returns the same ObjectMeta.")
      .def(
          "get_meta",
          [](ClientBase& self, const PyObjectID& id, bool sync_remote, bool wait) {
            return Unwrap(self.GetMetaData(id.value, sync_remote, wait));
          },
          nb::arg("object_id"), nb::arg("sync_remote") = false, nb::arg("wait") = false, Gil(),
          "The metadata tree (no blobs mapped).")
      .def(
          "get_metas",
          [](ClientBase& self, const std::vector<PyObjectID>& ids, bool sync_remote, bool wait) {
            return Unwrap(self.GetMetaData(Ids(ids), sync_remote, wait));
          },
          nb::arg("object_ids"), nb::arg("sync_remote") = false, nb::arg("wait") = false, Gil())
      .def(
          "list_metadatas",
          [](ClientBase& self, const std::string& pattern, bool regex, size_t limit) {
            return Unwrap(self.ListMetaData(pattern, regex, limit));
          },
          nb::arg("pattern"), nb::arg("regex") = false, nb::arg("limit") = 5, Gil(),
          "Metadata of objects whose typename matches the glob (or regex).");

  auto put_object = [](Client& self, ObjectMeta& meta, nb::list builders, bool persist,
                       const std::optional<std::string>& name, nb::list buffers,
                       std::vector<ObjectID>* made) {
    std::vector<BlobWriter*> writers;
    for (nb::handle h : builders) writers.push_back(&Cast<BlobWriter>(h, "BlobBuilder"));
    // The byte runs stay pinned (buffer views held) until the put returns.
    std::vector<Py_buffer> views(buffers.size());
    size_t held = 0;
    auto release = [&] {
      for (size_t i = 0; i < held; ++i) PyBuffer_Release(&views[i]);
    };
    std::vector<std::string_view> runs;
    for (nb::handle h : buffers) {
      if (PyObject_GetBuffer(h.ptr(), &views[held], PyBUF_C_CONTIGUOUS) != 0) {
        release();
        throw nb::python_error();
      }
      runs.emplace_back(static_cast<const char*>(views[held].buf),
                        static_cast<size_t>(views[held].len));
      ++held;
    }
    Result<ObjectID> id = NoGil([&] {
      return self.Put(meta, writers, persist, name.value_or(""), runs, made);
    });
    release();
    return PyObjectID(Unwrap(std::move(id)));
  };
  c.def(
       "put_object",
          [put_object](Client& self, ObjectMeta& meta, nb::list builders, bool persist,
                       const std::optional<std::string>& name, nb::list buffers) {
            return put_object(self, meta, builders, persist, name, buffers, nullptr);
          },
          nb::arg("meta"), nb::arg("builders") = nb::list(), nb::arg("persist") = false,
          nb::arg("name").none() = nb::none(), nb::arg("buffers") = nb::list(),
          "Seals `builders`, makes blobs of the byte runs `buffers` that the tree names "
          "(add_inline_blob), creates `meta` with its new members (filling in its id), and "
          "optionally persists and names it: one round trip (two when a run is large). "
          "Returns the ObjectID.")
      .def(
          "put_tree",
          [put_object](Client& self, ObjectMeta& meta, nb::list builders, bool persist,
                       const std::optional<std::string>& name, nb::list buffers) {
            std::vector<ObjectID> made;
            PyObjectID id = put_object(self, meta, builders, persist, name, buffers, &made);
            std::vector<PyObjectID> made_ids(made.begin(), made.end());
            return std::make_pair(id, made_ids);
          },
          nb::arg("meta"), nb::arg("builders") = nb::list(), nb::arg("persist") = false,
          nb::arg("name").none() = nb::none(), nb::arg("buffers") = nb::list(),
          "put_object(), returning (id, [ids of the blobs and new members it made]).")
      .def(
          "get_object_meta",
          [](Client& self, const PyObjectID& id) { return Unwrap(self.GetObject(id.value)); },
          nb::arg("object_id"), Gil(),
          "The metadata with every local blob of the tree mapped (meta.get_buffer(id)): "
          "one round trip.")
      .def(
          "get_object_metas",
          [](Client& self, const std::vector<PyObjectID>& ids) {
            return Unwrap(self.GetObjects(Ids(ids)));
          },
          nb::arg("object_ids"), Gil());

  // --- objects -----------------------------------------------------------------------
  base.def(
       "delete",
       [](ClientBase& self, const std::vector<PyObjectID>& ids, bool force, bool deep,
          bool memory_trim) { Check(self.Delete(Ids(ids), force, deep, memory_trim)); },
       nb::arg("object_ids"), nb::arg("force") = false, nb::arg("deep") = true,
       nb::arg("memory_trim") = false, Gil())
      .def(
          "delete",
          [](ClientBase& self, const PyObjectID& id, bool force, bool deep, bool memory_trim) {
            Check(self.Delete({id.value}, force, deep, memory_trim));
          },
          nb::arg("object_id"), nb::arg("force") = false, nb::arg("deep") = true,
          nb::arg("memory_trim") = false, Gil())
      .def(
          "delete",
          [](ClientBase& self, const ObjectMeta& meta, bool force, bool deep, bool memory_trim) {
            Check(self.Delete({meta.GetId()}, force, deep, memory_trim));
          },
          nb::arg("object_meta"), nb::arg("force") = false, nb::arg("deep") = true,
          nb::arg("memory_trim") = false, Gil())
      .def(
          "exists", [](ClientBase& self, const PyObjectID& id) { return Unwrap(self.Exists(id.value)); },
          nb::arg("object_id"), Gil())
      .def(
          "persist", [](ClientBase& self, const PyObjectID& id) { Check(self.Persist(id.value)); },
          nb::arg("object_id"), Gil())
      .def(
          "persist", [](ClientBase& self, const ObjectMeta& meta) { Check(self.Persist(meta.GetId())); },
          nb::arg("object_meta"), Gil())
      .def(
          "if_persist",
          [](ClientBase& self, const PyObjectID& id) { return Unwrap(self.IsPersisted(id.value)); },
          nb::arg("object_id"), Gil())
      .def(
          "is_persisted",
          [](ClientBase& self, const PyObjectID& id) { return Unwrap(self.IsPersisted(id.value)); },
          nb::arg("object_id"), Gil())
      .def(
          "shallow_copy",
          [](ClientBase& self, const PyObjectID& id, nb::handle extra) {
            json j = extra.is_none() ? json::object() : PyToJson(extra);
            return PyObjectID(Unwrap(NoGil([&] { return self.ShallowCopy(id.value, j); })));
          },
          nb::arg("object_id"), nb::arg("extra_metadata").none() = nb::none(),
          "A new object sharing the members of `object_id`, with `extra_metadata` fields.")
      .def(
          "label",
          [](ClientBase& self, const PyObjectID& id, const std::string& key, const std::string& value) {
            Check(self.Label(id.value, key, value));
          },
          nb::arg("object_id"), nb::arg("key"), nb::arg("value"), Gil())
      .def(
          "label",
          [](ClientBase& self, const PyObjectID& id, const std::map<std::string, std::string>& labels) {
            Check(self.Label(id.value, labels));
          },
          nb::arg("object_id"), nb::arg("labels"), Gil());

  // --- names -------------------------------------------------------------------------
  base.def(
       "put_name",
       [](ClientBase& self, const PyObjectID& id, const PyObjectName& name) {
         Check(self.PutName(id.value, name.name));
       },
       nb::arg("object_id"), nb::arg("name"), Gil())
      .def(
          "put_name",
          [](ClientBase& self, const ObjectMeta& meta, const PyObjectName& name) {
            Check(self.PutName(meta.GetId(), name.name));
          },
          nb::arg("object_meta"), nb::arg("name"), Gil())
      .def(
          "get_name",
          [](ClientBase& self, const PyObjectName& name, bool wait) {
            return PyObjectID(Unwrap(self.GetName(name.name, wait)));
          },
          nb::arg("name"), nb::arg("wait") = false, Gil(),
          "The id named `name` (ObjectNotExistsException if none); `wait`: block until it "
          "appears.")
      .def(
          "drop_name", [](ClientBase& self, const PyObjectName& name) { Check(self.DropName(name.name)); },
          nb::arg("name"), Gil())
      .def(
          "list_names",
          [](ClientBase& self, const std::string& pattern, bool regex, size_t limit) {
            auto names = Unwrap(NoGil([&] { return self.ListNames(pattern, regex, limit); }));
            nb::dict out;
            for (const auto& [name, id] : names) out[nb::str(name.c_str())] = PyObjectID(id);
            return out;
          },
          nb::arg("pattern") = "*", nb::arg("regex") = false, nb::arg("limit") = 5,
          "{name: ObjectID} of names matching the glob (or regex).");

  // --- instance ----------------------------------------------------------------------
  base.def("clear", [](ClientBase& self) { Check(self.Clear()); }, Gil(),
        "Deletes every object of the instance.")
      .def("reset", [](ClientBase& self) { Check(self.Clear()); }, Gil(), "Alias of clear().")
      .def("memory_trim", [](ClientBase& self) { return Unwrap(self.MemoryTrim()); }, Gil(),
           "Returns unused memory to the kernel; True if any was released.")
      .def("sync_meta", [](ClientBase& self) { Check(self.SyncMetaData()); }, Gil(),
           "Waits until everything persisted in the cluster before the call is visible "
           "through this instance (a read barrier); EtcdError if the cluster is out of reach.")
      .def(
          "migrate",
          [](ClientBase& self, const PyObjectID& id) {
            return PyObjectID(Unwrap(self.MigrateObject(id.value)));
          },
          nb::arg("object_id"), Gil(),
          "Copies a remote object's blobs to this instance; returns the local object's id "
          "(the same id when it is local already).")
      .def_prop_ro("status",
                   [](ClientBase& self) { return Unwrap(NoGil([&] { return self.GetInstanceStatus(); })); })
      .def_prop_ro(
          "meta",
          [](ClientBase& self) {
            json info = Unwrap(NoGil([&] { return self.ClusterInfo(); }));
            // The wire keys instances as "i<id>"; Python sees the instance id (an int).
            nb::dict out;
            for (auto it = info.begin(); it != info.end(); ++it) {
              const std::string& key = it.key();
              bool numbered = key.size() > 1 && key[0] == 'i' &&
                              key.find_first_not_of("0123456789", 1) == std::string::npos;
              if (numbered) {
                out[nb::int_(std::stoull(key.substr(1)))] = JsonToPy(it.value());
              } else {
                out[nb::str(key.c_str())] = JsonToPy(it.value());
              }
            }
            return out;
          },
          "Cluster metadata: {instance_id: {field: value}}.");
  // --- streams ---------------------------------------------------------------------
  base.def(
       "create_stream",
       [](ClientBase& self, const PyObjectID& id) { Check(self.CreateStream(id.value)); },
       nb::arg("id"), Gil(), "Makes the object `id` (its metadata created first) a stream.")
      .def(
          "open_stream",
          [](ClientBase& self, const PyObjectID& id, nb::handle mode) {
            int64_t m = 0;
            if (nb::isinstance<nb::str>(mode)) {
              std::string s = nb::cast<std::string>(mode);
              m = s == "r" ? kStreamRead : s == "w" ? kStreamWrite : 0;
            } else if (nb::isinstance<nb::int_>(mode)) {
              m = nb::cast<int64_t>(mode);
            }
            if (m != kStreamRead && m != kStreamWrite) {
              throw nb::value_error("open_stream: mode must be 'r' or 'w'");
            }
            Check(NoGil([&] { return self.OpenStream(id.value, m); }));
          },
          nb::arg("id"), nb::arg("mode"),
          "Takes the read ('r') or write ('w') side of a stream: one reader and one writer "
          "at a time (StreamOpenedException otherwise).")
      .def(
          "push_chunk",
          [](ClientBase& self, const PyObjectID& stream, const PyObjectID& chunk) {
            Check(self.PushNextStreamChunk(stream.value, chunk.value));
          },
          nb::arg("stream_id"), nb::arg("chunk"), Gil(),
          "Queues the existing object `chunk` on the stream (deleted once read past).")
      .def(
          "next_chunk_id",
          [](ClientBase& self, const PyObjectID& stream) {
            return PyObjectID(Unwrap(self.PullNextStreamChunk(stream.value)));
          },
          nb::arg("stream_id"), Gil(),
          "The next chunk's id, waiting for one; StreamDrainedException after the last, "
          "StreamFailedException when the stream failed.")
      .def(
          "stop_stream",
          [](ClientBase& self, const PyObjectID& stream, bool failed) {
            Check(self.StopStream(stream.value, failed));
          },
          nb::arg("stream_id"), nb::arg("failed"), Gil(),
          "Ends the stream: its reader drains what is queued (or fails, with failed=True).")
      .def(
          "drop_stream",
          [](ClientBase& self, const PyObjectID& stream) { Check(self.DropStream(stream.value)); },
          nb::arg("stream_id"), Gil(), "Fails the stream and frees its queued chunks.");
  c.def(
       "new_buffer_chunk",
       [](Client& self, const PyObjectID& stream, size_t size) {
         auto writer = Unwrap(NoGil([&] { return self.GetNextStreamChunk(stream.value, size); }));
         nb::object w = nb::cast(std::move(writer));
         return nb::steal(PyMemoryView_FromObject(w.ptr()));
       },
       nb::arg("stream"), nb::arg("size"),
       "The writer's next chunk: a writable memoryview of `size` bytes, queued for the "
       "reader at the next call or at stop_stream; waits while the stream's chunks in "
       "flight exceed the server's --stream_threshold.")
      .def(
          "next_buffer_chunk",
          [](Client& self, const PyObjectID& stream) {
            auto blob = Unwrap(NoGil([&] { return self.PullNextStreamBlob(stream.value); }));
            nb::object b = nb::cast(std::move(blob));
            return nb::steal(PyMemoryView_FromObject(b.ptr()));
          },
          nb::arg("stream"),
          "The reader's next chunk of a byte stream: a read-only memoryview (zero copy).");
  BindSpill(base);
  BindFastPath(m, c);
  BindArrowPath(m, c);
  BindBlobArena(m, c);
  c.def("flush_releases", [](Client& self) { Check(self.FlushReleases()); }, Gil(),
        "Gives back blob references released locally but not yet sent.");
}

}  // namespace vineyard::py
