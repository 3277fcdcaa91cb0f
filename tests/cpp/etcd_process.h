// EtcdProcess: a real single-member etcd for a test, on free loopback ports in
// a temporary directory. Killed (and, on destruction, its directory removed)
// even when the test fails; the child also dies with the test process
// (PR_SET_PDEATHSIG), so a crashed test leaves no etcd behind.
//
// Thread-safety: use from the test's thread only.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/etcd/etcd_client.h"

namespace vineyard::testing {

/// A loopback TCP port nothing listens on right now.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

class EtcdProcess {
 public:
  /// Starts etcd (the `etcd` on PATH) and waits until it answers (at most 15 s).
  static std::unique_ptr<EtcdProcess> Start() {
    auto p = std::unique_ptr<EtcdProcess>(new EtcdProcess());
    char tmpl[] = "/tmp/vy-etcd-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
      return p;
    }
    p->dir_ = tmpl;
    p->client_port_ = FreePort();
    p->peer_port_ = FreePort();
    p->Launch();
    return p;
  }

  ~EtcdProcess() {
    Kill(SIGKILL);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  pid_t pid() const { return pid_; }

  /// Sends `sig` and waits for its effect: the process gone, or with SIGSTOP
  /// every one of its threads stopped (kill() returns before they are).
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    if (sig == SIGCONT) return;
    if (sig == SIGSTOP) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!AllThreadsStopped() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      return;
    }
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// Starts etcd again on the same ports and data directory.
  void Restart() {
    Kill(SIGKILL);
    Launch();
  }

 private:
  EtcdProcess() = default;

  bool AllThreadsStopped() const {
    std::error_code ec;
    const std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
    for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      // "pid (comm) S ...": the state follows the last ')'.
      auto paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size()) return false;
      if (line[paren + 2] != 'T') return false;
    }
    return !ec;
  }

  void Launch() {
    const std::string client = endpoint();
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    const std::string log = dir_ + "/etcd.log";
    std::vector<std::string> args = {"etcd",
                                     "--name=default",
                                     "--data-dir=" + dir_ + "/data",
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=default=" + peer,
                                     "--log-level=error",
                                     "--logger=zap"};
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      FILE* f = fopen(log.c_str(), "a");
      if (f != nullptr) {
        dup2(fileno(f), 1);
        dup2(fileno(f), 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("etcd", argv.data());
      _exit(127);
    }
    auto probe = etcd::EtcdClient::Create(client, std::chrono::milliseconds(300)).ValueOrDie();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      if (probe->Revision().ok()) return;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "etcd exited at start; see " << log;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "etcd did not answer at " << client << " within 15 s; see " << log;
  }

  std::string dir_;
  int client_port_ = -1;
  int peer_port_ = -1;
  pid_t pid_ = -1;
};

}  // namespace vineyard::testing
