// EtcdClient against a real etcd: one etcd for the suite, and private ones for
// the tests that stop or restart it.
#include "server/etcd/etcd_client.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "etcd_process.h"

namespace vineyard::testing {
namespace {

using etcd::Compare;
using etcd::EtcdClient;
using etcd::Event;
using etcd::Op;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

#define ASSERT_OK(expr)                                    \
  do {                                                     \
    auto _st = (expr);                                     \
    ASSERT_TRUE(_st.ok()) << _st.ToString();               \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                   \
  auto VY_CONCAT(_r, __LINE__) = (rexpr);                  \
  ASSERT_TRUE(VY_CONCAT(_r, __LINE__).ok())                \
      << VY_CONCAT(_r, __LINE__).status().ToString();      \
  lhs = std::move(VY_CONCAT(_r, __LINE__)).value()

/// Polls `cond` every 20 ms for at most `timeout`.
template <typename F>
bool WaitFor(F cond, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return cond();
}

long ElapsedMs(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

class EtcdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { etcd_ = EtcdProcess::Start().release(); }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
  }
  void SetUp() override {
    ASSERT_GT(etcd_->pid(), 0);
    auto c = EtcdClient::Create(etcd_->endpoint(), milliseconds(3000));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = *c;
    // Each test works under its own prefix.
    prefix_ = std::string("/") + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
              "/";
  }

  static EtcdProcess* etcd_;
  std::shared_ptr<EtcdClient> client_;
  std::string prefix_;
};

EtcdProcess* EtcdClientTest::etcd_ = nullptr;

TEST_F(EtcdClientTest, PutGetRangeDeleteAreBinarySafe) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const std::string k1 = prefix_ + std::string("a\0\xff\n\"\\", 7);
  const std::string k2 = prefix_ + "b";
  const std::string k3 = prefix_ + std::string("\xff\xff", 2);

  ASSERT_OK_AND_ASSIGN(int64_t rev1, client_->Put(k1, all_bytes));
  ASSERT_OK_AND_ASSIGN(int64_t rev2, client_->Put(k2, ""));
  ASSERT_OK_AND_ASSIGN(int64_t rev3, client_->Put(k3, std::string(1, '\0')));
  ASSERT_OK(client_->Put("/outside", "x").status());
  EXPECT_LT(rev1, rev2);
  EXPECT_LT(rev2, rev3);

  ASSERT_OK_AND_ASSIGN(auto got, client_->Get(k1));
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->key, k1);
  EXPECT_EQ(got.kv->value, all_bytes);
  EXPECT_EQ(got.kv->mod_revision, rev1);
  EXPECT_GE(got.revision, rev3);

  ASSERT_OK_AND_ASSIGN(auto missing, client_->Get(prefix_ + "nope"));
  EXPECT_FALSE(missing.kv.has_value());

  ASSERT_OK_AND_ASSIGN(auto range, client_->Range(prefix_));
  ASSERT_EQ(range.kvs.size(), 3u);  // not "/outside"
  EXPECT_EQ(range.kvs[0].key, k1);
  EXPECT_EQ(range.kvs[1].key, k2);
  EXPECT_EQ(range.kvs[1].value, "");
  EXPECT_EQ(range.kvs[2].key, k3);
  EXPECT_EQ(range.kvs[2].value, std::string(1, '\0'));
  EXPECT_GE(range.revision, rev3);

  ASSERT_OK_AND_ASSIGN(int64_t deleted, client_->Delete(k2));
  EXPECT_EQ(deleted, 1);
  ASSERT_OK_AND_ASSIGN(deleted, client_->Delete(k2));
  EXPECT_EQ(deleted, 0);
  ASSERT_OK_AND_ASSIGN(deleted, client_->DeletePrefix(prefix_));
  EXPECT_EQ(deleted, 2);
  ASSERT_OK_AND_ASSIGN(range, client_->Range(prefix_));
  EXPECT_TRUE(range.kvs.empty());
  ASSERT_OK_AND_ASSIGN(got, client_->Get("/outside"));
  EXPECT_TRUE(got.kv.has_value());

  ASSERT_OK_AND_ASSIGN(int64_t now, client_->Revision());
  EXPECT_GE(now, rev3 + 2);
}

TEST_F(EtcdClientTest, TxnRunsOneBranchAtomically) {
  const std::string k = prefix_ + "k";
  ASSERT_OK_AND_ASSIGN(auto first, client_->Txn({Compare::Missing(k)}, {Op::Put(k, "1")},
                                                {Op::Get(k)}));
  EXPECT_TRUE(first.succeeded);
  ASSERT_OK_AND_ASSIGN(auto second, client_->Txn({Compare::Missing(k)}, {Op::Put(k, "2")},
                                                 {Op::Get(k), Op::Range(prefix_)}));
  EXPECT_FALSE(second.succeeded);
  ASSERT_EQ(second.reads.size(), 2u);
  ASSERT_EQ(second.reads[0].size(), 1u);
  EXPECT_EQ(second.reads[0][0].value, "1");
  EXPECT_EQ(second.reads[1].size(), 1u);
  ASSERT_OK_AND_ASSIGN(
      auto third, client_->Txn({Compare::Value(k, Compare::Op::kEqual, "1")},
                               {Op::Put(k, "3"), Op::Put(prefix_ + "other", "x")}));
  EXPECT_TRUE(third.succeeded);
  ASSERT_OK_AND_ASSIGN(auto got, client_->Get(k));
  EXPECT_EQ(got.kv->value, "3");
}

TEST_F(EtcdClientTest, CommitSplitsBatchesAt127Operations) {
  // etcd itself refuses one transaction of more than 128 operations.
  std::vector<Op> too_many;
  for (int i = 0; i < 129; ++i) too_many.push_back(Op::Put(prefix_ + "x" + std::to_string(i), ""));
  auto refused = client_->Txn({}, too_many);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kEtcdError);
  EXPECT_NE(refused.status().message().find("too many operations"), std::string::npos)
      << refused.status().message();

  // 128 operations are two transactions: 127 + 1.
  std::vector<Op> ops;
  for (int i = 0; i < 128; ++i) ops.push_back(Op::Put(prefix_ + "y" + std::to_string(i), "v"));
  ASSERT_OK_AND_ASSIGN(int64_t before, client_->Revision());
  ASSERT_OK_AND_ASSIGN(int64_t after, client_->Commit(ops));
  EXPECT_EQ(after, before + 2);

  ops.clear();
  for (int i = 0; i < 1000; ++i) {
    ops.push_back(Op::Put(prefix_ + "z/" + std::to_string(i), "value " + std::to_string(i)));
  }
  ASSERT_OK_AND_ASSIGN(before, client_->Revision());
  ASSERT_OK_AND_ASSIGN(after, client_->Commit(ops));
  EXPECT_EQ(after, before + 8);  // ceil(1000 / 127)
  ASSERT_OK_AND_ASSIGN(auto range, client_->Range(prefix_ + "z/"));
  ASSERT_EQ(range.kvs.size(), 1000u);
  std::vector<bool> seen(1000, false);
  for (const auto& kv : range.kvs) {
    int i = std::stoi(kv.key.substr((prefix_ + "z/").size()));
    EXPECT_EQ(kv.value, "value " + std::to_string(i));
    seen[i] = true;
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), 1000);

  // A mixed batch: deletes count too.
  ops.clear();
  for (int i = 0; i < 1000; ++i) ops.push_back(Op::Delete(prefix_ + "z/" + std::to_string(i)));
  ASSERT_OK(client_->Commit(ops).status());
  ASSERT_OK_AND_ASSIGN(range, client_->Range(prefix_ + "z/"));
  EXPECT_TRUE(range.kvs.empty());
}

TEST_F(EtcdClientTest, LeaseExpiryRemovesKeysAndKeeperKeepsThem) {
  ASSERT_OK_AND_ASSIGN(int64_t kept, client_->Grant(1));
  ASSERT_OK_AND_ASSIGN(int64_t dropped, client_->Grant(1));
  ASSERT_OK(client_->Put(prefix_ + "kept", "1", kept).status());
  ASSERT_OK(client_->Put(prefix_ + "dropped", "1", dropped).status());
  ASSERT_OK_AND_ASSIGN(auto got, client_->Get(prefix_ + "kept"));
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->lease, kept);

  std::promise<Status> lost;
  std::atomic<int> lost_calls{0};
  auto keeper = std::make_unique<etcd::LeaseKeeper>(client_, kept, 1, [&](const Status& st) {
    if (lost_calls++ == 0) lost.set_value(st);
  });

  // etcd rounds a 1 s TTL up to its minimum (2 s): the unrefreshed key goes.
  auto start = Clock::now();
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = client_->Get(prefix_ + "dropped");
        return r.ok() && !r->kv.has_value();
      },
      milliseconds(6000)));
  // Well past the TTL, the refreshed key is still there.
  std::this_thread::sleep_for(milliseconds(std::max<long>(0, 3000 - ElapsedMs(start))));
  ASSERT_OK_AND_ASSIGN(got, client_->Get(prefix_ + "kept"));
  EXPECT_TRUE(got.kv.has_value());
  EXPECT_FALSE(keeper->lost());
  ASSERT_OK_AND_ASSIGN(int64_t ttl, client_->KeepAliveOnce(kept));
  EXPECT_GT(ttl, 0);
  ASSERT_OK_AND_ASSIGN(ttl, client_->KeepAliveOnce(dropped));
  EXPECT_EQ(ttl, 0);  // gone: an answer, not an error

  // Revoking the kept lease under the keeper: its key goes at once and the
  // keeper reports the loss through the callback.
  ASSERT_OK(client_->Revoke(kept));
  ASSERT_OK_AND_ASSIGN(got, client_->Get(prefix_ + "kept"));
  EXPECT_FALSE(got.kv.has_value());
  auto future = lost.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(3)), std::future_status::ready);
  Status st = future.get();
  EXPECT_EQ(st.code(), StatusCode::kEtcdError);
  EXPECT_NE(st.message().find("expired or was revoked"), std::string::npos) << st.message();
  EXPECT_TRUE(keeper->lost());
  keeper.reset();
  EXPECT_EQ(lost_calls.load(), 1);
  ASSERT_OK(client_->Revoke(kept));  // already gone: fine
}

TEST_F(EtcdClientTest, KeeperAndWatcherMayBeStoppedFromTheirCallbacks) {
  ASSERT_OK_AND_ASSIGN(int64_t lease, client_->Grant(1));
  std::promise<void> lost;
  std::unique_ptr<etcd::LeaseKeeper> keeper;
  keeper = std::make_unique<etcd::LeaseKeeper>(client_, lease, 1, [&](const Status&) {
    keeper.reset();
    lost.set_value();
  });
  ASSERT_OK(client_->Revoke(lease));
  ASSERT_EQ(lost.get_future().wait_for(std::chrono::seconds(3)), std::future_status::ready);
  EXPECT_EQ(keeper, nullptr);

  ASSERT_OK_AND_ASSIGN(int64_t start, client_->Put(prefix_ + "k", "1"));
  ASSERT_OK(client_->Put(prefix_ + "k", "2").status());
  std::promise<etcd::Watcher*> handle;
  auto handle_ready = handle.get_future().share();
  std::atomic<int> batches{0};
  auto on_events = [&](const std::vector<Event>&, int64_t) {
    ++batches;
    if (handle_ready.wait_for(std::chrono::seconds(3)) == std::future_status::ready) {
      handle_ready.get()->Stop();
    }
  };
  ASSERT_OK_AND_ASSIGN(auto watcher, client_->Watch(prefix_, start, on_events, nullptr));
  handle.set_value(watcher.get());
  ASSERT_TRUE(WaitFor([&] { return !watcher->running(); }, milliseconds(3000)));
  ASSERT_OK(client_->Put(prefix_ + "k", "3").status());
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(batches.load(), 1);  // nothing after Stop()
  watcher.reset();
}

/// Collects a watch's events and errors for a test.
struct WatchLog {
  std::mutex mu;
  std::vector<Event> events;
  std::vector<int64_t> revisions;
  std::vector<Status> errors;

  etcd::WatchCallback OnEvents() {
    return [this](const std::vector<Event>& evs, int64_t rev) {
      std::lock_guard<std::mutex> lock(mu);
      events.insert(events.end(), evs.begin(), evs.end());
      revisions.push_back(rev);
    };
  }
  etcd::WatchErrorCallback OnError() {
    return [this](const Status& st) {
      std::lock_guard<std::mutex> lock(mu);
      errors.push_back(st);
    };
  }
  size_t NumEvents() {
    std::lock_guard<std::mutex> lock(mu);
    return events.size();
  }
  size_t NumErrors() {
    std::lock_guard<std::mutex> lock(mu);
    return errors.size();
  }
};

TEST_F(EtcdClientTest, WatchSeesPutsAndDeletesInOrderFromStartRevision) {
  ASSERT_OK(client_->Put(prefix_ + "before", "old").status());
  ASSERT_OK_AND_ASSIGN(int64_t start, client_->Revision());
  // Changes made before the watch exists, after its start revision.
  ASSERT_OK_AND_ASSIGN(int64_t r1, client_->Put(prefix_ + "a", "1"));
  ASSERT_OK_AND_ASSIGN(int64_t r2, client_->Put(prefix_ + "b", "2"));
  ASSERT_OK(client_->Delete(prefix_ + "a").status());

  WatchLog log;
  ASSERT_OK_AND_ASSIGN(auto watcher,
                       client_->Watch(prefix_, start + 1, log.OnEvents(), log.OnError()));
  EXPECT_TRUE(watcher->running());
  // And changes made after; one outside the prefix is not seen.
  ASSERT_OK(client_->Put("/elsewhere", "x").status());
  ASSERT_OK(client_->Commit({Op::Put(prefix_ + "c", "3"), Op::Delete(prefix_ + "b")}).status());
  ASSERT_OK_AND_ASSIGN(int64_t last, client_->Put(prefix_ + "a", "4"));

  ASSERT_TRUE(WaitFor([&] { return log.NumEvents() >= 6; }, milliseconds(5000)))
      << "saw " << log.NumEvents() << " events";
  auto t0 = Clock::now();
  watcher->Stop();
  EXPECT_LT(ElapsedMs(t0), 500) << "Stop() must not wait for etcd";
  EXPECT_FALSE(watcher->running());

  std::lock_guard<std::mutex> lock(log.mu);
  ASSERT_EQ(log.events.size(), 6u);
  struct Expected {
    Event::Type type;
    std::string key, value;
  };
  std::vector<Expected> expected = {{Event::Type::kPut, "a", "1"},    {Event::Type::kPut, "b", "2"},
                                    {Event::Type::kDelete, "a", ""},  {Event::Type::kPut, "c", "3"},
                                    {Event::Type::kDelete, "b", ""},  {Event::Type::kPut, "a", "4"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(log.events[i].type, expected[i].type);
    EXPECT_EQ(log.events[i].kv.key, prefix_ + expected[i].key);
    EXPECT_EQ(log.events[i].kv.value, expected[i].value);
    if (i > 0) {
      EXPECT_GE(log.events[i].kv.mod_revision, log.events[i - 1].kv.mod_revision);
    }
  }
  EXPECT_EQ(log.events[0].kv.mod_revision, r1);
  EXPECT_EQ(log.events[1].kv.mod_revision, r2);
  // The put and the delete of one Commit share a revision.
  EXPECT_EQ(log.events[3].kv.mod_revision, log.events[4].kv.mod_revision);
  EXPECT_EQ(log.revisions.back(), last);
  EXPECT_TRUE(log.errors.empty());  // Stop() is not an error
}

TEST_F(EtcdClientTest, WatchFromCompactedRevisionReportsError) {
  ASSERT_OK_AND_ASSIGN(int64_t old, client_->Put(prefix_ + "k", "1"));
  ASSERT_OK_AND_ASSIGN(int64_t now, client_->Put(prefix_ + "k", "2"));
  ASSERT_OK(client_->Compact(now));
  WatchLog log;
  std::promise<void> errored;
  std::atomic<bool> once{false};
  auto on_error = [&](const Status& st) {
    log.OnError()(st);
    if (!once.exchange(true)) errored.set_value();
  };
  ASSERT_OK_AND_ASSIGN(auto watcher, client_->Watch(prefix_, old, log.OnEvents(), on_error));
  ASSERT_EQ(errored.get_future().wait_for(std::chrono::seconds(3)), std::future_status::ready);
  std::lock_guard<std::mutex> lock(log.mu);
  ASSERT_EQ(log.errors.size(), 1u);
  EXPECT_EQ(log.errors[0].code(), StatusCode::kEtcdError);
  EXPECT_NE(log.errors[0].message().find("compacted"), std::string::npos)
      << log.errors[0].message();
  EXPECT_NE(log.errors[0].message().find(std::to_string(now)), std::string::npos);
  EXPECT_TRUE(log.events.empty());
}

TEST_F(EtcdClientTest, LockIsMutuallyExclusive) {
  auto other = EtcdClient::Create(etcd_->endpoint(), milliseconds(3000)).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(int64_t lease_a, client_->Grant(10));
  ASSERT_OK_AND_ASSIGN(int64_t lease_b, other->Grant(10));
  const std::string name = prefix_ + "lock";

  // Held by A: B's attempt times out, bounded by its wait.
  ASSERT_OK_AND_ASSIGN(std::string key_a, client_->Lock(name, lease_a));
  auto t0 = Clock::now();
  auto refused = other->Lock(name, lease_b, milliseconds(300));
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kEtcdError);
  EXPECT_LT(ElapsedMs(t0), 2000);
  ASSERT_OK(client_->Unlock(key_a));

  // Two clients contending: never both inside.
  std::atomic<int> inside{0}, max_inside{0}, entered{0};
  auto worker = [&](std::shared_ptr<EtcdClient> c, int64_t lease) {
    for (int i = 0; i < 5; ++i) {
      auto key = c->Lock(name, lease, milliseconds(5000));
      ASSERT_TRUE(key.ok()) << key.status().ToString();
      int now = ++inside;
      max_inside = std::max(max_inside.load(), now);
      ++entered;
      std::this_thread::sleep_for(milliseconds(20));
      --inside;
      ASSERT_TRUE(c->Unlock(*key).ok());
    }
  };
  std::thread ta(worker, client_, lease_a);
  std::thread tb(worker, other, lease_b);
  ta.join();
  tb.join();
  EXPECT_EQ(entered.load(), 10);
  EXPECT_EQ(max_inside.load(), 1);

  // A lock needs a lease, so that a dead holder cannot keep it.
  auto no_lease = client_->Lock(name, 0);
  EXPECT_EQ(no_lease.status().code(), StatusCode::kInvalid);
  ASSERT_OK(client_->Revoke(lease_a));
  ASSERT_OK(other->Revoke(lease_b));
}

TEST_F(EtcdClientTest, FailsOverFromADeadEndpoint) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(FreePort());
  ASSERT_OK_AND_ASSIGN(auto c, EtcdClient::Create(dead + "," + etcd_->endpoint(),
                                                  milliseconds(3000)));
  ASSERT_OK(c->Put(prefix_ + "k", "v").status());
  ASSERT_OK_AND_ASSIGN(auto got, c->Get(prefix_ + "k"));
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->value, "v");
  WatchLog log;
  ASSERT_OK_AND_ASSIGN(auto watcher, c->Watch(prefix_, 0, log.OnEvents(), log.OnError()));
  ASSERT_OK(c->Put(prefix_ + "k", "w").status());
  EXPECT_TRUE(WaitFor([&] { return log.NumEvents() == 1; }, milliseconds(3000)));
}

TEST(EtcdClientCreateTest, RejectsBadEndpoints) {
  EXPECT_EQ(EtcdClient::Create("").status().code(), StatusCode::kInvalid);
  EXPECT_EQ(EtcdClient::Create(" , ").status().code(), StatusCode::kInvalid);
  auto r = EtcdClient::Create("127.0.0.1:2379");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
  EXPECT_NE(r.status().message().find("http://"), std::string::npos);
  EXPECT_EQ(EtcdClient::Create("http://127.0.0.1:2379", milliseconds(0)).status().code(),
            StatusCode::kInvalid);
}

// Its own etcd, since it stops it.
TEST(EtcdClientOutageTest, FailsWithinTimeoutWhileDownAndRecoversAfterRestart) {
  auto etcd = EtcdProcess::Start();
  ASSERT_GT(etcd->pid(), 0);
  ASSERT_OK_AND_ASSIGN(auto c, EtcdClient::Create(etcd->endpoint(), milliseconds(700)));
  ASSERT_OK(c->Put("/k", "before").status());

  WatchLog log;
  ASSERT_OK_AND_ASSIGN(auto watcher, c->Watch("/", 0, log.OnEvents(), log.OnError()));

  // Hung (stopped, port still open): every call ends at the timeout.
  etcd->Kill(SIGSTOP);
  auto t0 = Clock::now();
  auto hung = c->Get("/k");
  long hung_ms = ElapsedMs(t0);
  etcd->Kill(SIGCONT);
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.status().code(), StatusCode::kEtcdError);
  EXPECT_NE(hung.status().message().find(etcd->endpoint()), std::string::npos)
      << hung.status().message();
  EXPECT_GE(hung_ms, 600);
  EXPECT_LT(hung_ms, 2000);

  // Down: calls fail fast, naming the endpoint; the watch reports a broken stream.
  etcd->Kill(SIGKILL);
  for (int i = 0; i < 3; ++i) {
    t0 = Clock::now();
    auto down = c->Put("/k", "during");
    EXPECT_LT(ElapsedMs(t0), 2000);
    ASSERT_FALSE(down.ok());
    EXPECT_EQ(down.status().code(), StatusCode::kEtcdError);
    EXPECT_NE(down.status().message().find(etcd->endpoint()), std::string::npos)
        << down.status().message();
  }
  EXPECT_FALSE(c->Lock("l", 1).ok());
  EXPECT_FALSE(c->Watch("/", 0, nullptr, nullptr).ok());
  ASSERT_TRUE(WaitFor([&] { return log.NumErrors() == 1; }, milliseconds(3000)));
  EXPECT_FALSE(watcher->running());
  {
    std::lock_guard<std::mutex> lock(log.mu);
    EXPECT_EQ(log.errors[0].code(), StatusCode::kEtcdError);
    EXPECT_NE(log.errors[0].message().find("broke"), std::string::npos)
        << log.errors[0].message();
  }

  // Back on the same port: the same client works again, data intact.
  etcd->Restart();
  ASSERT_GT(etcd->pid(), 0);
  ASSERT_OK_AND_ASSIGN(auto got, c->Get("/k"));
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->value, "before");
  ASSERT_OK(c->Put("/k", "after").status());
}

}  // namespace
}  // namespace vineyard::testing
