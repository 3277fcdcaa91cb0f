#include "common/protocol.h"

#include <cmath>
#include <limits>
#include <unordered_map>

namespace vineyard {

namespace {

const char* JsonTypeName(const json& v) { return v.type_name(); }

// True if the JSON number `v` is an integer that the integral type T can hold.
template <typename T>
bool InRange(const json& v) {
  using Limits = std::numeric_limits<T>;
  if (v.is_number_float()) {
    double d = v.get<double>();
    // Limits::digits: 2^digits is the first value above the range, exact as a double.
    double above = std::ldexp(1.0, Limits::digits);
    return std::isfinite(d) && d == std::trunc(d) && d < above &&
           (std::is_unsigned_v<T> ? d > -1.0 : d >= -above);
  }
  if (v.is_number_unsigned()) {
    return v.get<uint64_t>() <= static_cast<uint64_t>(Limits::max());
  }
  int64_t i = v.get<int64_t>();
  if (i < 0) return std::is_signed_v<T> && i >= static_cast<int64_t>(Limits::min());
  return static_cast<uint64_t>(i) <= static_cast<uint64_t>(Limits::max());
}

template <typename T>
struct IsIntegerList : std::false_type {};
template <typename V>
struct IsIntegerList<std::vector<V>>
    : std::bool_constant<std::is_integral_v<V> && !std::is_same_v<V, bool>> {};

// Reads j[key] as T. `required`: a missing key is an error; else *out keeps its default.
template <typename T>
Status Field(const json& j, const char* key, T* out, bool required = true) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (!required) return Status::OK();
    return Status::Invalid("malformed message: missing field '", key, "'");
  }
  try {
    if constexpr (std::is_same_v<T, bool>) {
      // Some clients send 0/1 for flags.
      if (it->is_number()) {
        *out = it->template get<double>() != 0;
        return Status::OK();
      }
      if (!it->is_boolean()) throw std::runtime_error("not a boolean");
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number()) throw std::runtime_error("not a number");
      // A cast of a value T cannot hold is undefined (floats) or wraps (integers):
      // such a value is refused, and only integral floats are accepted (4096.0).
      if (!InRange<T>(*it)) {
        return Status::Invalid("malformed message: field '", key, "' is out of range (",
                               it->dump(), ")");
      }
    } else if constexpr (std::is_arithmetic_v<T>) {
      if (!it->is_number()) throw std::runtime_error("not a number");
    } else if constexpr (IsIntegerList<T>::value) {
      if (!it->is_array()) throw std::runtime_error("not a list");
      for (const auto& v : *it) {
        if (!v.is_number()) throw std::runtime_error("not a number");
        if (!InRange<typename T::value_type>(v)) {
          return Status::Invalid("malformed message: field '", key,
                                 "' holds a number out of range (", v.dump(), ")");
        }
      }
    }
    *out = it->template get<T>();
  } catch (const std::exception&) {
    return Status::Invalid("malformed message: field '", key, "' has the wrong type (",
                           JsonTypeName(*it), ")");
  }
  return Status::OK();
}

// An id is a JSON number, or an "o…" string inside metadata and from some clients.
Result<ObjectID> IdValue(const json& v, const char* key) {
  if (v.is_number_unsigned()) return v.get<ObjectID>();
  if (v.is_number_integer()) {
    // Ids with the top bit set arrive as negative numbers from some encoders.
    return static_cast<ObjectID>(v.get<int64_t>());
  }
  if (v.is_string()) return ObjectIDFromString(v.get<std::string>());
  return Status::Invalid("malformed message: '", key, "' must be an object id, not ",
                         JsonTypeName(v));
}

Result<ObjectID> IdField(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Invalid("malformed message: missing field '", key, "'");
  return IdValue(*it, key);
}

// A list of ids; a single id is accepted as a list of one.
Result<std::vector<ObjectID>> IdListField(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Invalid("malformed message: missing field '", key, "'");
  std::vector<ObjectID> ids;
  if (!it->is_array()) {
    VY_ASSIGN_OR_RETURN(ObjectID id, IdValue(*it, key));
    ids.push_back(id);
    return ids;
  }
  ids.reserve(it->size());
  for (const auto& v : *it) {
    VY_ASSIGN_OR_RETURN(ObjectID id, IdValue(v, key));
    ids.push_back(id);
  }
  return ids;
}

json Typed(const char* type) { return json{{"type", type}}; }

Status ReadPayloads(const json& j, std::vector<Payload>* ps) {
  auto it = j.find("payloads");
  if (it == j.end() || !it->is_array()) {
    return Status::Invalid("malformed reply: missing 'payloads'");
  }
  ps->clear();
  for (const auto& p : *it) {
    VY_ASSIGN_OR_RETURN(Payload payload, ReadPayload(p));
    ps->push_back(payload);
  }
  return Status::OK();
}

// Replies with a list of payloads also carry them as "0".."n-1" (older clients read those).
json WritePayloadList(const char* type, const std::vector<Payload>& ps,
                      const std::vector<int>& fds) {
  json r = Typed(type);
  json list = json::array();
  for (size_t i = 0; i < ps.size(); ++i) {
    json p = WritePayload(ps[i]);
    r[std::to_string(i)] = p;
    list.push_back(std::move(p));
  }
  r["num"] = ps.size();
  r["payloads"] = std::move(list);
  r["fds"] = fds;
  return r;
}

}  // namespace

// --- framing-level helpers ----------------------------------------------------

json WritePayload(const Payload& p) {
  return json{{"object_id", p.object_id}, {"store_fd", p.store_fd},
              {"data_offset", p.data_offset}, {"data_size", p.data_size},
              {"map_size", p.map_size},   {"pointer", p.pointer},
              {"is_sealed", p.is_sealed}, {"is_owner", p.is_owner},
              {"is_gpu", p.is_gpu}};
}

Result<Payload> ReadPayload(const json& j) {
  if (!j.is_object()) return Status::Invalid("malformed payload: not an object");
  Payload p;
  VY_ASSIGN_OR_RETURN(p.object_id, IdField(j, "object_id"));
  VY_RETURN_NOT_OK(Field(j, "store_fd", &p.store_fd));
  VY_RETURN_NOT_OK(Field(j, "data_offset", &p.data_offset));
  VY_RETURN_NOT_OK(Field(j, "data_size", &p.data_size));
  VY_RETURN_NOT_OK(Field(j, "map_size", &p.map_size));
  VY_RETURN_NOT_OK(Field(j, "pointer", &p.pointer, false));
  VY_RETURN_NOT_OK(Field(j, "is_sealed", &p.is_sealed, false));
  VY_RETURN_NOT_OK(Field(j, "is_owner", &p.is_owner, false));
  VY_RETURN_NOT_OK(Field(j, "is_gpu", &p.is_gpu, false));
  return p;
}

namespace {
// Deeper JSON is refused: copying or dumping it recurses and would overflow the stack.
constexpr int kMaxJsonDepth = 1000;

bool TooDeep(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}
}  // namespace

Result<json> ParseMessage(const std::string& frame) {
  std::string_view text(frame);
  std::string_view attachment;
  size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    attachment = text.substr(nul + 1);
    text = text.substr(0, nul);
  }
  if (TooDeep(text)) {
    return Status::Invalid("malformed message: JSON nested deeper than ", kMaxJsonDepth,
                           " levels");
  }
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Invalid("malformed message: not valid JSON");
  if (!j.is_object()) return Status::Invalid("malformed message: not a JSON object");
  if (nul != std::string_view::npos) {
    j[kAttachmentKey] = json::binary(json::binary_t::container_type(
        reinterpret_cast<const uint8_t*>(attachment.data()),
        reinterpret_cast<const uint8_t*>(attachment.data()) + attachment.size()));
  }
  return j;
}

std::string FrameText(const json& request, std::string_view attachment) {
  std::string text = request.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!attachment.empty()) {
    text.reserve(text.size() + 1 + attachment.size());
    text.push_back('\0');
    text.append(attachment);
  }
  return text;
}

Result<std::string> ReadMessageType(const json& msg) {
  auto it = msg.find("type");
  if (it == msg.end() || !it->is_string()) {
    return Status::Invalid("malformed message: missing string field 'type'");
  }
  return it->get<std::string>();
}

json WriteErrorReply(const Status& status) {
  return json{{"code", static_cast<int>(status.code())}, {"message", status.message()}};
}

Status CheckReply(const json& reply, const char* expected_type) {
  auto code = reply.find("code");
  if (code != reply.end() && code->is_number_integer() && code->get<int>() != 0) {
    std::string message;
    auto m = reply.find("message");
    if (m != reply.end() && m->is_string()) message = m->get<std::string>();
    return Status(StatusCodeFromInt(code->get<int>()), message);
  }
  if (expected_type != nullptr) {
    auto t = reply.find("type");
    if (t == reply.end() || !t->is_string() || t->get<std::string>() != expected_type) {
      return Status::Invalid("unexpected reply from the server: expected '", expected_type,
                             "', got ", reply.dump().substr(0, 200));
    }
  }
  return Status::OK();
}

// --- handshake ----------------------------------------------------------------

json WriteRegisterRequest(const RegisterRequest& r) {
  json j = Typed(req::kRegister);
  j["version"] = r.version;
  j["store_type"] = r.store_type;
  j["session_id"] = r.session_id;
  j["username"] = r.username;
  j["password"] = r.password;
  if (r.releases_references) j["vy_releases_references"] = true;
  return j;
}

Result<RegisterRequest> ReadRegisterRequest(const json& j) {
  RegisterRequest r;
  VY_RETURN_NOT_OK(Field(j, "version", &r.version, false));
  auto st = j.find("store_type");
  if (st != j.end()) {
    // "Normal"/"Plasma", or 1/2 from the published client.
    if (st->is_number_integer()) {
      r.store_type = st->get<int>() == 2 ? "Plasma" : "Normal";
    } else if (st->is_string()) {
      r.store_type = st->get<std::string>();
    } else {
      return Status::Invalid("malformed message: 'store_type' must be a string or an integer");
    }
  }
  VY_RETURN_NOT_OK(Field(j, "session_id", &r.session_id, false));
  VY_RETURN_NOT_OK(Field(j, "username", &r.username, false));
  VY_RETURN_NOT_OK(Field(j, "password", &r.password, false));
  VY_RETURN_NOT_OK(Field(j, "vy_releases_references", &r.releases_references, false));
  return r;
}

json WriteRegisterReply(const RegisterReply& r) {
  json j = Typed("register_reply");
  j["ipc_socket"] = r.ipc_socket;
  j["rpc_endpoint"] = r.rpc_endpoint;
  j["instance_id"] = r.instance_id;
  j["session_id"] = r.session_id;
  j["version"] = r.version;
  j["store_match"] = r.store_match;
  j["support_rpc_compression"] = r.support_rpc_compression;
  if (r.whole_tree_put) j["vy_whole_tree_put"] = true;
  return j;
}

Result<RegisterReply> ReadRegisterReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "register_reply"));
  RegisterReply r;
  VY_RETURN_NOT_OK(Field(j, "ipc_socket", &r.ipc_socket));
  VY_RETURN_NOT_OK(Field(j, "rpc_endpoint", &r.rpc_endpoint));
  VY_RETURN_NOT_OK(Field(j, "instance_id", &r.instance_id));
  VY_RETURN_NOT_OK(Field(j, "session_id", &r.session_id, false));
  VY_RETURN_NOT_OK(Field(j, "version", &r.version, false));
  VY_RETURN_NOT_OK(Field(j, "store_match", &r.store_match, false));
  VY_RETURN_NOT_OK(Field(j, "support_rpc_compression", &r.support_rpc_compression, false));
  VY_RETURN_NOT_OK(Field(j, "vy_whole_tree_put", &r.whole_tree_put, false));
  return r;
}

json WriteExitRequest() { return Typed(req::kExit); }
json WriteTypeOnly(const char* type) { return Typed(type); }

// --- blobs --------------------------------------------------------------------

json WriteCreateBufferRequest(uint64_t size) {
  json j = Typed(req::kCreateBuffer);
  j["size"] = size;
  return j;
}

Result<uint64_t> ReadCreateBufferRequest(const json& j) {
  uint64_t size = 0;
  VY_RETURN_NOT_OK(Field(j, "size", &size));
  return size;
}

json WriteCreateBufferReply(const Payload& p, int fd_to_send) {
  json j = Typed("create_buffer_reply");
  j["id"] = p.object_id;
  j["created"] = WritePayload(p);
  j["fd"] = fd_to_send;
  return j;
}

Result<Payload> ReadCreateBufferReply(const json& j, int* fd_sent) {
  VY_RETURN_NOT_OK(CheckReply(j, "create_buffer_reply"));
  auto it = j.find("created");
  if (it == j.end()) return Status::Invalid("malformed reply: missing 'created'");
  VY_RETURN_NOT_OK(Field(j, "fd", fd_sent));
  return ReadPayload(*it);
}

json WriteCreateBuffersRequest(const std::vector<uint64_t>& sizes) {
  json j = Typed(req::kCreateBuffers);
  j["num"] = sizes.size();
  j["sizes"] = sizes;
  return j;
}

Result<std::vector<uint64_t>> ReadCreateBuffersRequest(const json& j) {
  std::vector<uint64_t> sizes;
  VY_RETURN_NOT_OK(Field(j, "sizes", &sizes));
  size_t num = sizes.size();
  VY_RETURN_NOT_OK(Field(j, "num", &num, false));
  if (num != sizes.size()) {
    return Status::Invalid("malformed message: 'num' (", num, ") does not match 'sizes' (",
                           sizes.size(), ")");
  }
  return sizes;
}

json WriteCreateBuffersReply(const std::vector<Payload>& ps, const std::vector<int>& fds) {
  json j = WritePayloadList("create_buffers_reply", ps, fds);
  json ids = json::array();
  for (const auto& p : ps) ids.push_back(p.object_id);
  j["ids"] = std::move(ids);
  return j;
}

Result<std::vector<Payload>> ReadCreateBuffersReply(const json& j, std::vector<int>* fds) {
  VY_RETURN_NOT_OK(CheckReply(j, "create_buffers_reply"));
  std::vector<Payload> ps;
  VY_RETURN_NOT_OK(ReadPayloads(j, &ps));
  VY_RETURN_NOT_OK(Field(j, "fds", fds));
  return ps;
}

json WriteSealRequest(ObjectID id) {
  json j = Typed(req::kSeal);
  j["object_id"] = id;
  return j;
}

Result<ObjectID> ReadSealRequest(const json& j) { return IdField(j, "object_id"); }

json WriteGetBuffersRequest(const GetBuffersRequest& r) {
  json j = Typed(req::kGetBuffers);
  j["num"] = r.ids.size();
  j["ids"] = r.ids;
  j["unsafe"] = r.unsafe;
  return j;
}

Result<GetBuffersRequest> ReadGetBuffersRequest(const json& j) {
  GetBuffersRequest r;
  VY_RETURN_NOT_OK(Field(j, "unsafe", &r.unsafe, false));
  if (j.contains("ids")) {
    VY_ASSIGN_OR_RETURN(r.ids, IdListField(j, "ids"));
    return r;
  }
  // The published client sends {"num": n, "0": id0, "1": id1, ...}.
  size_t num = 0;
  VY_RETURN_NOT_OK(Field(j, "num", &num));
  if (num > j.size()) return Status::Invalid("malformed message: 'num' exceeds the ids given");
  for (size_t i = 0; i < num; ++i) {
    std::string key = std::to_string(i);
    VY_ASSIGN_OR_RETURN(ObjectID id, IdField(j, key.c_str()));
    r.ids.push_back(id);
  }
  return r;
}

json WriteGetBuffersReply(const std::vector<Payload>& ps, const std::vector<int>& fds) {
  json j = WritePayloadList("get_buffers_reply", ps, fds);
  j["compress"] = false;
  return j;
}

Result<std::vector<Payload>> ReadGetBuffersReply(const json& j, std::vector<int>* fds) {
  VY_RETURN_NOT_OK(CheckReply(j, "get_buffers_reply"));
  std::vector<Payload> ps;
  VY_RETURN_NOT_OK(ReadPayloads(j, &ps));
  VY_RETURN_NOT_OK(Field(j, "fds", fds));
  return ps;
}

json WriteCreateRemoteBuffersRequest(const CreateRemoteBuffersRequest& r) {
  json j;
  if (r.single && r.sizes.size() == 1) {
    j = Typed(req::kCreateRemoteBuffer);
    j["size"] = r.sizes[0];
  } else {
    j = Typed(req::kCreateRemoteBuffers);
    j["num"] = r.sizes.size();
    j["sizes"] = r.sizes;
  }
  j["compress"] = r.compress;
  j["use_rdma"] = r.use_rdma;
  return j;
}

Result<CreateRemoteBuffersRequest> ReadCreateRemoteBuffersRequest(const json& j) {
  CreateRemoteBuffersRequest r;
  VY_ASSIGN_OR_RETURN(std::string type, ReadMessageType(j));
  r.single = type == req::kCreateRemoteBuffer;
  if (r.single) {
    uint64_t size = 0;
    VY_RETURN_NOT_OK(Field(j, "size", &size));
    r.sizes.push_back(size);
  } else {
    VY_RETURN_NOT_OK(Field(j, "sizes", &r.sizes));
  }
  VY_RETURN_NOT_OK(Field(j, "compress", &r.compress, false));
  VY_RETURN_NOT_OK(Field(j, "use_rdma", &r.use_rdma, false));
  return r;
}

json WriteGetRemoteBuffersRequest(const GetRemoteBuffersRequest& r) {
  // As the published client: ids under "0".."n-1".
  json j = Typed(req::kGetRemoteBuffers);
  for (size_t i = 0; i < r.ids.size(); ++i) j[std::to_string(i)] = r.ids[i];
  j["num"] = r.ids.size();
  j["unsafe"] = r.unsafe;
  j["compress"] = r.compress;
  j["use_rdma"] = r.use_rdma;
  return j;
}

Result<GetRemoteBuffersRequest> ReadGetRemoteBuffersRequest(const json& j) {
  VY_ASSIGN_OR_RETURN(GetBuffersRequest ids, ReadGetBuffersRequest(j));
  GetRemoteBuffersRequest r;
  r.ids = std::move(ids.ids);
  r.unsafe = ids.unsafe;
  VY_RETURN_NOT_OK(Field(j, "compress", &r.compress, false));
  VY_RETURN_NOT_OK(Field(j, "use_rdma", &r.use_rdma, false));
  return r;
}

json WriteGetRemoteBuffersReply(const std::vector<Payload>& ps, bool compress) {
  json j = WritePayloadList("get_buffers_reply", ps, {});
  j["compress"] = compress;
  return j;
}

Result<std::vector<Payload>> ReadGetRemoteBuffersReply(const json& j, bool* compress) {
  VY_RETURN_NOT_OK(CheckReply(j, "get_buffers_reply"));
  std::vector<Payload> ps;
  VY_RETURN_NOT_OK(ReadPayloads(j, &ps));
  VY_RETURN_NOT_OK(Field(j, "compress", compress, false));
  return ps;
}

json WriteShrinkBufferRequest(ObjectID id, uint64_t size) {
  json j = Typed(req::kShrinkBuffer);
  j["id"] = id;
  j["size"] = size;
  return j;
}

Status ReadShrinkBufferRequest(const json& j, ObjectID* id, uint64_t* size) {
  VY_ASSIGN_OR_RETURN(*id, IdField(j, "id"));
  return Field(j, "size", size);
}

json WriteDropBufferRequest(ObjectID id) {
  json j = Typed(req::kDropBuffer);
  j["id"] = id;
  return j;
}

Result<ObjectID> ReadDropBufferRequest(const json& j) { return IdField(j, "id"); }

json WriteIncreaseRefCountRequest(const std::vector<ObjectID>& ids) {
  json j = Typed(req::kIncreaseRefCount);
  j["ids"] = ids;
  return j;
}

Result<std::vector<ObjectID>> ReadIncreaseRefCountRequest(const json& j) {
  return IdListField(j, "ids");
}

json WriteReleaseRequest(ObjectID id) {
  json j = Typed(req::kRelease);
  j["object_id"] = id;
  return j;
}

Result<ObjectID> ReadReleaseRequest(const json& j) { return IdField(j, "object_id"); }

// --- metadata -----------------------------------------------------------------

namespace {
Result<json> TreeField(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) {
    return Status::Invalid("malformed message: '", key, "' must be a metadata tree (an object)");
  }
  return *it;
}

Status ReadCreated(const json& j, size_t index, bool listed, CreatedObject* c) {
  if (!listed) {
    VY_ASSIGN_OR_RETURN(c->id, IdField(j, "id"));
    VY_RETURN_NOT_OK(Field(j, "signature", &c->signature));
    return Field(j, "instance_id", &c->instance_id);
  }
  try {
    c->id = j.at("ids").at(index).get<ObjectID>();
    c->signature = j.at("signatures").at(index).get<Signature>();
    c->instance_id = j.at("instance_ids").at(index).get<InstanceID>();
  } catch (const std::exception& e) {
    return Status::Invalid("malformed reply: ", e.what());
  }
  return Status::OK();
}
}  // namespace

json WriteCreateDataRequest(const json& tree) {
  json j = Typed(req::kCreateData);
  j["content"] = tree;
  return j;
}

Result<json> ReadCreateDataRequest(const json& j) { return TreeField(j, "content"); }

json WriteCreateDataReply(const CreatedObject& c) {
  json j = Typed("create_data_reply");
  j["id"] = c.id;
  j["signature"] = c.signature;
  j["instance_id"] = c.instance_id;
  return j;
}

Result<CreatedObject> ReadCreateDataReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "create_data_reply"));
  CreatedObject c;
  VY_RETURN_NOT_OK(ReadCreated(j, 0, false, &c));
  return c;
}

json WriteCreateDatasRequest(const std::vector<json>& trees) {
  json j = Typed(req::kCreateDatas);
  j["num"] = trees.size();
  j["contents"] = trees;
  return j;
}

Result<std::vector<json>> ReadCreateDatasRequest(const json& j) {
  auto it = j.find("contents");
  if (it == j.end() || !it->is_array()) {
    return Status::Invalid("malformed message: 'contents' must be a list of metadata trees");
  }
  std::vector<json> trees;
  for (const auto& t : *it) {
    if (!t.is_object()) return Status::Invalid("malformed message: a content is not an object");
    trees.push_back(t);
  }
  return trees;
}

json WriteCreateDatasReply(const std::vector<CreatedObject>& cs) {
  json j = Typed("create_datas_reply");
  json ids = json::array(), sigs = json::array(), insts = json::array();
  for (const auto& c : cs) {
    ids.push_back(c.id);
    sigs.push_back(c.signature);
    insts.push_back(c.instance_id);
  }
  j["num"] = cs.size();
  j["ids"] = std::move(ids);
  j["signatures"] = std::move(sigs);
  j["instance_ids"] = std::move(insts);
  return j;
}

Result<std::vector<CreatedObject>> ReadCreateDatasReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "create_datas_reply"));
  size_t num = 0;
  VY_RETURN_NOT_OK(Field(j, "num", &num));
  std::vector<CreatedObject> cs(num);
  for (size_t i = 0; i < num; ++i) VY_RETURN_NOT_OK(ReadCreated(j, i, true, &cs[i]));
  return cs;
}

json WriteGetDataRequest(const GetDataRequest& r) {
  json j = Typed(req::kGetData);
  j["id"] = r.ids;
  j["sync_remote"] = r.sync_remote;
  j["wait"] = r.wait;
  return j;
}

Result<GetDataRequest> ReadGetDataRequest(const json& j) {
  GetDataRequest r;
  VY_ASSIGN_OR_RETURN(r.ids, IdListField(j, "id"));
  VY_RETURN_NOT_OK(Field(j, "sync_remote", &r.sync_remote, false));
  VY_RETURN_NOT_OK(Field(j, "wait", &r.wait, false));
  return r;
}

json WriteGetDataReply(const json& trees) {
  json j = Typed("get_data_reply");
  j["content"] = trees;
  return j;
}

Result<json> ReadGetDataReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "get_data_reply"));
  return TreeField(j, "content");
}

namespace {
json WriteListQuery(const char* type, const ListQuery& q) {
  json j = Typed(type);
  j["pattern"] = q.pattern;
  j["regex"] = q.regex;
  j["limit"] = q.limit;
  return j;
}

Result<ListQuery> ReadListQuery(const json& j) {
  ListQuery q;
  VY_RETURN_NOT_OK(Field(j, "pattern", &q.pattern, false));
  VY_RETURN_NOT_OK(Field(j, "regex", &q.regex, false));
  VY_RETURN_NOT_OK(Field(j, "limit", &q.limit, false));
  return q;
}
}  // namespace

json WriteListDataRequest(const ListQuery& q) { return WriteListQuery(req::kListData, q); }
Result<ListQuery> ReadListDataRequest(const json& j) { return ReadListQuery(j); }
json WriteListNameRequest(const ListQuery& q) { return WriteListQuery(req::kListName, q); }
Result<ListQuery> ReadListNameRequest(const json& j) { return ReadListQuery(j); }

json WriteDeleteRequest(const DeleteRequest& r) {
  json j = Typed(r.with_feedbacks ? req::kDelDataWithFeedbacks : req::kDelData);
  j["id"] = r.ids;
  j["force"] = r.force;
  j["deep"] = r.deep;
  j["fastpath"] = r.fastpath;
  j["memory_trim"] = r.memory_trim;
  if (!r.release.empty()) j["release"] = r.release;
  return j;
}

Result<DeleteRequest> ReadDeleteRequest(const json& j) {
  DeleteRequest r;
  VY_ASSIGN_OR_RETURN(r.ids, IdListField(j, "id"));
  VY_RETURN_NOT_OK(Field(j, "force", &r.force, false));
  VY_RETURN_NOT_OK(Field(j, "deep", &r.deep, false));
  VY_RETURN_NOT_OK(Field(j, "fastpath", &r.fastpath, false));
  VY_RETURN_NOT_OK(Field(j, "memory_trim", &r.memory_trim, false));
  r.with_feedbacks = j.value("type", "") == req::kDelDataWithFeedbacks;
  if (j.contains("release")) {
    VY_ASSIGN_OR_RETURN(r.release, IdListField(j, "release"));
  }
  return r;
}

json WriteDeleteReply(bool with_feedbacks, const std::vector<ObjectID>& deleted_blobs) {
  json j = Typed(with_feedbacks ? "del_data_with_feedbacks_reply" : "del_data_reply");
  if (with_feedbacks) j["deleted_bids"] = deleted_blobs;
  return j;
}

Result<std::vector<ObjectID>> ReadDeleteReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j));
  std::vector<ObjectID> deleted;
  VY_RETURN_NOT_OK(Field(j, "deleted_bids", &deleted, false));
  return deleted;
}

json WriteIdRequest(const char* type, ObjectID id) {
  json j = Typed(type);
  j["id"] = id;
  return j;
}

Result<ObjectID> ReadIdRequest(const json& j) { return IdField(j, "id"); }

json WriteExistsReply(bool exists) {
  json j = Typed("exists_reply");
  j["exists"] = exists;
  return j;
}

Result<bool> ReadExistsReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "exists_reply"));
  bool exists = false;
  VY_RETURN_NOT_OK(Field(j, "exists", &exists));
  return exists;
}

json WriteIfPersistReply(bool persist) {
  json j = Typed("if_persist_reply");
  j["persist"] = persist;
  return j;
}

Result<bool> ReadIfPersistReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "if_persist_reply"));
  bool persist = false;
  VY_RETURN_NOT_OK(Field(j, "persist", &persist));
  return persist;
}

json WriteShallowCopyRequest(ObjectID id, const json& extra) {
  json j = Typed(req::kShallowCopy);
  j["id"] = id;
  if (!extra.is_null() && !extra.empty()) j["extra"] = extra;
  return j;
}

Status ReadShallowCopyRequest(const json& j, ObjectID* id, json* extra) {
  VY_ASSIGN_OR_RETURN(*id, IdField(j, "id"));
  auto it = j.find("extra");
  *extra = json::object();
  if (it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return Status::Invalid("malformed message: 'extra' must be an object of fields");
    }
    *extra = *it;
  }
  return Status::OK();
}

json WriteShallowCopyReply(ObjectID target) {
  json j = Typed("shallow_copy_reply");
  j["target_id"] = target;
  return j;
}

Result<ObjectID> ReadShallowCopyReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "shallow_copy_reply"));
  return IdField(j, "target_id");
}

json WriteLabelRequest(ObjectID id, const std::vector<std::string>& keys,
                       const std::vector<std::string>& values) {
  json j = Typed(req::kLabel);
  j["id"] = id;
  j["keys"] = keys;
  j["values"] = values;
  return j;
}

Status ReadLabelRequest(const json& j, ObjectID* id, std::vector<std::string>* keys,
                        std::vector<std::string>* values) {
  VY_ASSIGN_OR_RETURN(*id, IdField(j, "id"));
  VY_RETURN_NOT_OK(Field(j, "keys", keys));
  VY_RETURN_NOT_OK(Field(j, "values", values));
  if (keys->size() != values->size()) {
    return Status::Invalid("malformed message: ", keys->size(), " label keys but ",
                           values->size(), " values");
  }
  return Status::OK();
}

json WritePutNameRequest(ObjectID id, const std::string& name) {
  json j = Typed(req::kPutName);
  j["object_id"] = id;
  j["name"] = name;
  return j;
}

Status ReadPutNameRequest(const json& j, ObjectID* id, std::string* name) {
  VY_ASSIGN_OR_RETURN(*id, IdField(j, "object_id"));
  return Field(j, "name", name);
}

json WriteGetNameRequest(const std::string& name, bool wait) {
  json j = Typed(req::kGetName);
  j["name"] = name;
  j["wait"] = wait;
  return j;
}

Status ReadGetNameRequest(const json& j, std::string* name, bool* wait) {
  VY_RETURN_NOT_OK(Field(j, "name", name));
  return Field(j, "wait", wait, false);
}

json WriteGetNameReply(ObjectID id) {
  json j = Typed("get_name_reply");
  j["object_id"] = id;
  return j;
}

Result<ObjectID> ReadGetNameReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "get_name_reply"));
  return IdField(j, "object_id");
}

json WriteListNameReply(const std::map<std::string, ObjectID>& names) {
  json j = Typed("list_name_reply");
  j["names"] = names;
  j["size"] = names.size();
  return j;
}

Result<std::map<std::string, ObjectID>> ReadListNameReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "list_name_reply"));
  std::map<std::string, ObjectID> names;
  VY_RETURN_NOT_OK(Field(j, "names", &names));
  return names;
}

json WriteDropNameRequest(const std::string& name) {
  json j = Typed(req::kDropName);
  j["name"] = name;
  return j;
}

Result<std::string> ReadDropNameRequest(const json& j) {
  std::string name;
  VY_RETURN_NOT_OK(Field(j, "name", &name));
  return name;
}

json WriteMigrateObjectRequest(ObjectID id) {
  json j = Typed(req::kMigrateObject);
  j["object_id"] = id;
  return j;
}

Result<ObjectID> ReadMigrateObjectRequest(const json& j) { return IdField(j, "object_id"); }

json WriteMigrateObjectReply(ObjectID id) {
  json j = Typed("migrate_object_reply");
  j["object_id"] = id;
  return j;
}

Result<ObjectID> ReadMigrateObjectReply(const json& j) { return IdField(j, "object_id"); }

json WriteMemoryTrimReply(bool trimmed) {
  json j = Typed("memory_trim_reply");
  j["trimmed"] = trimmed;
  return j;
}

Result<bool> ReadMemoryTrimReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "memory_trim_reply"));
  bool trimmed = false;
  VY_RETURN_NOT_OK(Field(j, "trimmed", &trimmed));
  return trimmed;
}

json WriteMetaReply(const char* type, const json& meta) {
  json j = Typed(type);
  j["meta"] = meta;
  return j;
}

Result<json> ReadMetaReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j));
  return TreeField(j, "meta");
}

json WriteInstanceStatus(const InstanceStatus& s) {
  return json{{"instance_id", s.instance_id},
              {"deployment", s.deployment},
              {"memory_usage", s.memory_usage},
              {"memory_limit", s.memory_limit},
              {"deferred_requests", s.deferred_requests},
              {"ipc_connections", s.ipc_connections},
              {"rpc_connections", s.rpc_connections},
              {"meta_memory_usage", s.meta_memory_usage},
              {"meta_memory_limit", s.meta_memory_limit},
              {"spill", json{{"enabled", s.spill.enabled},
                             {"path", s.spill.path},
                             {"spilled_bytes", s.spill.spilled_bytes},
                             {"spilled_blobs", s.spill.spilled_blobs},
                             {"disk_bytes", s.spill.disk_bytes},
                             {"spills", s.spill.spills},
                             {"loads", s.spill.loads},
                             {"spill_failures", s.spill.spill_failures}}}};
}

Result<InstanceStatus> ReadInstanceStatus(const json& meta) {
  InstanceStatus s;
  VY_RETURN_NOT_OK(Field(meta, "instance_id", &s.instance_id));
  VY_RETURN_NOT_OK(Field(meta, "deployment", &s.deployment, false));
  VY_RETURN_NOT_OK(Field(meta, "memory_usage", &s.memory_usage));
  VY_RETURN_NOT_OK(Field(meta, "memory_limit", &s.memory_limit));
  VY_RETURN_NOT_OK(Field(meta, "deferred_requests", &s.deferred_requests, false));
  VY_RETURN_NOT_OK(Field(meta, "ipc_connections", &s.ipc_connections, false));
  VY_RETURN_NOT_OK(Field(meta, "rpc_connections", &s.rpc_connections, false));
  VY_RETURN_NOT_OK(Field(meta, "meta_memory_usage", &s.meta_memory_usage, false));
  VY_RETURN_NOT_OK(Field(meta, "meta_memory_limit", &s.meta_memory_limit, false));
  auto spill = meta.find("spill");
  if (spill != meta.end() && spill->is_object()) {
    const json& sp = *spill;
    VY_RETURN_NOT_OK(Field(sp, "enabled", &s.spill.enabled, false));
    VY_RETURN_NOT_OK(Field(sp, "path", &s.spill.path, false));
    VY_RETURN_NOT_OK(Field(sp, "spilled_bytes", &s.spill.spilled_bytes, false));
    VY_RETURN_NOT_OK(Field(sp, "spilled_blobs", &s.spill.spilled_blobs, false));
    VY_RETURN_NOT_OK(Field(sp, "disk_bytes", &s.spill.disk_bytes, false));
    VY_RETURN_NOT_OK(Field(sp, "spills", &s.spill.spills, false));
    VY_RETURN_NOT_OK(Field(sp, "loads", &s.spill.loads, false));
    VY_RETURN_NOT_OK(Field(sp, "spill_failures", &s.spill.spill_failures, false));
  }
  return s;
}

// --- fused requests -----------------------------------------------------------

json WriteVyPutRequest(const VyPutRequest& r) {
  VyPutRequest copy = r;
  return WriteVyPutRequest(std::move(copy));
}

json WriteVyPutRequest(VyPutRequest&& r) {
  json j = Typed(req::kVyPut);
  j["seal"] = r.seal;
  j["content"] = std::move(r.tree);
  j["persist"] = r.persist;
  if (!r.name.empty()) j["name"] = r.name;
  if (!r.release.empty()) j["release"] = r.release;
  if (!r.inline_sizes.empty()) j["inline"] = r.inline_sizes;
  return j;
}

Result<VyPutRequest> ReadVyPutRequest(const json& j) {
  VyPutRequest r;
  VY_RETURN_NOT_OK(ReadVyPutRequestHead(j, &r));
  r.tree = j["content"];
  return r;
}

Status ReadVyPutRequestHead(const json& j, VyPutRequest* out) {
  VyPutRequest& r = *out;
  if (j.contains("seal")) {
    VY_ASSIGN_OR_RETURN(r.seal, IdListField(j, "seal"));
  }
  auto content = j.find("content");
  if (content == j.end() || !content->is_object()) {
    return Status::Invalid("malformed message: 'content' must be a metadata tree (an object)");
  }
  VY_RETURN_NOT_OK(Field(j, "persist", &r.persist, false));
  VY_RETURN_NOT_OK(Field(j, "name", &r.name, false));
  if (j.contains("release")) {
    VY_ASSIGN_OR_RETURN(r.release, IdListField(j, "release"));
  }
  auto att = j.find(kAttachmentKey);
  if (att != j.end() && att->is_binary()) {
    const auto& bytes = att->get_binary();
    r.attachment = std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  if (j.contains("inline")) {
    VY_RETURN_NOT_OK(Field(j, "inline", &r.inline_sizes));
    uint64_t total = 0;
    for (uint64_t n : r.inline_sizes) {
      if (n > r.attachment.size() - total) {
        return Status::Invalid("vy_put_request: 'inline' sizes add up to more than the ",
                               r.attachment.size(), " bytes the frame carries");
      }
      total += n;
    }
    if (total != r.attachment.size()) {
      return Status::Invalid("vy_put_request: 'inline' sizes add up to ", total,
                             " bytes but the frame carries ", r.attachment.size());
    }
  } else if (!r.attachment.empty()) {
    return Status::Invalid("vy_put_request: the frame carries bytes but no 'inline' sizes");
  }
  return Status::OK();
}

json WriteVyPutReply(const CreatedObject& created, const std::vector<ObjectID>& inline_blobs,
                     const std::vector<ObjectID>& members) {
  json j = WriteCreateDataReply(created);
  if (!inline_blobs.empty()) j["inline"] = inline_blobs;
  if (!members.empty()) j["members"] = members;
  return j;
}

Status ReadVyPutReply(const json& j, CreatedObject* created, std::vector<ObjectID>* inline_blobs,
                      std::vector<ObjectID>* members) {
  VY_ASSIGN_OR_RETURN(*created, ReadCreateDataReply(j));
  VY_RETURN_NOT_OK(Field(j, "inline", inline_blobs, false));
  return Field(j, "members", members, false);
}

json WriteVyGetRequest(const VyGetRequest& r) {
  json j = Typed(req::kVyGet);
  j["ids"] = r.ids;
  j["sync_remote"] = r.sync_remote;
  if (!r.release.empty()) j["release"] = r.release;
  if (r.share_members) j["share_members"] = true;
  return j;
}

Result<VyGetRequest> ReadVyGetRequest(const json& j) {
  VyGetRequest r;
  VY_ASSIGN_OR_RETURN(r.ids, IdListField(j, "ids"));
  VY_RETURN_NOT_OK(Field(j, "sync_remote", &r.sync_remote, false));
  VY_RETURN_NOT_OK(Field(j, "share_members", &r.share_members, false));
  if (j.contains("release")) {
    VY_ASSIGN_OR_RETURN(r.release, IdListField(j, "release"));
  }
  return r;
}

json WriteVyGetReply(json trees, const std::vector<Payload>& ps,
                     const std::vector<int>& fds) {
  json j = Typed("vy_get_reply");
  j["content"] = std::move(trees);
  json list = json::array();
  for (const auto& p : ps) list.push_back(WritePayload(p));
  j["payloads"] = std::move(list);
  j["fds"] = fds;
  return j;
}

Status ReadVyGetReply(const json& j, json* trees, std::vector<Payload>* ps,
                      std::vector<int>* fds) {
  VY_RETURN_NOT_OK(CheckReply(j, "vy_get_reply"));
  VY_ASSIGN_OR_RETURN(*trees, TreeField(j, "content"));
  VY_RETURN_NOT_OK(ReadPayloads(j, ps));
  return Field(j, "fds", fds);
}

Status ReadVyGetReply(json&& j, json* trees, std::vector<Payload>* ps, std::vector<int>* fds) {
  VY_RETURN_NOT_OK(CheckReply(j, "vy_get_reply"));
  VY_RETURN_NOT_OK(ReadPayloads(j, ps));
  VY_RETURN_NOT_OK(Field(j, "fds", fds));
  auto it = j.find("content");
  if (it == j.end() || !it->is_object()) {
    return Status::Invalid("malformed message: 'content' must be a metadata tree (an object)");
  }
  *trees = std::move(*it);
  return Status::OK();
}

namespace {

bool IsSharedRef(const json& node) {
  return node.is_object() && node.size() == 1 && node.contains(kSharedMemberRef) &&
         node[kSharedMemberRef].is_string();
}

// Every full object tree below `node`, by id (the first one seen wins), and
// the shared-member references met on the way. The ids are views of the
// trees' own strings (no copies).
void CollectFull(json& node, std::unordered_map<std::string_view, const json*>* full,
                 std::vector<json*>* refs) {
  std::vector<json*> pending{&node};
  while (!pending.empty()) {
    json* n = pending.back();
    pending.pop_back();
    for (auto& [key, value] : n->items()) {
      if (!value.is_object()) continue;
      if (IsSharedRef(value)) {
        refs->push_back(&value);
        continue;
      }
      auto id = value.find(meta_key::kId);
      if (id != value.end() && id->is_string()) {
        full->emplace(id->get_ref<const std::string&>(), &value);
      }
      pending.push_back(&value);
    }
  }
}

}  // namespace

Status ResolveSharedMembers(json* trees) {
  std::unordered_map<std::string_view, const json*> full;
  std::vector<json*> refs;
  CollectFull(*trees, &full, &refs);
  // Copies are resolved in turn: a shared member may itself hold shared ones.
  // The depth of a tree is bounded by the server (--meta_max_depth), and so is
  // the number of nodes the copies add up to (--meta_max_nodes).
  while (!refs.empty()) {
    json* ref = refs.back();
    refs.pop_back();
    const std::string id = (*ref)[kSharedMemberRef].get<std::string>();
    auto it = full.find(id);
    if (it == full.end()) {
      return Status::Invalid("the reply refers to member ", id, " but does not hold it");
    }
    *ref = *it->second;
    CollectFull(*ref, &full, &refs);  // its ids are known already: only its references count
  }
  return Status::OK();
}

std::map<InstanceID, std::vector<ObjectID>> BlobsByOwner(const json& trees,
                                                         InstanceID default_owner) {
  std::map<InstanceID, std::vector<ObjectID>> owners;
  std::vector<const json*> pending{&trees};
  while (!pending.empty()) {
    const json* tree = pending.back();
    pending.pop_back();
    for (const auto& [key, value] : tree->items()) {
      if (!value.is_object()) continue;
      auto type_name = value.find(meta_key::kTypename);
      if (type_name == value.end() || *type_name != kBlobTypename) {
        pending.push_back(&value);
        continue;
      }
      auto text = value.find(meta_key::kId);
      if (text == value.end() || !text->is_string()) continue;
      auto id = ObjectIDFromString(text->get<std::string>());
      if (!id.ok()) continue;
      auto owner = value.find(meta_key::kInstanceId);
      owners[owner != value.end() && owner->is_number_unsigned() ? owner->get<InstanceID>()
                                                                 : default_owner]
          .push_back(*id);
    }
  }
  return owners;
}

// --- streams ------------------------------------------------------------------

json WriteCreateStreamRequest(ObjectID id) {
  json j = Typed(req::kCreateStream);
  j["object_id"] = id;
  return j;
}

Result<ObjectID> ReadCreateStreamRequest(const json& j) { return IdField(j, "object_id"); }

json WriteOpenStreamRequest(ObjectID id, int64_t mode) {
  json j = Typed(req::kOpenStream);
  j["object_id"] = id;
  j["mode"] = mode;
  return j;
}

Status ReadOpenStreamRequest(const json& j, ObjectID* id, int64_t* mode) {
  VY_ASSIGN_OR_RETURN(*id, IdField(j, "object_id"));
  VY_RETURN_NOT_OK(Field(j, "mode", mode));
  if (*mode != kStreamRead && *mode != kStreamWrite) {
    return Status::Invalid("malformed message: 'mode' must be 1 (read) or 2 (write), not ",
                           *mode);
  }
  return Status::OK();
}

json WriteGetNextStreamChunkRequest(ObjectID stream, uint64_t size) {
  json j = Typed(req::kGetNextStreamChunk);
  j["id"] = stream;
  j["size"] = size;
  return j;
}

Status ReadGetNextStreamChunkRequest(const json& j, ObjectID* stream, uint64_t* size) {
  VY_ASSIGN_OR_RETURN(*stream, IdField(j, "id"));
  return Field(j, "size", size);
}

json WriteGetNextStreamChunkReply(const Payload& p, int fd_to_send) {
  json j = Typed("get_next_stream_chunk_reply");
  j["buffer"] = WritePayload(p);
  j["fd"] = fd_to_send;
  return j;
}

Result<Payload> ReadGetNextStreamChunkReply(const json& j, int* fd_sent) {
  VY_RETURN_NOT_OK(CheckReply(j, "get_next_stream_chunk_reply"));
  auto it = j.find("buffer");
  if (it == j.end()) return Status::Invalid("malformed reply: missing 'buffer'");
  *fd_sent = -1;
  VY_RETURN_NOT_OK(Field(j, "fd", fd_sent, false));
  return ReadPayload(*it);
}

json WritePushNextStreamChunkRequest(ObjectID stream, ObjectID chunk) {
  json j = Typed(req::kPushNextStreamChunk);
  j["id"] = stream;
  j["chunk"] = chunk;
  return j;
}

Status ReadPushNextStreamChunkRequest(const json& j, ObjectID* stream, ObjectID* chunk) {
  VY_ASSIGN_OR_RETURN(*stream, IdField(j, "id"));
  VY_ASSIGN_OR_RETURN(*chunk, IdField(j, "chunk"));
  return Status::OK();
}

json WritePullNextStreamChunkRequest(ObjectID stream, const std::vector<ObjectID>& release) {
  json j = Typed(req::kPullNextStreamChunk);
  j["id"] = stream;
  if (!release.empty()) j["release"] = release;
  return j;
}

Status ReadPullNextStreamChunkRequest(const json& j, ObjectID* stream,
                                      std::vector<ObjectID>* release) {
  VY_ASSIGN_OR_RETURN(*stream, IdField(j, "id"));
  release->clear();
  if (!j.contains("release")) return Status::OK();
  VY_ASSIGN_OR_RETURN(*release, IdListField(j, "release"));
  return Status::OK();
}

json WritePullNextStreamChunkReply(ObjectID chunk) {
  json j = Typed("pull_next_stream_chunk_reply");
  j["chunk"] = chunk;
  return j;
}

Result<ObjectID> ReadPullNextStreamChunkReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "pull_next_stream_chunk_reply"));
  return IdField(j, "chunk");
}

json WriteStopStreamRequest(ObjectID stream, bool failed) {
  json j = Typed(req::kStopStream);
  j["id"] = stream;
  j["failed"] = failed;
  return j;
}

Status ReadStopStreamRequest(const json& j, ObjectID* stream, bool* failed) {
  VY_ASSIGN_OR_RETURN(*stream, IdField(j, "id"));
  return Field(j, "failed", failed);
}

json WriteDropStreamRequest(ObjectID stream) {
  json j = Typed(req::kDropStream);
  j["id"] = stream;
  return j;
}

// --- spilling ---------------------------------------------------------------

json WriteEvictRequest(const std::vector<ObjectID>& ids) {
  json j = Typed(req::kEvict);
  j["ids"] = ids;
  return j;
}

Result<std::vector<ObjectID>> ReadEvictRequest(const json& j) { return IdListField(j, "ids"); }

json WriteLoadRequest(const std::vector<ObjectID>& ids, bool pin) {
  json j = Typed(req::kLoad);
  j["ids"] = ids;
  j["pin"] = pin;
  return j;
}

Status ReadLoadRequest(const json& j, std::vector<ObjectID>* ids, bool* pin) {
  VY_ASSIGN_OR_RETURN(*ids, IdListField(j, "ids"));
  *pin = false;
  return Field(j, "pin", pin, false);
}

json WriteUnpinRequest(const std::vector<ObjectID>& ids) {
  json j = Typed(req::kUnpin);
  j["ids"] = ids;
  return j;
}

Result<std::vector<ObjectID>> ReadUnpinRequest(const json& j) { return IdListField(j, "ids"); }

json WriteIsSpilledRequest(ObjectID id) {
  json j = Typed(req::kIsSpilled);
  j["id"] = id;
  return j;
}

Result<ObjectID> ReadIsSpilledRequest(const json& j) { return IdField(j, "id"); }

json WriteIsSpilledReply(bool is_spilled) {
  json j = Typed("is_spilled_reply");
  j["is_spilled"] = is_spilled;
  return j;
}

Result<bool> ReadIsSpilledReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "is_spilled_reply"));
  bool v = false;
  VY_RETURN_NOT_OK(Field(j, "is_spilled", &v));
  return v;
}

json WriteIsInUseRequest(ObjectID id) {
  json j = Typed(req::kIsInUse);
  j["id"] = id;
  return j;
}

Result<ObjectID> ReadIsInUseRequest(const json& j) { return IdField(j, "id"); }

json WriteIsInUseReply(bool is_in_use) {
  json j = Typed("is_in_use_reply");
  j["is_in_use"] = is_in_use;
  return j;
}

Result<bool> ReadIsInUseReply(const json& j) {
  VY_RETURN_NOT_OK(CheckReply(j, "is_in_use_reply"));
  bool v = false;
  VY_RETURN_NOT_OK(Field(j, "is_in_use", &v));
  return v;
}

}  // namespace vineyard
