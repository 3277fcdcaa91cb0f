// The cluster's state in etcd: key layout and encoding, as vineyard 0.24 writes
// them, so a published vineyardd sharing the etcd sees our instances, objects
// and names and we see its.
//
// Under <etcd_prefix>/S0000000000000000 (the root session, "the root"):
//   /data/<oid>                   an object, one level deep: a JSON object whose
//                                 string fields carry a 'v' prefix and whose members
//                                 are links "l<oid>.<typename up to '<'>" (a blob:
//                                 "l<blobid>.vineyard::Blob@<instance>"; a member of a
//                                 global object: "l<sig>.<typename>" through /signatures)
//   /data/<oid>/<field>           a field added later (vineyard writes __name there)
//   /signatures/i<N>/s<sig>       "o<oid>" of the object with that signature on instance N
//   /names/<name>                 the object id, a JSON number
//   /instances/i<N>/<field>       hostid, hostname, nodename, rpc_endpoint, ipc_socket,
//                                 timestamp (refreshed as a heartbeat)
//   /next_instance_id             the next instance id (ids are never reused)
//   /meta_sync_lock               etcd's lock serializing registrations
// Our own read barrier key lives outside the root (<etcd_prefix>/_sync/i<N>), so
// other implementations never see it.
//
// Every value is JSON text. Pure functions, thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/result.h"

namespace vineyard::cluster {

using json = nlohmann::json;

/// Keys relative to the root ("/data/o…"), except KeySpace's absolute helpers.
struct KeySpace {
  std::string prefix;  ///< --etcd_prefix, e.g. "vineyard"
  std::string root;    ///< prefix + "/S0000000000000000"

  explicit KeySpace(const std::string& etcd_prefix);
  std::string Abs(const std::string& relative) const { return root + relative; }
  std::string LockName() const { return root + "/meta_sync_lock"; }
  std::string SyncKey(InstanceID id) const;
};

std::string DataKey(ObjectID id);
std::string NameKey(const std::string& name);
std::string InstanceKey(InstanceID id, const std::string& field);
std::string SignatureKey(InstanceID instance, Signature sig);
inline constexpr const char* kNextInstanceIdKey = "/next_instance_id";

/// One member of an object as the codec needs it.
struct MemberRef {
  std::string name;
  ObjectID id = 0;
  std::string type_name;  ///< the member's typename ("vineyard::Blob" for blobs)
  InstanceID instance_id = 0;
  Signature signature = 0;
};

/// One object as published (not a blob).
struct ObjectRecord {
  ObjectID id = 0;
  json fields = json::object();  ///< typename, nbytes and user fields
  std::vector<MemberRef> members;
  Signature signature = 0;
  InstanceID instance_id = 0;
  bool global = false;
  uint64_t timestamp = 0;
};

/// The key/value pairs (relative keys, JSON-text values) that publish `object`:
/// its /data key and, for a global object, its members' /signatures keys.
std::vector<std::pair<std::string, std::string>> EncodeObject(const ObjectRecord& object);

/// A member decoded from a link.
struct DecodedMember {
  std::string name;
  ObjectID id = 0;
  bool blob = false;
  InstanceID instance_id = 0;  ///< a blob's owner
};

struct DecodedObject {
  ObjectID id = 0;
  json fields = json::object();  ///< typename, nbytes and user fields, decoded
  std::vector<DecodedMember> members;
  Signature signature = 0;
  InstanceID instance_id = 0;
  bool global = false;
  bool transient = false;
  uint64_t timestamp = 0;
};

/// Finds the object id a signature link names ("s…"), if known.
using SignatureResolver = std::function<std::optional<ObjectID>(Signature)>;

/// Decodes a /data/<oid> value. Invalid for malformed input (which is skipped
/// by the caller: one bad key must not stop a cluster).
Result<DecodedObject> DecodeObject(ObjectID id, const std::string& value,
                                   const SignatureResolver& resolve);
/// A field value from a /data/<oid>/<field> key.
json DecodeFieldValue(const std::string& value);

/// What a key relative to the root names.
struct ParsedKey {
  enum class Kind { kData, kDataField, kName, kInstance, kSignature, kNextInstanceId, kOther };
  Kind kind = Kind::kOther;
  ObjectID id = 0;          ///< kData, kDataField
  std::string field;        ///< kDataField, kInstance
  std::string name;         ///< kName
  InstanceID instance = 0;  ///< kInstance, kSignature
  Signature signature = 0;  ///< kSignature
};
ParsedKey ParseKey(const std::string& relative);

}  // namespace vineyard::cluster
