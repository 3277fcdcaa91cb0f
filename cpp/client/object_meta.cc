#include "client/object_meta.h"

#include <set>

#include "client/blob.h"
#include "common/lazy_free.h"

namespace vineyard {

namespace {

bool IsStandardKey(const std::string& key) {
  return key == meta_key::kId || key == meta_key::kSignature || key == meta_key::kInstanceId ||
         key == meta_key::kTransient || key == meta_key::kGlobal ||
         key == meta_key::kTimestamp || key == meta_key::kTypename || key == meta_key::kNBytes;
}

ObjectID IdOf(const json& tree) {
  auto it = tree.find(meta_key::kId);
  if (it == tree.end()) return kInvalidObjectID;
  if (it->is_number_unsigned()) return it->get<ObjectID>();
  if (it->is_string()) {
    auto id = ObjectIDFromString(it->get<std::string>());
    return id.ok() ? *id : kInvalidObjectID;
  }
  return kInvalidObjectID;
}

json BlobTree(ObjectID id, size_t size) {
  return json{{meta_key::kId, ObjectIDToString(id)}, {meta_key::kTypename, kBlobTypename},
              {meta_key::kNBytes, size}, {meta_key::kLength, size},
              {meta_key::kTransient, true}};
}

void CollectBlobs(const json& tree, std::vector<ObjectID>* out, std::set<ObjectID>* seen) {
  auto tn = tree.find(meta_key::kTypename);
  if (tn != tree.end() && tn->is_string() && tn->get<std::string>() == kBlobTypename) {
    ObjectID id = IdOf(tree);
    if (id != kInvalidObjectID && seen->insert(id).second) out->push_back(id);
    return;
  }
  for (const auto& [key, value] : tree.items()) {
    if (value.is_object()) CollectBlobs(value, out, seen);
  }
}

}  // namespace

ObjectMeta::ObjectMeta()
    : root_(std::make_shared<json>(json::object())),
      node_(root_.get()),
      buffers_(std::make_shared<BufferSet>()) {
  (*root_)[meta_key::kTransient] = true;
  (*root_)[meta_key::kGlobal] = false;
  (*root_)[meta_key::kNBytes] = 0;
}

ObjectMeta::ObjectMeta(json tree, std::shared_ptr<BufferSet> buffers)
    // A large tree (a many-part object) is freed off the caller's path.
    : root_(IsLargeDocument(tree, 1024) ? MakeLazyFreed(std::move(tree))
                                        : std::make_shared<json>(std::move(tree))),
      node_(root_.get()),
      buffers_(std::move(buffers)) {}

ObjectMeta::ObjectMeta(std::shared_ptr<json> root, const json* node,
                       std::shared_ptr<BufferSet> buffers)
    : root_(std::move(root)), node_(node), buffers_(std::move(buffers)) {}

json& ObjectMeta::mut() {
  // Copy on write: a tree shared with another ObjectMeta (a copy, a holder, a
  // member) is copied before it changes, so that no other one sees the change.
  if (root_.use_count() > 1 || node_ != root_.get()) {
    root_ = std::make_shared<json>(*node_);
    node_ = root_.get();
  }
  return *root_;
}

ObjectMeta ObjectMeta::FromJSON(json tree) {
  return ObjectMeta(std::move(tree), std::make_shared<BufferSet>());
}

void ObjectMeta::SetTypeName(const std::string& type_name) {
  mut()[meta_key::kTypename] = type_name;
}

std::string ObjectMeta::GetTypeName() const {
  return tree().value(meta_key::kTypename, std::string());
}

ObjectID ObjectMeta::GetId() const { return IdOf(tree()); }
void ObjectMeta::SetId(ObjectID id) { mut()[meta_key::kId] = ObjectIDToString(id); }

Signature ObjectMeta::GetSignature() const {
  auto it = tree().find(meta_key::kSignature);
  return (it != tree().end() && it->is_number_unsigned()) ? it->get<Signature>() : 0;
}

InstanceID ObjectMeta::GetInstanceId() const {
  auto it = tree().find(meta_key::kInstanceId);
  return (it != tree().end() && it->is_number_unsigned()) ? it->get<InstanceID>() : 0;
}

void ObjectMeta::SetInstanceId(InstanceID id) { mut()[meta_key::kInstanceId] = id; }

uint64_t ObjectMeta::GetNBytes() const {
  auto it = tree().find(meta_key::kNBytes);
  return (it != tree().end() && it->is_number_unsigned()) ? it->get<uint64_t>() : 0;
}

void ObjectMeta::SetNBytes(uint64_t nbytes) { mut()[meta_key::kNBytes] = nbytes; }

bool ObjectMeta::IsGlobal() const { return tree().value(meta_key::kGlobal, false); }
void ObjectMeta::SetGlobal(bool global) { mut()[meta_key::kGlobal] = global; }
bool ObjectMeta::IsTransient() const { return tree().value(meta_key::kTransient, true); }

void ObjectMeta::AddKeyValue(const std::string& key, const json& value) {
  mut()[key] = value.is_object() ? json(value.dump()) : value;
}

bool ObjectMeta::HasKey(const std::string& key) const {
  auto it = tree().find(key);
  return it != tree().end() && !it->is_object();
}

Result<json> ObjectMeta::GetKeyValue(const std::string& key) const {
  auto it = tree().find(key);
  if (it == tree().end() || it->is_object()) {
    return Status::KeyError("metadata of ", GetTypeName(), " has no field '", key, "'");
  }
  if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '{') {
      json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_object()) return parsed;
    }
  }
  return *it;
}

std::vector<std::string> ObjectMeta::FieldNames() const {
  std::vector<std::string> names;
  for (const auto& [key, value] : tree().items()) {
    if (!value.is_object() && !IsStandardKey(key)) names.push_back(key);
  }
  return names;
}

void ObjectMeta::AddMember(const std::string& name, const ObjectMeta& member) {
  mut()[name] = member.tree();
  for (const auto& [id, blob] : *member.buffers_) (*buffers_)[id] = blob;
}

void ObjectMeta::AddMember(const std::string& name, ObjectID id) {
  mut()[name] = json{{meta_key::kId, ObjectIDToString(id)}};
}

void ObjectMeta::AddMember(const std::string& name, const Blob& blob) {
  json t = BlobTree(blob.id(), blob.size());
  if (tree().contains(meta_key::kInstanceId)) t[meta_key::kInstanceId] = tree().at(meta_key::kInstanceId);
  mut()[name] = std::move(t);
}

void ObjectMeta::AddMember(const std::string& name, const BlobWriter& blob) {
  json t = BlobTree(blob.id(), blob.size());
  if (tree().contains(meta_key::kInstanceId)) t[meta_key::kInstanceId] = tree().at(meta_key::kInstanceId);
  mut()[name] = std::move(t);
}

void ObjectMeta::AddInlineBlob(const std::string& name, size_t index, uint64_t size) {
  mut()[name] = json{{meta_key::kTypename, kBlobTypename},
                     {kInlineBlobKey, index},
                     {meta_key::kLength, size},
                     {meta_key::kNBytes, size}};
}

void ObjectMeta::AddSharedMember(const std::string& name, const std::string& token) {
  mut()[name] = json{{kShareKey, token}};
}

void ObjectMeta::Share(const std::string& token) { mut()[kShareKey] = token; }

bool ObjectMeta::HasMember(const std::string& name) const {
  auto it = tree().find(name);
  return it != tree().end() && it->is_object();
}

Result<ObjectMeta> ObjectMeta::GetMember(const std::string& name) const {
  auto it = tree().find(name);
  if (it == tree().end() || !it->is_object()) {
    return Status::KeyError("metadata of ", GetTypeName(), " has no member '", name, "'");
  }
  ObjectMeta member(root_, &*it, buffers_);  // shares the tree: no copy
  member.viewer_ = viewer_;
  return member;
}

bool ObjectMeta::IsLocal() const {
  if (viewer_ == kUnknownViewer) return !IsGlobal();
  return !IsGlobal() && GetInstanceId() == viewer_;
}

Result<ObjectID> ObjectMeta::GetMemberId(const std::string& name) const {
  VY_ASSIGN_OR_RETURN(ObjectMeta m, GetMember(name));
  return m.GetId();
}

std::vector<std::string> ObjectMeta::MemberNames() const {
  std::vector<std::string> names;
  for (const auto& [key, value] : tree().items()) {
    if (value.is_object()) names.push_back(key);
  }
  return names;
}

Result<std::shared_ptr<Blob>> ObjectMeta::GetBuffer(ObjectID id) const {
  if (IsEmptyBlob(id)) return Blob::MakeEmpty();
  auto it = buffers_->find(id);
  if (it == buffers_->end()) {
    return Status::ObjectNotExists("blob ", ObjectIDToString(id),
                                   " is not mapped in this metadata: get it with GetObject()");
  }
  return it->second;
}

void ObjectMeta::SetBuffer(ObjectID id, std::shared_ptr<Blob> blob) {
  (*buffers_)[id] = std::move(blob);
}

std::vector<ObjectID> ObjectMeta::GetBlobIds() const {
  std::vector<ObjectID> ids;
  std::set<ObjectID> seen;
  CollectBlobs(tree(), &ids, &seen);
  return ids;
}

uint64_t ObjectMeta::MemoryUsage() const {
  uint64_t total = 0;
  std::set<ObjectID> seen;
  std::vector<const json*> stack{node_};
  while (!stack.empty()) {
    const json* t = stack.back();
    stack.pop_back();
    auto tn = t->find(meta_key::kTypename);
    if (tn == t->end() || !tn->is_string() || tn->get<std::string>() != kBlobTypename) {
      for (const auto& [key, value] : t->items()) {
        if (value.is_object()) stack.push_back(&value);
      }
      continue;
    }
    ObjectID id = IdOf(*t);
    if (!seen.insert(id).second) continue;
    auto mapped = buffers_->find(id);
    if (mapped != buffers_->end() && mapped->second) {
      total += mapped->second->size();
      continue;
    }
    auto n = t->find(meta_key::kLength);
    if (n == t->end() || !n->is_number_unsigned()) n = t->find(meta_key::kNBytes);
    if (n != t->end() && n->is_number_unsigned()) total += n->get<uint64_t>();
  }
  return total;
}

std::string ObjectMeta::ToString(int indent) const {
  return tree().dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace vineyard
