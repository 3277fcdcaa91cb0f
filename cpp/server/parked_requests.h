// ParkedRequests: requests waiting for the metadata to change (get_name and
// get_data with wait=true) -- Redis's blocked clients, not blocked threads.
//
// A handler that must wait sets Reply::defer; its connection parks here and
// stops reading. Every metadata change (an object created, a name put) wakes
// the parked connections, which re-run their request on their own loop; one
// that is satisfied replies and goes back to reading. A connection that closes
// while parked simply leaves the set. Parking costs no thread.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>

namespace vineyard {

class Connection;

class ParkedRequests {
 public:
  void Park(const std::shared_ptr<Connection>& conn);
  void Unpark(const Connection* conn);
  /// Asks every parked connection to retry its request (on its own loop).
  void WakeAll();
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<const Connection*, std::weak_ptr<Connection>> parked_;  // guarded by mu_
};

}  // namespace vineyard
