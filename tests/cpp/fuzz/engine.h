// The protocol fuzzer's engine: sends mutated requests (fuzz/mutator.h) of
// every type (fuzz/corpus.h) to a running vineyardd, over its UNIX socket and
// its TCP (RPC) port, on connections that did or did not register first.
//
// After every batch it checks the server: the process is alive, a FRESH
// client registers and round-trips a small put/get over each transport with
// the bytes checked, within `alive_timeout_ms`; and the server's RSS
// (/proc/<pid>/status VmRSS) has not grown more than `rss_growth_limit_kb`
// over the first batch's. The first check that fails ends the run, and the
// report carries the last frames sent on each connection (the repro).
//
// Deterministic for a seed, up to timing (which reply timed out).
// Thread-safety: RunFuzz is self-contained; run one per server.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vineyard::fuzz {

struct FuzzOptions {
  uint64_t seed = 1;
  uint64_t messages = 20000;
  uint64_t batch = 1000;           // messages between two health checks
  std::string socket;              // the server's UNIX socket (required)
  std::string rpc_host = "127.0.0.1";
  int rpc_port = 0;                // 0: IPC only
  pid_t server_pid = -1;           // -1: liveness by connection only, no RSS
  int reply_timeout_ms = 100;      // a request without a reply by then: reconnect
  int stall_timeout_ms = 5;        // the same for frames the server may wait on
  int alive_timeout_ms = 5000;     // a fresh client's round trip must finish by then
  uint64_t rss_growth_limit_kb = 256 * 1024;
  std::function<void(const std::string&)> progress;  // one line per batch, if set
};

struct FuzzReport {
  uint64_t messages = 0;
  uint64_t replies = 0;
  uint64_t error_replies = 0;
  uint64_t timeouts = 0;           // no reply in time (the connection was replaced)
  uint64_t closed_by_server = 0;
  uint64_t connections = 0;
  uint64_t checks = 0;             // health checks passed
  uint64_t rss_first_kb = 0;
  uint64_t rss_peak_kb = 0;
  uint64_t rss_last_kb = 0;
  double seconds = 0;
  std::string failure;             // empty: the server survived every check
  std::vector<std::string> recent; // the last frames sent, escaped, oldest first
  bool ok() const { return failure.empty(); }
  std::string Summary() const;
};

FuzzReport RunFuzz(const FuzzOptions& options);

/// The bytes of a frame as a C string literal ("\x08\x00..."), for repros.
std::string Escape(const std::string& bytes, size_t max = 400);

}  // namespace vineyard::fuzz
