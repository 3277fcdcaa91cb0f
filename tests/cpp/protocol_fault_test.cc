// Bad input on the wire against a real vineyardd: frames written by hand on a
// UNIX socket. Every case expects a clear error reply ({"code", "message"} with
// the right code) or a closed connection, and that the server still serves a
// fresh client afterwards.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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
#include "common/protocol.h"
#include "common/socket_io.h"
#include "raw_conn.h"
#include "test_server.h"

namespace vineyard {
namespace {

using testing::IsError;
using testing::IsReply;
using testing::RawConn;
using testing::TestServer;

constexpr int kInvalid = 1;
constexpr int kNotImplemented = 6;
constexpr int kObjectNotExists = 12;
constexpr int kNotEnoughMemory = 41;



// A fresh client can put and get an object with a blob.
void ExpectServes(const TestServer& server) {
  auto client = server.Connect();
  ASSERT_NE(client, nullptr);
  auto writer = client->CreateBlob(4096);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::vector<uint8_t> bytes(4096);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  ASSERT_TRUE((*writer)->Copy(0, bytes.data(), bytes.size()).ok());
  ObjectMeta meta;
  meta.SetTypeName("test::Bytes");
  meta.AddMember("buffer_", **writer);
  auto id = client->Put(meta, {writer->get()});
  ASSERT_TRUE(id.ok()) << id.status();
  auto got = client->GetObject(*id);
  ASSERT_TRUE(got.ok()) << got.status();
  auto blob_id = got->GetMemberId("buffer_");
  ASSERT_TRUE(blob_id.ok()) << blob_id.status();
  auto blob = got->GetBuffer(*blob_id);
  ASSERT_TRUE(blob.ok()) << blob.status();
  ASSERT_EQ((*blob)->size(), bytes.size());
  EXPECT_EQ(memcmp((*blob)->data(), bytes.data(), bytes.size()), 0);
  EXPECT_TRUE(client->Delete(*id).ok());
}

class ProtocolFaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = TestServer::Start({}, "64Mi").release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->Running()) << "vineyardd died in an earlier test";
  }
  void TearDown() override {
    EXPECT_TRUE(server_->Running()) << "vineyardd died";
    if (server_->Running()) ExpectServes(*server_);
  }
  static TestServer* server_;
};
TestServer* ProtocolFaultTest::server_ = nullptr;

TEST_F(ProtocolFaultTest, RandomGarbageBytes) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 5; ++round) {
    RawConn conn(server_->socket());
    std::vector<uint8_t> garbage(4096 + round * 1000);
    for (auto& b : garbage) b = static_cast<uint8_t>(rng());
    garbage[7] |= 0x80;  // the "length" is far beyond the limit
    conn.SendRaw(garbage.data(), garbage.size());
    json reply;
    auto o = conn.Recv(&reply);
    ASSERT_NE(o, RawConn::Outcome::kTimeout) << "the server neither replied nor closed";
    if (o == RawConn::Outcome::kReply) {
      EXPECT_TRUE(IsError(reply, 4)) << reply.dump();
    }
    EXPECT_TRUE(conn.ClosedByPeer());
  }
  // Garbage inside a well-formed frame: an Invalid reply, and the session goes on.
  RawConn conn(server_->socket());
  std::string garbage(300, '\0');
  for (auto& c : garbage) c = static_cast<char>(rng());
  ASSERT_TRUE(conn.SendText(garbage));
  json reply;
  ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsError(reply, kInvalid));
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
}

TEST_F(ProtocolFaultTest, HugeLengthHeaderClosesTheConnection) {
  for (uint64_t len : {uint64_t{1} << 60, ~uint64_t{0}, (uint64_t{256} << 20) + 1}) {
    RawConn conn(server_->socket());
    ASSERT_TRUE(conn.SendLength(len));
    json reply;
    auto o = conn.Recv(&reply);
    ASSERT_NE(o, RawConn::Outcome::kTimeout) << "no reaction to a length of " << len;
    if (o == RawConn::Outcome::kReply) {
      EXPECT_TRUE(IsError(reply, 4));
      EXPECT_NE(reply["message"].get<std::string>().find("exceeds"), std::string::npos)
          << reply.dump();
    }
    EXPECT_TRUE(conn.ClosedByPeer());
  }
  // Also after a successful register.
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  ASSERT_TRUE(conn.SendLength(uint64_t{1} << 60));
  EXPECT_TRUE(conn.ClosedByPeer());
}

TEST_F(ProtocolFaultTest, InvalidJsonKeepsTheConnection) {
  RawConn conn(server_->socket());
  for (const char* text : {"{not json", "", "{\"type\": \"register_request\"", "\xff\xfe\xfd",
                           "{\"type\": \"get_name_request\", \"name\": \"\xff\"}",
                           "{\"a\":1}trailing", "{\"type\":\"register_request\"}{}"}) {
    ASSERT_TRUE(conn.SendText(text));
    json reply;
    ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply) << text;
    EXPECT_TRUE(IsError(reply, kInvalid)) << text;
  }
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  ASSERT_TRUE(conn.SendText("[[[["));
  json reply;
  ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsError(reply, kInvalid));
  EXPECT_TRUE(IsReply(conn.Call(WriteTypeOnly(req::kInstanceStatus)), "instance_status_reply"));
}

TEST_F(ProtocolFaultTest, DeeplyNestedJson) {
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  const size_t depth = 200000;
  std::string arrays = std::string(depth, '[') + std::string(depth, ']');
  ASSERT_TRUE(conn.SendText(arrays));
  json reply;
  ASSERT_EQ(conn.Recv(&reply, 20000), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsError(reply, kInvalid));
  std::string nested_id = "{\"type\": \"get_data_request\", \"id\": " + arrays + "}";
  ASSERT_TRUE(conn.SendText(nested_id));
  ASSERT_EQ(conn.Recv(&reply, 20000), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsError(reply, kInvalid));
  std::string objects;
  for (size_t i = 0; i < depth; ++i) objects += "{\"a\":";
  objects += "1" + std::string(depth, '}');
  std::string tree = "{\"type\": \"create_data_request\", \"content\": " + objects + "}";
  ASSERT_TRUE(conn.SendText(tree));
  ASSERT_EQ(conn.Recv(&reply, 20000), RawConn::Outcome::kReply);
  EXPECT_TRUE(reply.contains("code") && reply["code"] != 0) << reply.dump().substr(0, 300);
  EXPECT_TRUE(IsReply(conn.Call(WriteTypeOnly(req::kInstanceStatus)), "instance_status_reply"));
}

TEST_F(ProtocolFaultTest, JsonThatIsNotAnObject) {
  RawConn conn(server_->socket());
  for (const char* text : {"[1, 2, 3]", "42", "\"register_request\"", "null", "true", "[]",
                           "[{\"type\": \"register_request\"}]"}) {
    ASSERT_TRUE(conn.SendText(text));
    json reply;
    ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply) << text;
    EXPECT_TRUE(IsError(reply, kInvalid)) << text;
  }
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
}

TEST_F(ProtocolFaultTest, RequestWithoutAType) {
  RawConn conn(server_->socket());
  for (const json& request :
       {json::object(), json{{"size", 10}}, json{{"type", 5}}, json{{"type", nullptr}},
        json{{"type", json::array({"register_request"})}}, json{{"Type", "register_request"}}}) {
    EXPECT_TRUE(IsError(conn.Call(request), kInvalid)) << request.dump();
  }
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  EXPECT_TRUE(IsError(conn.Call(json{{"object_id", 1}}), kInvalid));
}

TEST_F(ProtocolFaultTest, UnknownRequestType) {
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  for (const std::string& type :
       std::vector<std::string>{"frobnicate_request", "", "REGISTER_REQUEST", "get_data_reply",
                                std::string(10000, 'x')}) {
    json reply = conn.Call(json{{"type", type}});
    EXPECT_TRUE(IsError(reply, kNotImplemented)) << type.substr(0, 40);
    EXPECT_LT(reply.dump().size(), 1000u) << "the message should not echo a huge type";
  }
  EXPECT_TRUE(IsReply(conn.Call(WriteTypeOnly(req::kInstanceStatus)), "instance_status_reply"));
}

TEST_F(ProtocolFaultTest, RequestsBeforeRegister) {
  RawConn conn(server_->socket());
  for (const json& request :
       {WriteGetDataRequest(GetDataRequest{{1}, false, false}), WriteCreateBufferRequest(1024),
        WriteTypeOnly(req::kInstanceStatus), WriteTypeOnly(req::kClear),
        WritePutNameRequest(1, "x"), WriteSealRequest(kEmptyBlobID | 1)}) {
    json reply = conn.Call(request);
    EXPECT_TRUE(IsError(reply, kInvalid)) << request.dump();
    if (reply.contains("message")) {
      EXPECT_NE(reply["message"].get<std::string>().find("register_request"), std::string::npos)
          << reply.dump();
    }
  }
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  EXPECT_TRUE(IsReply(conn.Call(WriteTypeOnly(req::kInstanceStatus)), "instance_status_reply"));
}

TEST_F(ProtocolFaultTest, MalformedIds) {
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  const std::vector<json> bad = {json("oXYZ"), json("o"),   json(""),        json("o-1"),
                                 json("o 12"), json(1.5),   json(-0.5),      json(1e300),
                                 json{{"id", 1}}, json(true), json::array({json::array({1})}),
                                 json("o0x12"), json("o123456789abcdef01")};
  for (const json& id : bad) {
    SCOPED_TRACE(id.dump());
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetData}, {"id", json::array({id})}}),
                        kInvalid));
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetData}, {"id", id}}), kInvalid));
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kSeal}, {"object_id", id}}), kInvalid));
    EXPECT_TRUE(
        IsError(conn.Call(json{{"type", req::kGetBuffers}, {"ids", json::array({id})}}),
                kInvalid));
    EXPECT_TRUE(
        IsError(conn.Call(json{{"type", req::kGetBuffers}, {"num", 1}, {"0", id}}), kInvalid));
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kDelData}, {"id", json::array({id})}}),
                        kInvalid));
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kExists}, {"id", id}}), kInvalid));
  }
  // Missing ids.
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetData}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kSeal}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetBuffers}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetBuffers}, {"num", 2}, {"0", 1}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetBuffers}, {"num", -1}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetBuffers}, {"num", 1e12}}), kInvalid));
  // Negative integers are ids with the top bit set (encoders with signed 64-bit
  // ids, e.g. Java's long, send them so): unknown ones do not exist.
  // (-1 is 0xffff...: get_data answers it with a blob standing for the whole
  // store, which the published client's sync_meta() expects.)
  for (int64_t negative : {int64_t{-1}, int64_t{-5}, INT64_MIN + 1}) {
    if (negative != -1) {
      EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetData}, {"id", {negative}}}),
                          kObjectNotExists));
    }
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kSeal}, {"object_id", negative}}),
                        kObjectNotExists));
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetBuffers}, {"ids", {negative}}}),
                        kObjectNotExists));
  }
  EXPECT_TRUE(IsReply(conn.Call(WriteTypeOnly(req::kInstanceStatus)), "instance_status_reply"));
}

TEST_F(ProtocolFaultTest, UnknownIds) {
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  const ObjectID object = 0x0000123456789abcULL, blob = 0x8000123456789abcULL;
  for (ObjectID id : {object, blob}) {
    SCOPED_TRACE(ObjectIDToString(id));
    EXPECT_TRUE(IsError(conn.Call(WriteGetDataRequest(GetDataRequest{{id}, false, false})),
                        kObjectNotExists));
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetData}, {"id", ObjectIDToString(id)}}),
                        kObjectNotExists));
    EXPECT_TRUE(IsError(conn.Call(WriteSealRequest(id)), kObjectNotExists));
    EXPECT_TRUE(IsError(conn.Call(WriteGetBuffersRequest(GetBuffersRequest{{id}, false})),
                        kObjectNotExists));
    EXPECT_TRUE(IsError(conn.Call(WriteGetBuffersRequest(GetBuffersRequest{{id}, true})),
                        kObjectNotExists));
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetBuffers}, {"num", 1}, {"0", id}}),
                        kObjectNotExists));
    if (!IsBlob(id)) {
      EXPECT_TRUE(IsError(conn.Call(WritePutNameRequest(id, "unknown-id")), kObjectNotExists));
    } else {
      EXPECT_TRUE(IsError(conn.Call(WritePutNameRequest(id, "unknown-id")), kInvalid));
    }
  }
  // The empty blob always exists; one unknown id among known ones fails the request.
  json ok = conn.Call(WriteGetBuffersRequest(GetBuffersRequest{{kEmptyBlobID}, false}));
  EXPECT_TRUE(IsReply(ok, "get_buffers_reply"));
  EXPECT_TRUE(IsError(conn.Call(WriteGetBuffersRequest(GetBuffersRequest{{kEmptyBlobID, blob},
                                                                          false})),
                      kObjectNotExists));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetName}, {"name", "no-such-name"}}),
                      kObjectNotExists))
      << "an unknown name (vineyard answers ObjectNotExists too)";
}

TEST_F(ProtocolFaultTest, CreateBufferBeyondTheLimit) {
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  const uint64_t limit = 64ULL << 20;
  for (uint64_t size : {limit + 1, limit * 2, uint64_t{1} << 40, uint64_t{1} << 63,
                        ~uint64_t{0}}) {
    json reply = conn.Call(WriteCreateBufferRequest(size));
    EXPECT_TRUE(IsError(reply, kNotEnoughMemory)) << size;
    EXPECT_TRUE(IsError(conn.Call(WriteCreateBuffersRequest({1024, size})), kNotEnoughMemory))
        << size;
  }
  // Smaller requests still succeed, up to the limit, and nothing leaked. A blob
  // is charged its allocator size class plus a little bookkeeping, so these
  // sizes are size classes (1, 16 and 32 MiB).
  json small = conn.Call(WriteCreateBufferRequest(1 << 20));
  ASSERT_TRUE(IsReply(small, "create_buffer_reply"));
  json half = conn.Call(WriteCreateBufferRequest(limit / 2));
  ASSERT_TRUE(IsReply(half, "create_buffer_reply"));
  EXPECT_TRUE(IsError(conn.Call(WriteCreateBufferRequest(limit / 2)), kNotEnoughMemory));
  json rest = conn.Call(WriteCreateBufferRequest(limit / 4));
  EXPECT_TRUE(IsReply(rest, "create_buffer_reply"));
  EXPECT_TRUE(IsError(conn.Call(WriteCreateBufferRequest(limit / 4)), kNotEnoughMemory));
  // Dropping one makes room again.
  EXPECT_TRUE(IsReply(conn.Call(WriteDropBufferRequest(half["id"].get<ObjectID>())),
                      "drop_buffer_reply"));
  EXPECT_TRUE(IsReply(conn.Call(WriteCreateBufferRequest(limit / 4)), "create_buffer_reply"));
  conn.Close();

  // Through the C++ client too; the dead connection's blobs are gone.
  auto client = server_->Connect();
  ASSERT_NE(client, nullptr);
  auto too_big = client->CreateBlob(limit + 4096);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), StatusCode::kNotEnoughMemory) << too_big.status();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto st = client->GetInstanceStatus();
    ASSERT_TRUE(st.ok());
    if (st->memory_usage == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto fits = client->CreateBlob(limit / 8 * 7);  // the largest size class below the limit
  EXPECT_TRUE(fits.ok()) << fits.status();
}

TEST_F(ProtocolFaultTest, WrongFieldTypes) {
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  for (const json& size : {json("1024"), json(-1), json(true), json::array({1}),
                           json{{"n", 1}}, json(nullptr)}) {
    EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kCreateBuffer}, {"size", size}}), kInvalid))
        << size.dump();
  }
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kCreateBuffer}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kCreateBuffers}, {"num", 1},
                                     {"sizes", {"1"}}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kCreateBuffers}, {"num", 3},
                                     {"sizes", {1}}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetName}, {"name", 5}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kGetName}, {"name", "n"}, {"wait", "yes"}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kCreateData}, {"content", "not a tree"}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kListData}, {"limit", "5"}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kListData}, {"limit", -5}}), kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kDelData}, {"id", {1}}, {"force", "yes"}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kShrinkBuffer}, {"id", kEmptyBlobID | 1},
                                     {"size", "1"}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kRegister}, {"session_id", "abc"}}),
                      kInvalid));
  EXPECT_TRUE(IsError(conn.Call(json{{"type", req::kLabel}, {"id", 1}, {"keys", {"k"}},
                                     {"values", {1}}}),
                      kInvalid));
  // Metadata trees with bad standard fields: a clear error, never a crash.
  for (const json& tree :
       {json{{"typename", 5}, {"instance_id", 0}}, json{{"instance_id", 0}},
        json{{"typename", "t"}, {"instance_id", "zero"}},
        json{{"typename", "t"}, {"instance_id", 0}, {"m", {{"id", "oXYZ"}}}},
        json{{"typename", "t"}, {"instance_id", 0}, {"m", {{"typename", "x"}, {"id", 7}}}},
        json{{"typename", "vineyard::Blob"}, {"instance_id", 0}}}) {
    json reply = conn.Call(json{{"type", req::kCreateData}, {"content", tree}});
    EXPECT_TRUE(reply.contains("code") && reply["code"].is_number_integer() &&
                reply["code"] != 0)
        << tree.dump() << " -> " << reply.dump();
  }
  EXPECT_TRUE(IsReply(conn.Call(WriteTypeOnly(req::kInstanceStatus)), "instance_status_reply"));
}

TEST_F(ProtocolFaultTest, HalfAFrameThenClose) {
  {
    RawConn conn(server_->socket());
    ASSERT_TRUE(conn.SendLength(100));
    ASSERT_TRUE(conn.SendRaw("{\"type\": \"re", 12));
  }
  {
    RawConn conn(server_->socket());
    ASSERT_TRUE(conn.SendRaw("\x10\x00\x00", 3));  // half a length header
  }
  {
    RawConn conn(server_->socket());
    EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
    ASSERT_TRUE(conn.SendLength(1 << 20));
    std::string part(1000, ' ');
    ASSERT_TRUE(conn.SendRaw(part.data(), part.size()));
    ::shutdown(conn.fd(), SHUT_WR);  // half-closed: the server must notice
    EXPECT_TRUE(conn.ClosedByPeer());
  }
  // A client that closes while the server writes a large reply.
  {
    RawConn conn(server_->socket());
    EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
    for (int i = 0; i < 50; ++i) conn.SendJson(WriteTypeOnly(req::kInstanceStatus));
  }
  RawConn check(server_->socket());
  EXPECT_TRUE(IsReply(check.Register(), "register_reply"));
}

TEST_F(ProtocolFaultTest, FrameSplitIntoOneByteWrites) {
  RawConn conn(server_->socket());
  auto send_slowly = [&](const json& request) {
    std::string text = request.dump();
    uint64_t len = text.size();
    std::string frame(reinterpret_cast<const char*>(&len), sizeof(len));
    frame += text;
    for (size_t i = 0; i < frame.size(); ++i) {
      ASSERT_TRUE(conn.SendRaw(&frame[i], 1));
      if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  };
  RegisterRequest r;
  r.version = kProtocolVersion;
  send_slowly(WriteRegisterRequest(r));
  json reply;
  ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsReply(reply, "register_reply"));
  send_slowly(WriteCreateBufferRequest(1000));
  ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsReply(reply, "create_buffer_reply"));
  // Two frames in one write are two requests.
  std::string two;
  for (const json& request : {WriteTypeOnly(req::kInstanceStatus), WriteTypeOnly(req::kClusterMeta)}) {
    std::string text = request.dump();
    uint64_t len = text.size();
    two.append(reinterpret_cast<const char*>(&len), sizeof(len));
    two += text;
  }
  ASSERT_TRUE(conn.SendRaw(two.data(), two.size()));
  ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsReply(reply, "instance_status_reply"));
  ASSERT_EQ(conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsReply(reply, "cluster_meta"));
}

TEST_F(ProtocolFaultTest, ExitRequestClosesWithoutReply) {
  RawConn conn(server_->socket());
  EXPECT_TRUE(IsReply(conn.Register(), "register_reply"));
  ASSERT_TRUE(conn.SendJson(WriteExitRequest()));
  EXPECT_TRUE(conn.ClosedByPeer());
}

TEST_F(ProtocolFaultTest, ManyBadConnectionsAtOnce) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 20; ++i) {
        RawConn conn(server_->socket());
        std::string bytes(1 + rng() % 64, '\0');
        for (auto& c : bytes) c = static_cast<char>(rng());
        if (i % 2 == 0) {
          conn.SendText(bytes);  // a frame of garbage
        } else {
          conn.SendRaw(bytes.data(), bytes.size());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  auto client = server_->Connect();
  ASSERT_NE(client, nullptr);
  for (int attempt = 0; attempt < 250; ++attempt) {
    auto st = client->GetInstanceStatus();
    ASSERT_TRUE(st.ok());
    if (st->ipc_connections == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto st = client->GetInstanceStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->ipc_connections, 1u);
}

}  // namespace
}  // namespace vineyard
