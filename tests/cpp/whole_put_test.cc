// The whole-tree put (vy_put) against a real vineyardd: inline blobs (bytes in
// the request), new members created with their holder, members shared inside
// one tree, all or nothing on failure, and bad input on the wire.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "common/protocol.h"
#include "raw_conn.h"
#include "test_server.h"

namespace vineyard {
namespace {

using testing::IsError;
using testing::IsReply;
using testing::RawConn;
using testing::TestServer;

constexpr int kInvalid = 1;

std::string Bytes(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 31);
  return s;
}

class WholePutTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = TestServer::Start({}, "64Mi").release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Running());
    client_ = server_->Connect();
  }
  void TearDown() override {
    ASSERT_TRUE(server_->Running()) << "vineyardd died";
    // Every test leaves the store as it found it.
    ASSERT_TRUE(client_->Clear().ok());
  }

  size_t Objects() {
    auto l = client_->ListMetaData("*", false, 100000);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? l->size() : 0;
  }
  uint64_t MemoryUsage() {
    auto s = client_->GetInstanceStatus();
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? s->memory_usage : 0;
  }
  std::string BlobBytes(const ObjectMeta& meta, const std::string& member) {
    auto m = meta.GetMember(member);
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return "";
    auto blob = meta.GetBuffer(m->GetId());
    EXPECT_TRUE(blob.ok()) << blob.status();
    if (!blob.ok()) return "";
    return std::string(reinterpret_cast<const char*>((*blob)->data()), (*blob)->size());
  }

  static TestServer* server_;
  std::shared_ptr<Client> client_;
};
TestServer* WholePutTest::server_ = nullptr;

TEST_F(WholePutTest, InlineBlobsInOneRequest) {
  const std::string a = Bytes(64, 1), b = Bytes(5000, 2);
  ObjectMeta meta;
  meta.SetTypeName("test::Pair");
  meta.AddInlineBlob("first_", 0, a.size());
  meta.AddInlineBlob("second_", 1, b.size());
  auto id = client_->Put(meta, {}, false, "", {a, b});
  ASSERT_TRUE(id.ok()) << id.status();
  // The caller's meta now names the blobs the server made.
  ASSERT_TRUE(meta.GetMemberId("first_").ok());
  EXPECT_TRUE(IsBlob(*meta.GetMemberId("first_")));

  auto other = server_->Connect();
  auto got = other->GetObject(*id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(BlobBytes(*got, "first_"), a);
  EXPECT_EQ(BlobBytes(*got, "second_"), b);
  // Deleting the object frees the blobs made for it.
  ASSERT_TRUE(client_->Delete(*id).ok());
  EXPECT_FALSE(*client_->Exists(*meta.GetMemberId("second_")));
}

// A byte run too large to travel in the request goes to a blob created first;
// the same run named twice is one blob.
TEST_F(WholePutTest, LargeByteRunsGoThroughCreatedBlobs) {
  const std::string big = Bytes(kMaxInlineBlob + 1, 3), small = Bytes(10, 4);
  ObjectMeta meta;
  meta.SetTypeName("test::Big");
  meta.AddInlineBlob("big_", 0, big.size());
  meta.AddInlineBlob("small_", 1, small.size());
  meta.AddInlineBlob("again_", 1, small.size());
  meta.AddInlineBlob("big_again_", 0, big.size());
  auto id = client_->Put(meta, {}, false, "", {big, small});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*meta.GetMemberId("small_"), *meta.GetMemberId("again_"));
  EXPECT_EQ(*meta.GetMemberId("big_"), *meta.GetMemberId("big_again_"));
  auto got = server_->Connect()->GetObject(*id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(BlobBytes(*got, "big_"), big);
  EXPECT_EQ(BlobBytes(*got, "small_"), small);
  EXPECT_EQ(BlobBytes(*got, "again_"), small);
  // A placeholder naming a run that was not given is refused before anything is sent.
  ObjectMeta bad;
  bad.SetTypeName("test::Bad");
  bad.AddInlineBlob("buffer_", 5, 1);
  auto refused = client_->Put(bad, {}, false, "", {small});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsInvalid()) << refused.status();
}

// A table-like tree: batches created with the root, one schema shared by all.
TEST_F(WholePutTest, NewMembersAndASharedMemberInOneTree) {
  const size_t kBatches = 50;
  std::vector<std::string> payloads;
  for (size_t i = 0; i < kBatches; ++i) payloads.push_back(Bytes(16 + i, static_cast<uint8_t>(i)));
  ObjectMeta table;
  table.SetTypeName("test::Table");
  table.AddKeyValue("batch_num_", kBatches);
  json& tree = table.MutableMetaData();
  for (size_t i = 0; i < kBatches; ++i) {
    ObjectMeta batch;
    batch.SetTypeName("test::Batch");
    batch.AddKeyValue("row_num_", i);
    batch.AddInlineBlob("column_", i, payloads[i].size());
    json member = batch.MetaData();
    // The first batch defines the schema; the others refer to it.
    member["schema_"] = i == 0 ? json{{"typename", "test::Schema"},
                                      {"fields_", "a,b"},
                                      {"__vy_share", "schema"}}
                               : json{{"__vy_share", "schema"}};
    tree["partitions_-" + std::to_string(i)] = member;
  }
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  auto id = client_->Put(table, {}, true, "the-table", views);
  ASSERT_TRUE(id.ok()) << id.status();
  // 1 table + 50 batches + 1 schema, and the 50 blobs.
  EXPECT_EQ(Objects(), 1 + kBatches + 1);

  auto other = server_->Connect();
  auto got = other->GetObject(*id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->IsTransient());
  ObjectID schema = kInvalidObjectID;
  for (size_t i = 0; i < kBatches; ++i) {
    auto batch = got->GetMember("partitions_-" + std::to_string(i));
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->GetTypeName(), "test::Batch");
    EXPECT_FALSE(batch->IsTransient()) << "members are persisted with the root";
    EXPECT_EQ(BlobBytes(*batch, "column_"), payloads[i]);
    auto s = batch->GetMember("schema_");
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(*s->GetKeyValueAs<std::string>("fields_"), "a,b");
    if (i == 0) schema = s->GetId();
    EXPECT_EQ(s->GetId(), schema) << "one schema object for every batch";
  }
  ASSERT_TRUE(other->Delete(*id).ok());
  EXPECT_EQ(Objects(), 0u) << "a deep delete takes the members made with the root";
}

// vy_get writes its reply straight as text; get_data (what published clients
// ask) builds it as a document. Both must give the same trees, and vy_get must
// map every blob of them.
TEST_F(WholePutTest, TheTextReplyIsTheTreeTheDocumentReplyHolds) {
  std::vector<std::string> payloads = {Bytes(40, 1), Bytes(300, 2), Bytes(70000, 3)};
  ObjectMeta root;
  root.SetTypeName("test::Root<\"quoted\", é>");
  root.AddKeyValue("text_", "a \"quoted\" \\ line\nwith é and \x01");
  root.AddKeyValue("list_", json::array({1, -2, 3.5, nullptr, true}));
  root.AddKeyValue("nested_", json{{"k", json{{"deep", 1}}}});
  json& tree = root.MutableMetaData();
  for (int i = 0; i < 3; ++i) {
    ObjectMeta part;
    part.SetTypeName("test::Part");
    part.AddKeyValue("index_", i);
    part.AddInlineBlob("bytes_", static_cast<size_t>(i), payloads[i].size());
    part.AddMember("empty_", *Blob::MakeEmpty());
    json member = part.MetaData();
    member["shared_"] = i == 0 ? json{{"typename", "test::Shared"}, {"__vy_share", "s"}}
                               : json{{"__vy_share", "s"}};
    tree["member \"" + std::to_string(i) + "\""] = member;
  }
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  auto id = client_->Put(root, {}, false, "", views);
  ASSERT_TRUE(id.ok()) << id.status();

  auto other = server_->Connect();
  auto text = other->GetObjects({*id, *id});  // a root asked twice comes once
  ASSERT_TRUE(text.ok()) << text.status();
  auto document = other->GetMetaData(*id);
  ASSERT_TRUE(document.ok()) << document.status();
  EXPECT_EQ((*text)[0].MetaData(), document->MetaData());
  EXPECT_EQ((*text)[1].MetaData(), document->MetaData());
  for (int i = 0; i < 3; ++i) {
    auto part = (*text)[0].GetMember("member \"" + std::to_string(i) + "\"");
    ASSERT_TRUE(part.ok()) << part.status();
    EXPECT_EQ(BlobBytes(*part, "bytes_"), payloads[i]);
  }
  EXPECT_EQ((*text)[0].GetBlobIds().size(), 4u);  // three payloads and the empty blob
  ASSERT_TRUE(other->Delete(*id).ok());
}

// A failure halfway through a whole-tree put leaves nothing behind: no member
// made before the failure, no inline blob, no sealed blob.
TEST_F(WholePutTest, AFailureHalfwayLeavesNothing) {
  const size_t objects = Objects();
  const uint64_t memory = MemoryUsage();
  auto writer = client_->CreateBlob(1 << 20);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string small = Bytes(100, 9);

  ObjectMeta root;
  root.SetTypeName("test::Root");
  root.AddMember("big_", **writer);
  json& tree = root.MutableMetaData();
  // "a_" sorts first and is created; "z_" refers to an object that does not exist.
  ObjectMeta good;
  good.SetTypeName("test::Good");
  good.AddInlineBlob("bytes_", 0, small.size());
  tree["a_"] = good.MetaData();
  tree["z_"] = json{{"typename", "test::Bad"},
                    {"missing_", json{{"id", ObjectIDToString(0x123456789abcULL)}}}};
  auto id = client_->Put(root, {writer->get()}, false, "", {small});
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(id.status().IsObjectNotExists()) << id.status();
  EXPECT_NE(id.status().message().find("test::Bad"), std::string::npos) << id.status();
  EXPECT_EQ(Objects(), objects);
  writer->reset();  // the blob the client created (sealed by the put, then undone)
  ASSERT_TRUE(client_->FlushReleases().ok());
  EXPECT_EQ(MemoryUsage(), memory) << "the inline and the sealed blob were freed";
}

TEST_F(WholePutTest, SharedMemberDefinedTwiceOrNotAtAll) {
  ObjectMeta root;
  root.SetTypeName("test::Root");
  root.MutableMetaData()["a_"] = json{{"__vy_share", "x"}};
  auto id = client_->Put(root, {});
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(id.status().IsInvalid()) << id.status();

  ObjectMeta twice;
  twice.SetTypeName("test::Root");
  twice.MutableMetaData()["a_"] = json{{"typename", "test::S"}, {"__vy_share", "x"}};
  twice.MutableMetaData()["b_"] = json{{"typename", "test::S"}, {"__vy_share", "x"}};
  id = client_->Put(twice, {});
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(id.status().IsInvalid()) << id.status();
  EXPECT_EQ(Objects(), 0u);
}

// Frames written by hand: each gets a clear error, and nothing is left.
TEST_F(WholePutTest, BadInlineInputOnTheWire) {
  RawConn conn(server_->socket());
  ASSERT_TRUE(IsReply(conn.Register(), "register_reply"));
  const uint64_t memory = MemoryUsage();
  auto put = [&](json request, const std::string& attachment) {
    request["type"] = "vy_put_request";
    if (!request.contains("content")) {
      request["content"] = json{{"typename", "test::X"},
                                {"instance_id", client_->instance_id()},
                                {"buffer_", {{"typename", "vineyard::Blob"}, {"__vy_inline", 0}}}};
    }
    std::string frame = request.dump();
    if (!attachment.empty() || request.contains("nul")) frame += '\0' + attachment;
    json reply;
    EXPECT_TRUE(conn.SendText(frame));
    EXPECT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
    return reply;
  };
  // Sizes that do not add up to the bytes sent, either way.
  EXPECT_TRUE(IsError(put({{"inline", {10}}}, "12345"), kInvalid));
  EXPECT_TRUE(IsError(put({{"inline", {2, 2}}}, "12345"), kInvalid));
  // Bytes without sizes; sizes without bytes.
  EXPECT_TRUE(IsError(put(json::object(), "12345"), kInvalid));
  EXPECT_TRUE(IsError(put({{"inline", {4}}}, ""), kInvalid));
  // Huge counts, wrong types.
  EXPECT_TRUE(IsError(put({{"inline", {uint64_t{1} << 63, uint64_t{1} << 63}}}, "ab"), kInvalid));
  EXPECT_TRUE(IsError(put({{"inline", "four"}}, "abcd"), kInvalid));
  EXPECT_TRUE(IsError(put({{"inline", {-1}}}, "abcd"), kInvalid));
  // A placeholder that names no inline blob.
  json bad_index = {{"typename", "test::X"},
                    {"instance_id", client_->instance_id()},
                    {"buffer_", {{"typename", "vineyard::Blob"}, {"__vy_inline", 7}}}};
  EXPECT_TRUE(IsError(put({{"inline", {4}}, {"content", bad_index}}, "abcd"), kInvalid));
  bad_index["buffer_"]["__vy_inline"] = "zero";
  EXPECT_TRUE(IsError(put({{"inline", {4}}, {"content", bad_index}}, "abcd"), kInvalid));
  // A NUL in a request that takes no bytes is refused too.
  conn.SendText(json{{"type", "exists_request"}, {"id", 1}}.dump() + '\0' + "xyz");
  json reply;
  ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsError(reply, kInvalid)) << reply.dump();
  // A good one works on the same connection, and nothing else was left behind.
  json ok = put({{"inline", {4}}}, "abcd");
  ASSERT_TRUE(IsReply(ok, "create_data_reply")) << ok.dump();
  EXPECT_EQ(Objects(), 1u);
  ASSERT_TRUE(client_->Clear().ok());
  EXPECT_EQ(MemoryUsage(), memory);
}

}  // namespace
}  // namespace vineyard
