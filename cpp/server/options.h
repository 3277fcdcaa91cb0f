// vineyardd's command-line options (gflags syntax, as vineyard's: --size=1G, --norpc).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace vineyard {

struct ServerOptions {
  std::string socket;          // IPC socket path
  uint64_t size = 0;           // memory limit of the bulk store, bytes
  bool reserve_memory = false; // pre-fault the whole arena at start
  std::string meta;            // metadata backend: "local" (or "etcd")
  bool rpc = true;             // serve TCP clients
  int rpc_port = 9600;
  std::string rpc_host;        // what register_reply reports, "host"
  bool compression = true;     // offer zstd for remote blob bytes (support_rpc_compression)
  std::string htpasswd;        // users allowed in (empty: no authentication)
  unsigned socket_mode = 0600; // permissions of the IPC socket file
  uint64_t instance_id = 0;
  uint64_t unsealed_quota = 0; // bytes of unsealed blobs per connection (0: only --size)
};

/// Parses argv with gflags (exits on --help), then checks the values.
Result<ServerOptions> ParseServerOptions(int* argc, char*** argv);

/// The memory a store may use when --size is empty: the cgroup limit, or physical memory.
uint64_t DefaultMemoryLimit();

}  // namespace vineyard
