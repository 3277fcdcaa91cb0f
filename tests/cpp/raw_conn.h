// RawConn: a hand-driven connection to vineyardd (UNIX socket or TCP) for
// tests of bad input — raw bytes, frames, replies with a timeout — and
// IsReply and IsError, which check a reply's shape (and an error's code).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/protocol.h"
#include "common/socket_io.h"

namespace vineyard::testing {

// A hand-driven connection: raw bytes, frames, replies with a timeout.
class RawConn {
 public:
  enum class Outcome { kReply, kClosed, kTimeout };

  explicit RawConn(const std::string& socket) {
    auto fd = ConnectUnixSocket(socket);
    EXPECT_TRUE(fd.ok()) << fd.status();
    fd_ = fd.ok() ? *fd : -1;
  }
  /// Over TCP (the RPC endpoint).
  RawConn(const std::string& host, int port) {
    auto fd = ConnectTcpSocket(host, port);
    EXPECT_TRUE(fd.ok()) << fd.status();
    fd_ = fd.ok() ? *fd : -1;
  }
  ~RawConn() { Close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool SendRaw(const void* data, size_t n) { return SendBytes(fd_, data, n).ok(); }
  bool SendLength(uint64_t len) { return SendRaw(&len, sizeof(len)); }
  bool SendText(const std::string& text) { return SendFrame(fd_, text).ok(); }
  bool SendJson(const json& j) { return SendText(j.dump()); }

  // Waits for one reply frame (and the fds it lists) or for the peer to close.
  Outcome Recv(json* reply, int timeout_ms = 5000) {
    struct pollfd p = {fd_, POLLIN, 0};
    int n = ::poll(&p, 1, timeout_ms);
    if (n == 0) return Outcome::kTimeout;
    std::string frame;
    Status st = RecvFrame(fd_, &frame);
    if (!st.ok()) return Outcome::kClosed;
    *reply = json::parse(frame, nullptr, false);
    EXPECT_FALSE(reply->is_discarded()) << "the server sent invalid JSON: " << frame;
    ReceivePassedFds(*reply);
    return Outcome::kReply;
  }

  // True if the server closes the connection within the timeout (bytes it sends
  // first, e.g. an error reply, are skipped).
  bool ClosedByPeer(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      struct pollfd p = {fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t got = ::recv(fd_, buf, sizeof(buf), 0);
      if (got == 0) return true;
      if (got < 0 && errno != EINTR && errno != EAGAIN) return true;  // e.g. ECONNRESET
    }
    return false;
  }

  // Sends a request and returns its reply (a failed test if there is none).
  json Call(const json& request) {
    json reply;
    EXPECT_TRUE(SendJson(request)) << request.dump();
    Outcome o = Recv(&reply);
    EXPECT_EQ(o, Outcome::kReply) << "no reply to " << request.dump().substr(0, 200);
    return o == Outcome::kReply ? reply : json::object();
  }

  json Register() {
    RegisterRequest r;
    r.version = kProtocolVersion;
    return Call(WriteRegisterRequest(r));
  }

 private:
  void ReceivePassedFds(const json& reply) {
    std::vector<int> listed;
    if (reply.contains("fd") && reply["fd"].is_number_integer() && reply["fd"].get<int>() >= 0) {
      listed.push_back(reply["fd"].get<int>());
    }
    if (reply.contains("fds") && reply["fds"].is_array()) {
      for (const auto& f : reply["fds"]) listed.push_back(f.get<int>());
    }
    for (size_t i = 0; i < listed.size(); ++i) {
      auto fd = RecvFd(fd_);
      EXPECT_TRUE(fd.ok()) << fd.status();
      if (fd.ok()) ::close(*fd);
    }
  }

  int fd_ = -1;
};

// The reply is a successful reply of `type`.
inline ::testing::AssertionResult IsReply(const json& reply, const std::string& type) {
  if (reply.is_object() && reply.value("type", "") == type && !reply.contains("code")) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected " << type << ", got "
                                       << reply.dump().substr(0, 300);
}

// The reply is an error reply with `code` and a non-empty message.
inline ::testing::AssertionResult IsError(const json& reply, int code) {
  if (!reply.is_object() || !reply.contains("code") || !reply["code"].is_number_integer()) {
    return ::testing::AssertionFailure() << "not an error reply: " << reply.dump();
  }
  if (reply["code"].get<int>() != code) {
    return ::testing::AssertionFailure()
           << "expected code " << code << ", got " << reply.dump().substr(0, 300);
  }
  if (!reply.contains("message") || !reply["message"].is_string() ||
      reply["message"].get<std::string>().empty()) {
    return ::testing::AssertionFailure() << "no message in " << reply.dump();
  }
  if (reply.contains("type")) {
    return ::testing::AssertionFailure() << "an error reply has no type: " << reply.dump();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace vineyard::testing
