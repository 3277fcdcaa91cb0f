// Metrics: vineyardd's Prometheus endpoint (--metrics, --metrics_port), through
// prometheus-cpp. Requests are counted and timed by type where the dispatcher
// runs them (ObserveRequest); the instance's state (memory, objects, blobs,
// connections, migrations) is read from the ServerContext at each scrape.
//
// Thread-safety: ObserveRequest() from any thread (a lookup in a map built at
// construction, then prometheus-cpp's atomic counters and histograms).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace prometheus {
class Counter;
class Exposer;
class Histogram;
class Registry;
}  // namespace prometheus

namespace vineyard {

struct ServerContext;

class Metrics {
 public:
  /// Serves http://<host>:<port>/metrics (host "" : every address; port 0: a free
  /// one). `request_types` are the dispatcher's; `ctx` outlives this object.
  static Result<std::unique_ptr<Metrics>> Start(const std::string& host, int port,
                                                const std::vector<std::string>& request_types,
                                                const ServerContext* ctx);
  ~Metrics();

  /// One request of `type` that took `seconds`; `ok` false when it failed.
  void ObserveRequest(const std::string& type, double seconds, bool ok);

  /// The port it listens on.
  int port() const { return port_; }

 private:
  Metrics() = default;

  struct PerType {
    prometheus::Counter* requests = nullptr;
    prometheus::Counter* errors = nullptr;
    prometheus::Histogram* latency = nullptr;
  };
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<class StateCollector> state_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unordered_map<std::string, PerType> by_type_;  // read-only after Start()
  PerType unknown_;                                   // types not in the table
  int port_ = 0;
};

/// Times one dispatch and reports it to `metrics` (null: does nothing).
class RequestTimer {
 public:
  RequestTimer(Metrics* metrics, const std::string& type)
      : metrics_(metrics), type_(type), start_(std::chrono::steady_clock::now()) {}
  void Done(bool ok) {
    if (metrics_ == nullptr) return;
    metrics_->ObserveRequest(
        type_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(),
        ok);
  }

 private:
  Metrics* metrics_;
  const std::string& type_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace vineyard
