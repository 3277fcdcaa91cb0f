// vineyardd's command-line options (gflags syntax, as vineyard's: --size=1G, --norpc).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace vineyard {

/// Bounds on what one connection may cost (flags in options.cc).
struct Limits {
  int handshake_timeout_s = 10;  // accept -> register_request
  int io_timeout_s = 60;         // no progress mid-frame, mid-reply or mid-transfer
  int idle_timeout_s = 0;        // a registered connection with no request (0: never)
  uint64_t max_connections = 0;  // IPC + RPC at once (0: what the fd limit allows)
};
/// The largest --meta_max_depth: nlohmann's encoder recurses once per level.
constexpr uint64_t kMaxMetaDepth = 4096;

struct ServerOptions {
  std::string socket;          // IPC socket path
  uint64_t size = 0;           // memory limit of the bulk store, bytes
  bool reserve_memory = false; // pre-fault the whole arena at start
  std::string meta;            // metadata backend: "etcd" or "local"
  std::string etcd_endpoint;   // comma-separated client URLs
  std::string etcd_prefix;
  std::string etcd_cmd;        // etcd to launch ("" : etcd on PATH)
  std::string etcd_data_dir;   // of a launched etcd ("" : a temporary directory)
  bool skip_launch_etcd = false;
  int meta_timeout_s = 10;     // each etcd call, and the wait at start
  int instance_ttl_s = 10;     // lease of an instance's keys
  std::string deployment = "local";
  bool rpc = true;             // serve TCP clients
  int rpc_port = 9600;
  bool rpc_port_is_default = true;  // a taken default port moves to a free one
  std::string rpc_host;        // what register_reply reports, "host"
  bool compression = true;     // offer zstd for remote blob bytes (support_rpc_compression)
  bool migration_compression = false;  // ask for zstd when migrating from another instance
  std::string htpasswd;        // users allowed in (empty: no authentication)
  std::string rpc_tls_cert;    // PEM certificate (chain) for TLS on the RPC port
  std::string rpc_tls_key;     // its private key (both or neither)
  unsigned socket_mode = 0600; // permissions of the IPC socket file
  uint64_t instance_id = 0;
  int io_threads = 2;          // event loops
  int worker_threads = 2;      // workers for slow requests
  int spin_us = 50;            // event loops poll this long before sleeping
  Limits limits;
  // Metadata bounds (MetaLimits): nesting depth, expanded nodes of one tree, bytes.
  uint64_t meta_max_depth = 256;
  uint64_t meta_max_nodes = 1000000;
  uint64_t meta_memory_limit = uint64_t{1} << 30;
  uint64_t unsealed_quota = 0; // bytes of unsealed blobs per connection (0: only --size)
  int stream_threshold = 80;   // percent of --size that stream chunks in flight may use
  bool metrics = false;        // serve Prometheus metrics (--metrics, alias --prometheus)
  int metrics_port = 9601;     // their HTTP port (0: a free one)
  std::string log_level;       // trace|debug|info|warn|error|critical|off ("" : info)
  std::string log_format = "text";  // text or json (one JSON object per line)
  std::string spill_path;      // where blobs are spilled ("" : no spilling)
  double spill_lower_rate = 0.3;  // spill until usage is under this fraction of size
  double spill_upper_rate = 0.8;  // start spilling over this fraction
};

/// Parses argv with gflags (exits on --help), then checks the values.
Result<ServerOptions> ParseServerOptions(int* argc, char*** argv);

/// The memory a store may use when --size is empty: the cgroup limit, or physical memory.
uint64_t DefaultMemoryLimit();

}  // namespace vineyard
