// Clients that die (SIGKILL) against a real vineyardd: everything a dead client
// held goes back — unsealed blobs, references, blocked requests — while what it
// sealed into objects stays readable, and the server keeps serving.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "server/bulk_store.h"
#include "test_server.h"

namespace vineyard {
namespace {

using testing::TestServer;

constexpr size_t kMiB = 1 << 20;
// What the server charges per blob besides its bytes.
constexpr uint64_t kBlob = BulkStore::kBlobBookkeepingBytes;

// Polls `pred` every 10 ms for up to `timeout_ms`.
bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

InstanceStatus StatusOf(Client& client) {
  auto st = client.GetInstanceStatus();
  EXPECT_TRUE(st.ok()) << st.status();
  return st.ok() ? *st : InstanceStatus{};
}

// Puts an object with one blob of `size` bytes, each byte `fill`.
ObjectID PutBytes(Client& client, size_t size, uint8_t fill, const std::string& name = "") {
  auto writer = client.CreateBlob(size);
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (!writer.ok()) return kInvalidObjectID;
  memset((*writer)->data(), fill, size);
  ObjectMeta meta;
  meta.SetTypeName("test::Bytes");
  meta.AddMember("buffer_", **writer);
  auto id = client.Put(meta, {writer->get()}, !name.empty(), name);
  EXPECT_TRUE(id.ok()) << id.status();
  return id.ok() ? *id : kInvalidObjectID;
}

// Every byte of every blob of object `id` is `fill` (and there are `size` of them).
::testing::AssertionResult HasBytes(Client& client, ObjectID id, size_t size, uint8_t fill) {
  auto meta = client.GetObject(id);
  if (!meta.ok()) return ::testing::AssertionFailure() << meta.status();
  size_t total = 0;
  for (ObjectID blob_id : meta->GetBlobIds()) {
    auto blob = meta->GetBuffer(blob_id);
    if (!blob.ok()) return ::testing::AssertionFailure() << blob.status();
    for (size_t i = 0; i < (*blob)->size(); ++i) {
      if ((*blob)->data()[i] != fill) {
        return ::testing::AssertionFailure() << "byte " << i << " of " << ObjectIDToString(blob_id)
                                             << " is " << int((*blob)->data()[i]);
      }
    }
    total += (*blob)->size();
  }
  if (total != size) return ::testing::AssertionFailure() << total << " bytes, not " << size;
  return ::testing::AssertionSuccess();
}

void ExpectServes(const TestServer& server) {
  auto client = server.Connect();
  ASSERT_NE(client, nullptr);
  ObjectID id = PutBytes(*client, 64 * 1024, 0x5a);
  ASSERT_NE(id, kInvalidObjectID);
  EXPECT_TRUE(HasBytes(*client, id, 64 * 1024, 0x5a));
  EXPECT_TRUE(client->Delete(id).ok());
}

// A child process that runs `body` with its own client, reports readiness with
// one byte on a pipe, then waits to be killed. Exit codes > 0 report failures.
class Child {
 public:
  Child(const std::string& socket, const std::function<int(Client&, int ready_fd)>& body) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_ = fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      auto client = Client::Connect(socket);
      if (!client.ok()) _exit(100);
      int rc = body(**client, fds[1]);
      if (rc != 0) _exit(rc);
      while (true) pause();
    }
    ::close(fds[1]);
    ready_fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) Kill();
    if (ready_fd_ >= 0) ::close(ready_fd_);
  }

  // Waits for the ready byte; false if the child exited first (its code in *exit_code).
  bool WaitReady(int* exit_code) {
    char c;
    ssize_t n = ::read(ready_fd_, &c, 1);
    if (n == 1) return true;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return false;
  }

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int ready_fd_ = -1;
};

int SignalReady(int fd) { return ::write(fd, "R", 1) == 1 ? 0 : 99; }

class ClientDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestServer::Start({}, "256Mi");
    ASSERT_TRUE(server_->Running());
    monitor_ = server_->Connect();
    ASSERT_NE(monitor_, nullptr);
  }
  void TearDown() override {
    monitor_.reset();
    if (server_ && server_->Running()) ExpectServes(*server_);
  }

  uint64_t Usage() { return StatusOf(*monitor_).memory_usage; }

  std::unique_ptr<TestServer> server_;
  std::shared_ptr<Client> monitor_;
};

TEST_F(ClientDeathTest, KilledClientGivesBackUnsealedBlobsAndReferences) {
  // Objects made by someone else: P stays, D is deleted while the child reads it.
  ObjectID p_id, d_id;
  {
    auto setup = server_->Connect();
    ASSERT_NE(setup, nullptr);
    p_id = PutBytes(*setup, 4 * kMiB, 0x11, "death-p");
    d_id = PutBytes(*setup, 8 * kMiB, 0x22);
    ASSERT_NE(p_id, kInvalidObjectID);
    ASSERT_NE(d_id, kInvalidObjectID);
  }
  const uint64_t baseline = Usage();
  EXPECT_EQ(baseline, 12 * kMiB + 2 * kBlob);

  Child child(server_->socket(), [&](Client& c, int ready) -> int {
    // Readers of P and D: references held until death.
    auto p = c.GetObject(p_id);
    auto d = c.GetObject(d_id);
    if (!p.ok() || !d.ok()) return 1;
    // 100 MiB of unsealed blobs, written to.
    std::vector<std::unique_ptr<BlobWriter>> unsealed;
    for (int i = 0; i < 10; ++i) {
      auto w = c.CreateBlob(10 * kMiB);
      if (!w.ok()) return 2;
      memset((*w)->data(), 0x77, 10 * kMiB);
      unsealed.push_back(std::move(*w));
    }
    // An object of two sealed blobs, named: it must outlive its creator.
    std::vector<std::unique_ptr<BlobWriter>> sealed;
    ObjectMeta meta;
    meta.SetTypeName("test::Pair");
    for (int i = 0; i < 2; ++i) {
      auto w = c.CreateBlob(kMiB);
      if (!w.ok()) return 3;
      memset((*w)->data(), 0x33, kMiB);
      meta.AddMember("part_" + std::to_string(i), **w);
      sealed.push_back(std::move(*w));
    }
    auto id = c.Put(meta, {sealed[0].get(), sealed[1].get()}, true, "death-c");
    if (!id.ok()) return 4;
    // And a reader of its own object too.
    auto own = c.GetObject(*id);
    if (!own.ok()) return 5;
    int rc = SignalReady(ready);
    while (true) pause();  // keep every local alive until SIGKILL
    return rc;
  });
  int exit_code = 0;
  ASSERT_TRUE(child.WaitReady(&exit_code)) << "the child failed with " << exit_code;

  EXPECT_EQ(Usage(), baseline + 102 * kMiB + 12 * kBlob);
  EXPECT_EQ(StatusOf(*monitor_).ipc_connections, 2u);

  // D is deleted while the child still maps it: its memory stays until the child goes.
  ASSERT_TRUE(monitor_->Delete(d_id).ok());
  EXPECT_FALSE(*monitor_->Exists(d_id));
  EXPECT_EQ(Usage(), baseline + 102 * kMiB + 12 * kBlob);

  child.Kill();
  // D freed; C's blobs stay.
  const uint64_t expected = baseline - (8 * kMiB + kBlob) + 2 * (kMiB + kBlob);
  EXPECT_TRUE(WaitFor([&] { return Usage() == expected; }))
      << "memory_usage is " << Usage() << ", expected " << expected;
  EXPECT_TRUE(WaitFor([&] { return StatusOf(*monitor_).ipc_connections == 1; }));

  // What the dead client sealed into an object is still there for everyone.
  auto c_id = monitor_->GetName("death-c");
  ASSERT_TRUE(c_id.ok()) << c_id.status();
  EXPECT_TRUE(HasBytes(*monitor_, *c_id, 2 * kMiB, 0x33));
  EXPECT_TRUE(HasBytes(*monitor_, p_id, 4 * kMiB, 0x11));
  EXPECT_EQ(monitor_->GetObject(d_id).status().code(), StatusCode::kObjectNotExists);

  // The freed memory is usable again: almost the whole limit fits (224 MiB is
  // the largest size class below what is free).
  auto big = monitor_->CreateBlob(224 * kMiB);
  EXPECT_TRUE(big.ok()) << big.status();
}

TEST_F(ClientDeathTest, ManyClientsKilledAtOnce) {
  ObjectID p_id;
  {
    auto setup = server_->Connect();
    ASSERT_NE(setup, nullptr);
    p_id = PutBytes(*setup, kMiB, 0x44);
  }
  const uint64_t baseline = Usage();
  std::vector<std::unique_ptr<Child>> children;
  for (int i = 0; i < 6; ++i) {
    children.push_back(std::make_unique<Child>(server_->socket(), [&](Client& c, int ready) {
      auto p = c.GetObject(p_id);
      if (!p.ok()) return 1;
      auto ws = c.CreateBlobs({5 * kMiB, 3 * kMiB, 0, 4096});
      if (!ws.ok()) return 2;
      for (auto& w : *ws) memset(w->data(), 1, w->size());
      auto half = c.CreateBlob(2 * kMiB);
      if (!half.ok() || !(*half)->Shrink(kMiB).ok()) return 3;
      int rc = SignalReady(ready);
      while (true) pause();
      return rc;
    }));
  }
  for (auto& child : children) {
    int exit_code = 0;
    ASSERT_TRUE(child->WaitReady(&exit_code)) << "a child failed with " << exit_code;
  }
  EXPECT_EQ(Usage(), baseline + 6 * (8 * kMiB + 4096 + kMiB + 4 * kBlob));
  ASSERT_TRUE(monitor_->Delete(p_id).ok());
  for (auto& child : children) child->Kill();
  EXPECT_TRUE(WaitFor([&] { return Usage() == baseline - kMiB - kBlob; }))
      << "memory_usage is " << Usage() << ", expected " << baseline - kMiB - kBlob;
  EXPECT_TRUE(WaitFor([&] { return StatusOf(*monitor_).ipc_connections == 1; }));
}

TEST_F(ClientDeathTest, KilledWhileBlockedInGetNameWait) {
  Child by_name(server_->socket(), [](Client& c, int ready) {
    if (SignalReady(ready) != 0) return 99;
    auto id = c.GetName("never-put", /*wait=*/true);
    return id.ok() ? 10 : 11;  // never returns while the test runs
  });
  int exit_code = 0;
  ASSERT_TRUE(by_name.WaitReady(&exit_code)) << exit_code;
  EXPECT_TRUE(WaitFor([&] { return StatusOf(*monitor_).deferred_requests == 1; }))
      << "deferred_requests is " << StatusOf(*monitor_).deferred_requests;

  // A second one waiting for an object by id.
  const ObjectID future = 0x0000777777777777ULL;
  Child by_id(server_->socket(), [&](Client& c, int ready) {
    if (SignalReady(ready) != 0) return 99;
    auto meta = c.GetMetaData(future, false, /*wait=*/true);
    return meta.ok() ? 10 : 11;
  });
  ASSERT_TRUE(by_id.WaitReady(&exit_code)) << exit_code;
  EXPECT_TRUE(WaitFor([&] { return StatusOf(*monitor_).deferred_requests == 2; }))
      << "deferred_requests is " << StatusOf(*monitor_).deferred_requests;

  // The server serves others meanwhile.
  ExpectServes(*server_);

  by_name.Kill();
  EXPECT_TRUE(WaitFor([&] { return StatusOf(*monitor_).deferred_requests == 1; }))
      << "deferred_requests is " << StatusOf(*monitor_).deferred_requests;
  by_id.Kill();
  EXPECT_TRUE(WaitFor([&] { return StatusOf(*monitor_).deferred_requests == 0; }))
      << "deferred_requests is " << StatusOf(*monitor_).deferred_requests;
  EXPECT_TRUE(WaitFor([&] { return StatusOf(*monitor_).ipc_connections == 1; }));

  // Waiting still works for a live client: the name appears while it waits.
  auto waiter = server_->Connect();
  ASSERT_NE(waiter, nullptr);
  ObjectID id = PutBytes(*monitor_, 1024, 1);
  ASSERT_NE(id, kInvalidObjectID);
  ASSERT_TRUE(monitor_->Persist(id).ok());
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(monitor_->PutName(id, "never-put").ok());
  });
  auto got = waiter->GetName("never-put", /*wait=*/true);
  late.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, id);
  EXPECT_EQ(StatusOf(*monitor_).deferred_requests, 0u);
}

TEST_F(ClientDeathTest, KilledWriterDoesNotDisturbReaders) {
  // A reader maps an object while its writer (another process) dies.
  ObjectID id = kInvalidObjectID;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Child writer(server_->socket(), [&](Client& c, int ready) {
    ObjectID made = PutBytes(c, 16 * kMiB, 0x66, "death-w");
    if (made == kInvalidObjectID) return 1;
    if (::write(fds[1], &made, sizeof(made)) != sizeof(made)) return 2;
    // Another big unsealed blob, to be given back.
    auto w = c.CreateBlob(32 * kMiB);
    if (!w.ok()) return 3;
    return SignalReady(ready);
  });
  ::close(fds[1]);
  int exit_code = 0;
  ASSERT_TRUE(writer.WaitReady(&exit_code)) << exit_code;
  ASSERT_EQ(::read(fds[0], &id, sizeof(id)), static_cast<ssize_t>(sizeof(id)));
  ::close(fds[0]);
  auto meta = monitor_->GetObject(id);
  ASSERT_TRUE(meta.ok()) << meta.status();
  writer.Kill();
  EXPECT_TRUE(WaitFor([&] { return Usage() == 16 * kMiB + kBlob; })) << Usage();
  // The reader's mapping is intact; a new reader sees the same bytes.
  for (ObjectID blob_id : meta->GetBlobIds()) {
    auto blob = meta->GetBuffer(blob_id);
    ASSERT_TRUE(blob.ok());
    EXPECT_EQ((*blob)->data()[0], 0x66);
    EXPECT_EQ((*blob)->data()[(*blob)->size() - 1], 0x66);
  }
  EXPECT_TRUE(HasBytes(*server_->Connect(), id, 16 * kMiB, 0x66));
}

}  // namespace
}  // namespace vineyard
