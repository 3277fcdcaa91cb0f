// Array<T>: a fixed-size array of trivially copyable T in one blob, in
// vineyard's layout — typename "vineyard::Array<T>" (T as vineyard spells it:
// int, int64, uint32, uint64, float, double, ...), field "size_" (the number
// of elements), member "buffer_" (the elements, packed).
//
//   VY_ASSIGN_OR_RETURN(auto builder, ArrayBuilder<double>::Make(*client, 1000));
//   for (size_t i = 0; i < builder->size(); ++i) (*builder)[i] = i * 0.5;
//   VY_ASSIGN_OR_RETURN(ObjectID id, builder->Seal(*client));      // one round trip
//   VY_ASSIGN_OR_RETURN(ObjectMeta meta, client->GetObject(id));
//   VY_ASSIGN_OR_RETURN(auto array, Array<double>::FromMeta(meta));  // mapped, no copy
//
// The Python client reads it as a read-only numpy array over the blob.
// Thread-safety: a const Array may be read from many threads; a builder is
// used by one thread at a time.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "client/blob.h"
#include "client/client.h"
#include "client/object_builder.h"
#include "client/object_meta.h"

namespace vineyard {

/// The name vineyard gives T in typenames.
template <typename T>
constexpr const char* ArrayValueType() {
  if constexpr (std::is_same_v<T, int8_t>) return "int8";
  else if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  else if constexpr (std::is_same_v<T, int16_t>) return "int16";
  else if constexpr (std::is_same_v<T, uint16_t>) return "uint16";
  else if constexpr (std::is_same_v<T, int32_t>) return "int";
  else if constexpr (std::is_same_v<T, uint32_t>) return "uint32";
  else if constexpr (std::is_same_v<T, int64_t>) return "int64";
  else if constexpr (std::is_same_v<T, uint64_t>) return "uint64";
  else if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, double>) return "double";
  else static_assert(sizeof(T) == 0, "Array<T>: T has no vineyard type name");
}

template <typename T>
std::string ArrayTypeName() {
  return std::string("vineyard::Array<") + ArrayValueType<T>() + ">";
}

/// A sealed Array<T>: its elements, mapped read-only (kept mapped while the
/// Array or a copy of it lives).
template <typename T>
class Array {
 public:
  /// The array of a tree got from the server (Client::GetObject, RPCClient::GetObject).
  /// ObjectTypeError for another typename; Invalid when the blob is missing or
  /// shorter than size_ elements.
  static Result<Array<T>> FromMeta(const ObjectMeta& meta) {
    if (meta.GetTypeName() != ArrayTypeName<T>()) {
      return Status::ObjectTypeError("expected ", ArrayTypeName<T>(), ", got '",
                                     meta.GetTypeName(), "'");
    }
    VY_ASSIGN_OR_RETURN(uint64_t size, meta.GetKeyValueAs<uint64_t>("size_"));
    VY_ASSIGN_OR_RETURN(ObjectID blob_id, meta.GetMemberId("buffer_"));
    VY_ASSIGN_OR_RETURN(std::shared_ptr<Blob> blob, meta.GetBuffer(blob_id));
    if (blob->size() / sizeof(T) < size) {
      return Status::Invalid(ArrayTypeName<T>(), " of ", size, " elements has a blob of ",
                             blob->size(), " bytes");
    }
    return Array<T>(meta, std::move(blob), size);
  }

  ObjectID id() const { return meta_.GetId(); }
  const ObjectMeta& meta() const { return meta_; }
  size_t size() const { return size_; }
  const T* data() const { return reinterpret_cast<const T*>(buffer_->data()); }
  const T& operator[](size_t i) const { return data()[i]; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }

 private:
  Array(ObjectMeta meta, std::shared_ptr<Blob> buffer, size_t size)
      : meta_(std::move(meta)), buffer_(std::move(buffer)), size_(size) {}

  ObjectMeta meta_;
  std::shared_ptr<Blob> buffer_;
  size_t size_;
};

/// Builds an Array<T> in a blob of the server's shared memory, written in place.
template <typename T>
class ArrayBuilder : public ObjectBuilder {
  static_assert(std::is_trivially_copyable_v<T>, "Array<T> holds trivially copyable T");

 public:
  /// Room for `size` elements (uninitialised).
  static Result<std::unique_ptr<ArrayBuilder<T>>> Make(Client& client, size_t size) {
    VY_ASSIGN_OR_RETURN(auto writer, client.CreateBlob(size * sizeof(T)));
    return std::unique_ptr<ArrayBuilder<T>>(new ArrayBuilder<T>(std::move(writer), size));
  }
  /// A copy of `values`.
  static Result<std::unique_ptr<ArrayBuilder<T>>> Make(Client& client,
                                                       const std::vector<T>& values) {
    VY_ASSIGN_OR_RETURN(auto builder, Make(client, values.size()));
    if (!values.empty()) {
      VY_RETURN_NOT_OK(builder->writer_->Copy(0, values.data(), values.size() * sizeof(T)));
    }
    return builder;
  }

  size_t size() const { return size_; }
  T* data() { return reinterpret_cast<T*>(writer_->data()); }
  T& operator[](size_t i) { return data()[i]; }
  bool sealed() const override { return sealed_; }

  /// Seals the blob and creates the array's metadata: one round trip.
  Result<ObjectID> Seal(Client& client) override {
    if (sealed_) return Status::ObjectSealed(ArrayTypeName<T>(), " is already sealed");
    ObjectMeta meta;
    meta.SetTypeName(ArrayTypeName<T>());
    meta.AddKeyValue("size_", static_cast<uint64_t>(size_));
    meta.AddMember("buffer_", *writer_);
    meta.SetNBytes(size_ * sizeof(T));
    VY_ASSIGN_OR_RETURN(ObjectID id, client.Put(meta, {writer_.get()}));
    sealed_ = true;
    return id;
  }

 private:
  ArrayBuilder(std::unique_ptr<BlobWriter> writer, size_t size)
      : writer_(std::move(writer)), size_(size) {}

  std::unique_ptr<BlobWriter> writer_;  // dropped on the server if never sealed
  size_t size_;
  bool sealed_ = false;
};

}  // namespace vineyard
