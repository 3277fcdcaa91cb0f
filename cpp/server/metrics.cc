#include "server/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <spdlog/spdlog.h>

#include "server/migration.h"
#include "server/server_context.h"

namespace vineyard {

namespace {

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddValue(prometheus::MetricFamily* f, double value,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f->metric.push_back(std::move(m));
}

}  // namespace

/// The instance's state, read at each scrape (no copy kept between scrapes).
class StateCollector : public prometheus::Collectable {
 public:
  explicit StateCollector(const ServerContext* ctx) : ctx_(ctx) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    const ServerContext& c = *ctx_;
    std::vector<prometheus::MetricFamily> out;
    auto gauge = [&](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Gauge));
      AddValue(&out.back(), v);
    };
    auto counter = [&](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Counter));
      AddValue(&out.back(), v);
    };
    gauge("vineyard_instance_id", "This instance's id in its cluster",
          static_cast<double>(c.instance_id));
    if (c.store != nullptr) {
      gauge("vineyard_memory_used_bytes", "Shared memory held by blobs (--size counts these)",
            static_cast<double>(c.store->usage()));
      gauge("vineyard_memory_limit_bytes", "The shared memory limit (--size)",
            static_cast<double>(c.store->limit()));
      gauge("vineyard_blobs", "Blobs in the store, sealed or not",
            static_cast<double>(c.store->num_blobs()));
      if (c.store->spill_enabled()) {
        SpillStatus sp = c.store->spill_status();
        gauge("vineyard_spilled_bytes", "Blob bytes spilled to disk now (--spill_path)",
              static_cast<double>(sp.spilled_bytes));
        gauge("vineyard_spilled_blobs", "Blobs spilled to disk now",
              static_cast<double>(sp.spilled_blobs));
        gauge("vineyard_spill_disk_bytes", "Bytes the spill files occupy on disk",
              static_cast<double>(sp.disk_bytes));
        counter("vineyard_spills_total", "Blobs written to disk since start",
                static_cast<double>(sp.spills));
        counter("vineyard_spill_loads_total", "Blobs loaded back from disk since start",
                static_cast<double>(sp.loads));
        counter("vineyard_spill_failures_total", "Spills the disk refused since start",
                static_cast<double>(sp.spill_failures));
      }
    }
    if (c.meta != nullptr) {
      gauge("vineyard_objects", "Objects whose metadata this instance holds (its own and, in "
            "a cluster, the persisted objects of the others)",
            static_cast<double>(c.meta->num_objects()));
      gauge("vineyard_meta_memory_used_bytes", "Memory held by metadata",
            static_cast<double>(c.meta->memory_usage()));
    }
    out.push_back(Family("vineyard_connections", "Open client connections, by transport",
                         MetricType::Gauge));
    AddValue(&out.back(), static_cast<double>(std::max<int64_t>(0, c.ipc_connections)),
             {{"transport", "ipc"}});
    AddValue(&out.back(), static_cast<double>(std::max<int64_t>(0, c.rpc_connections)),
             {{"transport", "rpc"}});
    gauge("vineyard_deferred_requests", "Requests waiting for a change (get_name with wait, ...)",
          static_cast<double>(std::max<int64_t>(0, c.deferred_requests)));
    if (c.migrator != nullptr) {
      counter("vineyard_migrations_total", "Objects copied here from other instances",
              static_cast<double>(c.migrator->migrated()));
      counter("vineyard_migration_failures_total", "Migrations that failed",
              static_cast<double>(c.migrator->failed()));
      counter("vineyard_migrated_bytes_total", "Blob bytes received by migrations",
              static_cast<double>(c.migrator->bytes_received()));
    }
    return out;
  }

 private:
  const ServerContext* ctx_;
};

Result<std::unique_ptr<Metrics>> Metrics::Start(const std::string& host, int port,
                                               const std::vector<std::string>& request_types,
                                               const ServerContext* ctx) {
  std::unique_ptr<Metrics> m(new Metrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  auto& requests = prometheus::BuildCounter()
                       .Name("vineyard_requests_total")
                       .Help("Requests served, by type")
                       .Register(*m->registry_);
  auto& errors = prometheus::BuildCounter()
                     .Name("vineyard_request_errors_total")
                     .Help("Requests answered with an error, by type")
                     .Register(*m->registry_);
  auto& latency = prometheus::BuildHistogram()
                      .Name("vineyard_request_duration_seconds")
                      .Help("Time to handle a request, by type (from its dispatch to its reply "
                            "being queued)")
                      .Register(*m->registry_);
  const prometheus::Histogram::BucketBoundaries buckets{
      0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
      0.01,    0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5, 10};
  auto per_type = [&](const std::string& type) {
    return PerType{&requests.Add({{"type", type}}), &errors.Add({{"type", type}}),
                   &latency.Add({{"type", type}}, buckets)};
  };
  for (const auto& type : request_types) m->by_type_[type] = per_type(type);
  m->unknown_ = per_type("unknown");
  m->state_ = std::make_shared<StateCollector>(ctx);

  std::string bind = (host.empty() ? std::string("0.0.0.0") : host) + ":" + std::to_string(port);
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(bind, /*num_threads=*/1);
  } catch (const std::exception& e) {
    return Status::IOError("cannot serve metrics on ", bind, ": ", e.what(),
                           ". Choose another --metrics_port (0: a free one)");
  }
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->state_);
  auto ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? port : ports.front();
  return m;
}

Metrics::~Metrics() = default;

void Metrics::ObserveRequest(const std::string& type, double seconds, bool ok) {
  auto it = by_type_.find(type);
  const PerType& t = it == by_type_.end() ? unknown_ : it->second;
  t.requests->Increment();
  if (!ok) t.errors->Increment();
  t.latency->Observe(seconds);
}

}  // namespace vineyard
