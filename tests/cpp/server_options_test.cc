// vineyardd's command line, start-up and shutdown, against the real binary:
// --help, bad and unwritable socket paths, stale and live sockets, signals,
// --size forms, --meta, --reserve_memory and the RPC endpoint.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "common/protocol.h"
#include "common/socket_io.h"
#include "test_server.h"

#ifndef VINEYARDD_PATH
#error "VINEYARDD_PATH must name the vineyardd binary"
#endif

namespace vineyard {
namespace {

using testing::RunVineyardd;
using testing::TestServer;

constexpr uint64_t kMiB = 1ULL << 20;

std::string TempPath(const std::string& tag) {
  static std::atomic<int> counter{0};
  return "/tmp/vy-opt-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" + tag;
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs `argv` (argv[0] a path) to completion; returns its exit code (or -signal)
// and its stdout + stderr.
int RunProgram(const std::vector<std::string>& argv, std::string* output, int timeout_s = 20) {
  std::string log = TempPath("run.log");
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << argv[0] << " did not finish in " << timeout_s << " s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::ifstream in(log);
  output->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  unlink(log.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// A vineyardd started by the test itself (on a socket path of the test's choice).
class Vineyardd {
 public:
  explicit Vineyardd(const std::vector<std::string>& args) : log_(TempPath("vineyardd.log")) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv = {const_cast<char*>(VINEYARDD_PATH),
                                 const_cast<char*>("--meta=local")};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(VINEYARDD_PATH, argv.data());
      _exit(127);
    }
  }
  ~Vineyardd() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    unlink(log_.c_str());
  }

  // Waits until `socket` accepts connections; false if vineyardd exited first.
  bool WaitListening(const std::string& socket, int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      auto fd = ConnectUnixSocket(socket);
      if (fd.ok()) {
        close(*fd);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Sends `sig`; returns the exit code (or -signal), or -1000 after a timeout.
  int Stop(int sig, int timeout_ms = 10000) {
    if (pid_ <= 0) return -1001;
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > deadline) return -1000;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

  std::string Log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// A fresh client can put and get an object with a blob.
void ExpectServes(const std::string& socket) {
  auto client = Client::Connect(socket);
  ASSERT_TRUE(client.ok()) << client.status();
  auto writer = (*client)->CreateBlob(8192);
  ASSERT_TRUE(writer.ok()) << writer.status();
  memset((*writer)->data(), 0x3c, 8192);
  ObjectMeta meta;
  meta.SetTypeName("test::Bytes");
  meta.AddMember("buffer_", **writer);
  auto id = (*client)->Put(meta, {writer->get()});
  ASSERT_TRUE(id.ok()) << id.status();
  auto got = (*client)->GetObject(*id);
  ASSERT_TRUE(got.ok()) << got.status();
  auto blob_ids = got->GetBlobIds();
  ASSERT_EQ(blob_ids.size(), 1u);
  auto blob = got->GetBuffer(blob_ids[0]);
  ASSERT_TRUE(blob.ok());
  ASSERT_EQ((*blob)->size(), 8192u);
  EXPECT_EQ((*blob)->data()[0], 0x3c);
  EXPECT_EQ((*blob)->data()[8191], 0x3c);
}

uint64_t MemoryLimitOf(const std::string& socket) {
  auto client = Client::Connect(socket);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return 0;
  auto st = (*client)->GetInstanceStatus();
  EXPECT_TRUE(st.ok()) << st.status();
  return st.ok() ? st->memory_limit : 0;
}

// --- --help and bad flags --------------------------------------------------------

TEST(ServerOptionsTest, HelpExitsZeroAndNamesTheFlags) {
  for (const char* flag : {"--help", "-help", "--helpshort"}) {
    std::string out;
    EXPECT_EQ(RunVineyardd({flag}, &out), 0) << flag << ": " << out;
    EXPECT_TRUE(Contains(out, "--socket")) << out;
    EXPECT_TRUE(Contains(out, "--size")) << out;
    EXPECT_TRUE(Contains(out, "--rpc")) << out;
    EXPECT_TRUE(Contains(out, "--meta")) << out;
  }
  std::string out;
  EXPECT_EQ(RunVineyardd({"--version"}, &out), 0) << out;
  EXPECT_TRUE(Contains(out, "0.24.2")) << out;
}

TEST(ServerOptionsTest, UnknownFlagIsAnError) {
  std::string out;
  EXPECT_NE(RunVineyardd({"--no_such_flag=1", "--socket=" + TempPath("s.sock")}, &out), 0);
  EXPECT_TRUE(Contains(out, "no_such_flag")) << out;
}

TEST(ServerOptionsTest, BadSizes) {
  std::string sock = TempPath("size.sock");
  for (const std::string size : {"garbage", "-1", "0", "1Xi", "12abc", "1..5G"}) {
    std::string out;
    int rc = RunVineyardd({"--socket=" + sock, "--norpc", "--size=" + size}, &out);
    EXPECT_NE(rc, 0) << "--size=" << size;
    EXPECT_TRUE(Contains(out, "--size")) << out;
    if (size != "0") {
      EXPECT_TRUE(Contains(out, "'" + size + "'")) << out;
    }
    EXPECT_FALSE(FileExists(sock)) << "a socket was left behind for --size=" << size;
  }
}

TEST(ServerOptionsTest, BogusMetaIsAnError) {
  std::string sock = TempPath("meta.sock");
  std::string out;
  EXPECT_NE(RunVineyardd({"--socket=" + sock, "--norpc", "--meta=bogus"}, &out), 0);
  EXPECT_TRUE(Contains(out, "--meta")) << out;
  EXPECT_TRUE(Contains(out, "bogus")) << out;
  EXPECT_FALSE(FileExists(sock));
}

TEST(ServerOptionsTest, BadRpcPortIsAnError) {
  std::string out;
  EXPECT_NE(RunVineyardd({"--socket=" + TempPath("p.sock"), "--rpc_socket_port=70000"}, &out),
            0);
  EXPECT_TRUE(Contains(out, "--rpc_socket_port")) << out;
}

// --- socket paths --------------------------------------------------------------------

TEST(ServerOptionsTest, SocketInANonExistentDirectory) {
  std::string dir = TempPath("no-such-dir");
  std::string out;
  int rc = RunVineyardd({"--socket=" + dir + "/sub/vineyard.sock", "--norpc"}, &out);
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(Contains(out, "--socket")) << out;
  EXPECT_TRUE(Contains(out, "does not exist")) << out;
  EXPECT_FALSE(FileExists(dir));
}

TEST(ServerOptionsTest, SocketInAnUnwritableDirectory) {
  std::string dir = TempPath("ro-dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0555), 0);
  std::vector<std::string> prefix;
  if (geteuid() == 0) {
    // Root writes anywhere: drop to nobody for this run.
    if (access("/usr/bin/setpriv", X_OK) != 0 || access(VINEYARDD_PATH, R_OK) != 0) {
      rmdir(dir.c_str());
      GTEST_SKIP() << "running as root without setpriv: cannot make a directory unwritable";
    }
    prefix = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  }
  std::vector<std::string> argv = prefix;
  argv.push_back(VINEYARDD_PATH);
  argv.push_back("--socket=" + dir + "/vineyard.sock");
  argv.push_back("--norpc");
  std::string out;
  int rc = RunProgram(argv, &out);
  if (rc == 127 && !prefix.empty()) {
    rmdir(dir.c_str());
    GTEST_SKIP() << "cannot run vineyardd as nobody: " << out;
  }
  EXPECT_NE(rc, 0) << out;
  EXPECT_TRUE(Contains(out, "--socket")) << out;
  EXPECT_TRUE(Contains(out, "not writable")) << out;
  EXPECT_FALSE(FileExists(dir + "/vineyard.sock"));

  // The default path, when it is not writable: the message says how to fix it.
  if (!prefix.empty()) {
    argv = prefix;
    argv.push_back(VINEYARDD_PATH);
    argv.push_back("--norpc");
    rc = RunProgram(argv, &out);
    EXPECT_NE(rc, 0) << out;
    EXPECT_TRUE(Contains(out, "--socket")) << out;
    EXPECT_TRUE(Contains(out, "vineyard.sock")) << out;
  }
  chmod(dir.c_str(), 0755);
  rmdir(dir.c_str());
}

TEST(ServerOptionsTest, SocketPathTooLongOrNotASocket) {
  std::string out;
  std::string long_path = "/tmp/" + std::string(150, 'x') + ".sock";
  EXPECT_NE(RunVineyardd({"--socket=" + long_path, "--norpc"}, &out), 0);
  EXPECT_TRUE(Contains(out, "--socket")) << out;
  EXPECT_TRUE(Contains(out, "longer than")) << out;

  // A regular file in the way is never deleted.
  std::string file = TempPath("regular.sock");
  { std::ofstream(file) << "precious"; }
  EXPECT_NE(RunVineyardd({"--socket=" + file, "--norpc"}, &out), 0);
  EXPECT_TRUE(Contains(out, "--socket")) << out;
  EXPECT_TRUE(Contains(out, "not a socket")) << out;
  std::ifstream in(file);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
  unlink(file.c_str());

  EXPECT_NE(RunVineyardd({"--socket=", "--norpc"}, &out), 0);
  EXPECT_TRUE(Contains(out, "--socket")) << out;
}

TEST(ServerOptionsTest, StaleSocketIsReplaced) {
  std::string sock = TempPath("stale.sock");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);  // no unlink: the file stays, nobody listens
  ASSERT_TRUE(FileExists(sock));

  Vineyardd server({"--socket=" + sock, "--norpc", "--size=32Mi"});
  ASSERT_TRUE(server.WaitListening(sock)) << server.Log();
  ExpectServes(sock);
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Log();
  EXPECT_FALSE(FileExists(sock));
}

TEST(ServerOptionsTest, LiveSocketIsRefused) {
  auto first = TestServer::Start({}, "32Mi");
  ASSERT_TRUE(first->Running());
  std::string out;
  int rc = RunVineyardd({"--socket=" + first->socket(), "--norpc", "--size=32Mi"}, &out);
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(Contains(out, "another vineyardd is serving")) << out;
  EXPECT_TRUE(Contains(out, "--socket")) << out;
  // The first one is untouched.
  EXPECT_TRUE(first->Running());
  EXPECT_TRUE(FileExists(first->socket()));
  ExpectServes(first->socket());
}

// --- signals -------------------------------------------------------------------------

class SignalTest : public ::testing::TestWithParam<int> {};

TEST_P(SignalTest, StopsCleanlyAndRemovesTheSocket) {
  const int sig = GetParam();
  std::string sock = TempPath("sig.sock");
  Vineyardd server({"--socket=" + sock, "--norpc", "--size=32Mi"});
  ASSERT_TRUE(server.WaitListening(sock)) << server.Log();
  ExpectServes(sock);

  // An idle client, one with unsealed memory and one blocked in a wait do not hold it up.
  auto idle = Client::Connect(sock);
  ASSERT_TRUE(idle.ok());
  auto holder = Client::Connect(sock);
  ASSERT_TRUE(holder.ok());
  auto unsealed = (*holder)->CreateBlob(kMiB);
  ASSERT_TRUE(unsealed.ok());
  auto waiter = Client::Connect(sock);
  ASSERT_TRUE(waiter.ok());
  std::atomic<bool> returned{false};
  std::thread blocked([&] {
    auto r = (*waiter)->GetName("never", /*wait=*/true);
    EXPECT_FALSE(r.ok());
    returned = true;
  });
  for (int i = 0; i < 200; ++i) {
    auto st = (*idle)->GetInstanceStatus();
    if (st.ok() && st->deferred_requests == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(server.Stop(sig), 0) << server.Log();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_FALSE(FileExists(sock));
  blocked.join();
  EXPECT_TRUE(returned);
  EXPECT_FALSE((*idle)->GetInstanceStatus().ok());
}

INSTANTIATE_TEST_SUITE_P(Signals, SignalTest, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& info) {
                           return std::string(info.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

// --- --size and memory_limit ------------------------------------------------------------

TEST(ServerOptionsTest, SizeWithAUnit) {
  auto server = TestServer::Start({}, "1Gi");
  ASSERT_TRUE(server->Running());
  EXPECT_EQ(MemoryLimitOf(server->socket()), 1ULL << 30);
  ExpectServes(server->socket());

  auto decimal = TestServer::Start({}, "100M");
  ASSERT_TRUE(decimal->Running());
  EXPECT_EQ(MemoryLimitOf(decimal->socket()), 100000000ULL);
}

uint64_t ExpectedDefaultLimit() {
  uint64_t physical = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                      static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t limit = physical;
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string text;
    if (in >> text && text != "max") {
      uint64_t v = strtoull(text.c_str(), nullptr, 10);
      if (v > 0 && v < limit) limit = v;
    }
  }
  return limit;
}

TEST(ServerOptionsTest, EmptySizeMeansCgroupOrPhysicalMemory) {
  auto server = TestServer::Start({}, "");
  ASSERT_TRUE(server->Running());
  uint64_t limit = MemoryLimitOf(server->socket());
  EXPECT_EQ(limit, ExpectedDefaultLimit());
  EXPECT_GT(limit, 0u);
  ExpectServes(server->socket());
}

TEST(ServerOptionsTest, ReserveMemoryStarts) {
  auto server = TestServer::Start({"--reserve_memory"}, "64Mi");
  ASSERT_TRUE(server->Running());
  EXPECT_EQ(MemoryLimitOf(server->socket()), 64 * kMiB);
  ExpectServes(server->socket());
  auto client = server->Connect();
  ASSERT_NE(client, nullptr);
  auto most = client->CreateBlob(56 * kMiB);  // the largest size class below 64 MiB
  ASSERT_TRUE(most.ok()) << most.status();
  memset((*most)->data(), 1, 56 * kMiB);
  EXPECT_EQ(client->CreateBlob(8 * kMiB).status().code(), StatusCode::kNotEnoughMemory);
}

// --- RPC ---------------------------------------------------------------------------------

TEST(ServerOptionsTest, RpcEndpointHasAPort) {
  auto server = TestServer::Start({"--rpc", "--rpc_socket_port=0"}, "32Mi");
  ASSERT_TRUE(server->Running());
  auto client = server->Connect();
  ASSERT_NE(client, nullptr);
  const std::string endpoint = client->rpc_endpoint();
  auto colon = endpoint.rfind(':');
  ASSERT_NE(colon, std::string::npos) << endpoint;
  EXPECT_GT(colon, 0u) << "no host in " << endpoint;
  int port = atoi(endpoint.substr(colon + 1).c_str());
  EXPECT_GT(port, 0) << endpoint;
  EXPECT_LT(port, 65536) << endpoint;
  EXPECT_NE(endpoint, "0.0.0.0:0");

  // The port accepts the protocol over TCP.
  auto fd = ConnectTcpSocket("127.0.0.1", port);
  ASSERT_TRUE(fd.ok()) << fd.status();
  RegisterRequest r;
  r.version = kProtocolVersion;
  ASSERT_TRUE(SendFrame(*fd, WriteRegisterRequest(r).dump()).ok());
  std::string frame;
  ASSERT_TRUE(RecvFrame(*fd, &frame).ok());
  auto reply = ReadRegisterReply(json::parse(frame));
  ASSERT_TRUE(reply.ok()) << reply.status() << " " << frame;
  EXPECT_EQ(reply->rpc_endpoint, endpoint);
  // Shared memory is not for remote clients.
  ASSERT_TRUE(SendFrame(*fd, WriteCreateBufferRequest(1024).dump()).ok());
  ASSERT_TRUE(RecvFrame(*fd, &frame).ok());
  EXPECT_EQ(CheckReply(json::parse(frame)).code(), StatusCode::kInvalid) << frame;
  auto st = client->GetInstanceStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->rpc_connections, 1u);
  close(*fd);

  // A second server on the same port fails clearly.
  std::string out, sock2 = TempPath("rpc2.sock");
  int rc = RunVineyardd({"--socket=" + sock2, "--rpc",
                         "--rpc_socket_port=" + std::to_string(port), "--size=16Mi"},
                        &out);
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(Contains(out, "--rpc_socket_port")) << out;
  EXPECT_FALSE(FileExists(sock2)) << "a failed start left its socket file behind";
  ExpectServes(server->socket());
}

TEST(ServerOptionsTest, NoRpcReportsNoEndpoint) {
  auto server = TestServer::Start({}, "16Mi");
  ASSERT_TRUE(server->Running());
  auto client = server->Connect();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->rpc_endpoint(), "0.0.0.0:0");
}

}  // namespace
}  // namespace vineyard
