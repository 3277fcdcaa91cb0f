// Streams against a real vineyardd: a writer and a reader on their own
// connections, the memory bound, pushed objects, a writer that disconnects, a
// parked reader woken by stop and drop, and bad requests on the wire.
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
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

constexpr uint64_t kStore = 32u << 20;
constexpr size_t kChunk = 1u << 20;

class StreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = TestServer::Start({"--stream_threshold=50"}, "32Mi").release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(server_ != nullptr && server_->Running());
    client_ = server_->Connect();
  }
  void TearDown() override {
    ASSERT_TRUE(server_->Running()) << "vineyardd died";
    ASSERT_TRUE(client_->Clear().ok());
  }

  ObjectID NewStream(Client& c) {
    ObjectMeta meta;
    meta.SetTypeName("vineyard::ByteStream");
    meta.AddKeyValue("params_", json::object());
    auto id = c.CreateMetaData(meta);
    EXPECT_TRUE(id.ok()) << id.status();
    EXPECT_TRUE(c.CreateStream(*id).ok());
    return *id;
  }
  uint64_t Usage() { return client_->GetInstanceStatus()->memory_usage; }

  static TestServer* server_;
  std::shared_ptr<Client> client_;
};
TestServer* StreamTest::server_ = nullptr;

TEST_F(StreamTest, ThreeTimesTheStoreFlowsThroughInOrderWithinTheBound) {
  ObjectID s = NewStream(*client_);
  const int chunks = 3 * kStore / kChunk;
  std::atomic<uint64_t> peak{0};
  std::thread writer([&] {
    auto w = server_->Connect();
    ASSERT_TRUE(w->OpenStream(s, kStreamWrite).ok());
    for (int i = 0; i < chunks; ++i) {
      auto chunk = w->GetNextStreamChunk(s, kChunk);
      ASSERT_TRUE(chunk.ok()) << chunk.status();
      std::memset((*chunk)->data(), i % 251, kChunk);
      uint64_t u = w->GetInstanceStatus()->memory_usage;
      if (u > peak) peak = u;
    }
    ASSERT_TRUE(w->StopStream(s, false).ok());
  });
  ASSERT_TRUE(client_->OpenStream(s, kStreamRead).ok());
  for (int i = 0; i < chunks; ++i) {
    auto blob = client_->PullNextStreamBlob(s);
    ASSERT_TRUE(blob.ok()) << i << ": " << blob.status();
    ASSERT_EQ((*blob)->size(), kChunk);
    EXPECT_EQ((*blob)->data()[0], i % 251);
    EXPECT_EQ((*blob)->data()[kChunk - 1], i % 251);
  }
  auto end = client_->PullNextStreamChunk(s);
  EXPECT_TRUE(end.status().IsStreamDrained()) << end.status();
  writer.join();
  // --stream_threshold=50: half the store in flight, plus the chunk being filled.
  EXPECT_LE(peak.load(), kStore / 2 + 2 * (kChunk + 4096));
}

TEST_F(StreamTest, PushedObjectsAreReadInOrderAndDeletedOnceReadPast) {
  ObjectID s = NewStream(*client_);
  std::vector<ObjectID> pushed;
  for (int i = 0; i < 3; ++i) {
    ObjectMeta m;
    m.SetTypeName("vineyard::Scalar<int>");
    m.AddKeyValue("value_", i);
    auto id = client_->CreateMetaData(m);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(client_->PushNextStreamChunk(s, *id).ok());
    pushed.push_back(*id);
  }
  auto missing = client_->PushNextStreamChunk(s, 0x1234);
  EXPECT_TRUE(missing.IsObjectNotExists()) << missing;
  ASSERT_TRUE(client_->StopStream(s, false).ok());
  auto reader = server_->Connect();
  for (int i = 0; i < 3; ++i) {
    auto id = reader->PullNextStreamChunk(s);
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(*id, pushed[i]);
    if (i > 0) EXPECT_FALSE(*client_->Exists(pushed[i - 1])) << "read past, so deleted";
  }
  EXPECT_TRUE(reader->PullNextStreamChunk(s).status().IsStreamDrained());
}

TEST_F(StreamTest, PushedObjectsCountInFlightAndAPushOverTheBoundWaits) {
  // Objects of one 1 MiB blob each, pushed as chunks: three times the store
  // flows through, the writer waiting while half the store is in flight.
  ObjectID s = NewStream(*client_);
  const int chunks = 3 * kStore / kChunk;
  std::atomic<uint64_t> peak{0};
  std::atomic<int> pushed{0};
  std::thread writer([&] {
    auto w = server_->Connect();
    ASSERT_TRUE(w->OpenStream(s, kStreamWrite).ok());
    for (int i = 0; i < chunks; ++i) {
      ObjectID id;
      {
        auto blob = w->CreateBlob(kChunk);
        ASSERT_TRUE(blob.ok()) << i << ": " << blob.status();
        std::memset((*blob)->data(), i % 251, kChunk);
        ObjectMeta m;
        m.SetTypeName("test::Chunk");
        m.AddMember("buffer_", **blob);
        auto put = w->Put(m, {blob->get()});
        ASSERT_TRUE(put.ok()) << i << ": " << put.status();
        id = *put;
      }  // the writer's reference goes back with its next request
      ASSERT_TRUE(w->PushNextStreamChunk(s, id).ok()) << i;
      pushed = i + 1;
      uint64_t u = w->GetInstanceStatus()->memory_usage;
      if (u > peak) peak = u;
    }
    ASSERT_TRUE(w->StopStream(s, false).ok());
  });
  // Nobody reads yet: the writer stops at the bound instead of filling the store.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GE(pushed.load(), 8);
  EXPECT_LE(pushed.load(), 17);  // 16 MiB in flight, the 17th waiting
  ASSERT_TRUE(client_->OpenStream(s, kStreamRead).ok());
  for (int i = 0; i < chunks; ++i) {
    auto id = client_->PullNextStreamChunk(s);
    ASSERT_TRUE(id.ok()) << i << ": " << id.status();
    auto obj = client_->GetObject(*id);
    ASSERT_TRUE(obj.ok()) << obj.status();
    auto member = obj->GetMemberId("buffer_");
    ASSERT_TRUE(member.ok()) << member.status();
    auto buf = obj->GetBuffer(*member);
    ASSERT_TRUE(buf.ok()) << buf.status();
    ASSERT_EQ((*buf)->size(), kChunk);
    EXPECT_EQ((*buf)->data()[0], i % 251);
    EXPECT_EQ((*buf)->data()[kChunk - 1], i % 251);
  }
  EXPECT_TRUE(client_->PullNextStreamChunk(s).status().IsStreamDrained());
  writer.join();
  // Half the store in flight, the chunk being put, and the one being read.
  EXPECT_LE(peak.load(), kStore / 2 + 3 * (kChunk + 4096) + (64u << 10));
}

TEST_F(StreamTest, AWriterThatDisconnectsFailsItsStreamAndFreesItsChunk) {
  const uint64_t before = Usage();
  ObjectID s = NewStream(*client_);
  {
    auto w = server_->Connect();
    ASSERT_TRUE(w->OpenStream(s, kStreamWrite).ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(w->GetNextStreamChunk(s, kChunk).ok());
    EXPECT_TRUE(w->Disconnect().ok());  // with a chunk in hand and two queued
  }
  ASSERT_TRUE(client_->OpenStream(s, kStreamRead).ok());
  for (int i = 0; i < 2; ++i) {
    auto id = client_->PullNextStreamChunk(s);
    ASSERT_TRUE(id.ok()) << id.status();
  }
  auto failed = client_->PullNextStreamChunk(s);
  EXPECT_TRUE(failed.status().IsStreamFailed()) << failed.status();
  // The writer's side is free again, but the stream stays failed.
  auto w2 = server_->Connect();
  EXPECT_TRUE(w2->OpenStream(s, kStreamWrite).ok());
  EXPECT_TRUE(w2->GetNextStreamChunk(s, 8).status().IsStreamFailed());
  ASSERT_TRUE(client_->Delete(s).ok());
  EXPECT_EQ(Usage(), before);
}

TEST_F(StreamTest, AParkedReaderIsWokenByStopAndByDropAndOthersAreServed) {
  for (bool drop : {false, true}) {
    ObjectID s = NewStream(*client_);
    std::atomic<int> code{-1};
    std::thread reader([&] {
      auto r = server_->Connect();
      code = static_cast<int>(r->PullNextStreamChunk(s).status().code());
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(code.load(), -1) << "the reader waits";
    EXPECT_GE(client_->GetInstanceStatus()->deferred_requests, 1u);
    EXPECT_TRUE(client_->ListNames().ok());  // served while it waits
    ASSERT_TRUE((drop ? client_->DropStream(s) : client_->StopStream(s, false)).ok());
    reader.join();
    EXPECT_EQ(code.load(), static_cast<int>(drop ? StatusCode::kStreamFailed
                                                 : StatusCode::kStreamDrained));
  }
}

TEST_F(StreamTest, OneReaderAndOneWriterAndClearErrors) {
  ObjectID s = NewStream(*client_);
  auto other = server_->Connect();
  ASSERT_TRUE(client_->OpenStream(s, kStreamRead).ok());
  EXPECT_TRUE(other->OpenStream(s, kStreamRead).IsStreamOpened());
  EXPECT_TRUE(other->PullNextStreamChunk(s).status().IsStreamOpened());
  EXPECT_TRUE(client_->CreateStream(s).IsObjectExists());
  EXPECT_TRUE(client_->CreateStream(0x42).IsObjectNotExists());
  ASSERT_TRUE(client_->StopStream(s, true).ok());
  EXPECT_TRUE(client_->StopStream(s, false).IsInvalidStreamState());
  EXPECT_TRUE(client_->PullNextStreamChunk(s).status().IsStreamFailed());
}

TEST_F(StreamTest, GarbageOnTheWireIsRefusedAndTheServerServes) {
  RawConn raw(server_->socket());
  ASSERT_TRUE(IsReply(raw.Register(), "register_reply"));
  ObjectID s = NewStream(*client_);
  EXPECT_TRUE(IsError(raw.Call({{"type", "open_stream_request"}, {"object_id", s}, {"mode", 3}}),
                      1));
  EXPECT_TRUE(IsError(raw.Call({{"type", "open_stream_request"}, {"mode", 1}}), 1));
  EXPECT_TRUE(IsError(raw.Call({{"type", "get_next_stream_chunk_request"}, {"id", s},
                                {"size", "big"}}), 1));
  EXPECT_TRUE(IsError(raw.Call({{"type", "pull_next_stream_chunk_request"}, {"id", s},
                                {"release", "x"}}), 1));
  EXPECT_TRUE(IsError(raw.Call({{"type", "stop_stream_request"}, {"id", s}}), 1));
  // A chunk larger than the store: the writer's error says so.
  json big = raw.Call({{"type", "get_next_stream_chunk_request"}, {"id", s},
                       {"size", uint64_t{1} << 40}});
  EXPECT_TRUE(big.contains("code")) << big.dump();
  EXPECT_NE(big.value("message", "").find("larger than the whole store"), std::string::npos);
  // The published client's flow: no open_stream, the blob's fd passed once.
  json chunk = raw.Call({{"type", "get_next_stream_chunk_request"}, {"id", s}, {"size", 64}});
  ASSERT_TRUE(IsReply(chunk, "get_next_stream_chunk_reply")) << chunk.dump();
  EXPECT_EQ(chunk["buffer"]["data_size"], 64);
  EXPECT_TRUE(IsReply(raw.Call({{"type", "stop_stream_request"}, {"id", s}, {"failed", false}}),
                      "stop_stream_reply"));
  auto id = client_->PullNextStreamChunk(s);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, chunk["buffer"]["object_id"].get<ObjectID>());
}

}  // namespace
}  // namespace vineyard
