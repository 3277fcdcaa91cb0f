// MetaBackend: where the metadata that outlives one instance is kept.
//
// The meta service holds every object tree this instance can see in memory.
// What must be shared with the rest of a cluster — persisted objects, names,
// the list of instances — goes through a backend: `local` (LocalBackend, this
// file) keeps nothing outside the process; `etcd` (EtcdBackend) writes through
// to etcd and applies other instances' changes to the meta service.
//
// Keys and values are those of cluster_codec.h (relative to the cluster's root).
//
// Thread-safety: implementations must be thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/result.h"

namespace vineyard {

class MetaService;

/// Relative key -> JSON text.
using KeyValues = std::vector<std::pair<std::string, std::string>>;

class MetaBackend {
 public:
  virtual ~MetaBackend() = default;

  /// "local" or "etcd".
  virtual const char* Name() const = 0;
  /// True when writing through may wait on the network: requests that write
  /// through then run on the worker pool, never on an event loop.
  virtual bool remote() const { return false; }

  /// Joins the cluster with this instance's entry of cluster_meta (hostname,
  /// ipc_socket, rpc_endpoint, ...) and returns the instance's id. Called once.
  virtual Result<InstanceID> Register(const nlohmann::json& entry) = 0;
  /// Starts applying the cluster's state to `meta`. Called once, after Register.
  virtual Status Attach(MetaService*) { return Status::OK(); }
  /// Every live instance: "i<id>" -> entry.
  virtual Result<nlohmann::json> ClusterMeta() = 0;
  /// Writes through: puts first, then deletes.
  virtual Status Write(const KeyValues& puts, const std::vector<std::string>& deletes) = 0;
  /// A read barrier: returns once every change made to the cluster before the
  /// call is applied here.
  virtual Status Sync() { return Status::OK(); }
  /// Leaves the cluster (what this instance published goes with it).
  virtual void Stop() {}
};

/// The embedded backend for one instance: nothing leaves the process, so the
/// meta service's own tables are the whole truth; it only describes the instance.
class LocalBackend : public MetaBackend {
 public:
  explicit LocalBackend(InstanceID id) : id_(id) {}
  const char* Name() const override { return "local"; }
  Result<InstanceID> Register(const nlohmann::json& entry) override;
  Result<nlohmann::json> ClusterMeta() override;
  Status Write(const KeyValues&, const std::vector<std::string>&) override {
    return Status::OK();
  }

 private:
  const InstanceID id_;
  nlohmann::json instances_ = nlohmann::json::object();  // written once at start
};

}  // namespace vineyard
