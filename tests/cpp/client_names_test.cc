// Object names through the C++ client against a real vineyardd.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
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


class NamesTest : public testing::TwoClientTest {
 protected:
  // A persisted object of type `type`.
  ObjectID MakePersisted(Client& c, const std::string& type = "test::Named") {
    ObjectMeta m;
    m.SetTypeName(type);
    auto id = c.Put(m, {}, /*persist=*/true);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : kInvalidObjectID;
  }

};

TEST_F(NamesTest, PutNameRequiresPersistedObject) {
  ObjectMeta m;
  m.SetTypeName("test::Transient");
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->CreateMetaData(m));
  EXPECT_STATUS(kInvalid, client_->PutName(id, "transient"));
  EXPECT_STATUS(kObjectNotExists, other_->GetName("transient"));
  ASSERT_OK(client_->Persist(id));
  ASSERT_OK(client_->PutName(id, "transient"));
  ASSERT_OK_AND_ASSIGN(ObjectID got, other_->GetName("transient"));
  EXPECT_EQ(got, id);
  // The name does not change the object.
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, other_->GetMetaData(got));
  EXPECT_EQ(meta.GetTypeName(), "test::Transient");
  EXPECT_FALSE(meta.IsTransient());
  // Unknown objects cannot be named.
  EXPECT_STATUS(kObjectNotExists, client_->PutName(ObjectID{0x4242}, "ghost"));
  EXPECT_STATUS(kObjectNotExists, other_->GetName("ghost"));
}

TEST_F(NamesTest, BlobsCannotBeNamed) {
  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(128));
  ASSERT_OK_AND_ASSIGN(auto blob, w->Seal());
  EXPECT_STATUS(kInvalid, client_->PutName(blob->id(), "a-blob"));
  EXPECT_STATUS(kInvalid, client_->PutName(kEmptyBlobID, "empty-blob"));
  EXPECT_STATUS(kObjectNotExists, other_->GetName("a-blob"));
  EXPECT_STATUS(kObjectNotExists, other_->GetName("empty-blob"));
  ASSERT_OK_AND_ASSIGN(auto names, other_->ListNames("*", false, 100));
  EXPECT_TRUE(names.empty());
}

TEST_F(NamesTest, GetUnknownName) {
  EXPECT_STATUS(kObjectNotExists, client_->GetName("never-put"));
  EXPECT_STATUS(kObjectNotExists, client_->GetName("never-put", /*wait=*/false));
}

TEST_F(NamesTest, GetNameWaitBlocksUntilPut) {
  std::atomic<bool> done{false};
  Result<ObjectID> waited = Status::UnknownError("not run");
  std::thread waiter([&] {
    auto c = server_->Connect();
    if (c) waited = c->GetName("later", /*wait=*/true);
    done = true;
  });
  // The waiter is parked on the server.
  uint64_t deferred = 0;
  for (int i = 0; i < 300 && deferred == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto st = client_->GetInstanceStatus();
    ASSERT_TRUE(st.ok());
    deferred = st->deferred_requests;
  }
  EXPECT_EQ(deferred, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done.load());
  // Other names and requests do not wake it up (and are not blocked by it).
  ObjectID decoy = MakePersisted(*other_);
  ASSERT_OK(other_->PutName(decoy, "not-later"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done.load());

  ObjectID id = MakePersisted(*other_);
  ASSERT_OK(other_->PutName(id, "later"));
  waiter.join();
  EXPECT_TRUE(done.load());
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_EQ(*waited, id);
  ASSERT_OK_AND_ASSIGN(InstanceStatus st, client_->GetInstanceStatus());
  EXPECT_EQ(st.deferred_requests, 0u);
  // An existing name returns at once with wait=true.
  ASSERT_OK_AND_ASSIGN(ObjectID again, client_->GetName("later", true));
  EXPECT_EQ(again, id);
}

TEST_F(NamesTest, WaiterThatDiesIsForgotten) {
  pid_t child = fork();
  if (child == 0) {
    auto c = Client::Connect(server_->socket());
    if (c.ok()) (void)(*c)->GetName("never", /*wait=*/true);
    _exit(0);
  }
  ASSERT_GT(child, 0);
  uint64_t deferred = 0;
  for (int i = 0; i < 300 && deferred == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_OK_AND_ASSIGN(InstanceStatus st, client_->GetInstanceStatus());
    deferred = st.deferred_requests;
  }
  EXPECT_EQ(deferred, 1u);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  uint64_t connections = 0;
  for (int i = 0; i < 300 && (deferred != 0 || connections != 2); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_OK_AND_ASSIGN(InstanceStatus st, client_->GetInstanceStatus());
    deferred = st.deferred_requests;
    connections = st.ipc_connections;
  }
  EXPECT_EQ(deferred, 0u);
  EXPECT_EQ(connections, 2u);  // client_ and other_
  // The server is unaffected.
  ObjectID id = MakePersisted(*client_);
  ASSERT_OK(client_->PutName(id, "never"));
  ASSERT_OK_AND_ASSIGN(ObjectID got, other_->GetName("never", true));
  EXPECT_EQ(got, id);
}

TEST_F(NamesTest, PutWithNameWakesWaiter) {
  Result<ObjectID> waited = Status::UnknownError("not run");
  std::thread waiter([&] {
    auto c = server_->Connect();
    if (c) waited = c->GetName("fused", true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ObjectMeta m;
  m.SetTypeName("test::Fused");
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->Put(m, {}, false, "fused"));
  waiter.join();
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_EQ(*waited, id);
}

TEST_F(NamesTest, ListNamesGlobRegexLimit) {
  std::map<std::string, ObjectID> expected;
  for (const char* name : {"alpha-1", "alpha-2", "alpha-3", "beta-1", "gamma"}) {
    ObjectID id = MakePersisted(*client_);
    ASSERT_OK(client_->PutName(id, name));
    expected[name] = id;
  }
  ASSERT_OK_AND_ASSIGN(auto alphas, other_->ListNames("alpha-*", false, 100));
  EXPECT_EQ(alphas, (std::map<std::string, ObjectID>{{"alpha-1", expected["alpha-1"]},
                                                      {"alpha-2", expected["alpha-2"]},
                                                      {"alpha-3", expected["alpha-3"]}}));
  ASSERT_OK_AND_ASSIGN(auto all, other_->ListNames("*", false, 100));
  EXPECT_EQ(all, expected);
  ASSERT_OK_AND_ASSIGN(auto q, other_->ListNames("?????", false, 100));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.count("gamma"));
  ASSERT_OK_AND_ASSIGN(auto ones, other_->ListNames("(alpha|beta)-1", true, 100));
  EXPECT_EQ(ones, (std::map<std::string, ObjectID>{{"alpha-1", expected["alpha-1"]},
                                                    {"beta-1", expected["beta-1"]}}));
  ASSERT_OK_AND_ASSIGN(auto re_all, other_->ListNames(".*", true, 100));
  EXPECT_EQ(re_all, expected);
  ASSERT_OK_AND_ASSIGN(auto re_partial, other_->ListNames("alpha", true, 100));
  EXPECT_TRUE(re_partial.empty());  // the regex must match the whole name
  EXPECT_STATUS(kInvalid, other_->ListNames("[unclosed", true, 100));

  ASSERT_OK_AND_ASSIGN(auto two, other_->ListNames("*", false, 2));
  EXPECT_EQ(two.size(), 2u);
  for (const auto& [name, id] : two) EXPECT_EQ(expected[name], id);
  ASSERT_OK_AND_ASSIGN(auto alpha_limited, other_->ListNames("alpha-*", false, 1));
  ASSERT_EQ(alpha_limited.size(), 1u);
  EXPECT_EQ(alpha_limited.begin()->first.rfind("alpha-", 0), 0u);
  ASSERT_OK(client_->PutName(MakePersisted(*client_), "delta"));
  ASSERT_OK_AND_ASSIGN(auto by_default, other_->ListNames());
  EXPECT_EQ(by_default.size(), 5u);  // default limit
  ASSERT_OK_AND_ASSIGN(auto none, other_->ListNames("zeta*", false, 100));
  EXPECT_TRUE(none.empty());
}

TEST_F(NamesTest, DropName) {
  ObjectID id = MakePersisted(*client_);
  ASSERT_OK(client_->PutName(id, "drop-me"));
  ASSERT_OK(client_->PutName(id, "keep-me"));
  ASSERT_OK(other_->DropName("drop-me"));
  EXPECT_STATUS(kObjectNotExists, client_->GetName("drop-me"));
  ASSERT_OK_AND_ASSIGN(ObjectID kept, client_->GetName("keep-me"));
  EXPECT_EQ(kept, id);
  // The object itself stays.
  ASSERT_OK_AND_ASSIGN(bool exists, client_->Exists(id));
  EXPECT_TRUE(exists);
  ASSERT_OK_AND_ASSIGN(auto names, client_->ListNames("*", false, 100));
  EXPECT_EQ(names, (std::map<std::string, ObjectID>{{"keep-me", id}}));
  // The name can be given again.
  ASSERT_OK(client_->PutName(id, "drop-me"));
  ASSERT_OK_AND_ASSIGN(ObjectID back, other_->GetName("drop-me"));
  EXPECT_EQ(back, id);
}

TEST_F(NamesTest, DeletingAnObjectDropsItsNames) {
  ObjectID id = MakePersisted(*client_);
  ObjectID other_id = MakePersisted(*client_);
  ASSERT_OK(client_->PutName(id, "n1"));
  ASSERT_OK(client_->PutName(id, "n2"));
  ASSERT_OK(client_->PutName(other_id, "n3"));
  ASSERT_OK(other_->Delete(id));
  EXPECT_STATUS(kObjectNotExists, client_->GetName("n1"));
  EXPECT_STATUS(kObjectNotExists, client_->GetName("n2"));
  ASSERT_OK_AND_ASSIGN(auto names, client_->ListNames("*", false, 100));
  EXPECT_EQ(names, (std::map<std::string, ObjectID>{{"n3", other_id}}));

  // Also when the named object goes as a member of a deep delete.
  ObjectMeta holder;
  holder.SetTypeName("test::Holder");
  holder.AddMember("m", other_id);
  ASSERT_OK_AND_ASSIGN(ObjectID holder_id, client_->CreateMetaData(holder));
  ASSERT_OK(client_->Delete(holder_id));
  ASSERT_OK_AND_ASSIGN(bool exists, client_->Exists(other_id));
  EXPECT_FALSE(exists);
  EXPECT_STATUS(kObjectNotExists, client_->GetName("n3"));
}

TEST_F(NamesTest, OverwriteName) {
  ObjectID a = MakePersisted(*client_, "test::A");
  ObjectID b = MakePersisted(*client_, "test::B");
  ASSERT_OK(client_->PutName(a, "current"));
  ASSERT_OK_AND_ASSIGN(ObjectID got_a, other_->GetName("current"));
  EXPECT_EQ(got_a, a);
  ASSERT_OK(other_->PutName(b, "current"));
  ASSERT_OK_AND_ASSIGN(ObjectID got_b, client_->GetName("current"));
  EXPECT_EQ(got_b, b);
  ASSERT_OK_AND_ASSIGN(auto names, client_->ListNames("*", false, 100));
  EXPECT_EQ(names, (std::map<std::string, ObjectID>{{"current", b}}));
  // Deleting the previous holder does not take the name away from the new one.
  ASSERT_OK(client_->Delete(a));
  ASSERT_OK_AND_ASSIGN(ObjectID still_b, client_->GetName("current"));
  EXPECT_EQ(still_b, b);
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, client_->GetMetaData(still_b));
  EXPECT_EQ(meta.GetTypeName(), "test::B");
}

}  // namespace
}  // namespace vineyard
