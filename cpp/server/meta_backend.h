// MetaBackend: where the metadata that outlives one instance is kept.
//
// The meta service holds every object tree of this instance in memory. What
// must be shared with the rest of a cluster — persisted objects, names, the
// list of instances — goes through a backend: `local` (this file's
// LocalBackend) keeps it in-process for a single machine; the etcd backend
// stores it in etcd and reports other instances' changes.
//
// Thread-safety: implementations must be thread-safe.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/result.h"

namespace vineyard {

class MetaBackend {
 public:
  virtual ~MetaBackend() = default;

  /// "local" or "etcd": what instance_status reports as the deployment.
  virtual const char* Name() const = 0;

  /// Registers this instance (its entry of cluster_meta); called once at start.
  virtual Status RegisterInstance(InstanceID id, const nlohmann::json& entry) = 0;
  /// Every instance of the cluster: "i<id>" -> entry.
  virtual Result<nlohmann::json> ClusterMeta() = 0;

  /// A persisted object tree (as expanded by the meta service), made visible cluster-wide.
  virtual Status PutObject(ObjectID id, const nlohmann::json& tree) = 0;
  virtual Status DeleteObject(ObjectID id) = 0;
  virtual Status PutName(const std::string& name, ObjectID id) = 0;
  virtual Status DropName(const std::string& name) = 0;
};

/// The embedded backend for one instance: nothing leaves the process, so the
/// meta service's own tables are the whole truth; it only describes the instance.
class LocalBackend : public MetaBackend {
 public:
  const char* Name() const override { return "local"; }
  Status RegisterInstance(InstanceID id, const nlohmann::json& entry) override;
  Result<nlohmann::json> ClusterMeta() override;
  Status PutObject(ObjectID, const nlohmann::json&) override { return Status::OK(); }
  Status DeleteObject(ObjectID) override { return Status::OK(); }
  Status PutName(const std::string&, ObjectID) override { return Status::OK(); }
  Status DropName(const std::string&) override { return Status::OK(); }

 private:
  nlohmann::json instances_ = nlohmann::json::object();  // written once at start
};

}  // namespace vineyard
