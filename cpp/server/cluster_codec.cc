#include "server/cluster_codec.h"

#include <cstring>
#include <set>

#include "common/protocol.h"

namespace vineyard::cluster {

namespace {

constexpr const char* kData = "/data/";
constexpr const char* kNames = "/names/";
constexpr const char* kInstances = "/instances/i";
constexpr const char* kSignatures = "/signatures/i";

bool StartsWith(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

// "vineyard::Tensor<double>" -> "vineyard::Tensor": vineyard keeps links short.
std::string ShortType(const std::string& type_name) {
  return type_name.substr(0, type_name.find('<'));
}

std::optional<uint64_t> ParseDecimal(const std::string& text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t next = value * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != value) return std::nullopt;
    value = next;
  }
  return value;
}

constexpr InstanceID kUnknownInstance = ~InstanceID{0};

std::optional<uint64_t> AsUnsigned(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

}  // namespace

KeySpace::KeySpace(const std::string& etcd_prefix)
    : prefix(etcd_prefix), root(etcd_prefix + "/" + SessionIDToString(kRootSessionID)) {}

std::string KeySpace::SyncKey(InstanceID id) const {
  return prefix + "/_sync/i" + std::to_string(id);
}

std::string DataKey(ObjectID id) { return kData + ObjectIDToString(id); }
std::string NameKey(const std::string& name) { return kNames + name; }
std::string InstanceKey(InstanceID id, const std::string& field) {
  return kInstances + std::to_string(id) + "/" + field;
}
std::string SignatureKey(InstanceID instance, Signature sig) {
  return kSignatures + std::to_string(instance) + "/" + SignatureToString(sig);
}

std::vector<std::pair<std::string, std::string>> EncodeObject(const ObjectRecord& object) {
  std::vector<std::pair<std::string, std::string>> kvs;
  json value = json::object();
  for (const auto& [key, field] : object.fields.items()) {
    value[key] = field.is_string() ? json("v" + field.get<std::string>()) : field;
  }
  value[meta_key::kInstanceId] = object.instance_id;
  value[meta_key::kSignature] = object.signature;
  value[meta_key::kTransient] = false;
  value[meta_key::kGlobal] = object.global;
  value[meta_key::kTimestamp] = object.timestamp;
  std::set<Signature> signed_members;
  for (const auto& m : object.members) {
    if (m.type_name == kBlobTypename) {
      value[m.name] = "l" + ObjectIDToString(m.id) + "." + kBlobTypename + "@" +
                      std::to_string(m.instance_id);
    } else if (object.global) {
      // A global object names its members by signature, resolved through
      // /signatures (vineyard's layout).
      value[m.name] = "l" + SignatureToString(m.signature) + "." + ShortType(m.type_name);
      if (signed_members.insert(m.signature).second) {
        kvs.emplace_back(SignatureKey(m.instance_id, m.signature),
                         json(ObjectIDToString(m.id)).dump());
      }
    } else {
      value[m.name] = "l" + ObjectIDToString(m.id) + "." + ShortType(m.type_name);
    }
  }
  kvs.emplace_back(DataKey(object.id),
                   value.dump(-1, ' ', false, json::error_handler_t::replace));
  return kvs;
}

json DecodeFieldValue(const std::string& value) {
  json v = json::parse(value, nullptr, false);
  if (v.is_discarded()) return json(value);
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (!s.empty() && s[0] == 'v') return json(s.substr(1));
  }
  return v;
}

Result<DecodedObject> DecodeObject(ObjectID id, const std::string& value,
                                   const SignatureResolver& resolve) {
  json tree = json::parse(value, nullptr, false);
  if (!tree.is_object()) {
    return Status::Invalid("the etcd value of ", ObjectIDToString(id), " is not a JSON object");
  }
  DecodedObject out;
  out.id = id;
  for (auto& [key, item] : tree.items()) {
    if (key == meta_key::kInstanceId) {
      out.instance_id = AsUnsigned(item).value_or(0);
    } else if (key == meta_key::kSignature) {
      out.signature = AsUnsigned(item).value_or(0);
    } else if (key == meta_key::kTransient) {
      out.transient = item.is_boolean() && item.get<bool>();
    } else if (key == meta_key::kGlobal) {
      out.global = item.is_boolean() && item.get<bool>();
    } else if (key == meta_key::kTimestamp) {
      out.timestamp = AsUnsigned(item).value_or(0);
    } else if (key == meta_key::kId) {
      continue;
    } else if (item.is_string() && !item.get_ref<const std::string&>().empty() &&
               item.get_ref<const std::string&>()[0] == 'l') {
      // A link: "<oid or sig>.<typename>", the name holding no '.'.
      const std::string link = item.get<std::string>().substr(1);
      size_t dot = link.find('.');
      if (dot == std::string::npos || dot == 0) {
        return Status::Invalid("malformed member link '", link, "' in ", ObjectIDToString(id));
      }
      std::string ref = link.substr(0, dot);
      std::string type = link.substr(dot + 1);
      DecodedMember m;
      m.name = key;
      VY_ASSIGN_OR_RETURN(uint64_t number, ObjectIDFromString(ref));
      if (ref[0] == 's') {
        auto found = resolve ? resolve(number) : std::nullopt;
        if (!found) {
          return Status::Invalid("member '", key, "' of ", ObjectIDToString(id),
                                 " names signature ", ref, ", which is not known");
        }
        m.id = *found;
      } else {
        m.id = number;
      }
      if (StartsWith(type, kBlobTypename) || IsBlob(m.id)) {
        m.blob = true;
        size_t at = type.find('@');
        m.instance_id = kUnknownInstance;  // the object's own, read below
        if (at != std::string::npos) {
          m.instance_id = ParseDecimal(type.substr(at + 1)).value_or(kUnknownInstance);
        }
      }
      out.members.push_back(std::move(m));
    } else if (item.is_string()) {
      const std::string& s = item.get_ref<const std::string&>();
      out.fields[key] = (!s.empty() && s[0] == 'v') ? s.substr(1) : s;
    } else {
      out.fields[key] = item;
    }
  }
  // A blob link without "@<instance>" is the object's own.
  for (auto& m : out.members) {
    if (m.blob && m.instance_id == kUnknownInstance) m.instance_id = out.instance_id;
  }
  if (!out.fields.contains(meta_key::kTypename)) {
    return Status::Invalid("the etcd value of ", ObjectIDToString(id), " has no typename");
  }
  return out;
}

ParsedKey ParseKey(const std::string& key) {
  ParsedKey p;
  if (StartsWith(key, kData)) {
    std::string rest = key.substr(strlen(kData));
    size_t slash = rest.find('/');
    auto id = ObjectIDFromString(rest.substr(0, slash));
    if (!id.ok()) return p;
    p.id = *id;
    if (slash == std::string::npos) {
      p.kind = ParsedKey::Kind::kData;
    } else {
      p.kind = ParsedKey::Kind::kDataField;
      p.field = rest.substr(slash + 1);
    }
  } else if (StartsWith(key, kNames)) {
    p.kind = ParsedKey::Kind::kName;
    p.name = key.substr(strlen(kNames));
  } else if (StartsWith(key, kInstances)) {
    std::string rest = key.substr(strlen(kInstances));
    size_t slash = rest.find('/');
    auto id = ParseDecimal(rest.substr(0, slash));
    if (!id || slash == std::string::npos) return p;
    p.kind = ParsedKey::Kind::kInstance;
    p.instance = *id;
    p.field = rest.substr(slash + 1);
  } else if (StartsWith(key, kSignatures)) {
    std::string rest = key.substr(strlen(kSignatures));
    size_t slash = rest.find('/');
    if (slash == std::string::npos) return p;
    auto inst = ParseDecimal(rest.substr(0, slash));
    auto sig = ObjectIDFromString(rest.substr(slash + 1));
    if (!inst || !sig.ok()) return p;
    p.kind = ParsedKey::Kind::kSignature;
    p.instance = *inst;
    p.signature = *sig;
  } else if (key == kNextInstanceIdKey) {
    p.kind = ParsedKey::Kind::kNextInstanceId;
  }
  return p;
}

}  // namespace vineyard::cluster
