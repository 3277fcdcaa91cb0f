#include "server/options.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <thread>
#include <vector>

#include <gflags/gflags.h>

#include "common/socket_io.h"

DEFINE_string(socket, "/var/run/vineyard.sock", "UNIX socket path that IPC clients connect to");
DEFINE_string(size, "256Mi",
              "Memory for shared objects: plain bytes or with a unit (256Mi, 4G, 1.5Gi); "
              "empty means the cgroup limit or the physical memory");
DEFINE_bool(reserve_memory, false, "Pre-fault the whole shared memory at start");
DEFINE_string(meta, "etcd",
              "Metadata backend: 'etcd' (a cluster of instances sharing etcd; standalone "
              "when no etcd can be found or started) or 'local' (one instance)");
DEFINE_string(etcd_endpoint, "http://127.0.0.1:2379",
              "etcd's client URL(s), comma-separated for an etcd cluster");
DEFINE_string(etcd_prefix, "vineyard",
              "Key prefix of the cluster in etcd: instances with the same prefix share objects");
DEFINE_string(etcd_cmd, "", "The etcd executable to launch (default: etcd on PATH)");
DEFINE_string(etcd_data_dir, "",
              "Data directory of a launched etcd (default: a temporary one)");
DEFINE_bool(skip_launch_etcd, false,
            "Never launch etcd: fail when nothing answers at --etcd_endpoint");
DEFINE_int32(meta_timeout, 10,
             "Seconds to wait for etcd at start and for each request that needs it");
DEFINE_int32(instance_ttl, 10,
             "Seconds after which an instance that stopped answering etcd (killed, cut off) "
             "leaves the cluster with its objects");
DEFINE_string(deployment, "local",
              "'local' or 'distributed': how the instances were deployed (reported in "
              "instance_status)");
DEFINE_bool(rpc, true, "Serve remote clients over TCP (--norpc turns it off)");
DEFINE_int32(rpc_socket_port, 9600,
             "TCP port of the RPC endpoint (0: any free port; when the default 9600 is "
             "taken, a free port is used instead)");
DEFINE_string(rpc_host, "", "Host name reported in the RPC endpoint (default: this host)");
DEFINE_bool(compression, true,
            "Offer zstd compression of remote blob bytes to RPC clients (they choose)");
DEFINE_bool(migration_compression, false,
            "Ask for zstd when migrating objects from other instances (used when the source "
            "offers it, see --compression); off by default: on a LAN it costs more CPU time "
            "than it saves for most payloads");
DEFINE_string(htpasswd, "",
              "File of 'user:bcrypt-hash' lines (htpasswd -B): every client must then "
              "give a username and password");
DEFINE_string(socket_mode, "0600",
              "Permissions of the IPC socket file, in octal: 0600 admits the server's user "
              "only, 0660 its group too, 0666 everyone on the host");
DEFINE_uint64(meta_max_depth, 256,
              "Deepest metadata tree a client may create (an object without members is 1; "
              "at most 4096)");
DEFINE_uint64(meta_max_nodes, 1000000,
              "Most nodes one metadata tree may expand to, counting a shared member each "
              "time it appears");
DEFINE_string(meta_memory_limit, "1Gi",
              "Memory the metadata (object records and names, on the server's heap) may "
              "use: plain bytes or with a unit (256Mi, 1Gi)");

DEFINE_string(rpc_tls_cert, "",
              "PEM certificate (chain) of this server: RPC clients must then speak TLS "
              "(1.2 or later) and verify it. Needs --rpc_tls_key");
DEFINE_string(rpc_tls_key, "", "PEM private key of --rpc_tls_cert");
DEFINE_int32(io_threads, 0,
             "Event-loop threads that own the client sockets (0: one per core)");
DEFINE_int32(spin_us, 50,
             "Microseconds an event loop keeps polling its sockets after its last event "
             "before it sleeps (0: sleep at once). A request arriving within that time is "
             "served without a wake-up, which costs 10-40 us on many virtual machines. A "
             "loop polls only while the machine has no more runnable threads than cores, "
             "and one whose polling went unused 3 times in a row sleeps at once for its "
             "next 512 waits");
DEFINE_int32(worker_threads, 0,
             "Worker threads for slow requests: logins, remote blob transfers, store-wide "
             "sweeps, large messages (0: one per core, at least 2)");
DEFINE_uint64(max_connections, 0,
              "Clients served at once, IPC and RPC together; more are refused with an error "
              "(0: as many as the file descriptor limit allows)");
DEFINE_int32(handshake_timeout, 10,
             "Seconds a new connection may take to send register_request (0: no limit)");
DEFINE_int32(io_timeout, 60,
             "Seconds a message, a reply or a blob transfer may go without progress before "
             "the connection is closed (0: no limit)");
DEFINE_int32(idle_timeout, 0,
             "Seconds a registered client may stay silent before it is disconnected "
             "(0: never, as vineyard)");
DEFINE_int32(stream_threshold, 80,
             "Percent of --size that the chunks of all streams may hold at once; a writer "
             "past it waits for its reader (1-100)");
DEFINE_string(unsealed_quota, "0",
              "Most bytes of unsealed (created, not yet sealed) blobs one connection may "
              "hold, like --size (1Gi, 512M); 0 means only the --size limit applies");

DEFINE_bool(metrics, false,
            "Serve Prometheus metrics at http://<rpc_host>:<metrics_port>/metrics");
DEFINE_bool(prometheus, false, "Alias of --metrics (vineyard's flag)");
DEFINE_int32(metrics_port, 9601, "TCP port of the metrics endpoint (0: a free one)");
DEFINE_string(log_level, "",
              "Log level: trace, debug, info, warn, error, critical or off (default: "
              "$VINEYARD_LOG_LEVEL, else info)");
DEFINE_string(log_format, "text",
              "Log format: text, or json (one object per line: time, level, message)");

// Spilling blobs to disk (vineyard's flags).
DEFINE_string(spill_path, "",
              "Directory where sealed blobs no client uses are spilled when memory runs "
              "short, and loaded back from on use (empty: no spilling)");
DEFINE_double(spill_lower_rate, 0.3,
              "Spilling stops once usage is under this fraction of --size");
DEFINE_double(spill_upper_rate, 0.8,
              "Spilling starts once usage is over this fraction of --size");

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
  if (FLAGS_stream_threshold < 1 || FLAGS_stream_threshold > 100) {
    return Status::Invalid("--stream_threshold must be a percent from 1 to 100, not ",
                           FLAGS_stream_threshold);
  }
  o.stream_threshold = FLAGS_stream_threshold;
  o.reserve_memory = FLAGS_reserve_memory;
  o.meta = FLAGS_meta;
  if (o.meta != "local" && o.meta != "etcd") {
    return Status::Invalid("--meta=", o.meta, " is not supported: use --meta=etcd or local");
  }
  o.etcd_endpoint = FLAGS_etcd_endpoint;
  o.etcd_prefix = FLAGS_etcd_prefix;
  if (o.etcd_prefix.empty() || o.etcd_prefix.find("//") != std::string::npos) {
    return Status::Invalid("--etcd_prefix must be a non-empty key prefix such as 'vineyard'");
  }
  o.etcd_cmd = FLAGS_etcd_cmd;
  o.etcd_data_dir = FLAGS_etcd_data_dir;
  o.skip_launch_etcd = FLAGS_skip_launch_etcd;
  if (FLAGS_meta_timeout < 1 || FLAGS_instance_ttl < 2) {
    return Status::Invalid("--meta_timeout must be at least 1 second and --instance_ttl 2");
  }
  o.meta_timeout_s = FLAGS_meta_timeout;
  o.instance_ttl_s = FLAGS_instance_ttl;
  o.deployment = FLAGS_deployment;
  if (o.deployment != "local" && o.deployment != "distributed") {
    return Status::Invalid("--deployment must be 'local' or 'distributed'");
  }
  o.rpc = FLAGS_rpc;
  if (FLAGS_rpc_socket_port < 0 || FLAGS_rpc_socket_port > 65535) {
    return Status::Invalid("--rpc_socket_port must be within 0..65535");
  }
  o.rpc_port = FLAGS_rpc_socket_port;
  o.rpc_port_is_default = gflags::GetCommandLineFlagInfoOrDie("rpc_socket_port").is_default;
  o.rpc_host = FLAGS_rpc_host;
  o.compression = FLAGS_compression;
  o.migration_compression = FLAGS_migration_compression;
  o.htpasswd = FLAGS_htpasswd;
  o.rpc_tls_cert = FLAGS_rpc_tls_cert;
  o.rpc_tls_key = FLAGS_rpc_tls_key;
  if (o.rpc_tls_cert.empty() != o.rpc_tls_key.empty()) {
    return Status::Invalid("--rpc_tls_cert and --rpc_tls_key go together: give both, or "
                           "neither for plain TCP");
  }
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (FLAGS_io_threads < 0 || FLAGS_io_threads > 256 || FLAGS_worker_threads < 0 ||
      FLAGS_worker_threads > 1024) {
    return Status::Invalid("--io_threads must be within 0..256 and --worker_threads 0..1024");
  }
  o.io_threads = FLAGS_io_threads > 0 ? FLAGS_io_threads : cores;
  if (FLAGS_spin_us < 0 || FLAGS_spin_us > 100000) {
    return Status::Invalid("--spin_us must be within 0..100000 microseconds");
  }
  o.spin_us = FLAGS_spin_us;
  o.worker_threads = FLAGS_worker_threads > 0 ? FLAGS_worker_threads : std::max(2, cores);
  if (FLAGS_handshake_timeout < 0 || FLAGS_io_timeout < 0 || FLAGS_idle_timeout < 0) {
    return Status::Invalid("--handshake_timeout, --io_timeout and --idle_timeout are seconds "
                           "(0: no limit), not negative");
  }
  o.limits.handshake_timeout_s = FLAGS_handshake_timeout;
  o.limits.io_timeout_s = FLAGS_io_timeout;
  o.limits.idle_timeout_s = FLAGS_idle_timeout;
  o.limits.max_connections = FLAGS_max_connections;
  if (FLAGS_meta_max_depth < 1 || FLAGS_meta_max_depth > kMaxMetaDepth) {
    return Status::Invalid("--meta_max_depth must be within 1..", kMaxMetaDepth,
                           ": deeper trees would overflow the JSON encoder's stack");
  }
  o.meta_max_depth = FLAGS_meta_max_depth;
  if (FLAGS_meta_max_nodes < 1) return Status::Invalid("--meta_max_nodes must be at least 1");
  o.meta_max_nodes = FLAGS_meta_max_nodes;
  auto meta_memory = ParseMemorySize(FLAGS_meta_memory_limit);
  if (!meta_memory.ok()) return meta_memory.status().WithContext("--meta_memory_limit");
  o.meta_memory_limit = *meta_memory;
  try {
    size_t used = 0;
    unsigned long mode = std::stoul(FLAGS_socket_mode, &used, 8);
    if (used != FLAGS_socket_mode.size() || mode > 0777) throw std::invalid_argument("mode");
    o.socket_mode = static_cast<unsigned>(mode);
  } catch (const std::exception&) {
    return Status::Invalid("--socket_mode must be octal permissions such as 0600 or 0660, not '",
                           FLAGS_socket_mode, "'");
  }
  o.metrics = FLAGS_metrics || FLAGS_prometheus;
  if (FLAGS_metrics_port < 0 || FLAGS_metrics_port > 65535) {
    return Status::Invalid("--metrics_port must be within 0..65535");
  }
  o.metrics_port = FLAGS_metrics_port;
  o.log_level = FLAGS_log_level;
  if (o.log_level.empty() && getenv("VINEYARD_LOG_LEVEL") != nullptr) {
    o.log_level = getenv("VINEYARD_LOG_LEVEL");
  }
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "warning",
                                  "error", "err", "critical", "off"};
  if (!o.log_level.empty() &&
      std::find(std::begin(kLevels), std::end(kLevels), o.log_level) == std::end(kLevels)) {
    return Status::Invalid("--log_level=", o.log_level,
                           " is not a level: use trace, debug, info, warn, error, critical or off");
  }
  o.log_format = FLAGS_log_format;
  if (o.log_format != "text" && o.log_format != "json") {
    return Status::Invalid("--log_format must be 'text' or 'json', not '", o.log_format, "'");
  }
  o.spill_path = FLAGS_spill_path;
  o.spill_lower_rate = FLAGS_spill_lower_rate;
  o.spill_upper_rate = FLAGS_spill_upper_rate;
  if (!(o.spill_lower_rate >= 0 && o.spill_lower_rate < o.spill_upper_rate &&
        o.spill_upper_rate <= 1)) {
    return Status::Invalid("--spill_lower_rate and --spill_upper_rate must satisfy "
                           "0 <= lower < upper <= 1 (default 0.3 and 0.8)");
  }
  return o;
}

}  // namespace vineyard
