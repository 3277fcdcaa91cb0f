#include "server/meta_backend.h"

namespace vineyard {

Status LocalBackend::RegisterInstance(InstanceID id, const nlohmann::json& entry) {
  instances_["i" + std::to_string(id)] = entry;
  return Status::OK();
}

Result<nlohmann::json> LocalBackend::ClusterMeta() { return instances_; }

}  // namespace vineyard
