// Assertions and helpers shared by the C++ test suites.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "common/result.h"
#include "test_server.h"

namespace vineyard::testing {

inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) {
  return r.status();
}

/// FNV-style checksum of a byte range, to compare data across clients.
inline uint64_t Checksum(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h ^ n;
}

/// The server's memory_usage as the client sees it (all ones on error).
inline uint64_t Usage(Client& c) {
  auto s = c.GetInstanceStatus();
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? s->memory_usage : ~uint64_t{0};
}

/// `n` pseudo-random bytes, the same for the same seed.
inline std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    memcpy(v.data() + i, &x, 8);
  }
  for (; i < n; ++i) v[i] = static_cast<uint8_t>(rng());
  return v;
}

/// Polls until the usage seen by `c` equals `expected` (the server processes
/// another connection's disconnect asynchronously); returns the last usage seen.
inline uint64_t WaitUsage(Client& c, uint64_t expected, int timeout_ms = 5000) {
  uint64_t u = Usage(c);
  for (int waited = 0; u != expected && waited < timeout_ms; waited += 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    u = Usage(c);
  }
  return u;
}

/// A fresh vineyardd for each test, with two clients connected to it.
class TwoClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestServer::Start();
    ASSERT_TRUE(server_->Running());
    client_ = server_->Connect();
    other_ = server_->Connect();
    ASSERT_TRUE(client_ && other_);
  }
  void TearDown() override {
    client_.reset();
    other_.reset();
    server_.reset();
  }

  std::unique_ptr<TestServer> server_;
  std::shared_ptr<Client> client_;
  std::shared_ptr<Client> other_;
};

}  // namespace vineyard::testing

#define ASSERT_OK(expr)                                                  \
  do {                                                                   \
    ::vineyard::Status _st = ::vineyard::testing::ToStatus(expr);        \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString();            \
  } while (0)
#define EXPECT_OK(expr)                                                  \
  do {                                                                   \
    ::vineyard::Status _st = ::vineyard::testing::ToStatus(expr);        \
    EXPECT_TRUE(_st.ok()) << #expr << ": " << _st.ToString();            \
  } while (0)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, rexpr)                       \
  auto tmp = (rexpr);                                                    \
  ASSERT_TRUE(tmp.ok()) << #rexpr << ": " << tmp.status().ToString();    \
  lhs = std::move(tmp).value()
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL(VY_CONCAT(_result_, __LINE__), lhs, rexpr)
#define EXPECT_STATUS(scode, expr)                                       \
  do {                                                                   \
    ::vineyard::Status _st = ::vineyard::testing::ToStatus(expr);        \
    EXPECT_EQ(_st.code(), ::vineyard::StatusCode::scode)                 \
        << #expr << ": " << _st.ToString();                              \
  } while (0)
