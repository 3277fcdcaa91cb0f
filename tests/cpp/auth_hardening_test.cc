// Login hardening against a real vineyardd with --htpasswd: an unknown user
// costs as much as a wrong password (no user enumeration by timing), a peer
// that keeps guessing is locked out without costing the server a hash while
// others still log in quickly, and the lockout policy of LoginLimiter itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "client/rpc_client.h"
#include "common/protocol.h"
#include "common/socket_io.h"
#include "server/auth.h"
#include "test_server.h"

namespace vineyard {
namespace {

using Clock = std::chrono::steady_clock;
using testing::TestServer;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int RpcPort(Client& client) {
  const std::string& ep = client.rpc_endpoint();
  return std::stoi(ep.substr(ep.rfind(':') + 1));
}

// One login over TCP from the source address `from` (any 127.x.y.z is loopback).
// Returns the reply, or an object with "error" if there was none within 10 s.
json LoginFrom(const std::string& from, int port, const std::string& user,
               const std::string& password) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from.c_str(), &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  json reply = {{"error", "no reply"}};
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) != 0) {
    reply = {{"error", std::string("connect: ") + strerror(errno)}};
    ::close(fd);
    return reply;
  }
  RegisterRequest r;
  r.version = kProtocolVersion;
  r.username = user;
  r.password = password;
  std::string frame;
  struct pollfd p = {fd, POLLIN, 0};
  if (SendFrame(fd, WriteRegisterRequest(r).dump()).ok() && ::poll(&p, 1, 10000) == 1 &&
      RecvFrame(fd, &frame).ok()) {
    reply = json::parse(frame, nullptr, false);
  }
  ::close(fd);
  return reply;
}

bool IsRefusal(const json& reply, const std::string& text) {
  return reply.contains("code") && reply["code"] == 33 && reply.contains("message") &&
         reply["message"].get<std::string>().find(text) != std::string::npos;
}

class AuthHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = "/tmp/vy-htpasswd-hardening-" + std::to_string(getpid());
    // Cost 10 (~0.1 s a hash): what a deployment would choose, and enough for
    // hashing to dominate every timing below.
    std::string cmd = "htpasswd -B -C 10 -b -c " + file_ + " alice 's3cret pass' 2>/dev/null && "
                      "htpasswd -B -C 10 -b " + file_ + " bob hunter2 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "htpasswd (apache2-utils) is needed: make deps";
    server_ = TestServer::Start({"--rpc", "--rpc_socket_port=0", "--htpasswd=" + file_});
    ASSERT_TRUE(server_->Running());
    auto ipc = Client::Connect(server_->socket(), "alice", "s3cret pass");
    ASSERT_TRUE(ipc.ok()) << ipc.status();
    port_ = RpcPort(**ipc);
  }
  void TearDown() override { unlink(file_.c_str()); }

  std::string file_;
  std::unique_ptr<TestServer> server_;
  int port_ = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST_F(AuthHardeningTest, UnknownUsersCostAsMuchAsWrongPasswords) {
  std::vector<double> unknown, wrong;
  for (int i = 0; i < 7; ++i) {
    // A fresh source address per attempt: the lockout must not skew the timing.
    for (bool known : {false, true}) {
      std::string from = "127.0.1." + std::to_string(1 + 2 * i + known);
      auto start = Clock::now();
      json reply = LoginFrom(from, port_, known ? "alice" : "mallory" + std::to_string(i),
                             "not the password");
      double took = Seconds(Clock::now() - start);
      ASSERT_TRUE(IsRefusal(reply, "wrong username or password")) << reply.dump();
      (known ? wrong : unknown).push_back(took);
    }
  }
  double ratio = Median(unknown) / Median(wrong);
  EXPECT_GT(ratio, 0.5) << "unknown user: " << Median(unknown) * 1e3
                        << " ms, wrong password: " << Median(wrong) * 1e3 << " ms";
  EXPECT_LT(ratio, 2.0) << "unknown user: " << Median(unknown) * 1e3
                        << " ms, wrong password: " << Median(wrong) * 1e3 << " ms";
}

TEST_F(AuthHardeningTest, GuessingPeerIsLockedOutWhileOthersLogInQuickly) {
  std::atomic<bool> stop{false};
  std::atomic<int> hashed{0}, limited{0}, other{0};
  std::mutex mu;
  std::string limited_message, other_reply;
  std::vector<std::thread> attackers;
  for (int t = 0; t < 32; ++t) {
    attackers.emplace_back([&] {
      while (!stop) {
        json reply = LoginFrom("127.0.0.2", port_, "alice", "guess");
        if (IsRefusal(reply, "wrong username or password")) {
          ++hashed;
        } else if (IsRefusal(reply, "too many failed logins")) {
          if (limited++ == 0) {
            std::lock_guard<std::mutex> lock(mu);
            limited_message = reply["message"];
          }
        } else {
          ++other;
          std::lock_guard<std::mutex> lock(mu);
          other_reply = reply.dump();
        }
      }
    });
  }
  // Bounded wait for the lockout (it never comes without one).
  for (auto deadline = Clock::now() + std::chrono::seconds(3);
       limited == 0 && Clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Meanwhile a legitimate user on another address logs in quickly, every time.
  std::vector<double> logins;
  for (int i = 0; i < 3; ++i) {
    auto start = Clock::now();
    auto rpc = RPCClient::Connect("127.0.0.1", port_, "bob", "hunter2");
    logins.push_back(Seconds(Clock::now() - start));
    EXPECT_TRUE(rpc.ok()) << rpc.status();
  }
  stop = true;
  for (auto& t : attackers) t.join();
  for (double s : logins) EXPECT_LT(s, 0.5) << "a legitimate login took " << s << " s";
  EXPECT_GT(limited, 0);
  EXPECT_NE(limited_message.find("too many failed logins from 127.0.0.2: retry in "),
            std::string::npos)
      << limited_message;
  // The locked-out peer cost the server at most one burst of hashes.
  EXPECT_LE(hashed, kLoginFailureBurst);
  EXPECT_EQ(other, 0) << other_reply;
}

TEST_F(AuthHardeningTest, IpcPeerIsCountedByUidAndLockedOutEvenWithTheRightPassword) {
  for (int i = 0; i < kLoginFailureBurst; ++i) {
    auto bad = Client::Connect(server_->socket(), "alice", "wrong");
    ASSERT_TRUE(bad.status().IsConnectionFailed()) << bad.status();
    EXPECT_NE(bad.status().message().find("wrong username or password"), std::string::npos)
        << bad.status();
  }
  auto start = Clock::now();
  auto locked = Client::Connect(server_->socket(), "alice", "s3cret pass");
  EXPECT_LT(Seconds(Clock::now() - start), 0.05) << "a locked-out peer must cost no hash";
  ASSERT_TRUE(locked.status().IsConnectionFailed()) << locked.status();
  EXPECT_NE(locked.status().message().find("too many failed logins from uid " +
                                           std::to_string(getuid())),
            std::string::npos)
      << locked.status();
  // Another peer (TCP from 127.0.0.1) is not affected.
  auto rpc = RPCClient::Connect("127.0.0.1", port_, "alice", "s3cret pass");
  EXPECT_TRUE(rpc.ok()) << rpc.status();
}

// --- the policy itself, with short durations ---------------------------------------

LoginLimiter::Policy ShortPolicy() {
  LoginLimiter::Policy p;
  p.burst = 2;
  p.window = std::chrono::milliseconds(2000);
  p.backoff_initial = std::chrono::milliseconds(300);
  p.backoff_max = std::chrono::milliseconds(5000);
  p.queue_timeout = std::chrono::milliseconds(2000);
  p.max_parallel = 1;
  return p;
}

void Fail(LoginLimiter& l, const std::string& peer) {
  ASSERT_TRUE(l.Begin(peer).ok());
  l.End(peer, false);
}

TEST(LoginLimiter, BackoffDoublesWithEachLockout) {
  LoginLimiter l(ShortPolicy());
  Fail(l, "a");
  Fail(l, "a");
  Status st = l.Begin("a");
  ASSERT_TRUE(st.IsConnectionFailed()) << st;
  EXPECT_NE(st.message().find("too many failed logins from a: retry in 1 s"), std::string::npos)
      << st;
  EXPECT_TRUE(l.Begin("b").ok()) << "other peers are not affected";
  l.End("b", true);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  Fail(l, "a");  // the first lockout (300 ms) is over
  Fail(l, "a");
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_TRUE(l.Begin("a").IsConnectionFailed()) << "the second lockout lasts 600 ms";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(l.Begin("a").ok());
  l.End("a", true);
}

TEST(LoginLimiter, HashesRunOneAtATimeAndIdlePeersAreForgotten) {
  LoginLimiter l(ShortPolicy());
  ASSERT_TRUE(l.Begin("a").ok());
  std::atomic<bool> second_started{false};
  std::thread t([&] {
    ASSERT_TRUE(l.Begin("b").ok());
    second_started = true;
    l.End("b", true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(second_started) << "max_parallel = 1: b waits for a's slot";
  l.End("a", true);
  t.join();
  EXPECT_TRUE(second_started);
  EXPECT_EQ(l.tracked(), 0u) << "successful peers leave nothing behind";
}

}  // namespace
}  // namespace vineyard
