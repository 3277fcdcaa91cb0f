// Status: the outcome of every fallible call in vineyard.
//
// A Status is one pointer: null means OK, so success costs nothing to make,
// copy or test. An error carries a StatusCode and a message. The numeric codes
// are the wire codes of the vineyard protocol (error replies carry them), so a
// Status crosses the socket unchanged: see protocol.h.
//
// Thread-safety: a Status is a value; distinct objects may be used from
// distinct threads freely.
#pragma once

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

namespace vineyard {

/// The error codes of the vineyard wire protocol (PROTOCOL.md). The Python
/// package raises one exception class per code.
enum class StatusCode : int {
  kOK = 0,
  kInvalid = 1,
  kKeyError = 2,
  kTypeError = 3,
  kIOError = 4,
  kEndOfFile = 5,
  kNotImplemented = 6,
  kAssertionFailed = 7,
  kUserInputError = 8,
  kObjectExists = 11,
  kObjectNotExists = 12,
  kObjectSealed = 13,
  kObjectNotSealed = 14,
  kObjectIsBlob = 15,
  kObjectTypeError = 16,
  kObjectSpilled = 17,
  kObjectNotSpilled = 18,
  kMetaTreeInvalid = 21,
  kMetaTreeTypeInvalid = 22,
  kMetaTreeTypeNotExists = 23,
  kMetaTreeNameInvalid = 24,
  kMetaTreeNameNotExists = 25,
  kMetaTreeLinkInvalid = 26,
  kMetaTreeSubtreeNotExists = 27,
  kVineyardServerNotReady = 31,
  kArrowError = 32,
  kConnectionFailed = 33,
  kConnectionError = 34,
  kEtcdError = 35,
  kAlreadyStopped = 36,
  kRedisError = 37,
  kNotEnoughMemory = 41,
  kStreamDrained = 42,
  kStreamFailed = 43,
  kInvalidStreamState = 44,
  kStreamOpened = 45,
  kGlobalObjectInvalid = 51,
  kUnknownError = 255,
};

/// The protocol's name of a code, e.g. "ObjectNotExists".
const char* StatusCodeName(StatusCode code);

/// Maps a wire integer to a code; unknown integers become kUnknownError.
StatusCode StatusCodeFromInt(int code);

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;
  Status(StatusCode code, std::string message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }

  template <typename... Args>
  static Status Make(StatusCode code, Args&&... args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return Status(code, os.str());
  }

#define VINEYARD_STATUS_FACTORY(NAME)                  \
  template <typename... Args>                          \
  static Status NAME(Args&&... args) {                 \
    return Make(StatusCode::k##NAME, std::forward<Args>(args)...); \
  }                                                    \
  bool Is##NAME() const { return code() == StatusCode::k##NAME; }

  VINEYARD_STATUS_FACTORY(Invalid)
  VINEYARD_STATUS_FACTORY(KeyError)
  VINEYARD_STATUS_FACTORY(TypeError)
  VINEYARD_STATUS_FACTORY(IOError)
  VINEYARD_STATUS_FACTORY(EndOfFile)
  VINEYARD_STATUS_FACTORY(NotImplemented)
  VINEYARD_STATUS_FACTORY(AssertionFailed)
  VINEYARD_STATUS_FACTORY(UserInputError)
  VINEYARD_STATUS_FACTORY(ObjectExists)
  VINEYARD_STATUS_FACTORY(ObjectNotExists)
  VINEYARD_STATUS_FACTORY(ObjectSealed)
  VINEYARD_STATUS_FACTORY(ObjectNotSealed)
  VINEYARD_STATUS_FACTORY(ObjectIsBlob)
  VINEYARD_STATUS_FACTORY(ObjectTypeError)
  VINEYARD_STATUS_FACTORY(MetaTreeInvalid)
  VINEYARD_STATUS_FACTORY(MetaTreeNameNotExists)
  VINEYARD_STATUS_FACTORY(MetaTreeSubtreeNotExists)
  VINEYARD_STATUS_FACTORY(ConnectionFailed)
  VINEYARD_STATUS_FACTORY(ConnectionError)
  VINEYARD_STATUS_FACTORY(EtcdError)
  VINEYARD_STATUS_FACTORY(AlreadyStopped)
  VINEYARD_STATUS_FACTORY(NotEnoughMemory)
  VINEYARD_STATUS_FACTORY(GlobalObjectInvalid)
  VINEYARD_STATUS_FACTORY(StreamDrained)
  VINEYARD_STATUS_FACTORY(StreamFailed)
  VINEYARD_STATUS_FACTORY(InvalidStreamState)
  VINEYARD_STATUS_FACTORY(StreamOpened)
  VINEYARD_STATUS_FACTORY(UnknownError)
#undef VINEYARD_STATUS_FACTORY

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return ok() ? StatusCode::kOK : state_->code; }
  const std::string& message() const;
  /// "ObjectNotExists: object o... does not exist".
  std::string ToString() const;

  /// A copy of this status whose message is prefixed with `context`.
  Status WithContext(const std::string& context) const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<State> state_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);

}  // namespace vineyard

#define VY_CONCAT_IMPL(a, b) a##b
#define VY_CONCAT(a, b) VY_CONCAT_IMPL(a, b)

/// Returns from the enclosing function if `expr` is not OK.
#define VY_RETURN_NOT_OK(expr)                         \
  do {                                                 \
    ::vineyard::Status _vy_st = (expr);                \
    if (!_vy_st.ok()) return _vy_st;                   \
  } while (0)

/// Returns an error status from the enclosing function unless `cond` holds.
#define VY_RETURN_IF(cond, status) \
  do {                             \
    if (cond) return (status);     \
  } while (0)
