// EtcdBackend: the cluster's metadata in etcd (--meta=etcd).
//
// Joining: under etcd's lock <root>/meta_sync_lock, the instance takes
// /next_instance_id as its id and writes /instances/i<id>/* (vineyard's
// registration, so mixed clusters agree on ids). Everything it writes but names
// lives under one etcd lease of --instance_ttl seconds, kept alive from a
// background thread: an instance that dies (or is cut off) leaves every view
// when the lease expires, with all its objects.
//
// Following: the instance lists the prefix once, then watches it from the
// next revision and applies changes in revision order (MetaService::ApplyRemote).
// A broken watch, a lost lease, or etcd restarted (even empty) leads to a
// resync on the backend's thread: re-register under the same id if the lease
// was lost, list again, drop what is gone, re-publish what this instance owns
// and the cluster lacks, watch again. Until then local requests keep working
// and writes through fail within --meta_timeout with EtcdError.
//
// Thread-safety: all public methods are thread-safe. Threads: the backend's own
// (resync, heartbeat), the watcher's and the lease keeper's; each calls into
// MetaService without holding the backend's mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "server/cluster_codec.h"
#include "server/etcd/etcd_client.h"
#include "server/etcd_launcher.h"
#include "server/meta_backend.h"

namespace vineyard {

struct EtcdBackendOptions {
  std::string endpoints;  // --etcd_endpoint
  std::string prefix;     // --etcd_prefix
  std::chrono::milliseconds timeout{10000};  // --meta_timeout: each call to etcd
  int64_t instance_ttl_s = 10;                // --instance_ttl
  /// Launches etcd again when a local endpoint stops answering (the launcher
  /// of the first etcd, --skip_launch_etcd=false); may be null.
  std::shared_ptr<EtcdLauncher> launcher;
};

class EtcdBackend : public MetaBackend {
 public:
  /// Connects (checks etcd answers within the timeout).
  static Result<std::unique_ptr<EtcdBackend>> Connect(EtcdBackendOptions options);
  ~EtcdBackend() override;

  const char* Name() const override { return "etcd"; }
  bool remote() const override { return true; }
  Result<InstanceID> Register(const nlohmann::json& entry) override;
  Status Attach(MetaService* meta) override;
  Result<nlohmann::json> ClusterMeta() override;
  Status Write(const KeyValues& puts, const std::vector<std::string>& deletes) override;
  Status Sync() override;
  void Stop() override;

  const std::string& endpoints() const { return options_.endpoints; }

 private:
  explicit EtcdBackend(EtcdBackendOptions options, std::shared_ptr<etcd::EtcdClient> client);

  /// Takes (or takes back) an instance id under the lock, with a new lease.
  Status RegisterLocked(bool reuse_id);
  /// Lists, applies, re-publishes, watches again.
  Status Resync();
  void OnEvents(const std::vector<etcd::Event>& events, int64_t revision);
  void RequestResync(const char* why, bool lease_lost);
  void Run();
  void Heartbeat();
  /// Calls `call` (an idempotent request) until it succeeds or --meta_timeout
  /// has passed; a lost lease is final.
  template <typename F>
  auto Retry(F call) -> decltype(call());
  static bool LeaseGone(const Status& st);
  /// "<what> failed: <error>; etcd at <endpoints>": the error a client gets.
  Status Wrap(const Status& st, const char* what) const;

  const EtcdBackendOptions options_;
  const cluster::KeySpace keys_;
  const std::shared_ptr<etcd::EtcdClient> client_;
  MetaService* meta_ = nullptr;  // set once by Attach

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                      // guarded by mu_
  bool resync_ = false;                    // guarded by mu_
  bool lease_lost_ = false;                // guarded by mu_
  int64_t applied_revision_ = 0;           // guarded by mu_
  bool watching_ = false;                  // guarded by mu_: following etcd, no resync due
  InstanceID instance_id_ = 0;             // guarded by mu_ (fixed once registered)
  bool registered_ = false;                // guarded by mu_
  nlohmann::json entry_;                   // guarded by mu_: this instance's entry
  int64_t lease_ = 0;                      // guarded by mu_
  /// Live instances: id -> entry (hostname, ipc_socket, rpc_endpoint, ...).
  std::map<InstanceID, nlohmann::json> instances_;  // guarded by mu_
  /// signature -> object id, from /signatures.
  std::unordered_map<Signature, ObjectID> signatures_;  // guarded by mu_
  std::unique_ptr<etcd::LeaseKeeper> keeper_;  // guarded by mu_
  std::unique_ptr<etcd::Watcher> watcher_;     // touched by the backend's thread only
  bool synced_once_ = false;                   // touched by the backend's thread only
  std::atomic<uint64_t> sync_counter_{0};
  std::thread thread_;
};

}  // namespace vineyard
