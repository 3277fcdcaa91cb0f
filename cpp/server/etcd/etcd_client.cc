#include "server/etcd/etcd_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

namespace vineyard::etcd {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// --- encoding -------------------------------------------------------------------

std::string Base64Encode(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(n);
  return out;
}

Result<std::string> Base64Decode(const std::string& text) {
  if (text.empty()) return std::string();
  if (text.size() % 4 != 0) {
    return Status::EtcdError("etcd sent invalid base64 (length ", text.size(), ")");
  }
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return Status::EtcdError("etcd sent invalid base64");
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t pad = 0;
  if (text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

/// The end of the key range holding every key that starts with `prefix`
/// (etcd's GetPrefixRangeEnd): "\0" with key "\0" means every key.
std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(end.back());
    if (c < 0xff) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

/// Sets "key"/"range_end" of a request for a prefix.
void SetPrefix(json& req, const std::string& prefix) {
  req["key"] = Base64Encode(prefix.empty() ? std::string(1, '\0') : prefix);
  req["range_end"] = Base64Encode(PrefixEnd(prefix));
}

/// The gateway writes int64 as JSON strings and leaves out zero values.
int64_t Int(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return 0;
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  if (it->is_number()) return it->get<int64_t>();
  return 0;
}

int64_t HeaderRevision(const json& j) {
  auto it = j.find("header");
  return it == j.end() ? 0 : Int(*it, "revision");
}

Result<KeyValue> ParseKeyValue(const json& j) {
  KeyValue kv;
  VY_ASSIGN_OR_RETURN(kv.key, Base64Decode(j.value("key", "")));
  VY_ASSIGN_OR_RETURN(kv.value, Base64Decode(j.value("value", "")));
  kv.create_revision = Int(j, "create_revision");
  kv.mod_revision = Int(j, "mod_revision");
  kv.version = Int(j, "version");
  kv.lease = Int(j, "lease");
  return kv;
}

Result<std::vector<KeyValue>> ParseKvs(const json& j) {
  std::vector<KeyValue> kvs;
  auto it = j.find("kvs");
  if (it == j.end() || !it->is_array()) return kvs;
  kvs.reserve(it->size());
  for (const auto& e : *it) {
    VY_ASSIGN_OR_RETURN(auto kv, ParseKeyValue(e));
    kvs.push_back(std::move(kv));
  }
  return kvs;
}

json OpToJson(const Op& op) {
  json req;
  switch (op.type) {
    case Op::Type::kPut:
      req["key"] = Base64Encode(op.key);
      req["value"] = Base64Encode(op.value);
      if (op.lease != 0) req["lease"] = std::to_string(op.lease);
      return {{"request_put", req}};
    case Op::Type::kDelete:
      req["key"] = Base64Encode(op.key);
      return {{"request_delete_range", req}};
    case Op::Type::kDeletePrefix:
      SetPrefix(req, op.key);
      return {{"request_delete_range", req}};
    case Op::Type::kGet:
      req["key"] = Base64Encode(op.key);
      return {{"request_range", req}};
    case Op::Type::kRange:
      SetPrefix(req, op.key);
      return {{"request_range", req}};
  }
  return req;
}

json CompareToJson(const Compare& c) {
  static const char* kTargets[] = {"VERSION", "CREATE", "MOD", "VALUE"};
  static const char* kOps[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};
  json j;
  j["key"] = Base64Encode(c.key);
  j["target"] = kTargets[static_cast<int>(c.target)];
  j["result"] = kOps[static_cast<int>(c.op)];
  switch (c.target) {
    case Compare::Target::kVersion: j["version"] = std::to_string(c.number); break;
    case Compare::Target::kCreateRevision:
      j["create_revision"] = std::to_string(c.number);
      break;
    case Compare::Target::kModRevision: j["mod_revision"] = std::to_string(c.number); break;
    case Compare::Target::kValue: j["value"] = Base64Encode(c.value); break;
  }
  return j;
}

// --- libcurl --------------------------------------------------------------------

void GlobalInitCurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendToString(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

long RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<long>(std::max<int64_t>(left, 0));
}

/// What went wrong with one endpoint, for the error message.
std::string CurlError(CURLcode code, const char* errbuf) {
  std::string msg = curl_easy_strerror(code);
  if (errbuf[0] != '\0') msg += std::string(": ") + errbuf;
  return msg;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

}  // namespace

// --- Op / Compare ----------------------------------------------------------------

Op Op::Put(std::string key, std::string value, int64_t lease) {
  return Op{Type::kPut, std::move(key), std::move(value), lease};
}
Op Op::Delete(std::string key) { return Op{Type::kDelete, std::move(key), {}, 0}; }
Op Op::DeletePrefix(std::string prefix) {
  return Op{Type::kDeletePrefix, std::move(prefix), {}, 0};
}
Op Op::Get(std::string key) { return Op{Type::kGet, std::move(key), {}, 0}; }
Op Op::Range(std::string prefix) { return Op{Type::kRange, std::move(prefix), {}, 0}; }

Compare Compare::Version(std::string key, Op op, int64_t version) {
  return Compare{std::move(key), Target::kVersion, op, version, {}};
}
Compare Compare::CreateRevision(std::string key, Op op, int64_t revision) {
  return Compare{std::move(key), Target::kCreateRevision, op, revision, {}};
}
Compare Compare::ModRevision(std::string key, Op op, int64_t revision) {
  return Compare{std::move(key), Target::kModRevision, op, revision, {}};
}
Compare Compare::Value(std::string key, Op op, std::string value) {
  return Compare{std::move(key), Target::kValue, op, 0, std::move(value)};
}
Compare Compare::Missing(std::string key) {
  return CreateRevision(std::move(key), Op::kEqual, 0);
}

// --- EtcdClient ----------------------------------------------------------------------

/// The client's mutable state: a pool of idle libcurl handles (each keeps its
/// connection open for the next call) and the endpoint that answered last.
struct EtcdClient::Impl {
  static constexpr size_t kMaxIdleHandles = 8;

  std::mutex mu;
  std::vector<CURL*> idle;  // guarded by mu
  std::atomic<size_t> preferred{0};

  ~Impl() {
    for (CURL* h : idle) curl_easy_cleanup(h);
  }

  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        CURL* h = idle.back();
        idle.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* h) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (idle.size() < kMaxIdleHandles) {
        idle.push_back(h);
        return;
      }
    }
    curl_easy_cleanup(h);
  }

  /// POSTs `body` to `path` on the first endpoint that takes the connection.
  Result<json> Call(const EtcdClient& client, const std::string& path, const json& body,
                    milliseconds timeout);
};

Result<json> EtcdClient::Impl::Call(const EtcdClient& client, const std::string& path,
                                    const json& body, milliseconds timeout) {
  const auto& endpoints = client.endpoints_;
  const std::string payload = body.dump();
  const auto deadline = Clock::now() + timeout;
  const size_t n = endpoints.size();
  const size_t first = preferred.load() % n;
  std::vector<std::string> tried;

  CURL* h = Acquire();
  if (h == nullptr) return Status::EtcdError("cannot create a libcurl handle (out of memory?)");
  struct Releaser {
    Impl* impl;
    CURL* h;
    ~Releaser() { impl->Release(h); }
  } releaser{this, h};

  for (size_t i = 0; i < n; ++i) {
    const size_t idx = (first + i) % n;
    const std::string& endpoint = endpoints[idx];
    long left = RemainingMs(deadline);
    if (left <= 0) {
      tried.push_back(endpoint + " (not tried: out of time)");
      break;
    }
    std::string response;
    char errbuf[CURL_ERROR_SIZE] = {0};
    struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_reset(h);
    const std::string url = endpoint + path;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, AppendToString);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left);
    // Leave time for the endpoints after this one.
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     std::max<long>(left / static_cast<long>(n - i), 1));
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);

    if (rc != CURLE_OK) {
      tried.push_back(endpoint + " (" + CurlError(rc, errbuf) + ")");
      long sent = 0;
      curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
      if (sent == 0) continue;  // never reached etcd: safe to try the next one
      // The request may have been applied: do not replay it elsewhere, but
      // start the next call with the next endpoint.
      preferred.store((idx + 1) % n);
      break;
    }
    preferred.store(idx);
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    json reply = json::parse(response, nullptr, /*allow_exceptions=*/false);
    if (reply.is_discarded() || !reply.is_object()) {
      return Status::EtcdError("etcd at ", endpoint, " answered ", path, " with HTTP ", http,
                               " and no JSON: '", response.substr(0, 200),
                               "'; is this an etcd v3.4+ client URL?");
    }
    if (http != 200 || reply.contains("error")) {
      std::string message = reply.value("message", "");
      if (message.empty() && reply.contains("error")) message = reply["error"].dump();
      return Status::EtcdError("etcd at ", endpoint, " refused ", path, ": ", message,
                               " (HTTP ", http, ", gRPC code ", reply.value("code", 0), ")");
    }
    return reply;
  }
  return Status::EtcdError("etcd request ", path, " failed within ", timeout.count(),
                           " ms; tried ", Join(tried),
                           ". Check that etcd is running and reachable at those endpoints.");
}

EtcdClient::EtcdClient(std::vector<std::string> endpoints, milliseconds timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout), impl_(std::make_unique<Impl>()) {}

EtcdClient::~EtcdClient() = default;

Result<std::shared_ptr<EtcdClient>> EtcdClient::Create(const std::string& endpoints,
                                                       milliseconds timeout) {
  std::vector<std::string> list;
  std::stringstream ss(endpoints);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;
    if (item.rfind("http://", 0) != 0 && item.rfind("https://", 0) != 0) {
      return Status::Invalid("etcd endpoint '", item,
                             "' is not a URL: write it as http://host:port");
    }
    while (!item.empty() && item.back() == '/') item.pop_back();
    list.push_back(item);
  }
  if (list.empty()) {
    return Status::Invalid("no etcd endpoint given: pass e.g. http://127.0.0.1:2379");
  }
  if (timeout.count() <= 0) {
    return Status::Invalid("the etcd timeout must be positive, got ", timeout.count(), " ms");
  }
  GlobalInitCurl();
  return std::shared_ptr<EtcdClient>(new EtcdClient(std::move(list), timeout));
}

Result<GetResult> EtcdClient::Get(const std::string& key) {
  VY_ASSIGN_OR_RETURN(json reply,
                      impl_->Call(*this, "/v3/kv/range", {{"key", Base64Encode(key)}}, timeout_));
  GetResult out;
  out.revision = HeaderRevision(reply);
  VY_ASSIGN_OR_RETURN(auto kvs, ParseKvs(reply));
  if (!kvs.empty()) out.kv = std::move(kvs.front());
  return out;
}

Result<RangeResult> EtcdClient::Range(const std::string& prefix) {
  json req;
  SetPrefix(req, prefix);
  VY_ASSIGN_OR_RETURN(json reply, impl_->Call(*this, "/v3/kv/range", req, timeout_));
  RangeResult out;
  out.revision = HeaderRevision(reply);
  VY_ASSIGN_OR_RETURN(out.kvs, ParseKvs(reply));
  return out;
}

Result<int64_t> EtcdClient::Put(const std::string& key, const std::string& value,
                                int64_t lease) {
  json req = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0) req["lease"] = std::to_string(lease);
  VY_ASSIGN_OR_RETURN(json reply, impl_->Call(*this, "/v3/kv/put", req, timeout_));
  return HeaderRevision(reply);
}

Result<int64_t> EtcdClient::Delete(const std::string& key) {
  VY_ASSIGN_OR_RETURN(
      json reply,
      impl_->Call(*this, "/v3/kv/deleterange", {{"key", Base64Encode(key)}}, timeout_));
  return Int(reply, "deleted");
}

Result<int64_t> EtcdClient::DeletePrefix(const std::string& prefix) {
  json req;
  SetPrefix(req, prefix);
  VY_ASSIGN_OR_RETURN(json reply, impl_->Call(*this, "/v3/kv/deleterange", req, timeout_));
  return Int(reply, "deleted");
}

Result<TxnResult> EtcdClient::Txn(const std::vector<Compare>& compares,
                                  const std::vector<Op>& success,
                                  const std::vector<Op>& failure) {
  json req = {{"compare", json::array()}, {"success", json::array()},
              {"failure", json::array()}};
  for (const auto& c : compares) req["compare"].push_back(CompareToJson(c));
  for (const auto& op : success) req["success"].push_back(OpToJson(op));
  for (const auto& op : failure) req["failure"].push_back(OpToJson(op));
  VY_ASSIGN_OR_RETURN(json reply, impl_->Call(*this, "/v3/kv/txn", req, timeout_));
  TxnResult out;
  out.succeeded = reply.value("succeeded", false);
  out.revision = HeaderRevision(reply);
  if (auto it = reply.find("responses"); it != reply.end() && it->is_array()) {
    for (const auto& r : *it) {
      if (auto range = r.find("response_range"); range != r.end()) {
        VY_ASSIGN_OR_RETURN(auto kvs, ParseKvs(*range));
        out.reads.push_back(std::move(kvs));
      } else {
        out.reads.emplace_back();
      }
    }
  }
  return out;
}

Result<int64_t> EtcdClient::Commit(const std::vector<Op>& ops) {
  if (ops.empty()) return Revision();
  int64_t revision = 0;
  for (size_t begin = 0; begin < ops.size(); begin += kMaxTxnOps) {
    size_t end = std::min(ops.size(), begin + kMaxTxnOps);
    std::vector<Op> chunk(ops.begin() + begin, ops.begin() + end);
    auto r = Txn({}, chunk);
    if (!r.ok()) {
      return r.status().WithContext("committing operations " + std::to_string(begin) + ".." +
                                    std::to_string(end - 1) + " of " +
                                    std::to_string(ops.size()) + " (the ones before are applied)");
    }
    revision = r->revision;
  }
  return revision;
}

Result<int64_t> EtcdClient::Revision() {
  VY_ASSIGN_OR_RETURN(json reply,
                      impl_->Call(*this, "/v3/maintenance/status", json::object(), timeout_));
  return HeaderRevision(reply);
}

Status EtcdClient::Compact(int64_t revision) {
  return impl_
      ->Call(*this, "/v3/kv/compaction", {{"revision", std::to_string(revision)}}, timeout_)
      .status();
}

Result<int64_t> EtcdClient::Grant(int64_t ttl_seconds) {
  if (ttl_seconds <= 0) {
    return Status::Invalid("a lease TTL must be at least 1 second, got ", ttl_seconds);
  }
  VY_ASSIGN_OR_RETURN(json reply, impl_->Call(*this, "/v3/lease/grant",
                                              {{"TTL", std::to_string(ttl_seconds)}}, timeout_));
  int64_t id = Int(reply, "ID");
  if (id == 0) {
    return Status::EtcdError("etcd granted no lease: ", reply.value("error", reply.dump()));
  }
  return id;
}

Result<int64_t> EtcdClient::KeepAliveOnce(int64_t lease) {
  VY_ASSIGN_OR_RETURN(json reply, impl_->Call(*this, "/v3/lease/keepalive",
                                              {{"ID", std::to_string(lease)}}, timeout_));
  // A stream of one message: {"result": {..., "TTL": "n"}}; no TTL: the lease is gone.
  const json& result = reply.contains("result") ? reply["result"] : reply;
  return std::max<int64_t>(Int(result, "TTL"), 0);
}

Status EtcdClient::Revoke(int64_t lease) {
  auto r = impl_->Call(*this, "/v3/lease/revoke", {{"ID", std::to_string(lease)}}, timeout_);
  if (!r.ok() && r.status().message().find("lease not found") != std::string::npos) {
    return Status::OK();
  }
  return r.status();
}

Result<std::string> EtcdClient::Lock(const std::string& name, int64_t lease,
                                     std::optional<milliseconds> wait) {
  if (lease == 0) {
    return Status::Invalid("etcd lock '", name,
                           "' needs a lease (Grant one and keep it alive), got 0");
  }
  json req = {{"name", Base64Encode(name)}, {"lease", std::to_string(lease)}};
  auto reply = impl_->Call(*this, "/v3/lock/lock", req, wait.value_or(timeout_));
  if (!reply.ok()) return reply.status().WithContext("acquiring etcd lock '" + name + "'");
  return Base64Decode(reply->value("key", ""));
}

Status EtcdClient::Unlock(const std::string& key) {
  return impl_->Call(*this, "/v3/lock/unlock", {{"key", Base64Encode(key)}}, timeout_)
      .status();
}

// --- Watcher ---------------------------------------------------------------------------

/// Everything a watch's thread uses; shared by the Watcher and the thread so
/// that Stop() from a callback can detach safely.
struct Watcher::State {
  std::shared_ptr<EtcdClient> client;
  std::string request;  // the create_request body
  WatchCallback on_events;
  WatchErrorCallback on_error;

  CURLM* multi = nullptr;
  std::atomic<bool> stop{false};
  std::atomic<bool> running{true};
  std::thread thread;

  // Written on the watch thread only.
  std::string buffer;     // bytes after the last complete message
  std::string endpoint;   // the endpoint being streamed from
  Status terminal;        // why the stream must end (compacted, canceled, error)
  bool created_seen = false;

  // Watch() waits here until the watch is created or failed.
  std::mutex mu;
  std::condition_variable cv;
  bool settled = false;  // guarded by mu
  Status create_status;  // guarded by mu

  State() : multi(curl_multi_init()) {}
  ~State() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  void Settle(Status status) {
    std::lock_guard<std::mutex> lock(mu);
    if (settled) return;
    settled = true;
    create_status = std::move(status);
    cv.notify_all();
  }

  /// Handles one JSON message of the stream; false ends the stream.
  bool OnMessage(const std::string& line) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      terminal = Status::EtcdError("etcd at ", endpoint, " sent a watch message that is not JSON: '",
                                   line.substr(0, 200), "'");
      return false;
    }
    if (auto err = j.find("error"); err != j.end()) {
      std::string message = err->is_object() ? err->value("message", err->dump()) : err->dump();
      terminal = Status::EtcdError("etcd at ", endpoint, " ended the watch: ", message);
      return false;
    }
    const json& result = j.contains("result") ? j["result"] : j;
    if (result.value("created", false)) {
      created_seen = true;
      Settle(Status::OK());
    }
    if (result.value("canceled", false)) {
      int64_t compacted = Int(result, "compact_revision");
      if (compacted > 0) {
        terminal = Status::EtcdError(
            "etcd at ", endpoint, " compacted the history the watch starts from (revisions before ",
            compacted, " are gone); list the keys again and watch from that listing's revision + 1");
      } else {
        terminal = Status::EtcdError("etcd at ", endpoint, " canceled the watch: ",
                                     result.value("cancel_reason", "no reason given"));
      }
      return false;
    }
    auto evs = result.find("events");
    if (evs == result.end() || !evs->is_array() || evs->empty()) return true;
    std::vector<Event> events;
    events.reserve(evs->size());
    for (const auto& e : *evs) {
      Event ev;
      ev.type = e.value("type", "PUT") == "DELETE" ? Event::Type::kDelete : Event::Type::kPut;
      auto kv = ParseKeyValue(e.contains("kv") ? e["kv"] : json::object());
      if (!kv.ok()) {
        terminal = kv.status();
        return false;
      }
      ev.kv = std::move(kv).value();
      events.push_back(std::move(ev));
    }
    if (!stop.load() && on_events) on_events(events, events.back().kv.mod_revision);
    return true;
  }

  static size_t OnData(char* data, size_t size, size_t nmemb, void* user) {
    auto* self = static_cast<State*>(user);
    size_t n = size * nmemb;
    if (self->stop.load()) return 0;
    self->buffer.append(data, n);
    // The gateway ends every message of a stream with a newline.
    size_t start = 0;
    for (size_t nl; (nl = self->buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = self->buffer.substr(start, nl - start);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      if (!self->OnMessage(line)) return 0;  // aborts the transfer
      if (self->stop.load()) return 0;
    }
    self->buffer.erase(0, start);
    return n;
  }

  /// Streams from one endpoint until the stream ends or Stop().
  /// \return the curl code and whether the request reached etcd.
  std::pair<CURLcode, bool> StreamFrom(const std::string& ep, long connect_ms,
                                       std::string* error) {
    endpoint = ep;
    buffer.clear();
    CURL* h = curl_easy_init();
    if (h == nullptr) {
      *error = "cannot create a libcurl handle";
      return {CURLE_OUT_OF_MEMORY, false};
    }
    char errbuf[CURL_ERROR_SIZE] = {0};
    struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    const std::string url = ep + "/v3/watch";
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &State::OnData);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, std::max<long>(connect_ms, 1));
    // A dead peer that never closes the socket is found by TCP keepalive.
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
    curl_multi_add_handle(multi, h);

    CURLcode rc = CURLE_OK;
    int active = 1;
    while (!stop.load()) {
      CURLMcode mc = curl_multi_perform(multi, &active);
      if (mc != CURLM_OK) {
        rc = CURLE_RECV_ERROR;
        *error = curl_multi_strerror(mc);
        break;
      }
      if (active == 0) {
        int queued = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
          if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
        }
        if (rc == CURLE_OK) {
          long http = 0;
          curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
          *error = "the stream ended (HTTP " + std::to_string(http) + ")";
          if (http == 200 || http == 0) rc = CURLE_PARTIAL_FILE;
          else rc = CURLE_HTTP_RETURNED_ERROR;
          if (!buffer.empty()) *error += ": " + buffer.substr(0, 200);
        } else {
          *error = CurlError(rc, errbuf);
        }
        break;
      }
      curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
    long sent = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
    curl_multi_remove_handle(multi, h);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    return {rc, sent > 0};
  }

  void Run() {
    const auto& endpoints = client->endpoints();
    const size_t n = endpoints.size();
    const size_t first = client->impl_->preferred.load() % n;
    const auto deadline = Clock::now() + client->timeout();
    std::vector<std::string> tried;
    Status failure;
    for (size_t i = 0; i < n && !stop.load(); ++i) {
      const std::string& ep = endpoints[(first + i) % n];
      long left = RemainingMs(deadline);
      std::string error;
      auto [rc, reached] = StreamFrom(ep, std::max<long>(left / static_cast<long>(n - i), 1),
                                      &error);
      if (stop.load()) break;
      if (!terminal.ok()) {
        failure = terminal;
        break;
      }
      tried.push_back(ep + " (" + error + ")");
      if (reached || created_seen) {
        failure = Status::EtcdError("the etcd watch stream from ", ep,
                                    " broke: ", error,
                                    "; list the keys again and watch from that revision + 1");
        break;
      }
    }
    if (failure.ok() && !stop.load()) {
      failure = Status::EtcdError("cannot start an etcd watch; tried ", Join(tried),
                                  ". Check that etcd is running and reachable there.");
    }
    running.store(false);
    bool was_created = created_seen;
    Settle(failure);
    if (was_created && !stop.load() && !failure.ok() && on_error) on_error(failure);
  }
};

Watcher::Watcher(std::shared_ptr<State> state) : state_(std::move(state)) {}

Watcher::~Watcher() { Stop(); }

void Watcher::Stop() {
  state_->stop.store(true);
  if (state_->multi != nullptr) curl_multi_wakeup(state_->multi);
  if (state_->thread.joinable()) {
    if (state_->thread.get_id() == std::this_thread::get_id()) {
      state_->thread.detach();  // the thread holds its own reference to state_
    } else {
      state_->thread.join();
    }
  }
}

bool Watcher::running() const { return state_->running.load(); }

Result<std::unique_ptr<Watcher>> EtcdClient::Watch(const std::string& prefix,
                                                   int64_t start_revision,
                                                   WatchCallback on_events,
                                                   WatchErrorCallback on_error) {
  auto state = std::make_shared<Watcher::State>();
  if (state->multi == nullptr) return Status::EtcdError("cannot create a libcurl multi handle");
  json create;
  SetPrefix(create, prefix);
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  state->request = json{{"create_request", create}}.dump();
  state->client = shared_from_this();
  state->on_events = std::move(on_events);
  state->on_error = std::move(on_error);
  std::unique_ptr<Watcher> watcher(new Watcher(state));
  state->thread = std::thread([state] { state->Run(); });

  Status created;
  {
    std::unique_lock<std::mutex> lock(state->mu);
    if (!state->cv.wait_for(lock, timeout_, [&] { return state->settled; })) {
      created = Status::EtcdError("etcd did not create the watch on '", prefix, "' within ",
                                  timeout_.count(), " ms; tried from ", endpoints_.front());
    } else {
      created = state->create_status;
    }
  }
  if (!created.ok()) {
    watcher->Stop();
    return created;
  }
  return watcher;
}

// --- LeaseKeeper --------------------------------------------------------------------------

LeaseKeeper::LeaseKeeper(std::shared_ptr<EtcdClient> client, int64_t lease,
                         int64_t ttl_seconds, LeaseLostCallback on_lost)
    : client_(std::move(client)),
      lease_(lease),
      ttl_seconds_(std::max<int64_t>(ttl_seconds, 1)),
      on_lost_(std::move(on_lost)) {
  thread_ = std::thread([this] { Run(); });
}

LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();  // from on_lost: Run() touches nothing after it returns
  } else {
    thread_.join();
  }
}

void LeaseKeeper::Run() {
  auto interval = [](int64_t ttl) { return std::max(milliseconds(ttl * 1000 / 3), milliseconds(100)); };
  milliseconds wait = interval(ttl_seconds_);
  auto expires = Clock::now() + std::chrono::seconds(ttl_seconds_);
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, wait, [this] { return stop_; })) return;
    }
    auto ttl = client_->KeepAliveOnce(lease_);
    Status lost;
    if (ttl.ok() && *ttl > 0) {
      expires = Clock::now() + std::chrono::seconds(*ttl);
      wait = interval(*ttl);
      continue;
    }
    if (ttl.ok()) {
      lost = Status::EtcdError("etcd lease ", lease_, " has expired or was revoked");
    } else if (Clock::now() >= expires) {
      lost = Status::EtcdError("etcd lease ", lease_, " could not be refreshed within its TTL (",
                               ttl_seconds_, " s) and is presumed lost: ",
                               ttl.status().message());
    } else {
      wait = std::min(interval(ttl_seconds_), milliseconds(500));  // retry soon
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    lost_.store(true);
    // A copy: on_lost may destroy this keeper, and with it on_lost_.
    LeaseLostCallback on_lost = on_lost_;
    if (on_lost) on_lost(lost);
    return;
  }
}

}  // namespace vineyard::etcd
