#include "server/options.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include <gflags/gflags.h>

#include "common/socket_io.h"

DEFINE_string(socket, "/var/run/vineyard.sock", "UNIX socket path that IPC clients connect to");
DEFINE_string(size, "256Mi",
              "Memory for shared objects: plain bytes or with a unit (256Mi, 4G, 1.5Gi); "
              "empty means the cgroup limit or the physical memory");
DEFINE_bool(reserve_memory, false, "Pre-fault the whole shared memory at start");
DEFINE_string(meta, "local", "Metadata backend: 'local' (embedded, one instance)");
DEFINE_bool(rpc, true, "Serve remote clients over TCP (--norpc turns it off)");
DEFINE_int32(rpc_socket_port, 9600, "TCP port of the RPC endpoint (0: any free port)");
DEFINE_string(rpc_host, "", "Host name reported in the RPC endpoint (default: this host)");
DEFINE_bool(compression, true,
            "Offer zstd compression of remote blob bytes to RPC clients (they choose)");
DEFINE_string(htpasswd, "",
              "File of 'user:bcrypt-hash' lines (htpasswd -B): every client must then "
              "give a username and password");
DEFINE_string(socket_mode, "0600",
              "Permissions of the IPC socket file, in octal: 0600 admits the server's user "
              "only, 0660 its group too, 0666 everyone on the host");
DEFINE_string(unsealed_quota, "0",
              "Most bytes of unsealed (created, not yet sealed) blobs one connection may "
              "hold, like --size (1Gi, 512M); 0 means only the --size limit applies");

namespace vineyard {

uint64_t DefaultMemoryLimit() {
  uint64_t physical = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                      static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  for (const char* path : {"/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string text;
    if (in >> text && text != "max") {
      try {
        uint64_t limit = std::stoull(text);
        if (limit > 0 && limit < physical) return limit;
      } catch (...) {
      }
    }
  }
  return physical;
}

Result<ServerOptions> ParseServerOptions(int* argc, char*** argv) {
  gflags::SetUsageMessage(
      "vineyardd: the vineyard server, sharing immutable objects in memory.\n"
      "  vineyardd --socket=/tmp/vineyard.sock --size=4Gi");
  gflags::SetVersionString("0.1.0 (protocol 0.24.2)");
  gflags::ParseCommandLineNonHelpFlags(argc, argv, true);
  // --help: our flags only, and exit 0 (gflags' own handler exits 1).
  std::string help;
  if ((gflags::GetCommandLineOption("help", &help) && help == "true") ||
      (gflags::GetCommandLineOption("helpshort", &help) && help == "true")) {
    printf("%s\n\nFlags:\n", gflags::ProgramUsage());
    std::vector<gflags::CommandLineFlagInfo> flags;
    gflags::GetAllFlags(&flags);
    for (const auto& f : flags) {
      if (f.filename.find("options.cc") == std::string::npos) continue;
      printf("  --%s (%s)\n      type: %s, default: \"%s\"\n", f.name.c_str(),
             f.description.c_str(), f.type.c_str(), f.default_value.c_str());
    }
    printf("  --help (this message); --helpfull (every flag); --version\n");
    exit(0);
  }
  gflags::HandleCommandLineHelpFlags();  // --helpfull, --version, ...

  ServerOptions o;
  o.socket = FLAGS_socket;
  if (o.socket.empty()) return Status::Invalid("--socket must not be empty");
  if (FLAGS_size.empty()) {
    o.size = DefaultMemoryLimit();
  } else {
    auto size = ParseMemorySize(FLAGS_size);
    if (!size.ok()) return size.status().WithContext("--size");
    o.size = *size;
  }
  if (o.size == 0) return Status::Invalid("--size must be more than 0 bytes");
  {
    auto quota = ParseMemorySize(FLAGS_unsealed_quota);
    if (!quota.ok()) return quota.status().WithContext("--unsealed_quota");
    o.unsealed_quota = *quota;
  }
  o.reserve_memory = FLAGS_reserve_memory;
  o.meta = FLAGS_meta;
  if (o.meta != "local") {
    return Status::Invalid("--meta=", o.meta, " is not supported: use --meta=local");
  }
  o.rpc = FLAGS_rpc;
  if (FLAGS_rpc_socket_port < 0 || FLAGS_rpc_socket_port > 65535) {
    return Status::Invalid("--rpc_socket_port must be within 0..65535");
  }
  o.rpc_port = FLAGS_rpc_socket_port;
  o.rpc_host = FLAGS_rpc_host;
  o.compression = FLAGS_compression;
  o.htpasswd = FLAGS_htpasswd;
  try {
    size_t used = 0;
    unsigned long mode = std::stoul(FLAGS_socket_mode, &used, 8);
    if (used != FLAGS_socket_mode.size() || mode > 0777) throw std::invalid_argument("mode");
    o.socket_mode = static_cast<unsigned>(mode);
  } catch (const std::exception&) {
    return Status::Invalid("--socket_mode must be octal permissions such as 0600 or 0660, not '",
                           FLAGS_socket_mode, "'");
  }
  return o;
}

}  // namespace vineyard
