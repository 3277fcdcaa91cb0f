// The parts of an object record that many records repeat, kept once.
//
// RecordFields: a record's fields (typename, nbytes and user fields; no
// standard keys, no members), stored as the JSON text of one object rather
// than as a document. A get splices the text into its reply as it is, and a
// record pays for one string instead of a map node, a key and a value per field.
//
// Both the fields and member names are interned: records whose fields are
// equal share one RecordFields, and equal member names one MemberName. A store of
// many chunks of one shape and type (batches of a table, tensors of one size)
// keeps them once. The last holder to let go erases the entry.
//
// Members: an object's member list, (interned name, id) pairs in one
// allocation.
//
// Thread-safety: Of(), InternName() and the release of the last reference may
// run on any thread (one internal mutex per pool, taken last: never held while
// taking another). A Members is not synchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/protocol.h"

namespace vineyard {

class RecordFields {
 public:
  /// The interned fields of `object`, which must be a JSON object.
  static std::shared_ptr<const RecordFields> Of(const json& object);
  /// No fields ("{}"), shared.
  static const std::shared_ptr<const RecordFields>& Empty();

  /// "{...}": compact, keys sorted, invalid UTF-8 replaced (as dump() writes it).
  const std::string& text() const { return text_; }
  /// The "typename" field, or empty when it is missing or not a string.
  const std::string& type_name() const { return type_name_; }
  /// The fields as a document.
  json ToJson() const;

  /// Distinct field sets alive now.
  static size_t InternedCount();

 private:
  RecordFields(std::string text, std::string type_name)
      : text_(std::move(text)), type_name_(std::move(type_name)) {}

  std::string text_;
  std::string type_name_;
};

/// A member's name, and the same as a JSON string (quoted and escaped, as a
/// reply writes it: made once per distinct name, not per reply).
struct MemberName {
  std::string text;
  std::string quoted;
};

/// `name` interned: equal names share one MemberName while any holder keeps it.
std::shared_ptr<const MemberName> InternName(std::string_view name);

/// One member of an object: its name in the object, and its id.
struct Member {
  std::shared_ptr<const MemberName> name;
  ObjectID id = 0;
};

/// An object's members in order, in one allocation (most objects have a few).
class Members {
 public:
  Members() = default;
  Members(const Members& other) { *this = other; }
  Members(Members&& other) noexcept { *this = std::move(other); }
  Members& operator=(const Members& other);
  Members& operator=(Members&& other) noexcept;

  /// Room for `n` members in all (no allocation while appending up to it).
  void reserve(size_t n);
  /// Appends a member (its name interned).
  void emplace_back(std::string_view name, ObjectID id);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Member& operator[](size_t i) const { return data_[i]; }
  const Member* begin() const { return data_.get(); }
  const Member* end() const { return data_.get() + size_; }

 private:
  std::unique_ptr<Member[]> data_;
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
};

}  // namespace vineyard
