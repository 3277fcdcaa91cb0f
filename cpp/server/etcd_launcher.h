// EtcdLauncher: an etcd started by vineyardd as its child, when nothing
// answers at a local --etcd_endpoint (vineyard does the same). A second
// vineyardd on the host finds it answering and joins.
//
// The child gets SIGTERM when vineyardd exits (PR_SET_PDEATHSIG), and its data
// directory is a temporary one unless --etcd_data_dir names one.
//
// Thread-safety: EnsureRunning() and the destructor may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"

namespace vineyard {

class EtcdLauncher {
 public:
  /// The etcd binary: `cmd` if given, else `etcd` on PATH; NotFound-like
  /// Invalid when there is none.
  static Result<std::string> FindBinary(const std::string& cmd);
  /// True for an endpoint list whose first endpoint is on this host's loopback.
  static bool IsLocal(const std::string& endpoints);

  EtcdLauncher(std::string binary, std::string endpoint, std::string data_dir);
  ~EtcdLauncher();

  /// Starts etcd unless the child is running; waits until it answers (at most
  /// `wait`). Another process answering at the endpoint first is fine too.
  Status EnsureRunning(std::chrono::milliseconds wait);

 private:
  Status StartLocked();

  const std::string binary_;
  const std::string endpoint_;  // http://127.0.0.1:2379
  const std::string data_dir_;  // "" -> a temporary directory per start
  std::mutex mu_;
  pid_t pid_ = -1;              // guarded by mu_
  std::string temp_dir_;        // guarded by mu_: removed at exit
};

}  // namespace vineyard
