// Exceptions: VineyardException, and one subclass per StatusCode named
// "<CodeName>Exception" (also a subclass of the matching builtin where there
// is one). StatusError thrown by the bindings becomes the class of its code.
#include <nanobind/stl/string.h>

#include <map>

#include "python/bindings.h"

namespace vineyard::py {

namespace {

constexpr StatusCode kAllCodes[] = {
    StatusCode::kInvalid,           StatusCode::kKeyError,
    StatusCode::kTypeError,         StatusCode::kIOError,
    StatusCode::kEndOfFile,         StatusCode::kNotImplemented,
    StatusCode::kAssertionFailed,   StatusCode::kUserInputError,
    StatusCode::kObjectExists,      StatusCode::kObjectNotExists,
    StatusCode::kObjectSealed,      StatusCode::kObjectNotSealed,
    StatusCode::kObjectIsBlob,      StatusCode::kObjectTypeError,
    StatusCode::kObjectSpilled,     StatusCode::kObjectNotSpilled,
    StatusCode::kMetaTreeInvalid,   StatusCode::kMetaTreeTypeInvalid,
    StatusCode::kMetaTreeTypeNotExists, StatusCode::kMetaTreeNameInvalid,
    StatusCode::kMetaTreeNameNotExists, StatusCode::kMetaTreeLinkInvalid,
    StatusCode::kMetaTreeSubtreeNotExists, StatusCode::kVineyardServerNotReady,
    StatusCode::kArrowError,        StatusCode::kConnectionFailed,
    StatusCode::kConnectionError,   StatusCode::kEtcdError,
    StatusCode::kAlreadyStopped,    StatusCode::kRedisError,
    StatusCode::kNotEnoughMemory,   StatusCode::kStreamDrained,
    StatusCode::kStreamFailed,      StatusCode::kInvalidStreamState,
    StatusCode::kStreamOpened,      StatusCode::kGlobalObjectInvalid,
    StatusCode::kUnknownError,
};

/// The builtin exception a code's class also derives from, or null.
PyObject* BuiltinBase(StatusCode code) {
  switch (code) {
    case StatusCode::kKeyError:
    case StatusCode::kObjectNotExists:
      return PyExc_KeyError;
    case StatusCode::kTypeError:
      return PyExc_TypeError;
    case StatusCode::kIOError:
      return PyExc_IOError;
    case StatusCode::kNotImplemented:
      return PyExc_NotImplementedError;
    case StatusCode::kAssertionFailed:
      return PyExc_AssertionError;
    case StatusCode::kConnectionFailed:
    case StatusCode::kConnectionError:
      return PyExc_ConnectionError;
    case StatusCode::kNotEnoughMemory:
      return PyExc_MemoryError;
    default:
      return nullptr;
  }
}

// Module-lifetime references (the module is never unloaded).
PyObject* g_base = nullptr;
std::map<StatusCode, PyObject*> g_classes;

PyObject* ClassOf(StatusCode code) {
  auto it = g_classes.find(code);
  return it != g_classes.end() ? it->second : g_base;
}

}  // namespace

void BindErrors(nb::module_& m) {
  g_base = PyErr_NewExceptionWithDoc(
      "vineyard._C.VineyardException",
      "Base class of every error raised by vineyard; `code` is the StatusCode.", PyExc_Exception,
      nullptr);
  if (g_base == nullptr) throw nb::python_error();
  PyObject_SetAttrString(g_base, "code", nb::int_(-1).ptr());
  m.attr("VineyardException") = nb::handle(g_base);

  for (StatusCode code : kAllCodes) {
    std::string name = std::string(StatusCodeName(code)) + "Exception";
    std::string qualified = "vineyard._C." + name;
    PyObject* builtin = BuiltinBase(code);
    nb::object bases = builtin != nullptr ? nb::object(nb::make_tuple(nb::handle(g_base),
                                                                      nb::handle(builtin)))
                                          : nb::borrow(g_base);
    PyObject* cls = PyErr_NewException(qualified.c_str(), bases.ptr(), nullptr);
    if (cls == nullptr) throw nb::python_error();
    PyObject_SetAttrString(cls, "code", nb::int_(static_cast<int>(code)).ptr());
    g_classes[code] = cls;
    m.attr(name.c_str()) = nb::handle(cls);
  }

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      PyErr_SetString(ClassOf(e.status.code()), e.status.message().c_str());
    }
  });

  m.def(
      "exception_for_code",
      [](int code) { return nb::borrow<nb::object>(ClassOf(StatusCodeFromInt(code))); },
      nb::arg("code"), "The exception class raised for a StatusCode number.");
  m.def(
      "status_to_exception",
      [](int code, const std::string& message) {
        return nb::borrow<nb::object>(ClassOf(StatusCodeFromInt(code)))(message);
      },
      nb::arg("code"), nb::arg("message"),
      "An exception instance for a StatusCode number and message (not raised).");
}

}  // namespace vineyard::py
