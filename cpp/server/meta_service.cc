#include "server/meta_service.h"

#include <fnmatch.h>

#include <chrono>
#include <regex>

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

// Waits on `cv` in short slices so a cancelled waiter notices promptly.
template <typename Pred>
bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Pred ready,
               const MetaService::CancelCheck& cancelled) {
  while (!ready()) {
    if (cancelled && cancelled()) return false;
    cv.wait_for(lock, std::chrono::milliseconds(100));
  }
  return true;
}

}  // namespace

MetaService::MetaService(InstanceID instance_id, IdGenerator* ids, BulkStore* store,
                         MetaBackend* backend)
    : instance_id_(instance_id), ids_(ids), store_(store), backend_(backend) {}

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
    for (const auto& [key, value] : subtree.items()) {
      if (!IsStandardKey(key) && !value.is_object()) rec.fields[key] = value;
    }
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

  std::lock_guard<std::mutex> lock(mu_);
  Record rec;
  rec.instance_id = instance_id_;
  rec.global = global;
  rec.fields = json::object();
  for (const auto& [key, value] : tree.items()) {
    if (IsStandardKey(key)) continue;
    if (value.is_object()) {
      VY_ASSIGN_OR_RETURN(ObjectID member, ResolveMemberLocked(key, value, global));
      rec.members.emplace_back(key, member);
    } else {
      rec.fields[key] = value;
    }
  }
  auto sig = tree.find(meta_key::kSignature);
  rec.signature = (sig != tree.end() && sig->is_number_unsigned()) ? sig->get<Signature>()
                                                                   : ids_->NextSignature();
  rec.timestamp = NowMs();
  ObjectID id = ids_->NextObjectID();
  for (const auto& [name, member] : rec.members) referrers_[member].insert(id);
  CreatedObject created{id, rec.signature, instance_id_};
  objects_.emplace(id, std::move(rec));
  changed_.notify_all();
  return created;
}

json MetaService::ExpandLocked(ObjectID id) const {
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    // A local blob: its tree comes from the bulk store.
    // The published client's sync_meta() asks for id 0xffff...: it expects a
    // blob standing for the whole store, sized to the memory limit.
    auto size = id == kInvalidObjectID ? Result<uint64_t>(store_->limit()) : store_->Size(id);
    uint64_t n = size.ok() ? *size : 0;
    return json{{meta_key::kId, ObjectIDToString(id)}, {meta_key::kTypename, kBlobTypename},
                {meta_key::kInstanceId, instance_id_}, {meta_key::kNBytes, n},
                {meta_key::kLength, n}, {meta_key::kTransient, true}};
  }
  const Record& rec = it->second;
  json tree = rec.fields;
  tree[meta_key::kId] = ObjectIDToString(id);
  tree[meta_key::kSignature] = rec.signature;
  tree[meta_key::kInstanceId] = rec.instance_id;
  tree[meta_key::kTransient] = rec.transient;
  tree[meta_key::kGlobal] = rec.global;
  tree[meta_key::kTimestamp] = rec.timestamp;
  for (const auto& [name, member] : rec.members) tree[name] = ExpandLocked(member);
  return tree;
}

Result<json> MetaService::Get(const std::vector<ObjectID>& ids, bool wait,
                              const CancelCheck& cancelled) {
  std::unique_lock<std::mutex> lock(mu_);
  if (wait) {
    auto all_exist = [&]() {
      for (ObjectID id : ids) {
        if (!ExistsLocked(id) && id != kInvalidObjectID) return false;
      }
      return true;
    };
    if (!WaitUntil(changed_, lock, all_exist, cancelled)) {
      return Status::ObjectNotExists("gave up waiting for the objects to appear");
    }
  }
  json trees = json::object();
  for (ObjectID id : ids) {
    if (!ExistsLocked(id) && id != kInvalidObjectID) {
      return Status::ObjectNotExists("object ", ObjectIDToString(id), " does not exist");
    }
    trees[ObjectIDToString(id)] = ExpandLocked(id);
  }
  return trees;
}

Result<bool> MetaService::MatcherLocked(const ListQuery& query,
                                        std::function<bool(const std::string&)>* matcher) {
  if (query.regex) {
    try {
      auto re = std::make_shared<std::regex>(query.pattern, std::regex::ECMAScript);
      *matcher = [re](const std::string& s) { return std::regex_match(s, *re); };
    } catch (const std::regex_error& e) {
      return Status::Invalid("invalid regular expression '", query.pattern, "': ", e.what());
    }
  } else {
    std::string pattern = query.pattern;
    *matcher = [pattern](const std::string& s) {
      return fnmatch(pattern.c_str(), s.c_str(), 0) == 0;
    };
  }
  return true;
}

Result<json> MetaService::List(const ListQuery& query) {
  std::lock_guard<std::mutex> lock(mu_);
  std::function<bool(const std::string&)> match;
  VY_RETURN_NOT_OK(MatcherLocked(query, &match).status());
  json trees = json::object();
  for (const auto& [id, rec] : objects_) {
    if (trees.size() >= query.limit) break;
    auto tn = rec.fields.find(meta_key::kTypename);
    if (tn == rec.fields.end() || !tn->is_string() || IsBlob(id)) continue;
    if (match(tn->get<std::string>())) trees[ObjectIDToString(id)] = ExpandLocked(id);
  }
  return trees;
}

Status MetaService::Delete(const DeleteRequest& request, std::vector<ObjectID>* deleted_blobs) {
  std::lock_guard<std::mutex> lock(mu_);
  for (ObjectID id : request.ids) {
    if (!ExistsLocked(id)) {
      return Status::ObjectNotExists("cannot delete ", ObjectIDToString(id),
                                     ": it does not exist");
    }
  }
  std::set<ObjectID> visiting;
  for (ObjectID id : request.ids) {
    DeleteLocked(id, request.deep, request.force, &visiting, deleted_blobs);
  }
  return Status::OK();
}

void MetaService::DeleteLocked(ObjectID id, bool deep, bool force, std::set<ObjectID>* visiting,
                               std::vector<ObjectID>* deleted_blobs) {
  if (!ExistsLocked(id) || !visiting->insert(id).second) return;
  auto refs = referrers_.find(id);
  if (refs != referrers_.end() && !refs->second.empty()) {
    // Still held by other objects: kept, unless forced (then the holders go first).
    if (!force) {
      visiting->erase(id);
      return;
    }
    std::set<ObjectID> holders(refs->second.begin(), refs->second.end());
    for (ObjectID holder : holders) DeleteLocked(holder, false, true, visiting, deleted_blobs);
  }
  std::vector<ObjectID> members;
  auto it = objects_.find(id);
  if (it != objects_.end()) {
    for (const auto& [name, member] : it->second.members) {
      members.push_back(member);
      auto r = referrers_.find(member);
      if (r != referrers_.end()) {
        auto one = r->second.find(id);
        if (one != r->second.end()) r->second.erase(one);
        if (r->second.empty()) referrers_.erase(r);
      }
    }
    if (!it->second.transient) (void)backend_->DeleteObject(id);
    objects_.erase(it);
  }
  referrers_.erase(id);
  for (auto n = names_.begin(); n != names_.end();) {
    if (n->second == id) {
      (void)backend_->DropName(n->first);
      n = names_.erase(n);
    } else {
      ++n;
    }
  }
  if (IsBlob(id) && store_->Exists(id) && store_->Delete(id).ok()) {
    deleted_blobs->push_back(id);
  }
  if (deep) {
    for (ObjectID member : members) {
      if (referrers_.count(member) == 0) DeleteLocked(member, true, false, visiting, deleted_blobs);
    }
  }
}

bool MetaService::Exists(ObjectID id) {
  std::lock_guard<std::mutex> lock(mu_);
  return ExistsLocked(id);
}

void MetaService::PersistLocked(ObjectID id) {
  auto it = objects_.find(id);
  if (it == objects_.end() || !it->second.transient) return;
  it->second.transient = false;
  for (const auto& [name, member] : it->second.members) PersistLocked(member);
}

Status MetaService::Persist(ObjectID id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ExistsLocked(id)) {
    return Status::ObjectNotExists("cannot persist ", ObjectIDToString(id), ": it does not exist");
  }
  if (objects_.count(id) == 0) return Status::OK();  // a bare blob: stays local
  PersistLocked(id);
  return backend_->PutObject(id, ExpandLocked(id));
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
  for (const auto& [key, value] : extra.items()) {
    if (IsStandardKey(key) || value.is_object()) {
      return Status::Invalid("extra metadata '", key,
                             "' must be a plain field (not a standard key or a tree)");
    }
    copy.fields[key] = value;
  }
  ObjectID target = ids_->NextObjectID();
  for (const auto& [name, member] : copy.members) referrers_[member].insert(target);
  objects_.emplace(target, std::move(copy));
  changed_.notify_all();
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
  json& stored = it->second.fields[meta_key::kLabels];
  json labels = json::object();
  if (stored.is_string()) labels = json::parse(stored.get<std::string>(), nullptr, false);
  if (!labels.is_object()) labels = json::object();
  for (size_t i = 0; i < keys.size(); ++i) labels[keys[i]] = values[i];
  stored = labels.dump();
  return Status::OK();
}

Status MetaService::PutName(ObjectID id, const std::string& name) {
  if (name.empty()) return Status::Invalid("a name must not be empty");
  std::lock_guard<std::mutex> lock(mu_);
  if (IsBlob(id)) return Status::Invalid("blobs cannot have names: name an object that holds it");
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return Status::ObjectNotExists("cannot name ", ObjectIDToString(id), ": it does not exist");
  }
  if (it->second.transient) {
    return Status::Invalid("transient objects cannot have names: persist ",
                           ObjectIDToString(id), " first");
  }
  VY_RETURN_NOT_OK(backend_->PutName(name, id));
  names_[name] = id;
  changed_.notify_all();
  return Status::OK();
}

Result<ObjectID> MetaService::GetName(const std::string& name, bool wait,
                                      const CancelCheck& cancelled) {
  std::unique_lock<std::mutex> lock(mu_);
  if (wait) {
    auto found = [&]() { return names_.count(name) > 0; };
    if (!WaitUntil(changed_, lock, found, cancelled)) {
      return Status::ObjectNotExists("gave up waiting for name '", name, "'");
    }
  }
  auto it = names_.find(name);
  if (it == names_.end()) return Status::ObjectNotExists("failed to find name: ", name);
  return it->second;
}

Status MetaService::DropName(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = names_.find(name);
  if (it == names_.end()) return Status::OK();  // dropping twice is harmless
  VY_RETURN_NOT_OK(backend_->DropName(name));
  names_.erase(it);
  return Status::OK();
}

Result<std::map<std::string, ObjectID>> MetaService::ListNames(const ListQuery& query) {
  std::lock_guard<std::mutex> lock(mu_);
  std::function<bool(const std::string&)> match;
  VY_RETURN_NOT_OK(MatcherLocked(query, &match).status());
  std::map<std::string, ObjectID> result;
  for (const auto& [name, id] : names_) {
    if (result.size() >= query.limit) break;
    if (match(name)) result.emplace(name, id);
  }
  return result;
}

Status MetaService::Clear() {
  std::vector<ObjectID> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, rec] : objects_) ids.push_back(id);
  }
  for (ObjectID blob : store_->SealedBlobs()) ids.push_back(blob);
  std::lock_guard<std::mutex> lock(mu_);
  std::set<ObjectID> visiting;
  std::vector<ObjectID> deleted;
  for (ObjectID id : ids) DeleteLocked(id, true, true, &visiting, &deleted);
  for (const auto& [name, id] : names_) (void)backend_->DropName(name);
  names_.clear();
  return Status::OK();
}

void MetaService::CollectLocalBlobs(const json& trees, std::vector<ObjectID>* blobs) const {
  for (const auto& [key, value] : trees.items()) {
    if (!value.is_object()) continue;
    auto tn = value.find(meta_key::kTypename);
    if (tn != value.end() && tn->is_string() && tn->get<std::string>() == kBlobTypename) {
      auto id = TreeId(value);
      if (id.ok() && value.value(meta_key::kInstanceId, instance_id_) == instance_id_) {
        blobs->push_back(*id);
      }
      continue;
    }
    CollectLocalBlobs(value, blobs);
  }
}

size_t MetaService::num_objects() {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

}  // namespace vineyard
