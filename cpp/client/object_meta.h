// ObjectMeta: the metadata tree of one object — typename, fields, members —
// plus, for objects read from the server, the mapped blobs of its tree.
//
// A meta is a value: copies share the blob set (blobs are immutable), not the tree.
// Thread-safety: a const ObjectMeta may be read from many threads; writers need
// exclusive access.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "common/protocol.h"

namespace vineyard {

class Blob;
class BlobWriter;

class ObjectMeta {
 public:
  ObjectMeta();
  /// Wraps a tree as returned by the server (no blobs attached).
  static ObjectMeta FromJSON(json tree);

  void SetTypeName(const std::string& type_name);
  std::string GetTypeName() const;
  ObjectID GetId() const;            // kInvalidObjectID before creation
  void SetId(ObjectID id);
  Signature GetSignature() const;
  InstanceID GetInstanceId() const;
  void SetInstanceId(InstanceID id);
  uint64_t GetNBytes() const;
  void SetNBytes(uint64_t nbytes);
  bool IsGlobal() const;
  void SetGlobal(bool global = true);
  /// True if the object lives on the instance the tree came from (its blobs
  /// are mapped or fetched from there); for a tree not from a server: not global.
  bool IsLocal() const;
  /// The instance the tree came from (set by the client that got it).
  void SetViewer(InstanceID instance) { viewer_ = instance; }
  /// False once persisted (visible to the whole cluster).
  bool IsTransient() const;
  bool IsBlob() const { return GetTypeName() == kBlobTypename; }

  /// Adds or replaces a plain field (string, number, bool, or JSON). A JSON
  /// object is stored as its text, as vineyard does (a nested object in the
  /// tree would be a member).
  void AddKeyValue(const std::string& key, const json& value);
  bool HasKey(const std::string& key) const;
  /// A field's value; KeyError if absent or a member. A field holding the
  /// text of a JSON object is returned parsed (GetKeyValueAs<std::string>
  /// returns the text).
  Result<json> GetKeyValue(const std::string& key) const;
  template <typename T>
  Result<T> GetKeyValueAs(const std::string& key) const {
    if constexpr (std::is_same_v<T, std::string>) {
      auto it = tree().find(key);
      if (it != tree().end() && it->is_string()) return it->template get<std::string>();
    }
    VY_ASSIGN_OR_RETURN(json v, GetKeyValue(key));
    try {
      return v.get<T>();
    } catch (const std::exception& e) {
      return Status::TypeError("field '", key, "' has type ", v.type_name());
    }
  }
  /// Names of plain fields (not members, not the standard keys).
  std::vector<std::string> FieldNames() const;

  /// Adds a member: a whole tree, or an existing object or blob by id.
  void AddMember(const std::string& name, const ObjectMeta& member);
  void AddMember(const std::string& name, ObjectID id);
  void AddMember(const std::string& name, const Blob& blob);
  /// A blob member made by Client::Put from its `index`-th inline byte run.
  void AddInlineBlob(const std::string& name, size_t index, uint64_t size);
  /// A member that is the new object marked Share(token) in the same put tree.
  void AddSharedMember(const std::string& name, const std::string& token);
  /// Marks this new (id-less) object as shared under `token` within one put.
  void Share(const std::string& token);
  void AddMember(const std::string& name, const BlobWriter& blob);
  bool HasMember(const std::string& name) const;
  Result<ObjectMeta> GetMember(const std::string& name) const;
  Result<ObjectID> GetMemberId(const std::string& name) const;
  std::vector<std::string> MemberNames() const;

  /// The mapped blob `id` of this tree (after Client::GetObject).
  Result<std::shared_ptr<Blob>> GetBuffer(ObjectID id) const;
  void SetBuffer(ObjectID id, std::shared_ptr<Blob> blob);
  /// Every blob id in the tree, depth-first, without repeats.
  std::vector<ObjectID> GetBlobIds() const;
  /// The blobs mapped for this tree (after GetObject), by id.
  const std::map<ObjectID, std::shared_ptr<Blob>>& Buffers() const { return *buffers_; }
  /// Bytes of the blobs in the tree: a mapped blob's size, else the size its tree records.
  uint64_t MemoryUsage() const;

  const json& MetaData() const { return *node_; }
  /// The tree to change in place (copied first when shared: copy on write).
  json& MutableMetaData() { return mut(); }
  std::string ToString(int indent = 2) const;

 private:
  using BufferSet = std::map<ObjectID, std::shared_ptr<Blob>>;
  ObjectMeta(json tree, std::shared_ptr<BufferSet> buffers);
  ObjectMeta(std::shared_ptr<json> root, const json* node, std::shared_ptr<BufferSet> buffers);
  const json& tree() const { return *node_; }
  json& mut();

  // The tree is shared between copies and with members got from it (GetMember
  // points into its holder's tree): `node_` lies inside `*root_`, which never
  // changes while shared (mut() copies first).
  std::shared_ptr<json> root_;
  const json* node_;
  std::shared_ptr<BufferSet> buffers_;
  InstanceID viewer_ = kUnknownViewer;  // the instance that returned the tree
  static constexpr InstanceID kUnknownViewer = ~InstanceID{0};
};

}  // namespace vineyard
