#include "test_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "common/socket_io.h"

#ifndef VINEYARDD_PATH
#error "VINEYARDD_PATH must name the vineyardd binary"
#endif

namespace vineyard::testing {

namespace {
std::atomic<int> counter{0};

pid_t Spawn(const std::vector<std::string>& args, int out_fd,
            const std::vector<std::string>& wrapper = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    // A test process that dies (a sanitizer abort, a crash) takes its server
    // along; an orphaned server would keep ctest waiting on the output pipe.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (out_fd >= 0) {
      dup2(out_fd, 1);
      dup2(out_fd, 2);
    }
    std::vector<char*> argv;
    for (const auto& w : wrapper) argv.push_back(const_cast<char*>(w.c_str()));
    argv.push_back(const_cast<char*>(VINEYARDD_PATH));
    // Standalone unless a test asks for a cluster (a later --meta wins).
    argv.push_back(const_cast<char*>("--meta=local"));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (wrapper.empty()) {
      execv(VINEYARDD_PATH, argv.data());
    } else {
      execvp(argv[0], argv.data());
    }
    _exit(127);
  }
  return pid;
}
}  // namespace

std::unique_ptr<TestServer> TestServer::Start(const std::vector<std::string>& args,
                                              const std::string& size,
                                              const std::vector<std::string>& wrapper) {
  auto server = std::unique_ptr<TestServer>(new TestServer());
  server->socket_ = "/tmp/vy-test-" + std::to_string(getpid()) + "-" +
                    std::to_string(counter++) + ".sock";
  std::vector<std::string> all = {"--socket=" + server->socket_, "--size=" + size, "--norpc"};
  all.insert(all.end(), args.begin(), args.end());
  server->pid_ = Spawn(all, -1, wrapper);
  for (int i = 0; i < 500; ++i) {
    auto fd = ConnectUnixSocket(server->socket_);
    if (fd.ok()) {
      close(*fd);
      return server;
    }
    int status;
    if (waitpid(server->pid_, &status, WNOHANG) == server->pid_) {
      server->pid_ = -1;
      ADD_FAILURE() << "vineyardd exited at start";
      return server;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "vineyardd did not start listening on " << server->socket_;
  return server;
}

TestServer::~TestServer() {
  if (pid_ > 0) Stop(SIGKILL);
  unlink(socket_.c_str());
}

std::shared_ptr<Client> TestServer::Connect() const {
  auto client = Client::Connect(socket_);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? *client : nullptr;
}

int TestServer::Stop(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

bool TestServer::Running() const { return pid_ > 0 && kill(pid_, 0) == 0; }

int RunVineyardd(const std::vector<std::string>& args, std::string* output, int timeout_s) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  pid_t pid = Spawn(args, pipefd[1]);
  close(pipefd[1]);
  output->clear();
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  int status = 0;
  while (true) {
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n > 0) output->append(buf, static_cast<size_t>(n));
    if (waitpid(pid, &status, WNOHANG) == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    if (n <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) output->append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace vineyard::testing
