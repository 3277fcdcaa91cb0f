#include "server/meta_service.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include <re2/re2.h>

#include "common/lazy_free.h"

namespace vineyard {

namespace {

uint64_t NowMs() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

bool IsStandardKey(const std::string& key) {
  return key == meta_key::kId || key == meta_key::kSignature || key == meta_key::kInstanceId ||
         key == meta_key::kTransient || key == meta_key::kGlobal || key == meta_key::kTimestamp;
}

Result<ObjectID> TreeId(const json& tree) {
  auto it = tree.find(meta_key::kId);
  if (it == tree.end()) return Status::Invalid("metadata tree has no 'id'");
  if (it->is_string()) return ObjectIDFromString(it->get<std::string>());
  if (it->is_number_unsigned()) return it->get<ObjectID>();
  return Status::Invalid("metadata tree has a malformed 'id'");
}

// Nesting depth of a JSON value (a scalar is 0), without recursion.
size_t JsonDepth(const json& value) {
  size_t deepest = 0;
  std::vector<std::pair<const json*, size_t>> stack{{&value, 0}};
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const auto& child : *v) stack.emplace_back(&child, depth + 1);
  }
  return deepest;
}

// The serialized size of a record's fields: what storing them really costs.
uint64_t SerializedSize(const json& fields) {
  return fields.dump(-1, ' ', false, json::error_handler_t::replace).size();
}

Status CheckFieldDepth(const std::string& key, const json& value, size_t max_depth) {
  if (JsonDepth(value) > max_depth) {
    return Status::Invalid("field '", key, "' nests deeper than ", max_depth,
                           " levels: flatten it, or raise --meta_max_depth");
  }
  return Status::OK();
}

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

// A glob (fnmatch without flags: `*`, `?`, `[...]` with `!` or `^`, `\` escapes)
// as an RE2 pattern over bytes (Latin-1), so matching is linear.
std::string GlobToRegex(const std::string& glob) {
  auto hex = [](unsigned char c) {
    char buf[8];
    snprintf(buf, sizeof(buf), "\\x{%02x}", c);
    return std::string(buf);
  };
  std::string out;
  for (size_t i = 0; i < glob.size(); ++i) {
    char c = glob[i];
    if (c == '*') {
      while (i + 1 < glob.size() && glob[i + 1] == '*') ++i;
      out += ".*";
    } else if (c == '?') {
      out += '.';
    } else if (c == '\\' && i + 1 < glob.size()) {
      out += hex(static_cast<unsigned char>(glob[++i]));
    } else if (c == '[') {
      // A bracket expression; without a closing ']' the '[' is literal.
      size_t j = i + 1;
      if (j < glob.size() && (glob[j] == '!' || glob[j] == '^')) ++j;
      if (j < glob.size() && glob[j] == ']') ++j;
      while (j < glob.size() && glob[j] != ']') ++j;
      if (j >= glob.size()) {
        out += hex('[');
        continue;
      }
      size_t k = i + 1;
      out += '[';
      if (glob[k] == '!' || glob[k] == '^') {
        out += '^';
        ++k;
      }
      for (bool first = true; k < j; ++k, first = false) {
        if (glob[k] == '-' && !first && k + 1 < j) {
          out += '-';
        } else {
          out += hex(static_cast<unsigned char>(glob[k]));
        }
      }
      out += ']';
      i = j;
    } else {
      out += hex(static_cast<unsigned char>(c));
    }
  }
  return out;
}

using Matcher = std::function<bool(const std::string&)>;

// A full-match matcher for a list request's pattern: RE2 (linear time, bounded
// memory, no recursion), so no pattern or subject can stall or crash the server.
Result<Matcher> MakeMatcher(const ListQuery& query) {
  if (query.pattern.size() > MetaService::kMaxPatternLength) {
    return Status::Invalid("the ", query.regex ? "regular expression" : "glob", " is ",
                           query.pattern.size(), " characters long, more than the ",
                           MetaService::kMaxPatternLength, " allowed: use a shorter pattern");
  }
  RE2::Options options;
  options.set_log_errors(false);
  options.set_dot_nl(true);
  std::string pattern = query.pattern;
  if (!query.regex) {
    options.set_encoding(RE2::Options::EncodingLatin1);
    pattern = GlobToRegex(query.pattern);
  }
  auto re = std::make_shared<RE2>(pattern, options);
  if (!re->ok()) {
    return Status::Invalid("invalid ", query.regex ? "regular expression" : "glob", " '",
                           query.pattern.substr(0, 200), "': ", re->error());
  }
  return Matcher([re](const std::string& s) { return RE2::FullMatch(s, *re); });
}

}  // namespace

MetaService::MetaService(InstanceID instance_id, IdGenerator* ids, BulkStore* store,
                         MetaBackend* backend, const MetaLimits& limits)
    : instance_id_(instance_id), ids_(ids), store_(store), backend_(backend), limits_(limits) {}

Status MetaService::ChargeLocked(uint64_t bytes, const char* what) {
  if (bytes > limits_.memory_limit || memory_usage_ > limits_.memory_limit - bytes) {
    return Status::NotEnoughMemory(what, " needs ", bytes, " bytes of metadata memory, but ",
                                   memory_usage_, " of ", limits_.memory_limit,
                                   " are in use: delete objects or names, or raise "
                                   "--meta_memory_limit");
  }
  memory_usage_ += bytes;
  return Status::OK();
}

uint64_t MetaService::ExpandedNodes(const std::vector<ObjectID>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t nodes = 0;
  for (ObjectID id : ids) {
    if (ExistsLocked(id)) nodes = SaturatingAdd(nodes, NodesLocked(id));
  }
  return nodes;
}

uint64_t MetaService::NodesLocked(ObjectID id) const {
  auto it = objects_.find(id);
  return it == objects_.end() ? 1 : it->second.nodes;
}

void MetaService::SetChangeListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  on_change_ = std::move(listener);
}

void MetaService::NotifyChangedLocked() {
  if (on_change_) on_change_();
}

Status MetaService::AllExistLocked(const std::vector<ObjectID>& ids) const {
  for (ObjectID id : ids) {
    if (!ExistsLocked(id) && id != kInvalidObjectID) {
      return Status::ObjectNotExists("object ", ObjectIDToString(id), " does not exist");
    }
  }
  return Status::OK();
}

bool MetaService::ExistsLocked(ObjectID id) const {
  if (objects_.count(id) > 0) return true;
  return IsBlob(id) && store_->Exists(id);
}

Result<ObjectID> MetaService::ResolveMemberLocked(const std::string& name, const json& subtree,
                                                  bool parent_global) {
  auto parsed = TreeId(subtree);
  if (!parsed.ok()) {
    return Status::Invalid("member '", name, "' has no valid 'id': create the member first (",
                           parsed.status().message(), ")");
  }
  ObjectID id = *parsed;
  if (IsBlob(id) && store_->Exists(id)) {
    if (!store_->IsSealed(id)) {
      return Status::ObjectNotSealed("member '", name, "': blob ", ObjectIDToString(id),
                                     " is not sealed: seal it before using it in metadata");
    }
    VY_RETURN_NOT_OK(store_->Adopt(id));  // held by metadata: no longer dies with its creator
    return id;
  }
  auto known = objects_.find(id);
  if (known != objects_.end()) {
    if (known->second.instance_id != instance_id_ && !parent_global) {
      return Status::GlobalObjectInvalid("member '", name, "' (", ObjectIDToString(id),
                                         ") lives on instance ", known->second.instance_id,
                                         ": only global objects may hold remote members");
    }
    return id;
  }
  InstanceID member_instance = subtree.value(meta_key::kInstanceId, instance_id_);
  if (member_instance != instance_id_) {
    if (!parent_global) {
      return Status::GlobalObjectInvalid("member '", name, "' (", ObjectIDToString(id),
                                         ") lives on instance ", member_instance,
                                         ": only global objects may hold remote members");
    }
    // A remote object we have not seen: keep its tree as given.
    Record rec;
    json fields = json::object();
    for (const auto& [key, value] : subtree.items()) {
      if (IsStandardKey(key) || value.is_object()) continue;
      VY_RETURN_NOT_OK(CheckFieldDepth(key, value, limits_.max_depth));
      fields[key] = value;
    }
    rec.fields = RecordFields::Of(fields);
    rec.bytes = kRecordOverhead + rec.fields->text().size();
    VY_RETURN_NOT_OK(ChargeLocked(rec.bytes, "the remote member"));
    rec.instance_id = member_instance;
    rec.signature = subtree.value(meta_key::kSignature, Signature{0});
    rec.transient = false;
    rec.timestamp = NowMs();
    objects_.emplace(id, std::move(rec));
    return id;
  }
  return Status::ObjectNotExists("member '", name, "' refers to ", ObjectIDToString(id),
                                 ", which does not exist");
}

Result<CreatedObject> MetaService::Create(const json& tree) {
  return CreateFrom(const_cast<json&>(tree), /*take=*/false);  // read only
}

Result<CreatedObject> MetaService::Create(json&& tree) { return CreateFrom(tree, true); }

Result<CreatedObject> MetaService::CreateFrom(json& tree, bool take) {
  auto tn = tree.find(meta_key::kTypename);
  if (tn == tree.end() || !tn->is_string() || tn->get<std::string>().empty()) {
    return Status::Invalid("metadata must have a non-empty string 'typename'");
  }
  if (tn->get<std::string>() == kBlobTypename) {
    return Status::Invalid("cannot create metadata of type vineyard::Blob: create a blob instead");
  }
  auto inst = tree.find(meta_key::kInstanceId);
  if (inst == tree.end() || !inst->is_number_unsigned()) {
    return Status::Invalid("metadata must have an 'instance_id' (the instance it is created on)");
  }
  if (inst->get<InstanceID>() != instance_id_) {
    return Status::Invalid("metadata has instance_id ", inst->get<InstanceID>(),
                           " but this is instance ", instance_id_);
  }
  bool global = false;
  auto g = tree.find(meta_key::kGlobal);
  if (g != tree.end() && g->is_boolean()) global = g->get<bool>();

  // Fields and their cost are worked out before taking the lock.
  Record rec;
  rec.instance_id = instance_id_;
  rec.global = global;
  json fields = json::object();
  std::vector<std::pair<std::string, const json*>> member_trees;
  uint64_t bytes = kRecordOverhead;
  for (auto& [key, value] : tree.items()) {
    if (IsStandardKey(key)) continue;
    if (value.is_object()) {
      member_trees.emplace_back(key, &value);
      bytes += kEntryOverhead + key.size();
    } else {
      VY_RETURN_NOT_OK(CheckFieldDepth(key, value, limits_.max_depth));
      if (take) {
        fields[key] = std::move(value);
      } else {
        fields[key] = value;
      }
    }
  }
  rec.fields = RecordFields::Of(fields);
  bytes += rec.fields->text().size();

  rec.members.reserve(member_trees.size());
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, subtree] : member_trees) {
    VY_ASSIGN_OR_RETURN(ObjectID member, ResolveMemberLocked(key, *subtree, global));
    rec.members.emplace_back(key, member);
  }
  uint64_t nodes = 1;
  uint32_t depth = 1;
  for (const auto& [name, member] : rec.members) {
    auto m = objects_.find(member);
    uint32_t member_depth = m == objects_.end() ? 1 : m->second.depth;
    depth = std::max<uint32_t>(depth, member_depth + 1);
    nodes = SaturatingAdd(nodes, m == objects_.end() ? 1 : m->second.nodes);
  }
  if (depth > limits_.max_depth) {
    return Status::Invalid("the tree would be ", depth, " levels deep, more than the ",
                           limits_.max_depth,
                           " allowed: flatten it, or raise --meta_max_depth");
  }
  if (nodes > limits_.max_nodes) {
    return Status::Invalid("the tree would expand to ", nodes, " nodes, more than the ",
                           limits_.max_nodes,
                           " allowed (a shared member counts each time it appears): "
                           "share less, or raise --meta_max_nodes");
  }
  rec.depth = depth;
  rec.nodes = nodes;
  rec.bytes = bytes;
  VY_RETURN_NOT_OK(ChargeLocked(bytes, "the object"));
  auto sig = tree.find(meta_key::kSignature);
  rec.signature = (sig != tree.end() && sig->is_number_unsigned()) ? sig->get<Signature>()
                                                                   : ids_->NextSignature();
  rec.timestamp = NowMs();
  ObjectID id = ids_->NextObjectID();
  for (const auto& [name, member] : rec.members) referrers_[member].Insert(id);
  CreatedObject created{id, rec.signature, instance_id_};
  objects_.emplace(id, std::move(rec));
  NotifyChangedLocked();
  return created;
}

namespace {

// A member that names an object to create: an object with a typename and no id.
bool IsNewMember(const json& node) {
  if (node.contains(meta_key::kId)) return false;
  auto tn = node.find(meta_key::kTypename);
  return tn != node.end() && tn->is_string() && tn->get<std::string>() != kBlobTypename;
}

json ReferenceTo(ObjectID id, const std::string& type_name, InstanceID instance) {
  return json{{meta_key::kId, ObjectIDToString(id)},
              {meta_key::kTypename, type_name},
              {meta_key::kInstanceId, instance}};
}

}  // namespace

Status MetaService::CreateMembers(json* root, const std::vector<ObjectID>& inline_blobs,
                                  std::map<std::string, json>* shared,
                                  std::vector<ObjectID>* made) {
  // Post-order without recursion: a node is created once its members are.
  struct Frame {
    json* node;
    bool expanded;
  };
  std::vector<Frame> stack{{root, false}};
  while (!stack.empty()) {
    Frame f = stack.back();
    stack.pop_back();
    if (!f.expanded) {
      stack.push_back({f.node, true});
      for (auto& [key, value] : f.node->items()) {
        if (!value.is_object()) continue;
        auto inl = value.find(kInlineBlobKey);
        if (inl != value.end()) {
          if (!inl->is_number_unsigned() || inl->get<uint64_t>() >= inline_blobs.size()) {
            return Status::Invalid("member '", key, "': '", kInlineBlobKey, "' must be an index "
                                   "below ", inline_blobs.size(), ", the inline blobs sent");
          }
          ObjectID blob = inline_blobs[inl->get<uint64_t>()];
          value = ReferenceTo(blob, kBlobTypename, instance_id_);
          continue;
        }
        auto share = value.find(kShareKey);
        if (share != value.end() && !IsNewMember(value)) {
          auto ref = share->is_string() ? shared->find(share->get<std::string>()) : shared->end();
          if (ref == shared->end()) {
            return Status::Invalid("member '", key, "' refers to the shared member ",
                                   share->dump(), " that the tree does not define");
          }
          value = ref->second;
          continue;
        }
        if (IsNewMember(value)) stack.push_back({&value, false});
      }
      continue;
    }
    if (f.node == root) continue;  // the caller creates the root
    json& node = *f.node;
    if (!node.contains(meta_key::kInstanceId)) node[meta_key::kInstanceId] = instance_id_;
    std::string token;
    auto share = node.find(kShareKey);
    if (share != node.end()) {
      if (!share->is_string()) {
        return Status::Invalid("'", kShareKey, "' must be a string, not ", share->type_name());
      }
      token = share->get<std::string>();
      node.erase(share);
    }
    std::string type_name = node[meta_key::kTypename].get<std::string>();
    auto created = Create(std::move(node));  // replaced by a reference below
    if (!created.ok()) {
      return Status(created.status().code(),
                    "a new member of type " + type_name + ": " + created.status().message());
    }
    made->push_back(created->id);
    node = ReferenceTo(created->id, type_name, instance_id_);
    node[meta_key::kSignature] = created->signature;
    if (!token.empty()) (*shared)[token] = node;
  }
  return Status::OK();
}

Result<CreatedObject> MetaService::CreateTree(json tree, const std::vector<ObjectID>& inline_blobs,
                                              std::vector<ObjectID>* made) {
  if (!tree.is_object()) return Status::Invalid("metadata must be a JSON object");
  tree.erase(kShareKey);  // the root is created once anyway
  // Shared definitions (a member with "__vy_share" and a typename) move out of
  // the tree and are created first, so every reference finds them.
  std::vector<std::pair<std::string, json>> definitions;
  {
    std::vector<json*> pending{&tree};
    while (!pending.empty()) {
      json* n = pending.back();
      pending.pop_back();
      for (auto& [key, value] : n->items()) {
        if (!value.is_object()) continue;
        auto share = value.find(kShareKey);
        if (share != value.end() && IsNewMember(value)) {
          if (!share->is_string()) {
            return Status::Invalid("'", kShareKey, "' must be a string, not ",
                                   share->type_name());
          }
          json token = *share;
          definitions.emplace_back(token.get<std::string>(), std::move(value));
          value = json{{kShareKey, std::move(token)}};
          continue;
        }
        pending.push_back(&value);
      }
    }
  }
  auto undo = [&](const Status& cause) -> Status {
    DeleteRequest r;
    r.deep = false;
    for (auto it = made->rbegin(); it != made->rend(); ++it) {
      r.ids = {*it};
      std::vector<ObjectID> unused;
      (void)Delete(r, &unused);
    }
    made->clear();
    return cause;
  };
  std::map<std::string, json> shared;
  for (auto& [token, definition] : definitions) {
    if (shared.count(token) > 0) {
      return undo(Status::Invalid("the shared member '", token, "' is defined twice"));
    }
    json holder = json{{"member", std::move(definition)}};
    holder["member"][kShareKey] = token;
    Status st = CreateMembers(&holder, inline_blobs, &shared, made);
    if (!st.ok()) return undo(st);
  }
  Status st = CreateMembers(&tree, inline_blobs, &shared, made);
  if (!st.ok()) return undo(st);
  auto created = Create(std::move(tree));
  LazyFree(tree);  // what is left of a large tree is freed off the request's path
  if (!created.ok()) return undo(created.status());
  return created;
}

void MetaService::SnapshotLocked(const std::vector<ObjectID>& roots, Snapshot* out) const {
  std::vector<ObjectID> pending(roots.begin(), roots.end());
  while (!pending.empty()) {
    ObjectID id = pending.back();
    pending.pop_back();
    if (out->count(id) > 0) continue;
    Node& node = (*out)[id];
    auto it = objects_.find(id);
    if (it == objects_.end()) {
      // A local blob: its tree comes from the bulk store.
      // The published client's sync_meta() asks for id 0xffff...: it expects a
      // blob standing for the whole store, sized to the memory limit.
      auto size = id == kInvalidObjectID ? Result<uint64_t>(store_->limit()) : store_->Size(id);
      node.blob_size = size.ok() ? *size : 0;
      continue;
    }
    const Record& rec = it->second;
    node.fields = rec.fields;
    node.members = rec.members;
    node.signature = rec.signature;
    node.instance_id = rec.instance_id;
    node.transient = rec.transient;
    node.global = rec.global;
    node.timestamp = rec.timestamp;
    node.remote_blob = rec.remote_blob;
    for (const auto& [name, member] : rec.members) pending.push_back(member);
  }
}

json MetaService::Expand(const Snapshot& snapshot, ObjectID root,
                         std::unordered_set<ObjectID>* seen) const {
  // Each distinct fields text is parsed once: members met again, and records
  // sharing interned fields, copy the document.
  std::unordered_map<const RecordFields*, json> parsed;
  auto fields_of = [&](const RecordFields* fields) -> const json& {
    auto it = parsed.find(fields);
    if (it == parsed.end()) it = parsed.emplace(fields, fields->ToJson()).first;
    return it->second;
  };
  auto header = [&](ObjectID id, const Node& node) {
    if (!node.fields || node.remote_blob) {
      // A blob: its size is known here only for local ones (vineyard's
      // cluster layout does not carry the size of another instance's blob).
      uint64_t n = node.blob_size;
      return json{{meta_key::kId, ObjectIDToString(id)}, {meta_key::kTypename, kBlobTypename},
                  {meta_key::kInstanceId, node.remote_blob ? node.instance_id : instance_id_},
                  {meta_key::kNBytes, n}, {meta_key::kLength, n},
                  {meta_key::kTransient, true}};
    }
    json tree = fields_of(node.fields.get());
    tree[meta_key::kId] = ObjectIDToString(id);
    tree[meta_key::kSignature] = node.signature;
    tree[meta_key::kInstanceId] = node.instance_id;
    tree[meta_key::kTransient] = node.transient;
    tree[meta_key::kGlobal] = node.global;
    tree[meta_key::kTimestamp] = node.timestamp;
    return tree;
  };
  // Depth-first with an explicit stack: each frame is a tree being filled in and
  // the index of its next member. Members of a JSON object are map nodes, so
  // `target` stays valid while siblings are added.
  struct Frame {
    const Node* node;
    json* target;
    size_t next;
  };
  const Node& top = snapshot.at(root);
  json result = header(root, top);
  if (seen != nullptr) seen->insert(root);
  std::vector<Frame> stack{{&top, &result, 0}};
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == f.node->members.size()) {
      stack.pop_back();
      continue;
    }
    const auto& [name, member] = f.node->members[f.next++];
    const Node& child = snapshot.at(member);
    json& slot = (*f.target)[name->text];
    if (seen != nullptr && child.fields && !seen->insert(member).second) {
      slot = json{{kSharedMemberRef, ObjectIDToString(member)}};  // sent in full before
      continue;
    }
    slot = header(member, child);
    stack.push_back({&child, &slot, 0});
  }
  return result;
}

Result<json> MetaService::Get(const std::vector<ObjectID>& ids, bool share_members) {
  std::unique_lock<std::mutex> lock(mu_);
  VY_RETURN_NOT_OK(AllExistLocked(ids));
  uint64_t nodes = 0;
  for (ObjectID id : ids) {
    // Shared members sent once: each tree stays within its own bound (checked
    // when it was created) and the reply is linear in distinct objects.
    if (!share_members) nodes = SaturatingAdd(nodes, NodesLocked(id));
  }
  if (nodes > limits_.max_nodes) {
    return Status::Invalid("the reply would hold ", nodes, " nodes, more than the ",
                           limits_.max_nodes, " allowed: ask for fewer objects at once, "
                           "or raise --meta_max_nodes");
  }
  Snapshot snapshot;
  SnapshotLocked(ids, &snapshot);
  lock.unlock();
  json trees = json::object();
  std::unordered_set<ObjectID> seen;
  for (ObjectID id : ids) {
    trees[ObjectIDToString(id)] = Expand(snapshot, id, share_members ? &seen : nullptr);
  }
  return trees;
}

Status MetaService::GetText(const std::vector<ObjectID>& ids, std::string* out,
                            std::vector<ObjectID>* local_blobs) {
  std::unique_lock<std::mutex> lock(mu_);
  VY_RETURN_NOT_OK(AllExistLocked(ids));
  Snapshot snapshot;
  SnapshotLocked(ids, &snapshot);
  lock.unlock();

  auto is_blob = [](const Node& node) {
    return !node.fields || node.remote_blob || node.fields->type_name() == kBlobTypename;
  };
  // The tree of `id` up to its members: what Expand's header() makes, with the
  // closing brace left off when `open` (members follow).
  auto header = [&](ObjectID id, const Node& node) {
    const std::string idtext = ObjectIDToString(id);
    if (!node.fields || node.remote_blob) {
      const InstanceID owner = node.remote_blob ? node.instance_id : instance_id_;
      if (owner == instance_id_) local_blobs->push_back(id);
      const std::string n = std::to_string(node.blob_size);
      *out += "{\"id\":\"" + idtext + "\",\"instance_id\":" + std::to_string(owner) +
              ",\"length\":" + n + ",\"nbytes\":" + n +
              ",\"transient\":true,\"typename\":\"" + kBlobTypename + "\"}";
      return false;
    }
    if (is_blob(node) && node.instance_id == instance_id_) local_blobs->push_back(id);
    const std::string& fields = node.fields->text();  // "{...}"
    out->append(fields, 0, fields.size() - 1);
    if (fields.size() > 2) *out += ',';
    *out += "\"id\":\"" + idtext + "\",\"signature\":" + std::to_string(node.signature) +
            ",\"instance_id\":" + std::to_string(node.instance_id) +
            ",\"transient\":" + (node.transient ? "true" : "false") +
            ",\"global\":" + (node.global ? "true" : "false") + ",\"" +
            meta_key::kTimestamp + "\":" + std::to_string(node.timestamp);
    return true;
  };
  struct Frame {
    const Node* node;
    size_t next;
    bool leaf_blob;  // a blob record: its members are not blobs of the reply
  };
  std::unordered_set<ObjectID> seen;
  std::unordered_set<ObjectID> written;
  *out += '{';
  for (ObjectID root : ids) {
    if (!written.insert(root).second) continue;  // each root once
    if (written.size() > 1) *out += ',';
    *out += '"' + ObjectIDToString(root) + "\":";
    const Node& top = snapshot.at(root);
    seen.insert(root);
    if (!header(root, top)) continue;
    std::vector<Frame> stack{{&top, 0, is_blob(top)}};
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next == f.node->members.size()) {
        *out += '}';
        stack.pop_back();
        continue;
      }
      const auto& [name, member] = f.node->members[f.next++];
      const Node& child = snapshot.at(member);
      *out += ',' + name->quoted + ':';
      if (child.fields && !seen.insert(member).second) {
        *out += "{\"" + std::string(kSharedMemberRef) + "\":\"" + ObjectIDToString(member) +
                "\"}";  // sent in full before
        continue;
      }
      if (f.leaf_blob) {
        // Below a blob record nothing is a payload of the reply (as in BlobsByOwner).
        std::vector<ObjectID> ignored;
        std::swap(ignored, *local_blobs);
        bool open = header(member, child);
        std::swap(ignored, *local_blobs);
        if (open) stack.push_back({&child, 0, true});
        continue;
      }
      if (header(member, child)) stack.push_back({&child, 0, is_blob(child)});
    }
  }
  *out += '}';
  return Status::OK();
}

Result<json> MetaService::List(const ListQuery& query) {
  VY_ASSIGN_OR_RETURN(Matcher match, MakeMatcher(query));
  // Typenames are copied out under the lock and matched without it.
  std::vector<std::pair<ObjectID, std::string>> candidates;
  {
    std::lock_guard<std::mutex> lock(mu_);
    candidates.reserve(objects_.size());
    for (const auto& [id, rec] : objects_) {
      if (rec.fields->type_name().empty() || IsBlob(id)) continue;
      candidates.emplace_back(id, rec.fields->type_name());
    }
  }
  std::vector<ObjectID> matched;
  for (const auto& [id, type_name] : candidates) {
    if (matched.size() >= query.limit) break;
    if (match(type_name)) matched.push_back(id);
  }
  // Objects deleted since are skipped; the reply stays within --meta_max_nodes.
  Snapshot snapshot;
  std::vector<ObjectID> listed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t nodes = 0;
    for (ObjectID id : matched) {
      if (objects_.count(id) == 0) continue;
      nodes = SaturatingAdd(nodes, NodesLocked(id));
      if (nodes > limits_.max_nodes && !listed.empty()) break;
      listed.push_back(id);
    }
    SnapshotLocked(listed, &snapshot);
  }
  json trees = json::object();
  for (ObjectID id : listed) trees[ObjectIDToString(id)] = Expand(snapshot, id);
  return trees;
}

Status MetaService::Delete(const DeleteRequest& request, std::vector<ObjectID>* deleted_blobs) {
  std::vector<std::string> unpublish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (ObjectID id : request.ids) {
      if (!ExistsLocked(id)) {
        return Status::ObjectNotExists("cannot delete ", ObjectIDToString(id),
                                       ": it does not exist");
      }
    }
    std::set<ObjectID> visiting;
    for (ObjectID id : request.ids) {
      DeleteLocked(id, request.deep, request.force, &visiting, deleted_blobs, &unpublish);
    }
  }
  // Deleted here whatever the cluster answers; an error says the others may
  // still see the objects (the keys go at the next reconnection otherwise).
  return WriteThrough({}, unpublish);
}

Status MetaService::WriteThrough(const KeyValues& puts, const std::vector<std::string>& deletes) {
  if (puts.empty() && deletes.empty()) return Status::OK();
  return backend_->Write(puts, deletes);
}

void MetaService::EraseNameLocked(std::map<std::string, ObjectID>::iterator it) {
  uint64_t cost = kEntryOverhead + it->first.size();
  memory_usage_ -= std::min(memory_usage_, cost);
  auto named = names_by_object_.find(it->second);
  if (named != names_by_object_.end()) {
    named->second.erase(it->first);
    if (named->second.empty()) names_by_object_.erase(named);
  }
  names_.erase(it);
}

void MetaService::SetNameLocked(const std::string& name, ObjectID id, bool charge) {
  auto it = names_.find(name);
  if (it == names_.end()) {
    if (charge) memory_usage_ += kEntryOverhead + name.size();
    names_.emplace(name, id);
  } else {
    if (it->second == id) return;
    auto named = names_by_object_.find(it->second);
    if (named != names_by_object_.end()) {
      named->second.erase(name);
      if (named->second.empty()) names_by_object_.erase(named);
    }
    it->second = id;
  }
  names_by_object_[id].insert(name);
}

void MetaService::EraseRecordLocked(ObjectID id, std::vector<ObjectID>* members,
                                    std::vector<std::string>* unpublish) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  for (const auto& [name, member] : it->second.members) {
    members->push_back(member);
    auto r = referrers_.find(member);
    if (r != referrers_.end()) {
      r->second.EraseOne(id);
      if (r->second.Empty()) referrers_.erase(r);
    }
  }
  if (!it->second.transient && !it->second.remote_blob && unpublish != nullptr) {
    unpublish->push_back(cluster::DataKey(id));
  }
  memory_usage_ -= std::min(memory_usage_, it->second.bytes);
  objects_.erase(it);
}

// The recursion "delete the holders first (force), then the object, then its
// unheld members (deep)" run on an explicit stack, so no chain can overflow it.
void MetaService::DeleteLocked(ObjectID root, bool root_deep, bool root_force,
                               std::set<ObjectID>* visiting,
                               std::vector<ObjectID>* deleted_blobs,
                               std::vector<std::string>* unpublish) {
  enum class Phase { kStart, kHolders, kErase, kMembers };
  struct Frame {
    ObjectID id;
    bool deep;
    bool force;
    Phase phase = Phase::kStart;
    std::vector<ObjectID> next;  // holders, then members
    size_t i = 0;
  };
  std::vector<Frame> stack;
  stack.push_back(Frame{root, root_deep, root_force});
  while (!stack.empty()) {
    Frame& f = stack.back();
    switch (f.phase) {
      case Phase::kStart: {
        if (!ExistsLocked(f.id) || !visiting->insert(f.id).second) {
          stack.pop_back();
          break;
        }
        auto refs = referrers_.find(f.id);
        if (refs != referrers_.end() && !refs->second.Empty()) {
          // Still held by other objects: kept, unless forced (then the holders go first).
          if (!f.force) {
            visiting->erase(f.id);
            stack.pop_back();
            break;
          }
          std::set<ObjectID> holders = refs->second.Distinct();
          f.next.assign(holders.begin(), holders.end());
          f.phase = Phase::kHolders;
        } else {
          f.phase = Phase::kErase;
        }
        break;
      }
      case Phase::kHolders: {
        if (f.i < f.next.size()) {
          ObjectID holder = f.next[f.i++];
          stack.push_back(Frame{holder, false, true});  // invalidates f
        } else {
          f.phase = Phase::kErase;
        }
        break;
      }
      case Phase::kErase: {
        ObjectID id = f.id;
        std::vector<ObjectID> members;
        EraseRecordLocked(id, &members, unpublish);
        referrers_.erase(id);
        // The object's names through the reverse index: no scan of every name.
        auto named = names_by_object_.find(id);
        if (named != names_by_object_.end()) {
          std::vector<std::string> gone(named->second.begin(), named->second.end());
          for (const auto& name : gone) {
            if (unpublish != nullptr) unpublish->push_back(cluster::NameKey(name));
            EraseNameLocked(names_.find(name));
          }
        }
        if (IsBlob(id) && store_->Exists(id) && store_->Delete(id).ok()) {
          deleted_blobs->push_back(id);
        }
        if (!f.deep) {
          stack.pop_back();
          break;
        }
        f.next = std::move(members);
        f.i = 0;
        f.phase = Phase::kMembers;
        break;
      }
      case Phase::kMembers: {
        if (f.i < f.next.size()) {
          ObjectID member = f.next[f.i++];
          if (referrers_.count(member) == 0) {
            stack.push_back(Frame{member, true, false});  // invalidates f
          }
        } else {
          stack.pop_back();
        }
        break;
      }
    }
  }
}

void MetaService::Holders::Insert(ObjectID holder) {
  if (first_ == kInvalidObjectID && holder != kInvalidObjectID) {
    first_ = holder;
    return;
  }
  if (!more_) more_ = std::make_unique<std::multiset<ObjectID>>();
  more_->insert(holder);
}

void MetaService::Holders::EraseOne(ObjectID holder) {
  if (holder != kInvalidObjectID && first_ == holder) {
    first_ = kInvalidObjectID;
    if (more_) {  // refill the inline slot
      first_ = *more_->begin();
      more_->erase(more_->begin());
    }
  } else if (more_) {
    auto it = more_->find(holder);
    if (it != more_->end()) more_->erase(it);
  }
  if (more_ && more_->empty()) more_.reset();
}

std::set<ObjectID> MetaService::Holders::Distinct() const {
  std::set<ObjectID> out;
  if (first_ != kInvalidObjectID) out.insert(first_);
  if (more_) out.insert(more_->begin(), more_->end());
  return out;
}

bool MetaService::Exists(ObjectID id) {
  std::lock_guard<std::mutex> lock(mu_);
  return ExistsLocked(id);
}

void MetaService::PersistLocked(ObjectID root, std::vector<ObjectID>* changed) {
  std::vector<ObjectID> pending{root};
  while (!pending.empty()) {
    ObjectID id = pending.back();
    auto it = objects_.find(id);
    pending.pop_back();
    if (it == objects_.end() || !it->second.transient) continue;
    it->second.transient = false;
    changed->push_back(id);
    for (const auto& [name, member] : it->second.members) pending.push_back(member);
  }
}

void MetaService::EncodeLocked(const std::vector<ObjectID>& ids, KeyValues* out) const {
  for (ObjectID id : ids) {
    auto it = objects_.find(id);
    if (it == objects_.end() || it->second.remote_blob) continue;
    const Record& rec = it->second;
    cluster::ObjectRecord o;
    o.id = id;
    o.fields = rec.fields->ToJson();
    o.signature = rec.signature;
    o.instance_id = rec.instance_id;
    o.global = rec.global;
    o.timestamp = rec.timestamp;
    for (const auto& [name, member] : rec.members) {
      cluster::MemberRef m{name->text, member, kBlobTypename, instance_id_, 0};
      auto mit = objects_.find(member);
      if (mit != objects_.end()) {
        const std::string& tn = mit->second.fields->type_name();
        if (!tn.empty()) m.type_name = tn;
        m.instance_id = mit->second.instance_id;
        m.signature = mit->second.signature;
      }
      o.members.push_back(std::move(m));
    }
    for (auto& kv : cluster::EncodeObject(o)) out->push_back(std::move(kv));
  }
}

Status MetaService::Persist(ObjectID id) {
  std::vector<ObjectID> changed;
  KeyValues puts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ExistsLocked(id)) {
      return Status::ObjectNotExists("cannot persist ", ObjectIDToString(id),
                                     ": it does not exist");
    }
    if (objects_.count(id) == 0) return Status::OK();  // a bare blob: stays local
    PersistLocked(id, &changed);
    // Members before their holders: an instance that sees a holder knows its members
    // (a persist of more than 127 keys takes several transactions).
    EncodeLocked(std::vector<ObjectID>(changed.rbegin(), changed.rend()), &puts);
  }
  Status written = WriteThrough(puts, {});
  if (!written.ok()) {
    // Not visible to the cluster: stays transient, so persisting again retries.
    std::lock_guard<std::mutex> lock(mu_);
    for (ObjectID c : changed) {
      auto it = objects_.find(c);
      if (it != objects_.end()) it->second.transient = true;
    }
  }
  return written;
}

Result<bool> MetaService::IsPersisted(ObjectID id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ExistsLocked(id)) {
    return Status::ObjectNotExists("object ", ObjectIDToString(id), " does not exist");
  }
  auto it = objects_.find(id);
  return it != objects_.end() && !it->second.transient;
}

Result<ObjectID> MetaService::ShallowCopy(ObjectID id, const json& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    if (IsBlob(id) && store_->Exists(id)) {
      return Status::ObjectIsBlob("cannot shallow-copy blob ", ObjectIDToString(id));
    }
    return Status::ObjectNotExists("cannot shallow-copy ", ObjectIDToString(id),
                                   ": it does not exist");
  }
  Record copy = it->second;
  copy.transient = true;
  copy.timestamp = NowMs();
  json fields = copy.fields->ToJson();
  for (const auto& [key, value] : extra.items()) {
    if (IsStandardKey(key) || value.is_object()) {
      return Status::Invalid("extra metadata '", key,
                             "' must be a plain field (not a standard key or a tree)");
    }
    VY_RETURN_NOT_OK(CheckFieldDepth(key, value, limits_.max_depth));
    fields[key] = value;
  }
  if (!extra.empty()) {
    copy.bytes = SaturatingAdd(copy.bytes, SerializedSize(extra));
    copy.fields = RecordFields::Of(fields);
  }
  VY_RETURN_NOT_OK(ChargeLocked(copy.bytes, "the copy"));
  ObjectID target = ids_->NextObjectID();
  for (const auto& [name, member] : copy.members) referrers_[member].Insert(target);
  objects_.emplace(target, std::move(copy));
  NotifyChangedLocked();
  return target;
}

Status MetaService::Label(ObjectID id, const std::vector<std::string>& keys,
                          const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return Status::ObjectNotExists("cannot label ", ObjectIDToString(id),
                                   ": no such object (blobs cannot be labelled)");
  }
  // Stored as the JSON text of an object, as vineyard does: its clients parse
  // `__labels` with get_ref<std::string>.
  Record& rec = it->second;
  json fields = rec.fields->ToJson();
  json& stored = fields[meta_key::kLabels];
  uint64_t old_size = stored.is_string() ? stored.get_ref<const std::string&>().size() : 0;
  json labels = json::object();
  if (stored.is_string()) labels = json::parse(stored.get<std::string>(), nullptr, false);
  if (!labels.is_object()) labels = json::object();
  for (size_t i = 0; i < keys.size(); ++i) labels[keys[i]] = values[i];
  stored = labels.dump(-1, ' ', false, json::error_handler_t::replace);
  uint64_t new_size = stored.get_ref<const std::string&>().size();
  if (new_size > old_size) VY_RETURN_NOT_OK(ChargeLocked(new_size - old_size, "the labels"));
  memory_usage_ -= std::min(memory_usage_, old_size > new_size ? old_size - new_size : 0);
  rec.bytes = rec.bytes + new_size - old_size;
  rec.fields = RecordFields::Of(fields);
  return Status::OK();
}

Status MetaService::PutName(ObjectID id, const std::string& name) {
  if (name.empty()) return Status::Invalid("a name must not be empty");
  if (name.find('/') != std::string::npos) {
    return Status::Invalid("a name must not contain '/' (it is a key in the cluster's store)");
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (IsBlob(id)) return Status::Invalid("blobs cannot have names: name an object that holds it");
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return Status::ObjectNotExists("cannot name ", ObjectIDToString(id), ": it does not exist");
  }
  if (it->second.transient) {
    return Status::Invalid("transient objects cannot have names: persist ",
                           ObjectIDToString(id), " first");
  }
  if (!backend_->remote()) {
    if (names_.count(name) == 0) {
      VY_RETURN_NOT_OK(ChargeLocked(kEntryOverhead + name.size(), "the name"));
    }
    SetNameLocked(name, id, /*charge=*/false);
    NotifyChangedLocked();
    return Status::OK();
  }
  lock.unlock();
  VY_RETURN_NOT_OK(WriteThrough({{cluster::NameKey(name), json(id).dump()}}, {}));
  lock.lock();
  if (names_.count(name) == 0) {
    VY_RETURN_NOT_OK(ChargeLocked(kEntryOverhead + name.size(), "the name"));
  }
  SetNameLocked(name, id, /*charge=*/false);
  NotifyChangedLocked();
  return Status::OK();
}

Result<ObjectID> MetaService::GetName(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = names_.find(name);
  // A name of an object that is gone (its instance left) is kept, hidden, until
  // the object comes back or the name is dropped.
  if (it == names_.end() || !ExistsLocked(it->second)) {
    return Status::ObjectNotExists("failed to find name: ", name);
  }
  return it->second;
}

Status MetaService::DropName(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = names_.find(name);
    if (it == names_.end()) return Status::OK();  // dropping twice is harmless
    if (!backend_->remote()) {
      EraseNameLocked(it);
      return Status::OK();
    }
  }
  VY_RETURN_NOT_OK(WriteThrough({}, {cluster::NameKey(name)}));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = names_.find(name);
  if (it != names_.end()) EraseNameLocked(it);
  return Status::OK();
}

Result<std::map<std::string, ObjectID>> MetaService::ListNames(const ListQuery& query) {
  VY_ASSIGN_OR_RETURN(Matcher match, MakeMatcher(query));
  std::map<std::string, ObjectID> names;  // matched without the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, id] : names_) {
      if (ExistsLocked(id)) names.emplace(name, id);
    }
  }
  std::map<std::string, ObjectID> result;
  for (const auto& [name, id] : names) {
    if (result.size() >= query.limit) break;
    if (match(name)) result.emplace(name, id);
  }
  return result;
}

Status MetaService::Clear() {
  std::vector<ObjectID> ids;
  {
    // This instance's objects only: the others' are theirs to delete.
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, rec] : objects_) {
      if (rec.instance_id == instance_id_ && !rec.remote_blob) ids.push_back(id);
    }
  }
  for (ObjectID blob : store_->SealedBlobs()) ids.push_back(blob);
  std::vector<std::string> unpublish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<ObjectID> visiting;
    std::vector<ObjectID> deleted;
    for (ObjectID id : ids) DeleteLocked(id, true, true, &visiting, &deleted, &unpublish);
    for (auto n = names_.begin(); n != names_.end();) {
      if (!ExistsLocked(n->second) && !backend_->remote()) {
        EraseNameLocked(n++);
      } else {
        ++n;
      }
    }
  }
  return WriteThrough({}, unpublish);
}

void MetaService::InsertRemoteLocked(const cluster::DecodedObject& object) {
  if (objects_.count(object.id) > 0 || object.instance_id == instance_id_) return;
  Record rec;
  rec.fields = RecordFields::Of(object.fields);
  rec.signature = object.signature;
  rec.instance_id = object.instance_id;
  rec.transient = false;
  rec.global = object.global;
  rec.timestamp = object.timestamp;
  uint32_t depth = 1;
  uint64_t nodes = 1;
  rec.members.reserve(object.members.size());
  for (const auto& m : object.members) {
    rec.members.emplace_back(m.name, m.id);
    if (m.blob && m.instance_id != instance_id_ && objects_.count(m.id) == 0) {
      Record blob;
      blob.fields = RecordFields::Of(json{{meta_key::kTypename, kBlobTypename}});
      blob.instance_id = m.instance_id;
      blob.transient = true;
      blob.remote_blob = true;
      blob.bytes = kRecordOverhead;
      memory_usage_ += blob.bytes;
      objects_.emplace(m.id, std::move(blob));
    }
    auto known = objects_.find(m.id);
    uint32_t member_depth = known == objects_.end() ? 1 : known->second.depth;
    depth = std::max<uint32_t>(depth, member_depth + 1);
    nodes = SaturatingAdd(nodes, known == objects_.end() ? 1 : known->second.nodes);
  }
  rec.depth = depth;
  rec.nodes = nodes;
  // Charged without a check: what the cluster holds cannot be refused here.
  rec.bytes = kRecordOverhead + rec.fields->text().size() +
              rec.members.size() * kEntryOverhead;
  memory_usage_ += rec.bytes;
  for (const auto& [name, member] : rec.members) referrers_[member].Insert(object.id);
  objects_.emplace(object.id, std::move(rec));
}

void MetaService::DropLocked(ObjectID id) {
  // Deleted elsewhere. The deleter removed the keys of the members that went
  // with it (their own events follow); blobs have no keys, so the blob members
  // nothing else holds go here: the owner frees them.
  std::vector<ObjectID> members;
  EraseRecordLocked(id, &members, nullptr);
  for (ObjectID member : members) {
    if (!IsBlob(member) || referrers_.count(member) > 0) continue;
    auto blob = objects_.find(member);
    if (blob != objects_.end() && blob->second.remote_blob) {
      std::vector<ObjectID> none;
      EraseRecordLocked(member, &none, nullptr);
    } else if (store_->Exists(member)) {
      (void)store_->Delete(member);
    }
  }
}

void MetaService::ApplyRemote(const RemoteUpdate& update) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& object : update.objects) InsertRemoteLocked(object);
  for (ObjectID id : update.deleted) {
    auto it = objects_.find(id);
    if (it == objects_.end() || it->second.transient) continue;
    if (update.own_lease_expired && it->second.instance_id == instance_id_) continue;
    DropLocked(id);
  }
  // Charged without a check: what the cluster holds cannot be refused here.
  for (const auto& [name, id] : update.names) SetNameLocked(name, id, /*charge=*/true);
  for (const auto& name : update.dropped_names) {
    auto it = names_.find(name);
    if (it != names_.end()) EraseNameLocked(it);
  }
  ApplyFieldsLocked(update);
  NotifyChangedLocked();
}

void MetaService::ApplyFieldsLocked(const RemoteUpdate& update) {
  for (const auto& [id, field, value] : update.fields) {
    auto it = objects_.find(id);
    if (it == objects_.end() || it->second.instance_id == instance_id_) continue;
    json fields = it->second.fields->ToJson();
    fields[field] = value;
    it->second.fields = RecordFields::Of(fields);
  }
}

void MetaService::ResetRemote(const RemoteUpdate& listing, bool republish_all, KeyValues* puts,
                              std::vector<std::string>* deletes) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unordered_set<ObjectID> listed;
  for (const auto& o : listing.objects) listed.insert(o.id);
  // Remote objects the cluster no longer has leave this view.
  std::vector<ObjectID> gone;
  std::vector<ObjectID> republish;
  for (const auto& [id, rec] : objects_) {
    if (rec.remote_blob || rec.transient) continue;
    if (rec.instance_id != instance_id_) {
      if (listed.count(id) == 0) gone.push_back(id);
    } else if (republish_all || listed.count(id) == 0) {
      republish.push_back(id);
    }
  }
  for (ObjectID id : gone) DropLocked(id);
  // Our own objects are ours to say: keys of objects deleted here while the
  // cluster was out of reach are removed now.
  for (const auto& o : listing.objects) {
    if (o.instance_id == instance_id_ && objects_.count(o.id) == 0) {
      deletes->push_back(cluster::DataKey(o.id));
    }
  }
  // Shallow before deep: members reach the others before their holders.
  std::sort(republish.begin(), republish.end(), [this](ObjectID x, ObjectID y) {
    return objects_.at(x).depth < objects_.at(y).depth;
  });
  EncodeLocked(republish, puts);
  std::map<std::string, ObjectID> listed_names(listing.names.begin(), listing.names.end());
  for (auto n = names_.begin(); n != names_.end();) {
    auto own = objects_.find(n->second);
    bool ours = own != objects_.end() && own->second.instance_id == instance_id_ &&
                !own->second.transient;
    if (ours && (republish_all || listed_names.count(n->first) == 0)) {
      puts->emplace_back(cluster::NameKey(n->first), json(n->second).dump());
      listed_names.erase(n->first);
      ++n;
    } else if (listed_names.count(n->first) == 0) {
      EraseNameLocked(n++);
    } else {
      ++n;
    }
  }
  for (const auto& o : listing.objects) InsertRemoteLocked(o);
  for (const auto& [name, id] : listed_names) SetNameLocked(name, id, /*charge=*/true);
  ApplyFieldsLocked(listing);
  NotifyChangedLocked();
}

void MetaService::DropInstance(InstanceID instance) {
  if (instance == instance_id_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ObjectID> ids;
  for (const auto& [id, rec] : objects_) {
    if (rec.instance_id == instance) ids.push_back(id);
  }
  // Names stay (hidden) in case the instance comes back with its objects.
  for (ObjectID id : ids) {
    std::vector<ObjectID> members;
    EraseRecordLocked(id, &members, nullptr);
  }
  NotifyChangedLocked();
}

void MetaService::CollectLocalBlobs(const json& trees, std::vector<ObjectID>* blobs) const {
  auto owners = BlobsByOwner(trees, instance_id_);
  auto local = owners.find(instance_id_);
  if (local != owners.end()) blobs->insert(blobs->end(), local->second.begin(), local->second.end());
}

size_t MetaService::num_objects() {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

uint64_t MetaService::memory_usage() {
  std::lock_guard<std::mutex> lock(mu_);
  return memory_usage_;
}

}  // namespace vineyard
