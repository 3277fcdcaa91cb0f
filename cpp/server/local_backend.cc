#include "server/meta_backend.h"

namespace vineyard {

Result<InstanceID> LocalBackend::Register(const nlohmann::json& entry) {
  instances_["i" + std::to_string(id_)] = entry;
  return id_;
}

Result<nlohmann::json> LocalBackend::ClusterMeta() { return instances_; }

}  // namespace vineyard
