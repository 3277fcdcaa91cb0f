#include "server/etcd_backend.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/protocol.h"
#include "server/meta_service.h"

namespace vineyard {

namespace {

using cluster::ParsedKey;
using json = nlohmann::json;

json ParseValue(const std::string& value) {
  json v = json::parse(value, nullptr, false);
  return v.is_discarded() ? json(value) : v;
}

uint64_t NowMs() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// At most one log line a second per call site.
bool LogAllowed(std::atomic<int64_t>& last) {
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch()).count();
  return last.exchange(now) != now;
}

}  // namespace

Result<std::unique_ptr<EtcdBackend>> EtcdBackend::Connect(EtcdBackendOptions options) {
  // Each call to etcd gets a part of --meta_timeout, so an idempotent write that
  // met a member without a leader (an election after a member was lost) is
  // tried again within the timeout (Retry).
  auto attempt = std::clamp(options.timeout / 3, std::chrono::milliseconds(500),
                            std::chrono::milliseconds(3000));
  VY_ASSIGN_OR_RETURN(auto client, etcd::EtcdClient::Create(options.endpoints, attempt));
  std::unique_ptr<EtcdBackend> backend(new EtcdBackend(std::move(options), std::move(client)));
  auto rev = backend->client_->Revision();
  if (!rev.ok()) return backend->Wrap(rev.status(), "connecting");
  return backend;
}

EtcdBackend::EtcdBackend(EtcdBackendOptions options, std::shared_ptr<etcd::EtcdClient> client)
    : options_(std::move(options)), keys_(options_.prefix), client_(std::move(client)) {}

EtcdBackend::~EtcdBackend() { Stop(); }

Status EtcdBackend::Wrap(const Status& st, const char* what) const {
  if (st.ok()) return st;
  // The client's message names the endpoints it tried and, for a connection that
  // failed, what to check; this adds the request and the flag to change.
  std::string message = st.message();
  while (!message.empty() && (message.back() == '.' || message.back() == ' ')) message.pop_back();
  return Status::EtcdError("the cluster's metadata is out of reach (", what, "): ", message,
                           " (--etcd_endpoint=", options_.endpoints, ")");
}

Status EtcdBackend::RegisterLocked(bool reuse_id) {
  // Called on the registering thread with mu_ NOT held (etcd calls block);
  // the fields it sets are published under mu_ at the end.
  auto lease = client_->Grant(options_.instance_ttl_s);
  if (!lease.ok()) return Wrap(lease.status(), "granting the instance's lease");
  auto lock = client_->Lock(keys_.LockName(), *lease, options_.timeout);
  if (!lock.ok()) {
    (void)client_->Revoke(*lease);
    return Wrap(lock.status(), "taking the registration lock");
  }
  auto unlock = [&] { (void)client_->Unlock(*lock); };
  auto next = client_->Get(keys_.Abs(cluster::kNextInstanceIdKey));
  if (!next.ok()) {
    unlock();
    (void)client_->Revoke(*lease);
    return Wrap(next.status(), "reading next_instance_id");
  }
  uint64_t next_id = 0;
  if (next->kv) {
    json v = ParseValue(next->kv->value);
    if (v.is_number_unsigned()) next_id = v.get<uint64_t>();
  }
  // Above every registered instance as well, should the counter have been lost.
  auto registered = client_->Range(keys_.Abs("/instances/"));
  if (registered.ok()) {
    for (const auto& kv : registered->kvs) {
      auto k = cluster::ParseKey(kv.key.substr(keys_.root.size()));
      if (k.kind == ParsedKey::Kind::kInstance) next_id = std::max<uint64_t>(next_id, k.instance + 1);
    }
  }
  InstanceID id;
  json entry;
  {
    std::lock_guard<std::mutex> guard(mu_);
    entry = entry_;
    id = reuse_id ? instance_id_ : next_id;
  }
  if (reuse_id) {
    // Back after a lost lease: the same id, unless another instance holds it now.
    auto holder = client_->Get(keys_.Abs(cluster::InstanceKey(id, "hostid")));
    if (holder.ok() && holder->kv && holder->kv->lease != 0) {
      spdlog::error("instance id {} was taken by another instance while this one was away; "
                    "keeping it (objects of both may clash): restart this vineyardd", id);
    }
  }
  entry["timestamp"] = NowMs();
  std::vector<etcd::Op> ops;
  for (const auto& [field, value] : entry.items()) {
    ops.push_back(etcd::Op::Put(keys_.Abs(cluster::InstanceKey(id, field)), value.dump(), *lease));
  }
  ops.push_back(etcd::Op::Put(keys_.Abs(cluster::kNextInstanceIdKey),
                              json(std::max<uint64_t>(next_id, id + 1)).dump()));
  auto committed = client_->Commit(ops);
  unlock();
  if (!committed.ok()) {
    (void)client_->Revoke(*lease);
    return Wrap(committed.status(), "registering the instance");
  }
  auto keeper = std::make_unique<etcd::LeaseKeeper>(
      client_, *lease, options_.instance_ttl_s,
      [this](const Status& why) { RequestResync(why.message().c_str(), true); });
  std::unique_ptr<etcd::LeaseKeeper> old;
  {
    std::lock_guard<std::mutex> guard(mu_);
    instance_id_ = id;
    lease_ = *lease;
    registered_ = true;
    lease_lost_ = false;
    old = std::move(keeper_);
    keeper_ = std::move(keeper);
    entry_ = entry;
    instances_[id] = entry;
  }
  if (old) old->Stop();
  spdlog::info("{} the cluster at {} as instance {} (prefix '{}')",
               reuse_id ? "rejoined" : "joined", options_.endpoints, id, keys_.root);
  return Status::OK();
}

Result<InstanceID> EtcdBackend::Register(const json& entry) {
  {
    std::lock_guard<std::mutex> guard(mu_);
    entry_ = entry;
  }
  VY_RETURN_NOT_OK(RegisterLocked(false));
  std::lock_guard<std::mutex> guard(mu_);
  return instance_id_;
}

Status EtcdBackend::Attach(MetaService* meta) {
  meta_ = meta;
  VY_RETURN_NOT_OK(Resync());
  thread_ = std::thread([this] { Run(); });
  return Status::OK();
}

Status EtcdBackend::Resync() {
  bool lost;
  {
    std::lock_guard<std::mutex> guard(mu_);
    lost = lease_lost_;
    resync_ = false;
  }
  if (watcher_) {
    watcher_->Stop();
    watcher_.reset();
  }
  if (lost) VY_RETURN_NOT_OK(RegisterLocked(true));
  auto listing = client_->Range(keys_.root + "/");
  if (!listing.ok()) return Wrap(listing.status(), "listing the cluster");

  // Signatures and instances first: objects refer to them.
  std::unordered_map<Signature, ObjectID> signatures;
  std::map<InstanceID, json> instances;
  for (const auto& kv : listing->kvs) {
    ParsedKey k = cluster::ParseKey(kv.key.substr(keys_.root.size()));
    if (k.kind == ParsedKey::Kind::kSignature) {
      json v = ParseValue(kv.value);
      if (v.is_string()) {
        auto id = ObjectIDFromString(v.get<std::string>());
        if (id.ok()) signatures[k.signature] = *id;
      }
    } else if (k.kind == ParsedKey::Kind::kInstance) {
      instances[k.instance][k.field] = ParseValue(kv.value);
    }
  }
  MetaService::RemoteUpdate update;
  auto resolve = [&signatures](Signature sig) -> std::optional<ObjectID> {
    auto it = signatures.find(sig);
    if (it == signatures.end()) return std::nullopt;
    return it->second;
  };
  for (const auto& kv : listing->kvs) {
    ParsedKey k = cluster::ParseKey(kv.key.substr(keys_.root.size()));
    if (k.kind == ParsedKey::Kind::kData) {
      auto decoded = cluster::DecodeObject(k.id, kv.value, resolve);
      if (decoded.ok()) {
        update.objects.push_back(std::move(decoded).value());
      } else {
        spdlog::warn("skipping {}: {}", kv.key, decoded.status().message());
      }
    } else if (k.kind == ParsedKey::Kind::kDataField) {
      update.fields.emplace_back(k.id, k.field, cluster::DecodeFieldValue(kv.value));
    } else if (k.kind == ParsedKey::Kind::kName) {
      json v = ParseValue(kv.value);
      if (v.is_number_unsigned()) update.names.emplace_back(k.name, v.get<ObjectID>());
    }
  }
  // Instances without a hostid are leftovers of a dead one (vineyard deletes it first).
  for (auto it = instances.begin(); it != instances.end();) {
    it = it->second.contains("hostid") ? std::next(it) : instances.erase(it);
  }
  std::vector<InstanceID> gone;
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (const auto& [id, entry] : instances_) {
      if (id != instance_id_ && instances.count(id) == 0) gone.push_back(id);
    }
    instances[instance_id_] = entry_;
    instances_ = std::move(instances);
    signatures_ = std::move(signatures);
  }
  for (InstanceID id : gone) meta_->DropInstance(id);
  KeyValues puts;
  std::vector<std::string> deletes;
  meta_->ResetRemote(update, lost, &puts, &deletes);
  if (!synced_once_) {
    // Just registered: nothing under this id can be ours to remove (only an
    // instance that held the id before an etcd restart could have written it).
    deletes.clear();
    synced_once_ = true;
  }
  if (!puts.empty() || !deletes.empty()) {
    spdlog::info("re-publishing {} keys of this instance, removing {} stale ones", puts.size(),
                 deletes.size());
    VY_RETURN_NOT_OK(Write(puts, deletes));
  }
  {
    std::lock_guard<std::mutex> guard(mu_);
    // The listing is the whole state at its revision (which is lower than before
    // if etcd lost its data).
    applied_revision_ = listing->revision;
  }
  auto watcher = client_->Watch(
      keys_.prefix + "/", listing->revision + 1,
      [this](const std::vector<etcd::Event>& events, int64_t revision) {
        OnEvents(events, revision);
      },
      [this](const Status& why) { RequestResync(why.message().c_str(), false); });
  if (!watcher.ok()) return Wrap(watcher.status(), "watching the cluster");
  watcher_ = std::move(watcher).value();
  {
    std::lock_guard<std::mutex> guard(mu_);
    watching_ = !resync_;
  }
  cv_.notify_all();
  return Status::OK();
}

void EtcdBackend::OnEvents(const std::vector<etcd::Event>& events, int64_t revision) {
  // One transaction is one revision: apply revision by revision, signatures
  // and instances before the objects that refer to them.
  size_t i = 0;
  while (i < events.size()) {
    int64_t rev = events[i].kv.mod_revision;
    size_t end = i;
    while (end < events.size() && events[end].kv.mod_revision == rev) ++end;
    MetaService::RemoteUpdate update;
    std::vector<InstanceID> gone;
    std::vector<std::pair<ObjectID, const std::string*>> datas;
    bool evicted = false;
    {
      std::lock_guard<std::mutex> guard(mu_);
      for (size_t j = i; j < end; ++j) {
        const etcd::Event& e = events[j];
        if (e.kv.key.rfind(keys_.root + "/", 0) != 0) continue;  // _sync, other sessions
        ParsedKey k = cluster::ParseKey(e.kv.key.substr(keys_.root.size()));
        bool put = e.type == etcd::Event::Type::kPut;
        switch (k.kind) {
          case ParsedKey::Kind::kSignature:
            if (put) {
              json v = ParseValue(e.kv.value);
              auto id = v.is_string() ? ObjectIDFromString(v.get<std::string>())
                                      : Result<ObjectID>(Status::Invalid("not an id"));
              if (id.ok()) signatures_[k.signature] = *id;
            } else {
              signatures_.erase(k.signature);
            }
            break;
          case ParsedKey::Kind::kInstance:
            if (k.instance == instance_id_) {
              // Our own entry is ours: removed by another (vineyard's heartbeat
              // ring took us for dead), it is written again.
              if (!put && k.field == "hostid") evicted = true;
              break;
            }
            if (put) {
              instances_[k.instance][k.field] = ParseValue(e.kv.value);
            } else if (k.field == "hostid" && instances_.erase(k.instance) > 0) {
              gone.push_back(k.instance);
            }
            break;
          case ParsedKey::Kind::kData:
            if (put) {
              datas.emplace_back(k.id, &e.kv.value);
            } else {
              update.deleted.push_back(k.id);
            }
            break;
          case ParsedKey::Kind::kDataField:
            if (put) update.fields.emplace_back(k.id, k.field, cluster::DecodeFieldValue(e.kv.value));
            break;
          case ParsedKey::Kind::kName:
            if (put) {
              json v = ParseValue(e.kv.value);
              if (v.is_number_unsigned()) update.names.emplace_back(k.name, v.get<ObjectID>());
            } else {
              update.dropped_names.push_back(k.name);
            }
            break;
          default:
            break;
        }
      }
      // A registration the instance itself did not get to finish (no hostid).
      for (auto it = instances_.begin(); it != instances_.end();) {
        it = (it->first == instance_id_ || it->second.contains("hostid")) ? std::next(it)
                                                                         : instances_.erase(it);
      }
      auto resolve = [this](Signature sig) -> std::optional<ObjectID> {
        auto it = signatures_.find(sig);
        if (it == signatures_.end()) return std::nullopt;
        return it->second;
      };
      for (const auto& [id, value] : datas) {
        auto decoded = cluster::DecodeObject(id, *value, resolve);
        if (decoded.ok()) {
          update.objects.push_back(std::move(decoded).value());
        } else {
          static std::atomic<int64_t> last{0};
          if (LogAllowed(last)) {
            spdlog::warn("skipping {}: {}", ObjectIDToString(id), decoded.status().message());
          }
        }
      }
    }
    update.own_lease_expired = evicted;
    for (InstanceID id : gone) {
      spdlog::info("instance {} left the cluster", id);
      meta_->DropInstance(id);
    }
    if (evicted) RequestResync("this instance's entry was removed from etcd", true);
    if (!update.objects.empty() || !update.deleted.empty() || !update.names.empty() ||
        !update.dropped_names.empty() || !update.fields.empty()) {
      meta_->ApplyRemote(update);
    }
    i = end;
  }
  {
    std::lock_guard<std::mutex> guard(mu_);
    applied_revision_ = std::max(applied_revision_, revision);
  }
  cv_.notify_all();
}

void EtcdBackend::RequestResync(const char* why, bool lease_lost) {
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (stop_) return;
    resync_ = true;
    watching_ = false;
    if (lease_lost) lease_lost_ = true;
  }
  static std::atomic<int64_t> last{0};
  if (LogAllowed(last)) {
    spdlog::warn("lost touch with the cluster ({}); reconnecting to etcd at {}", why,
                 options_.endpoints);
  }
  cv_.notify_all();
}

void EtcdBackend::Heartbeat() {
  // vineyard's instances watch each other's timestamp: it must move.
  InstanceID id;
  int64_t lease;
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (!registered_ || lease_lost_) return;
    id = instance_id_;
    lease = lease_;
  }
  (void)client_->Put(keys_.Abs(cluster::InstanceKey(id, "timestamp")), json(NowMs()).dump(),
                     lease);
}

void EtcdBackend::Run() {
  auto heartbeat_every =
      std::chrono::milliseconds(std::min<int64_t>(options_.instance_ttl_s * 1000 / 3, 5000));
  auto backoff = std::chrono::milliseconds(200);
  auto next_heartbeat = std::chrono::steady_clock::now() + heartbeat_every;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_until(lock, next_heartbeat, [this] { return stop_ || resync_; });
    if (stop_) break;
    if (resync_) {
      lock.unlock();
      if (options_.launcher) {
        (void)options_.launcher->EnsureRunning(options_.timeout);
      }
      Status st = Resync();
      lock.lock();
      if (!st.ok()) {
        resync_ = true;  // try again after a pause
        static std::atomic<int64_t> last{0};
        if (LogAllowed(last)) spdlog::warn("{}", st.message());
        cv_.wait_for(lock, backoff, [this] { return stop_; });
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      spdlog::info("back in touch with the cluster at {}", options_.endpoints);
      backoff = std::chrono::milliseconds(200);
      cv_.notify_all();
    }
    if (std::chrono::steady_clock::now() >= next_heartbeat) {
      lock.unlock();
      Heartbeat();
      lock.lock();
      next_heartbeat = std::chrono::steady_clock::now() + heartbeat_every;
    }
  }
}

Result<json> EtcdBackend::ClusterMeta() {
  std::lock_guard<std::mutex> guard(mu_);
  json out = json::object();
  for (const auto& [id, entry] : instances_) out["i" + std::to_string(id)] = entry;
  return out;
}

Status EtcdBackend::Write(const KeyValues& puts, const std::vector<std::string>& deletes) {
  int64_t lease;
  {
    std::lock_guard<std::mutex> guard(mu_);
    lease = lease_;
  }
  std::vector<etcd::Op> ops;
  ops.reserve(puts.size() + deletes.size());
  for (const auto& [key, value] : puts) {
    // Names outlive their writer (they are hidden while their object is gone);
    // everything else goes with this instance's lease.
    bool named = key.rfind("/names/", 0) == 0;
    ops.push_back(etcd::Op::Put(keys_.Abs(key), value, named ? 0 : lease));
  }
  for (const auto& key : deletes) ops.push_back(etcd::Op::Delete(keys_.Abs(key)));
  // Puts and deletes without conditions: applying them twice is harmless.
  auto committed = Retry([&] { return client_->Commit(ops); });
  if (!committed.ok()) {
    if (LeaseGone(committed.status())) RequestResync("the instance's lease is gone", true);
    return Wrap(committed.status(), "writing through");
  }
  return Status::OK();
}

bool EtcdBackend::LeaseGone(const Status& st) {
  return st.message().find("lease not found") != std::string::npos;
}

template <typename F>
auto EtcdBackend::Retry(F call) -> decltype(call()) {
  auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  auto result = call();
  // Another attempt only if it can end (pause + the call's own bound) in time.
  const auto next = std::chrono::milliseconds(100) + client_->timeout();
  while (!result.ok() && !LeaseGone(result.status()) &&
         std::chrono::steady_clock::now() + next <= deadline) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; })) break;
    }
    result = call();
  }
  return result;
}

Status EtcdBackend::Sync() {
  // Caught up already when the watch has applied etcd's current revision (one
  // read); otherwise (the last changes were outside the prefix, or are on
  // their way) a put of our own barrier key: once the watch delivers its
  // revision, everything committed before it has been applied here.
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  auto following = [&] {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, deadline, [this] { return stop_ || watching_; });
  };
  if (!following()) {
    return Status::EtcdError("sync_meta: not following the cluster (reconnecting to etcd at ",
                             options_.endpoints, ") within --meta_timeout");
  }
  auto current = Retry([&] { return client_->Revision(); });
  if (!current.ok()) return Wrap(current.status(), "sync_meta");
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (applied_revision_ == *current) return Status::OK();
  }
  bool reset = false;
  {
    std::lock_guard<std::mutex> guard(mu_);
    reset = applied_revision_ > *current;
  }
  if (reset) {
    // etcd's revision went back: it lost its data. List everything again first.
    RequestResync("etcd's revision went back (its data was lost)", false);
    if (!following()) {
      return Status::EtcdError("sync_meta: etcd at ", options_.endpoints,
                               " lost its data; the instance is still catching up");
    }
  }
  InstanceID id;
  int64_t lease;
  {
    std::lock_guard<std::mutex> guard(mu_);
    id = instance_id_;
    lease = lease_;
  }
  auto rev = Retry([&] {
    auto put = client_->Put(keys_.SyncKey(id), json(++sync_counter_).dump(), lease);
    // Without the lease (lost a moment ago) the barrier works all the same.
    if (!put.ok() && LeaseGone(put.status())) {
      put = client_->Put(keys_.SyncKey(id), json(sync_counter_.load()).dump());
    }
    return put;
  });
  if (!rev.ok()) return Wrap(rev.status(), "sync_meta");
  std::unique_lock<std::mutex> lock(mu_);
  bool caught_up = cv_.wait_for(lock, options_.timeout,
                                [&] { return stop_ || applied_revision_ >= *rev; });
  if (!caught_up) {
    return Status::EtcdError("sync_meta: the cluster's changes up to revision ", *rev,
                             " did not arrive within --meta_timeout (", options_.timeout.count(),
                             " ms) from etcd at ", options_.endpoints);
  }
  return Status::OK();
}

void EtcdBackend::Stop() {
  std::unique_ptr<etcd::LeaseKeeper> keeper;
  int64_t lease = 0;
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (stop_) return;
    stop_ = true;
    keeper = std::move(keeper_);
    lease = registered_ ? lease_ : 0;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (watcher_) watcher_->Stop();
  if (keeper) keeper->Stop();
  // Leaving: the instance's entry and objects go from every view now.
  if (lease != 0) (void)client_->Revoke(lease);
}

}  // namespace vineyard
