#include "server/parked_requests.h"

#include <vector>

#include "server/connection.h"

namespace vineyard {

void ParkedRequests::Park(const std::shared_ptr<Connection>& conn) {
  std::lock_guard<std::mutex> lock(mu_);
  parked_[conn.get()] = conn;
}

void ParkedRequests::Unpark(const Connection* conn) {
  std::lock_guard<std::mutex> lock(mu_);
  parked_.erase(conn);
}

void ParkedRequests::WakeAll() {
  std::vector<std::shared_ptr<Connection>> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (parked_.empty()) return;
    for (auto& [key, weak] : parked_) {
      if (auto conn = weak.lock()) wake.push_back(std::move(conn));
    }
  }
  for (auto& conn : wake) conn->Resume();
}

size_t ParkedRequests::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_.size();
}

}  // namespace vineyard
