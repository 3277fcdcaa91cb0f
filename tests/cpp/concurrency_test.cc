// The server's concurrency model under hostile or heavy use: frames before
// login, timeouts, many idle and parked connections, the connection limit,
// running out of file descriptors, and what the RPC port exposes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/rpc_client.h"
#include "raw_conn.h"
#include "test_util.h"

namespace vineyard {
namespace {

using testing::RawConn;
using testing::TestServer;

// A field of /proc/<pid>/status ("VmRSS" in KiB, "Threads").
int64_t ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  return -1;
}

// CPU time (user + system) the process has used, in clock ticks.
int64_t CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return utime + stime;
}

// A fresh client can still store and read back an object.
void ExpectServing(TestServer& server) {
  auto client = Client::Connect(server.socket());
  ASSERT_TRUE(client.ok()) << client.status();
  ObjectMeta m;
  m.SetTypeName("test::Alive");
  m.AddKeyValue("answer", 42);
  auto id = (*client)->Put(m, {});
  ASSERT_TRUE(id.ok()) << id.status();
  auto got = (*client)->GetObject(*id);
  ASSERT_TRUE(got.ok()) << got.status();
  auto answer = got->GetKeyValueAs<int>("answer");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(*answer, 42);
}

// --- finding 4: frames before login, buffers that grow as bytes arrive --------

TEST(FrameLimits, LargeFrameBeforeRegisterIsRefused) {
  auto server = TestServer::Start();
  RawConn raw(server->socket());
  ASSERT_TRUE(raw.SendLength(1 << 20));  // 1 MiB announced, nothing registered
  json reply;
  ASSERT_EQ(raw.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_NE(reply.value("message", "").find("before register_request"), std::string::npos)
      << reply.dump();
  EXPECT_TRUE(raw.ClosedByPeer());
  ExpectServing(*server);
}

TEST(FrameLimits, AnnouncedLengthCostsNothingUntilTheBytesArrive) {
  auto server = TestServer::Start();
  ExpectServing(*server);
  int64_t before_kib = ProcStatus(server->pid(), "VmRSS");
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 6; ++i) {
    auto c = std::make_unique<RawConn>(server->socket());
    ASSERT_EQ(c->Register().value("type", ""), "register_reply");
    ASSERT_TRUE(c->SendLength(200ULL << 20));  // 200 MiB announced ...
    std::string some(1024, '{');
    ASSERT_TRUE(c->SendRaw(some.data(), some.size()));  // ... 1 KiB sent
    conns.push_back(std::move(c));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t after_kib = ProcStatus(server->pid(), "VmRSS");
  // Six whole buffers would be 1.2 GB; what arrived is 6 KiB.
  EXPECT_LT(after_kib - before_kib, 32 * 1024) << "RSS grew from " << before_kib << " KiB to "
                                               << after_kib << " KiB";
  ExpectServing(*server);
}

// --- finding 4: handshake, io and idle timeouts ---------------------------------

TEST(Timeouts, NoRegisterWithinTheHandshakeTimeoutCloses) {
  auto server = TestServer::Start({"--handshake_timeout=1"});
  RawConn silent(server->socket());
  RawConn registered(server->socket());
  ASSERT_EQ(registered.Register().value("type", ""), "register_reply");
  EXPECT_TRUE(silent.ClosedByPeer(4000));
  // A registered client is not subject to it.
  EXPECT_EQ(registered.Call({{"type", "instance_status_request"}}).value("type", ""),
            "instance_status_reply");
}

TEST(Timeouts, HalfAFrameIsClosedAfterTheIoTimeout) {
  auto server = TestServer::Start({"--io_timeout=1"});
  RawConn raw(server->socket());
  ASSERT_EQ(raw.Register().value("type", ""), "register_reply");
  ASSERT_TRUE(raw.SendLength(100));
  ASSERT_TRUE(raw.SendRaw("{\"ty", 4));
  EXPECT_TRUE(raw.ClosedByPeer(4000));
  ExpectServing(*server);
}

TEST(Timeouts, IdleTimeoutIsOffByDefaultAndClosesWhenSet) {
  auto server = TestServer::Start({"--idle_timeout=1"});
  RawConn idle(server->socket());
  ASSERT_EQ(idle.Register().value("type", ""), "register_reply");
  EXPECT_TRUE(idle.ClosedByPeer(4000));

  auto patient = TestServer::Start();
  RawConn stays(patient->socket());
  ASSERT_EQ(stays.Register().value("type", ""), "register_reply");
  EXPECT_FALSE(stays.ClosedByPeer(2500));
  EXPECT_EQ(stays.Call({{"type", "instance_status_request"}}).value("type", ""),
            "instance_status_reply");
}

// Frames that arrive together (a client that pipelines) are each answered, in
// order; blob bytes sent right behind their request reach the transfer.
TEST(FrameLimits, PipelinedFramesAreAnsweredInOrder) {
  auto server = TestServer::Start({"--rpc", "--rpc_socket_port=0"});
  RawConn raw(server->socket());
  ASSERT_EQ(raw.Register().value("type", ""), "register_reply");
  std::string both;
  for (const char* type : {"instance_status_request", "cluster_meta"}) {
    std::string body = json{{"type", type}}.dump();
    uint64_t len = body.size();
    both.append(reinterpret_cast<const char*>(&len), sizeof(len)).append(body);
  }
  ASSERT_TRUE(raw.SendRaw(both.data(), both.size()));
  json first, second;
  ASSERT_EQ(raw.Recv(&first), RawConn::Outcome::kReply);
  ASSERT_EQ(raw.Recv(&second), RawConn::Outcome::kReply);
  EXPECT_EQ(first.value("type", ""), "instance_status_reply") << first.dump();
  EXPECT_EQ(second.value("type", ""), "cluster_meta") << second.dump();

  auto ipc = server->Connect();
  const std::string& ep = ipc->rpc_endpoint();
  RawConn tcp("127.0.0.1", std::stoi(ep.substr(ep.rfind(':') + 1)));
  ASSERT_EQ(tcp.Register().value("type", ""), "register_reply");
  CreateRemoteBuffersRequest create;
  create.sizes = {8};
  create.single = true;
  std::string body = WriteCreateRemoteBuffersRequest(create).dump();
  uint64_t len = body.size();
  std::string frame(reinterpret_cast<const char*>(&len), sizeof(len));
  frame += body;
  frame += "ABCDEFGH";  // the blob's bytes, without waiting for the first reply
  ASSERT_TRUE(tcp.SendRaw(frame.data(), frame.size()));
  json created, sealed;
  ASSERT_EQ(tcp.Recv(&created), RawConn::Outcome::kReply);
  ASSERT_EQ(tcp.Recv(&sealed), RawConn::Outcome::kReply);
  ObjectID blob = sealed["created"].value("object_id", ObjectID{0});
  auto got = ipc->GetBlob(blob);
  ASSERT_TRUE(got.ok()) << got.status() << " " << sealed.dump();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*got)->data()), 8), "ABCDEFGH");
}

// --- finding 5: no thread per connection, limits, out of descriptors ---------

// main, the signal thread, 2 loops, 2 workers, and room for a sanitizer's own.
constexpr int64_t kServerThreads = 10;
const std::vector<std::string> kTwoAndTwo = {"--io_threads=2", "--worker_threads=2"};

TEST(Connections, TenThousandIdleClientsCostNoThreadEach) {
  auto server = TestServer::Start(kTwoAndTwo);
  ExpectServing(*server);
  int64_t rss_before = ProcStatus(server->pid(), "VmRSS");
  std::vector<std::unique_ptr<RawConn>> conns;
  conns.reserve(10000);
  for (int i = 0; i < 10000; ++i) {
    auto c = std::make_unique<RawConn>(server->socket());
    ASSERT_GE(c->fd(), 0) << "connection " << i;
    conns.push_back(std::move(c));
  }
  for (int i = 0; i < 10000; i += 97) {  // a sample of them talk
    ASSERT_EQ(conns[i]->Register().value("type", ""), "register_reply") << i;
  }
  auto client = server->Connect();
  ASSERT_TRUE(client);
  auto status = client->GetInstanceStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_GE(status->ipc_connections, 10000u);
  EXPECT_LE(ProcStatus(server->pid(), "Threads"), kServerThreads)
      << "threads grew with connections";
  int64_t rss = ProcStatus(server->pid(), "VmRSS");
  EXPECT_LT(rss - rss_before, 200 * 1024) << "KiB for 10,000 idle connections";
  ExpectServing(*server);
  conns.clear();
  ExpectServing(*server);
}

TEST(Connections, ManyClientsUnderAnAddressSpaceLimit) {
  // The thread-per-connection server aborted at connection 222 under a 2 GiB
  // address-space limit (no room for another thread stack).
#ifdef VINEYARD_SANITIZED
  GTEST_SKIP() << "a sanitizer's shadow memory does not fit in 2 GiB of address space";
#endif
  auto server = TestServer::Start({}, "256Mi", {"prlimit", "--as=2147483648", "--"});
  ASSERT_TRUE(server->Running());
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 1000; ++i) {
    conns.push_back(std::make_unique<RawConn>(server->socket()));
    ASSERT_GE(conns.back()->fd(), 0);
  }
  for (int i = 0; i < 1000; i += 10) {
    ASSERT_EQ(conns[i]->Register().value("type", ""), "register_reply") << i;
  }
  EXPECT_TRUE(server->Running());
  ExpectServing(*server);
}

TEST(Connections, OverMaxConnectionsIsRefusedPolitely) {
  auto server = TestServer::Start({"--max_connections=4"});
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 4; ++i) {
    conns.push_back(std::make_unique<RawConn>(server->socket()));
    ASSERT_EQ(conns.back()->Register().value("type", ""), "register_reply");
  }
  RawConn fifth(server->socket());
  json reply;
  ASSERT_EQ(fifth.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_NE(reply.value("message", "").find("--max_connections"), std::string::npos)
      << reply.dump();
  EXPECT_TRUE(fifth.ClosedByPeer());
  conns.pop_back();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RawConn again(server->socket());
  EXPECT_EQ(again.Register().value("type", ""), "register_reply");
}

TEST(Connections, OutOfFileDescriptorsBacksOffAndRecovers) {
  auto server = TestServer::Start({"--max_connections=1000"}, "256Mi",
                                  {"prlimit", "--nofile=64:64", "--"});
  ASSERT_TRUE(server->Running());
  std::vector<std::unique_ptr<RawConn>> conns;
  int refused = 0;
  for (int i = 0; i < 100; ++i) {
    auto c = std::make_unique<RawConn>(server->socket());
    conns.push_back(std::move(c));
  }
  for (auto& c : conns) {
    json reply;
    if (c->Recv(&reply, 50) == RawConn::Outcome::kReply && reply.contains("code")) {
      EXPECT_NE(reply.value("message", "").find("file descriptors"), std::string::npos);
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  // Not spinning while clients wait at the door.
  int64_t cpu_before = CpuTicks(server->pid());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  int64_t cpu_used = CpuTicks(server->pid()) - cpu_before;
  EXPECT_LT(cpu_used, sysconf(_SC_CLK_TCK) / 4) << "ticks used in 2 s while out of fds";
  conns.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ExpectServing(*server);
}

TEST(Connections, ParkedWaitersHoldNoThreadAndLeaveWhenTheyHangUp) {
  auto server = TestServer::Start(kTwoAndTwo);
  std::vector<std::unique_ptr<RawConn>> waiters;
  for (int i = 0; i < 200; ++i) {
    auto c = std::make_unique<RawConn>(server->socket());
    ASSERT_EQ(c->Register().value("type", ""), "register_reply");
    ASSERT_TRUE(c->SendJson(WriteGetNameRequest("later", true)));
    waiters.push_back(std::move(c));
  }
  auto client = server->Connect();
  auto deferred = [&] {
    auto s = client->GetInstanceStatus();
    return s.ok() ? s->deferred_requests : ~uint64_t{0};
  };
  for (int i = 0; i < 100 && deferred() != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(deferred(), 200u);
  EXPECT_LE(ProcStatus(server->pid(), "Threads"), kServerThreads);
  waiters.resize(100);  // half of them hang up while parked
  for (int i = 0; i < 100 && deferred() != 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(deferred(), 100u);
  ObjectMeta m;
  m.SetTypeName("test::Awaited");
  auto id = client->Put(m, {}, /*persist=*/true);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_OK(client->PutName(*id, "later"));
  for (auto& w : waiters) {
    json reply;
    ASSERT_EQ(w->Recv(&reply), RawConn::Outcome::kReply);
    EXPECT_EQ(reply.value("object_id", ObjectID{0}), *id) << reply.dump();
  }
  EXPECT_EQ(deferred(), 0u);
}

// --- finding 6: what the RPC port exposes ------------------------------------

int ConnectFrom(const char* ip, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip, &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int RpcPortOf(TestServer& server) {
  auto c = server.Connect();
  const std::string& ep = c->rpc_endpoint();
  return std::stoi(ep.substr(ep.rfind(':') + 1));
}

TEST(RpcExposure, RpcHostIsTheAddressTheServerListensOn) {
  auto server = TestServer::Start({"--rpc", "--rpc_socket_port=0", "--rpc_host=127.0.0.1"});
  int port = RpcPortOf(*server);
  int local = ConnectFrom("127.0.0.1", port);
  EXPECT_GE(local, 0);
  if (local >= 0) ::close(local);
  // Another address of this host is not listened on.
  int other = ConnectFrom("127.0.0.2", port);
  EXPECT_LT(other, 0);
  if (other >= 0) ::close(other);
}

TEST(RpcExposure, OpenPortWithoutLoginsIsWarnedAbout) {
  std::string out;
  const std::string socket = "/tmp/vy-rpc-warn-" + std::to_string(getpid()) + ".sock";
  testing::RunVineyardd({"--socket=" + socket, "--rpc_socket_port=0", "--size=64Mi"}, &out, 1);
  ::unlink(socket.c_str());  // the server was stopped by force after a second
  EXPECT_NE(out.find("open to the network without --htpasswd"), std::string::npos) << out;
}

TEST(RpcExposure, NoServerAddressOrFdCrossesTcp) {
  auto server = TestServer::Start({"--rpc", "--rpc_socket_port=0"});
  int port = RpcPortOf(*server);
  RawConn raw("127.0.0.1", port);
  ASSERT_EQ(raw.Register().value("type", ""), "register_reply");
  CreateRemoteBuffersRequest create;
  create.sizes = {16};
  create.single = true;
  json first = raw.Call(WriteCreateRemoteBuffersRequest(create));
  ASSERT_TRUE(first.contains("created")) << first.dump();
  EXPECT_EQ(first["created"].value("pointer", uint64_t{1}), 0u) << first.dump();
  EXPECT_EQ(first["created"].value("store_fd", 0), -1) << first.dump();
  ASSERT_TRUE(raw.SendRaw("0123456789abcdef", 16));
  json sealed;
  ASSERT_EQ(raw.Recv(&sealed), RawConn::Outcome::kReply);
  ObjectID blob = sealed["created"].value("object_id", ObjectID{0});
  GetRemoteBuffersRequest get;
  get.ids = {blob};
  ASSERT_TRUE(raw.SendJson(WriteGetRemoteBuffersRequest(get)));
  std::string frame;
  ASSERT_OK(RecvFrame(raw.fd(), &frame));
  json reply = json::parse(frame);
  ASSERT_TRUE(reply.contains("payloads")) << reply.dump();
  for (const auto& p : reply["payloads"]) {
    EXPECT_EQ(p.value("pointer", uint64_t{1}), 0u) << reply.dump();
    EXPECT_EQ(p.value("store_fd", 0), -1) << reply.dump();
  }
  char bytes[16];
  ASSERT_OK(RecvBytes(raw.fd(), bytes, sizeof(bytes)));
  EXPECT_EQ(std::string(bytes, 16), "0123456789abcdef");
}

}  // namespace
}  // namespace vineyard
