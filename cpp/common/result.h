// Result<T>: a value or the Status that explains why there is none.
//
// Use it instead of out-parameters:
//   VY_ASSIGN_OR_RETURN(auto blob, client.GetBlob(id));
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include "common/status.h"

namespace vineyard {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result from an OK status has no value");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::OK() : std::get<Status>(v_); }

  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T ValueOrDie() && {
    if (!ok()) {
      fprintf(stderr, "Result::ValueOrDie on error: %s\n", status().ToString().c_str());
      abort();
    }
    return std::get<T>(std::move(v_));
  }

  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace vineyard

#define VY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                             \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

/// Evaluates `rexpr` (a Result<T>); on error returns its status, else assigns the value.
#define VY_ASSIGN_OR_RETURN(lhs, rexpr) \
  VY_ASSIGN_OR_RETURN_IMPL(VY_CONCAT(_vy_result_, __LINE__), lhs, rexpr)
