// The C++ clients on a cluster: a real etcd and two vineyardd sharing it.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "client/client.h"
#include "client/rpc_client.h"
#include "etcd_process.h"
#include "test_server.h"

namespace vineyard {
namespace {

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    etcd_ = testing::EtcdProcess::Start().release();
    for (int i = 0; i < 2; ++i) {
      servers_[i] = testing::TestServer::Start(
                        {"--meta=etcd", "--etcd_endpoint=" + etcd_->endpoint(),
                         "--etcd_prefix=cpp-cluster", "--skip_launch_etcd", "--rpc",
                         "--rpc_socket_port=0", "--rpc_host=127.0.0.1", "--meta_timeout=3"},
                        "256Mi")
                        .release();
    }
  }
  static void TearDownTestSuite() {
    for (auto*& s : servers_) {
      delete s;
      s = nullptr;
    }
    delete etcd_;
    etcd_ = nullptr;
  }

  // A persisted object of `n` bytes on `client`: a blob member counting 0, 1, 2, ...
  static ObjectID PutBytes(Client& client, size_t n) {
    auto writer = client.CreateBlob(n).ValueOrDie();
    uint8_t* data = writer->data();
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(i * 7);
    ObjectMeta meta;
    meta.SetTypeName("test::Bytes");
    meta.AddKeyValue("size", n);
    meta.AddMember("buffer_", *writer);
    return client.Put(meta, {writer.get()}, /*persist=*/true).ValueOrDie();
  }

  static testing::EtcdProcess* etcd_;
  static testing::TestServer* servers_[2];
};

testing::EtcdProcess* ClusterTest::etcd_ = nullptr;
testing::TestServer* ClusterTest::servers_[2] = {nullptr, nullptr};

TEST_F(ClusterTest, EveryInstanceIsListedWithItsEndpoints) {
  auto a = servers_[0]->Connect();
  auto b = servers_[1]->Connect();
  EXPECT_NE(a->instance_id(), b->instance_id());
  json info = a->ClusterInfo().ValueOrDie();
  ASSERT_EQ(info.size(), 2u);
  json entry = info["i" + std::to_string(b->instance_id())];
  EXPECT_EQ(entry["ipc_socket"], servers_[1]->socket());
  EXPECT_EQ(entry["rpc_endpoint"], b->rpc_endpoint());
  auto status = a->GetInstanceStatus().ValueOrDie();
  EXPECT_EQ(status.instance_id, a->instance_id());
}

TEST_F(ClusterTest, PersistedObjectsAreSeenAndMigratedElsewhere) {
  auto a = servers_[0]->Connect();
  auto b = servers_[1]->Connect();
  ObjectID id = PutBytes(*a, 1 << 20);
  ASSERT_TRUE(b->SyncMetaData().ok());
  auto meta = b->GetMetaData(id).ValueOrDie();
  EXPECT_EQ(meta.GetInstanceId(), a->instance_id());
  EXPECT_FALSE(meta.IsLocal());
  EXPECT_TRUE(a->GetMetaData(id).ValueOrDie().IsLocal());

  ObjectID local = b->MigrateObject(id).ValueOrDie();
  EXPECT_NE(local, id);
  EXPECT_EQ(b->MigrateObject(id).ValueOrDie(), local) << "one copy";
  auto copy = b->GetObject(local).ValueOrDie();
  EXPECT_TRUE(copy.IsLocal());
  auto blob = copy.GetBuffer(copy.GetMemberId("buffer_").ValueOrDie()).ValueOrDie();
  ASSERT_EQ(blob->size(), 1u << 20);
  for (size_t i = 0; i < blob->size(); i += 4099) {
    ASSERT_EQ(blob->data()[i], static_cast<uint8_t>(i * 7));
  }
  EXPECT_EQ(b->MigrateObject(local).ValueOrDie(), local) << "local already";
  ASSERT_TRUE(b->Delete(local).ok());
  ASSERT_TRUE(a->Delete(id).ok());
}

TEST_F(ClusterTest, AnRpcClientFetchesEachBlobFromItsOwner) {
  auto a = servers_[0]->Connect();
  auto b = servers_[1]->Connect();
  ObjectID on_a = PutBytes(*a, 4096);
  ObjectID on_b = PutBytes(*b, 8192);
  ASSERT_TRUE(a->SyncMetaData().ok());
  ObjectMeta pair;
  pair.SetTypeName("test::Pair");
  pair.SetGlobal(true);
  pair.AddMember("first_", on_a);
  pair.AddMember("second_", on_b);
  ObjectID pair_id = a->Put(pair, {}, /*persist=*/true).ValueOrDie();

  auto rpc = RPCClient::Connect(b->rpc_endpoint()).ValueOrDie();  // instance b
  auto got = rpc->GetObject(pair_id).ValueOrDie();
  for (const char* member : {"first_", "second_"}) {
    auto m = got.GetMember(member).ValueOrDie();
    auto blob = got.GetBuffer(m.GetMemberId("buffer_").ValueOrDie()).ValueOrDie();
    EXPECT_EQ(blob->size(), m.GetKeyValueAs<uint64_t>("size").ValueOrDie()) << member;
    EXPECT_EQ(blob->data()[3], 21) << member;
  }
  ASSERT_TRUE(a->Delete(pair_id).ok());  // deep: both members, wherever they are
  ASSERT_TRUE(b->SyncMetaData().ok());
  EXPECT_FALSE(b->Exists(on_b).ValueOrDie());
}

TEST_F(ClusterTest, MigratingWhatDoesNotExistOrIsABlobIsAnError) {
  auto b = servers_[1]->Connect();
  EXPECT_TRUE(b->MigrateObject(0x0123456789abcdef).status().IsObjectNotExists());
  auto writer = b->CreateBlob(16).ValueOrDie();
  ObjectID blob = writer->Seal().ValueOrDie()->id();
  auto refused = b->MigrateObject(blob);
  EXPECT_TRUE(refused.status().IsInvalid()) << refused.status().message();
}

}  // namespace
}  // namespace vineyard
