#include "common/status.h"

namespace vineyard {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOK: return "OK";
    case StatusCode::kInvalid: return "Invalid";
    case StatusCode::kKeyError: return "KeyError";
    case StatusCode::kTypeError: return "TypeError";
    case StatusCode::kIOError: return "IOError";
    case StatusCode::kEndOfFile: return "EndOfFile";
    case StatusCode::kNotImplemented: return "NotImplemented";
    case StatusCode::kAssertionFailed: return "AssertionFailed";
    case StatusCode::kUserInputError: return "UserInputError";
    case StatusCode::kObjectExists: return "ObjectExists";
    case StatusCode::kObjectNotExists: return "ObjectNotExists";
    case StatusCode::kObjectSealed: return "ObjectSealed";
    case StatusCode::kObjectNotSealed: return "ObjectNotSealed";
    case StatusCode::kObjectIsBlob: return "ObjectIsBlob";
    case StatusCode::kObjectTypeError: return "ObjectTypeError";
    case StatusCode::kObjectSpilled: return "ObjectSpilled";
    case StatusCode::kObjectNotSpilled: return "ObjectNotSpilled";
    case StatusCode::kMetaTreeInvalid: return "MetaTreeInvalid";
    case StatusCode::kMetaTreeTypeInvalid: return "MetaTreeTypeInvalid";
    case StatusCode::kMetaTreeTypeNotExists: return "MetaTreeTypeNotExists";
    case StatusCode::kMetaTreeNameInvalid: return "MetaTreeNameInvalid";
    case StatusCode::kMetaTreeNameNotExists: return "MetaTreeNameNotExists";
    case StatusCode::kMetaTreeLinkInvalid: return "MetaTreeLinkInvalid";
    case StatusCode::kMetaTreeSubtreeNotExists: return "MetaTreeSubtreeNotExists";
    case StatusCode::kVineyardServerNotReady: return "VineyardServerNotReady";
    case StatusCode::kArrowError: return "ArrowError";
    case StatusCode::kConnectionFailed: return "ConnectionFailed";
    case StatusCode::kConnectionError: return "ConnectionError";
    case StatusCode::kEtcdError: return "EtcdError";
    case StatusCode::kAlreadyStopped: return "AlreadyStopped";
    case StatusCode::kRedisError: return "RedisError";
    case StatusCode::kNotEnoughMemory: return "NotEnoughMemory";
    case StatusCode::kStreamDrained: return "StreamDrained";
    case StatusCode::kStreamFailed: return "StreamFailed";
    case StatusCode::kInvalidStreamState: return "InvalidStreamState";
    case StatusCode::kStreamOpened: return "StreamOpened";
    case StatusCode::kGlobalObjectInvalid: return "GlobalObjectInvalid";
    case StatusCode::kUnknownError: return "UnknownError";
  }
  return "UnknownError";
}

StatusCode StatusCodeFromInt(int code) {
  auto c = static_cast<StatusCode>(code);
  // A name other than the fallback means the integer is one of ours.
  if (c == StatusCode::kUnknownError ||
      std::string(StatusCodeName(c)) != "UnknownError") {
    return c;
  }
  return StatusCode::kUnknownError;
}

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOK) {
    state_ = std::make_unique<State>(State{code, std::move(message)});
  }
}

Status::Status(const Status& other)
    : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) {
    state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
  }
  return *this;
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return ok() ? kEmpty : state_->message;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(state_->code)) + ": " + state_->message;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return Status::OK();
  return Status(state_->code, context + ": " + state_->message);
}

std::ostream& operator<<(std::ostream& os, const Status& status) {
  return os << status.ToString();
}

}  // namespace vineyard
