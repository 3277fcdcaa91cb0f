// TestServer: starts a real vineyardd process for a test and stops it after.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "client/client.h"

namespace vineyard::testing {

class TestServer {
 public:
  /// Starts vineyardd (VINEYARDD_PATH) on a fresh socket with `args` added;
  /// waits until it accepts connections.
  /// `wrapper`: a command that runs vineyardd (e.g. {"prlimit", "--nofile=64:64", "--"}).
  static std::unique_ptr<TestServer> Start(const std::vector<std::string>& args = {},
                                           const std::string& size = "256Mi",
                                           const std::vector<std::string>& wrapper = {});
  ~TestServer();

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }
  /// Connects a new client (aborts the test on failure).
  std::shared_ptr<Client> Connect() const;
  /// Sends `sig` and waits for the process; returns its exit status (or -signal).
  int Stop(int sig = 15);
  bool Running() const;

 private:
  std::string socket_;
  pid_t pid_ = -1;
};

/// Runs vineyardd with `args` to completion; returns exit code and stderr.
int RunVineyardd(const std::vector<std::string>& args, std::string* output, int timeout_s = 20);

}  // namespace vineyard::testing
