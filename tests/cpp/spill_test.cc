// Spilling through the C++ client against a real vineyardd (--spill_path):
// three times the memory in blobs, all back intact; a mapped blob is never
// spilled; evict, load with a pin, unpin, is_spilled and is_in_use.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "test_server.h"
#include "test_util.h"

namespace vineyard {
namespace {

using testing::Checksum;
using testing::RandomBytes;
using testing::TestServer;

constexpr size_t kMiB = 1 << 20;

class SpillTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/vy-spill-cpp-XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    server_ = TestServer::Start({"--spill_path=" + *dir_ + "/spill"}, "32Mi").release();
  }
  static void TearDownTestSuite() {
    delete server_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(server_->Running());
    client_ = server_->Connect();
    ASSERT_TRUE(client_);
  }

  // A sealed blob of `n` random bytes whose reference this client gives back.
  ObjectID Put(size_t n, uint64_t seed, uint64_t* sum) {
    auto bytes = RandomBytes(n, seed);
    *sum = Checksum(bytes.data(), bytes.size());
    auto w = client_->CreateBlob(n);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (!w.ok()) return kInvalidObjectID;
    EXPECT_TRUE((*w)->Copy(0, bytes.data(), n).ok());
    auto b = (*w)->Seal();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    ObjectID id = b.ok() ? (*b)->id() : kInvalidObjectID;
    EXPECT_TRUE(client_->FlushReleases().ok());
    return id;
  }

  uint64_t SumOf(ObjectID id) {
    auto b = client_->GetBlob(id);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? Checksum((*b)->data(), (*b)->size()) : 0;
  }

  static std::string* dir_;
  static TestServer* server_;
  std::shared_ptr<Client> client_;
};

std::string* SpillTest::dir_ = nullptr;
TestServer* SpillTest::server_ = nullptr;

TEST_F(SpillTest, ThreeTimesMemoryAllBackIntact) {
  std::vector<std::pair<ObjectID, uint64_t>> blobs;
  for (uint64_t i = 0; i < 24; ++i) {  // 96 MiB through 32 MiB of memory
    uint64_t sum = 0;
    ObjectID id = Put(4 * kMiB, i, &sum);
    ASSERT_NE(id, kInvalidObjectID);
    blobs.emplace_back(id, sum);
  }
  auto st = client_->GetInstanceStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->spill.enabled);
  EXPECT_GT(st->spill.spilled_blobs, 0u);
  EXPECT_LE(st->memory_usage, st->memory_limit);
  for (const auto& [id, sum] : blobs) EXPECT_EQ(SumOf(id), sum);
  EXPECT_TRUE(client_->FlushReleases().ok());
  std::vector<ObjectID> ids;
  for (const auto& [id, sum] : blobs) ids.push_back(id);
  ASSERT_TRUE(client_->Delete(ids).ok());
  st = client_->GetInstanceStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->spill.spilled_blobs, 0u);
  EXPECT_EQ(st->spill.spilled_bytes, 0u);
}

TEST_F(SpillTest, EvictLoadPinUnpin) {
  uint64_t sum = 0;
  ObjectID id = Put(4 * kMiB, 100, &sum);
  ASSERT_TRUE(client_->Evict({id}).ok());
  EXPECT_TRUE(*client_->IsSpilled(id));
  EXPECT_FALSE(*client_->IsInUse(id));
  ASSERT_TRUE(client_->Load({id}, /*pin=*/true).ok());
  EXPECT_FALSE(*client_->IsSpilled(id));
  Status refused = client_->Evict({id});
  EXPECT_TRUE(refused.IsInvalid()) << refused.ToString();
  EXPECT_NE(refused.message().find("pinned"), std::string::npos);
  ASSERT_TRUE(client_->Unpin({id}).ok());
  ASSERT_TRUE(client_->Evict({id}).ok());
  EXPECT_EQ(SumOf(id), sum);  // loaded back by the get
  EXPECT_FALSE(*client_->IsSpilled(id));
  ASSERT_TRUE(client_->Delete({id}).ok());
  EXPECT_TRUE(client_->IsSpilled(id).status().IsObjectNotExists());
}

TEST_F(SpillTest, MappedBlobIsNeverSpilled) {
  uint64_t sum = 0;
  ObjectID id = Put(4 * kMiB, 200, &sum);
  auto mapped = client_->GetBlob(id);
  ASSERT_TRUE(mapped.ok());
  EXPECT_TRUE(*client_->IsInUse(id));
  std::vector<ObjectID> others;
  for (uint64_t i = 0; i < 16; ++i) {
    uint64_t s = 0;
    others.push_back(Put(4 * kMiB, 201 + i, &s));
  }
  EXPECT_FALSE(*client_->IsSpilled(id));
  EXPECT_EQ(Checksum((*mapped)->data(), (*mapped)->size()), sum);
  EXPECT_TRUE(client_->Evict({id}).IsInvalid());
  mapped->reset();
  ASSERT_TRUE(client_->Evict({id}).ok());  // flushes the release first
  EXPECT_TRUE(*client_->IsSpilled(id));
  others.push_back(id);
  ASSERT_TRUE(client_->Delete(others).ok());
}

TEST(SpillOff, EvictIsRefusedWithoutSpillPath) {
  auto server = TestServer::Start({}, "16Mi");
  auto c = server->Connect();
  auto w = c->CreateBlob(kMiB);
  ASSERT_TRUE(w.ok());
  auto b = (*w)->Seal();
  ASSERT_TRUE(b.ok());
  ObjectID id = (*b)->id();
  b->reset();
  Status st = c->Evict({id});
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("--spill_path"), std::string::npos);
  EXPECT_FALSE(*c->IsSpilled(id));
  auto status = c->GetInstanceStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_FALSE(status->spill.enabled);
}

}  // namespace
}  // namespace vineyard
