// Shared pieces of the vineyard._C bindings: the Python-side id/name value
// types, Status -> exception, JSON <-> Python, and one Bind* per file.
//
// The bindings are thin: every behaviour lives in cpp/client. Blocking calls
// run with the GIL released; Python objects are only touched with it held.
#pragma once

#include <nanobind/nanobind.h>

#include <string>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/protocol.h"
#include "common/result.h"

namespace vineyard {
class Client;
class ClientBase;
}  // namespace vineyard

namespace vineyard::py {

namespace nb = nanobind;

/// vineyard.ObjectID: a 64-bit id with Python's int semantics for hash/eq.
struct PyObjectID {
  ObjectID value = kInvalidObjectID;
  PyObjectID() = default;
  PyObjectID(ObjectID v) : value(v) {}  // NOLINT: implicit from int, as in Python
};

/// vineyard.ObjectName: a name of an object (a str wrapper).
struct PyObjectName {
  std::string name;
  PyObjectName() = default;
  PyObjectName(std::string n) : name(std::move(n)) {}  // NOLINT: implicit from str
};

/// A non-OK Status crossing into Python; translated to its exception class.
struct StatusError {
  Status status;
};

/// Throws StatusError unless `st` is OK.
inline void Check(Status st) {
  if (!st.ok()) throw StatusError{std::move(st)};
}

/// The value of `r`, or throws StatusError.
template <typename T>
T Unwrap(Result<T> r) {
  if (!r.ok()) throw StatusError{r.status()};
  return std::move(r).value();
}

/// Runs `f` with the GIL released (for calls whose arguments or results are
/// Python objects, which must be converted with the GIL held).
template <typename F>
auto NoGil(F&& f) {
  nb::gil_scoped_release release;
  return f();
}

inline std::vector<ObjectID> Ids(const std::vector<PyObjectID>& ids) {
  std::vector<ObjectID> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(id.value);
  return out;
}

/// `h` as a bound T, or TypeError naming what was expected.
template <typename T>
T& Cast(nb::handle h, const char* expected) {
  if (!nb::isinstance<T>(h)) {
    throw nb::type_error(("expected " + std::string(expected) + ", got " +
                          nb::cast<std::string>(nb::str(h.type().attr("__name__"))))
                             .c_str());
  }
  return nb::cast<T&>(h);
}

/// The IPC client `h` stands for: a vineyard._C.IPCClient, or an object whose
/// `native` is one (vineyard.IPCClient); null for None. TypeError otherwise.
Client* AsIpcClient(nb::handle h);

/// JSON value -> Python (None/bool/int/float/str/list/dict).
nb::object JsonToPy(const json& j);
/// Python value -> JSON; TypeError for values JSON cannot hold.
json PyToJson(nb::handle h);

void BindErrors(nb::module_& m);
void BindIds(nb::module_& m);
void BindBlobs(nb::module_& m);
void BindMeta(nb::module_& m);
void BindClient(nb::module_& m);
void BindRpcClient(nb::module_& m);
/// put_ndarray / get_fast on IPCClient, encode_str_array (fast_path.cc).
void BindFastPath(nb::module_& m, nb::class_<Client, ClientBase>& c);
void BindArrowPath(nb::module_& m, nb::class_<Client, ClientBase>& c);
/// IPCClient.blob_arena() and BlobArena (blob_arena.cc).
void BindBlobArena(nb::module_& m, nb::class_<Client, ClientBase>& c);

}  // namespace vineyard::py
