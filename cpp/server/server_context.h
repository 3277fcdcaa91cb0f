// ServerContext: what every request handler may use — the stores, the
// instance's identity and the server-wide counters. Owned by Server.
//
// Thread-safety: the pointed-to services are thread-safe; the counters are atomic;
// everything else is written once before the first connection is accepted.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/ids.h"
#include "common/tls.h"
#include "server/auth.h"
#include "server/bulk_store.h"
#include "server/meta_backend.h"
#include "server/meta_service.h"
#include "server/options.h"

namespace vineyard {

class IoPool;
class Metrics;
class Migrator;
class ParkedRequests;
class StreamStore;

struct ServerContext {
  InstanceID instance_id = 0;
  std::string ipc_socket;    // the path clients connect to
  std::string rpc_endpoint;  // "host:port", or "" without RPC
  IdGenerator* ids = nullptr;
  BulkStore* store = nullptr;
  MetaService* meta = nullptr;
  MetaBackend* backend = nullptr;
  const Htpasswd* users = nullptr;   // null: no authentication
  std::shared_ptr<TlsContext> tls;   // null: plain TCP on the RPC port
  IoPool* pool = nullptr;            // the workers, for kSlow requests
  ParkedRequests* parked = nullptr;  // requests waiting for a metadata change
  StreamStore* streams = nullptr;    // streams of chunks (create_stream, ...)
  Migrator* migrator = nullptr;      // copies remote objects here
  Metrics* metrics = nullptr;        // null unless --metrics: requests counted and timed
  Limits limits;
  bool compression = true;           // offered to RPC clients
  bool migration_compression = false;  // asked of other instances when migrating
  std::string deployment = "local";  // --deployment, reported by instance_status

  std::atomic<bool> stopping{false};
  std::atomic<int64_t> ipc_connections{0};
  std::atomic<int64_t> rpc_connections{0};
  std::atomic<int64_t> deferred_requests{0};  // requests blocked waiting (get_name wait, ...)
};

}  // namespace vineyard
