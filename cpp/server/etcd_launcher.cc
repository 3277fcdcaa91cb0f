#include "server/etcd_launcher.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/etcd/etcd_client.h"

namespace vineyard {

namespace {

// A TCP port nothing listens on now (the kernel's choice).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string FirstEndpoint(const std::string& endpoints) {
  return endpoints.substr(0, endpoints.find(','));
}

}  // namespace

Result<std::string> EtcdLauncher::FindBinary(const std::string& cmd) {
  namespace fs = std::filesystem;
  if (!cmd.empty()) {
    if (access(cmd.c_str(), X_OK) == 0) return cmd;
    if (cmd.find('/') != std::string::npos) {
      return Status::Invalid("--etcd_cmd '", cmd, "' is not an executable file");
    }
  }
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::string name = cmd.empty() ? "etcd" : cmd;
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return Status::Invalid("no '", name, "' executable on PATH");
}

bool EtcdLauncher::IsLocal(const std::string& endpoints) {
  std::string first = FirstEndpoint(endpoints);
  auto scheme = first.find("://");
  std::string host = scheme == std::string::npos ? first : first.substr(scheme + 3);
  host = host.substr(0, host.rfind(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}

EtcdLauncher::EtcdLauncher(std::string binary, std::string endpoint, std::string data_dir)
    : binary_(std::move(binary)), endpoint_(FirstEndpoint(endpoint)),
      data_dir_(std::move(data_dir)) {}

EtcdLauncher::~EtcdLauncher() {
  std::lock_guard<std::mutex> lock(mu_);
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  std::error_code ec;
  if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_, ec);
}

Status EtcdLauncher::StartLocked() {
  std::string dir = data_dir_;
  if (dir.empty()) {
    if (!temp_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(temp_dir_, ec);
    }
    char tmpl[] = "/tmp/vineyardd-etcd-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Status::IOError("mkdtemp: ", strerror(errno));
    temp_dir_ = dir = tmpl;
  }
  int peer_port = FreePort();
  if (peer_port < 0) return Status::IOError("no free TCP port for etcd's peer URL");
  std::string peer = "http://127.0.0.1:" + std::to_string(peer_port);
  std::string name = "vineyardd-" + std::to_string(getpid());
  std::vector<std::string> args = {binary_,
                                   "--name=" + name,
                                   "--data-dir=" + dir + "/data",
                                   "--listen-client-urls=" + endpoint_,
                                   "--advertise-client-urls=" + endpoint_,
                                   "--listen-peer-urls=" + peer,
                                   "--initial-advertise-peer-urls=" + peer,
                                   "--initial-cluster=" + name + "=" + peer,
                                   "--log-level=error",
                                   "--logger=zap"};
  std::string log = dir + "/etcd.log";
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return Status::IOError("fork: ", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    setpgid(0, 0);  // a Ctrl-C in vineyardd's terminal is vineyardd's to handle
    FILE* f = fopen(log.c_str(), "a");
    if (f != nullptr) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary_.c_str(), argv.data());
    _exit(127);
  }
  pid_ = pid;
  spdlog::info("launched etcd (pid {}) at {}, data in {}; it stops with this vineyardd",
               pid, endpoint_, dir);
  return Status::OK();
}

Status EtcdLauncher::EnsureRunning(std::chrono::milliseconds wait) {
  auto probe = etcd::EtcdClient::Create(endpoint_, std::chrono::milliseconds(500));
  if (!probe.ok()) return probe.status();
  auto deadline = std::chrono::steady_clock::now() + wait;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pid_ > 0) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;  // it died: start another
    }
    if (pid_ <= 0 && !(*probe)->Revision().ok()) VY_RETURN_NOT_OK(StartLocked());
  }
  while (std::chrono::steady_clock::now() < deadline) {
    if ((*probe)->Revision().ok()) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::lock_guard<std::mutex> lock(mu_);
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      // It could not start (say another vineyardd's etcd took the port first):
      // whoever answers at the endpoint will do.
      pid_ = -1;
      if ((*probe)->Revision().ok()) return Status::OK();
    }
  }
  return Status::EtcdError("the etcd launched at ", endpoint_, " did not answer within ",
                           wait.count(), " ms");
}

}  // namespace vineyard
