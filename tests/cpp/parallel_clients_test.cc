// Many clients in many threads against one real vineyardd.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "test_server.h"
#include "test_util.h"

namespace vineyard {
namespace {

using testing::TestServer;
using testing::Checksum;
using testing::Usage;



struct ThreadReport {
  int iterations = 0;
  int intact = 0;
  std::string first_error;
  void Fail(const std::string& what) {
    if (first_error.empty()) first_error = what;
  }
};

TEST(ParallelClientsTest, PutGetDeleteFromManyThreads) {
  constexpr int kThreads = 32;
  constexpr int kIterations = 50;
  constexpr size_t kMaxSize = 1 << 20;
  auto server = TestServer::Start({}, "512Mi");
  ASSERT_TRUE(server->Running());
  auto observer = server->Connect();
  ASSERT_TRUE(observer);
  const uint64_t start_usage = Usage(*observer);

  // Each thread writes with its own client and reads with the next thread's
  // client (shared with that thread: a Client may be used from many threads).
  std::vector<std::shared_ptr<Client>> clients;
  for (int i = 0; i < kThreads; ++i) {
    clients.push_back(server->Connect());
    ASSERT_TRUE(clients.back());
  }
  std::vector<ThreadReport> reports(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      ThreadReport& r = reports[t];
      Client& writer = *clients[t];
      Client& reader = *clients[(t + 1) % kThreads];
      std::mt19937_64 rng(0xC0FFEE + t);
      std::vector<uint8_t> bytes;
      for (int it = 0; it < kIterations; ++it) {
        const size_t size = 1 + rng() % kMaxSize;
        bytes.resize(size);
        for (size_t i = 0; i < size; i += 8) {
          uint64_t x = rng();
          memcpy(bytes.data() + i, &x, std::min<size_t>(8, size - i));
        }
        const uint64_t sum = Checksum(bytes.data(), size);
        auto w = writer.CreateBlob(size);
        if (!w.ok()) return r.Fail("create: " + w.status().ToString());
        if (!(*w)->Copy(0, bytes.data(), size).ok()) return r.Fail("copy");
        ObjectMeta meta;
        meta.SetTypeName("test::Parallel");
        meta.AddKeyValue("thread", t);
        meta.AddKeyValue("iteration", it);
        meta.AddKeyValue("checksum", sum);
        meta.SetNBytes(size);
        meta.AddMember("buffer_", **w);
        auto id = writer.Put(meta, {w->get()});
        if (!id.ok()) return r.Fail("put: " + id.status().ToString());
        const ObjectID blob_id = (*w)->id();
        w->reset();  // drop the writer's reference early

        auto obj = reader.GetObject(*id);
        if (!obj.ok()) return r.Fail("get: " + obj.status().ToString());
        auto thread = obj->GetKeyValueAs<int>("thread");
        auto iteration = obj->GetKeyValueAs<int>("iteration");
        auto expected = obj->GetKeyValueAs<uint64_t>("checksum");
        auto buf = obj->GetBuffer(blob_id);
        if (!buf.ok()) return r.Fail("buffer: " + buf.status().ToString());
        if (thread.ok() && *thread == t && iteration.ok() && *iteration == it &&
            expected.ok() && *expected == sum && (*buf)->size() == size &&
            Checksum((*buf)->data(), size) == sum) {
          ++r.intact;
        } else {
          r.Fail("iteration " + std::to_string(it) + ": data differs");
        }
        // Delete while the reader still holds the blob half of the time.
        if (it % 2 == 0) {
          buf->reset();
          *obj = ObjectMeta();
        }
        Status st = writer.Delete(*id);
        if (!st.ok()) return r.Fail("delete: " + st.ToString());
        buf->reset();
        *obj = ObjectMeta();
        ++r.iterations;
      }
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  go = true;
  for (auto& th : threads) th.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(reports[t].first_error, "") << "thread " << t;
    EXPECT_EQ(reports[t].iterations, kIterations) << "thread " << t;
    EXPECT_EQ(reports[t].intact, kIterations) << "thread " << t;
  }
  for (auto& c : clients) ASSERT_TRUE(c->FlushReleases().ok());
  EXPECT_EQ(Usage(*observer), start_usage);
  auto left = observer->ListMetaData("test::Parallel", false, 100000);
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  ASSERT_TRUE(server->Running());
  RecordProperty("seconds", std::to_string(secs));
}

TEST(ParallelClientsTest, ManyWaitersOneName) {
  constexpr int kWaiters = 16;
  auto server = TestServer::Start();
  ASSERT_TRUE(server->Running());
  auto putter = server->Connect();
  ASSERT_TRUE(putter);
  std::vector<Result<ObjectID>> results(kWaiters, Result<ObjectID>(Status::UnknownError("")));
  std::vector<std::thread> threads;
  std::atomic<int> finished{0};
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      auto c = server->Connect();
      if (c) results[i] = c->GetName("shared-name", /*wait=*/true);
      ++finished;
    });
  }
  // Every waiter is parked on the server before the name appears.
  uint64_t deferred = 0;
  for (int i = 0; i < 500 && deferred < kWaiters; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto st = putter->GetInstanceStatus();
    ASSERT_TRUE(st.ok());
    deferred = st->deferred_requests;
  }
  EXPECT_EQ(deferred, static_cast<uint64_t>(kWaiters));
  EXPECT_EQ(finished.load(), 0);

  ObjectMeta m;
  m.SetTypeName("test::Shared");
  auto id = putter->Put(m, {}, /*persist=*/true, "shared-name");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  for (auto& th : threads) th.join();
  for (int i = 0; i < kWaiters; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status().ToString();
    EXPECT_EQ(*results[i], *id) << i;
  }
  auto st = putter->GetInstanceStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->deferred_requests, 0u);
}

TEST(ParallelClientsTest, SharedClientAcrossThreads) {
  // One Client used by many threads at once: requests are serialised.
  constexpr int kThreads = 8;
  constexpr int kIterations = 40;
  auto server = TestServer::Start();
  ASSERT_TRUE(server->Running());
  auto shared = server->Connect();
  ASSERT_TRUE(shared);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < kIterations; ++it) {
        const size_t size = 1000 + t * 100 + it;
        std::vector<uint8_t> bytes(size, static_cast<uint8_t>(t * 31 + it));
        auto w = shared->CreateBlob(size);
        if (!w.ok()) return;
        if (!(*w)->Copy(0, bytes.data(), size).ok()) return;
        auto b = (*w)->Seal();
        if (!b.ok()) return;
        auto got = shared->GetBlob((*b)->id());
        if (!got.ok() || (*got)->size() != size ||
            memcmp((*got)->data(), bytes.data(), size) != 0) {
          return;
        }
        const ObjectID id = (*b)->id();
        b->reset();
        got->reset();
        if (!shared->Delete(id).ok()) return;
        ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kIterations);
  ASSERT_TRUE(shared->FlushReleases().ok());
  EXPECT_EQ(Usage(*shared), 0u);
}

}  // namespace
}  // namespace vineyard
