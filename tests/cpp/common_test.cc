// Unit tests of cpp/common: id text forms and parsing, memory sizes, Status
// codes and names, and the protocol's Read* functions on malformed fields.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/ids.h"
#include "common/protocol.h"
#include "common/socket_io.h"
#include "common/status.h"

namespace vineyard {
namespace {

template <typename T>
StatusCode CodeOf(const Result<T>& r) {
  return r.status().code();
}
StatusCode CodeOf(const Status& s) { return s.code(); }

// --- ids ------------------------------------------------------------------------

TEST(IdsTest, TextForms) {
  EXPECT_EQ(ObjectIDToString(0x1234), "o0000000000001234");
  EXPECT_EQ(ObjectIDToString(kEmptyBlobID), "o8000000000000000");
  EXPECT_EQ(ObjectIDToString(0xFFFFFFFFFFFFFFFFULL), "offffffffffffffff");
  EXPECT_EQ(SignatureToString(0xabcdef), "s0000000000abcdef");
  EXPECT_EQ(SessionIDToString(1), "S0000000000000001");
  EXPECT_EQ(SessionIDToString(-1), "Sffffffffffffffff");
  EXPECT_EQ(ObjectIDToString(0).size(), 17u);
}

TEST(IdsTest, BlobBit) {
  EXPECT_TRUE(IsBlob(kEmptyBlobID));
  EXPECT_TRUE(IsEmptyBlob(kEmptyBlobID));
  EXPECT_TRUE(IsBlob(0x8000000000001234ULL));
  EXPECT_FALSE(IsEmptyBlob(0x8000000000001234ULL));
  EXPECT_FALSE(IsBlob(0x7FFFFFFFFFFFFFFFULL));
  EXPECT_FALSE(IsBlob(0));
}

TEST(IdsTest, ParseRoundTrip) {
  for (ObjectID id : {uint64_t{0}, uint64_t{1}, uint64_t{0x1234}, kEmptyBlobID,
                      uint64_t{0x7FFFFFFFFFFFFFFFULL}, uint64_t{0xFFFFFFFFFFFFFFFFULL},
                      uint64_t{0x8123456789abcdefULL}}) {
    auto parsed = ObjectIDFromString(ObjectIDToString(id));
    ASSERT_TRUE(parsed.ok()) << ObjectIDToString(id) << ": " << parsed.status();
    EXPECT_EQ(*parsed, id);
  }
  // Signatures parse too; bare decimal digits are accepted (some clients send them).
  auto sig = ObjectIDFromString("s00000000000000ff");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(*sig, 0xffu);
  auto dec = ObjectIDFromString("1234");
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(*dec, 1234u);
  auto upper = ObjectIDFromString("o00000000000000AB");
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(*upper, 0xABu);
}

TEST(IdsTest, ParseRejectsMalformed) {
  const std::vector<std::string> bad = {
      "",         "o",           "s",          "oXYZ",        "o12g4",
      "o-1",      "o+1",         "-1",         "+1",          "o 12",
      " 12",      "o\t12",       "12 ",        "o12 ",        "o0x1f",
      "0x1f",     "x1234",       "O1234",      "12abc",       "1.5",
      "o1.5",     "1e3",         "o\n1",
      "o123456789abcdef01",                    // 17 hex digits: does not fit 64 bits
      "99999999999999999999",                  // decimal overflow
      "o00000000000000000000000",              // too long
      std::string("o12\0" "34", 5),            // embedded NUL
  };
  for (const auto& text : bad) {
    auto r = ObjectIDFromString(text);
    EXPECT_FALSE(r.ok()) << "accepted '" << text << "' as " << (r.ok() ? *r : 0);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalid) << text;
      EXPECT_NE(r.status().message().find("malformed object id"), std::string::npos);
    }
  }
}

TEST(IdsTest, GeneratorIdsAreUniqueOrderedAndTagged) {
  IdGenerator gen(5);
  std::set<ObjectID> seen;
  ObjectID last = 0;
  for (int i = 0; i < 20000; ++i) {
    ObjectID o = gen.NextObjectID();
    EXPECT_FALSE(IsBlob(o));
    EXPECT_EQ((o >> 12) & 0x3FF, 5u);
    EXPECT_GT(o, last);
    last = o;
    EXPECT_TRUE(seen.insert(o).second);
  }
  ObjectID b = gen.NextBlobID();
  EXPECT_TRUE(IsBlob(b));
  EXPECT_FALSE(IsEmptyBlob(b));
  EXPECT_TRUE(seen.insert(b & ~kBlobBit).second);
  EXPECT_FALSE(IsBlob(gen.NextSignature()));
}

// --- memory sizes -----------------------------------------------------------------

TEST(MemorySizeTest, Parses) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"0", 0},
      {"1024", 1024},
      {"256Mi", 256ULL << 20},
      {"256mi", 256ULL << 20},
      {"256MiB", 256ULL << 20},
      {"4G", 4000000000ULL},
      {"4GB", 4000000000ULL},
      {"4Gi", 4ULL << 30},
      {"1.5Gi", 3ULL << 29},
      {"1k", 1000},
      {"1Ki", 1024},
      {"2T", 2000000000000ULL},
      {"1Ti", 1ULL << 40},
      {"512B", 512},
  };
  for (const auto& c : cases) {
    auto r = ParseMemorySize(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.status();
    EXPECT_EQ(*r, c.bytes) << c.text;
  }
}

TEST(MemorySizeTest, RejectsBadInput) {
  const std::vector<std::string> bad = {
      "",      "garbage", "Mi",    "-1",     "-1Gi",   "1Xi",    "1Mx",     "1MiB2",
      "1 2",   "1..5G",   "1.2.3", ".",      "1e3",    "0x10",   "1Pi",     "1GiGi",
      "Gi1",   "1Gii",    "+5",    "1,5G",   "99999999999T",    "1e400",
      "18446744073709551616",
  };
  for (const auto& text : bad) {
    auto r = ParseMemorySize(text);
    EXPECT_FALSE(r.ok()) << "accepted '" << text << "' as " << (r.ok() ? *r : 0);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalid) << text;
      EXPECT_NE(r.status().message().find("invalid memory size"), std::string::npos);
    }
  }
}

TEST(MemorySizeTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(1ULL << 30), "1.00 GiB");
  EXPECT_EQ(FormatBytes(3ULL << 40), "3.00 TiB");
}

// --- Status -----------------------------------------------------------------------

TEST(StatusTest, CodesAndNamesMatchTheProtocol) {
  const std::vector<std::pair<int, std::string>> table = {
      {1, "Invalid"},          {2, "KeyError"},           {3, "TypeError"},
      {4, "IOError"},          {5, "EndOfFile"},          {6, "NotImplemented"},
      {7, "AssertionFailed"},  {8, "UserInputError"},     {11, "ObjectExists"},
      {12, "ObjectNotExists"}, {13, "ObjectSealed"},      {14, "ObjectNotSealed"},
      {15, "ObjectIsBlob"},    {16, "ObjectTypeError"},   {17, "ObjectSpilled"},
      {18, "ObjectNotSpilled"}, {21, "MetaTreeInvalid"},  {22, "MetaTreeTypeInvalid"},
      {23, "MetaTreeTypeNotExists"}, {24, "MetaTreeNameInvalid"},
      {25, "MetaTreeNameNotExists"}, {26, "MetaTreeLinkInvalid"},
      {27, "MetaTreeSubtreeNotExists"}, {31, "VineyardServerNotReady"},
      {32, "ArrowError"},      {33, "ConnectionFailed"},  {34, "ConnectionError"},
      {35, "EtcdError"},       {36, "AlreadyStopped"},    {37, "RedisError"},
      {41, "NotEnoughMemory"}, {42, "StreamDrained"},     {43, "StreamFailed"},
      {44, "InvalidStreamState"}, {45, "StreamOpened"},   {51, "GlobalObjectInvalid"},
      {255, "UnknownError"},
  };
  for (const auto& [code, name] : table) {
    StatusCode c = StatusCodeFromInt(code);
    EXPECT_EQ(static_cast<int>(c), code) << name;
    EXPECT_EQ(StatusCodeName(c), name) << code;
  }
  EXPECT_EQ(static_cast<int>(StatusCode::kObjectNotExists), 12);
  EXPECT_EQ(static_cast<int>(StatusCode::kNotEnoughMemory), 41);
  EXPECT_EQ(static_cast<int>(StatusCode::kNotImplemented), 6);
}

TEST(StatusTest, UnknownIntegersMapToUnknownError) {
  for (int code : {-1, 9, 10, 19, 20, 28, 30, 38, 40, 46, 50, 52, 100, 254, 256, 100000}) {
    EXPECT_EQ(StatusCodeFromInt(code), StatusCode::kUnknownError) << code;
  }
  EXPECT_EQ(StatusCodeName(static_cast<StatusCode>(99)), std::string("UnknownError"));
}

TEST(StatusTest, Basics) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.code(), StatusCode::kOK);
  EXPECT_EQ(ok.message(), "");
  EXPECT_EQ(ok.ToString(), "OK");
  EXPECT_TRUE(Status(StatusCode::kOK, "ignored").ok());

  Status st = Status::ObjectNotExists("object ", 42, " is gone");
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(st.IsObjectNotExists());
  EXPECT_FALSE(st.IsInvalid());
  EXPECT_EQ(st.message(), "object 42 is gone");
  EXPECT_EQ(st.ToString(), "ObjectNotExists: object 42 is gone");

  Status copy = st;
  EXPECT_EQ(copy.ToString(), st.ToString());
  Status ctx = st.WithContext("get");
  EXPECT_EQ(ctx.code(), StatusCode::kObjectNotExists);
  EXPECT_EQ(ctx.message(), "get: object 42 is gone");
  EXPECT_TRUE(Status::OK().WithContext("x").ok());

  Status moved = std::move(copy);
  EXPECT_TRUE(moved.IsObjectNotExists());
  copy = moved;  // assign after move
  EXPECT_TRUE(copy.IsObjectNotExists());
}

// --- protocol: framing-level helpers ------------------------------------------------

TEST(ProtocolTest, ParseMessageRejectsNonObjects) {
  for (const char* text : {"", "not json", "{", "{\"type\":", "[1,2]", "42", "\"str\"", "null",
                           "true", "{} {}", "{\"a\":1}x"}) {
    auto r = ParseMessage(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(CodeOf(r), StatusCode::kInvalid) << text;
  }
  EXPECT_TRUE(ParseMessage("{}").ok());
  EXPECT_TRUE(ParseMessage(" {\"type\": \"x\"} ").ok());
  // Invalid UTF-8 inside a string.
  EXPECT_EQ(CodeOf(ParseMessage("{\"type\": \"\xff\xfe\"}")), StatusCode::kInvalid);
}

TEST(ProtocolTest, ParseMessageRefusesDeepNesting) {
  std::string deep = "{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}";
  auto r = ParseMessage(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
  EXPECT_NE(r.status().message().find("nested"), std::string::npos) << r.status();
  // Moderate nesting is fine, and brackets inside strings do not count.
  std::string ok = "{\"a\":" + std::string(100, '[') + std::string(100, ']') +
                   ", \"s\": \"" + std::string(5000, '[') + "\\\"{{\"}";
  auto parsed = ParseMessage(ok);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["s"].get<std::string>().size(), 5003u);
}

TEST(ProtocolTest, MessageType) {
  EXPECT_EQ(CodeOf(ReadMessageType(json::object())), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadMessageType(json{{"type", 5}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadMessageType(json{{"type", nullptr}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadMessageType(json{{"type", json::array()}})), StatusCode::kInvalid);
  auto t = ReadMessageType(json{{"type", "x_request"}});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "x_request");
}

TEST(ProtocolTest, ErrorReplyRoundTrip) {
  json reply = WriteErrorReply(Status::ObjectNotExists("no such object"));
  EXPECT_EQ(reply["code"], 12);
  EXPECT_EQ(reply["message"], "no such object");
  EXPECT_FALSE(reply.contains("type"));
  Status st = CheckReply(reply, "get_data_reply");
  EXPECT_TRUE(st.IsObjectNotExists());
  EXPECT_EQ(st.message(), "no such object");
  // Unknown codes survive as UnknownError.
  EXPECT_EQ(CheckReply(json{{"code", 77}, {"message", "?"}}).code(), StatusCode::kUnknownError);
  // Not an error, but the wrong type.
  EXPECT_EQ(CheckReply(json{{"type", "seal_reply"}}, "get_data_reply").code(),
            StatusCode::kInvalid);
  EXPECT_EQ(CheckReply(json::object(), "get_data_reply").code(), StatusCode::kInvalid);
  EXPECT_TRUE(CheckReply(json{{"type", "seal_reply"}}, "seal_reply").ok());
  EXPECT_TRUE(CheckReply(json{{"code", 0}, {"type", "seal_reply"}}, "seal_reply").ok());
  EXPECT_TRUE(CheckReply(json{{"type", "seal_reply"}}).ok());
}

// --- protocol: Read* on malformed fields ----------------------------------------------

TEST(ProtocolTest, CreateBufferSize) {
  auto ok = ReadCreateBufferRequest(WriteCreateBufferRequest(4096));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 4096u);
  for (const json& size : {json("100"), json(-1), json(true), json::array(), json::object(),
                           json(nullptr)}) {
    json j = {{"type", req::kCreateBuffer}, {"size", size}};
    EXPECT_EQ(CodeOf(ReadCreateBufferRequest(j)), StatusCode::kInvalid) << j.dump();
  }
  EXPECT_EQ(CodeOf(ReadCreateBufferRequest(json{{"type", req::kCreateBuffer}})),
            StatusCode::kInvalid);
  // Sizes of 2^63 and more are unsigned numbers, not negative ones.
  for (uint64_t big : {uint64_t{1} << 63, ~uint64_t{0}}) {
    auto r = ReadCreateBufferRequest(json::parse("{\"size\": " + std::to_string(big) + "}"));
    ASSERT_TRUE(r.ok()) << big << ": " << r.status();
    EXPECT_EQ(*r, big);
  }
}

TEST(ProtocolTest, CreateBuffersSizes) {
  auto ok = ReadCreateBuffersRequest(WriteCreateBuffersRequest({1, 2, 3}));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(CodeOf(ReadCreateBuffersRequest(json{{"num", 2}, {"sizes", {1}}})),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadCreateBuffersRequest(json{{"sizes", {1, "2"}}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadCreateBuffersRequest(json{{"sizes", 5}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadCreateBuffersRequest(json{{"num", 1}})), StatusCode::kInvalid);
}

TEST(ProtocolTest, IdFields) {
  auto ok = ReadSealRequest(WriteSealRequest(0x8000000000000042ULL));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 0x8000000000000042ULL);
  auto text = ReadSealRequest(json{{"object_id", "o8000000000000042"}});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, 0x8000000000000042ULL);
  for (const json& id : {json("oXYZ"), json("o"), json(""), json(1.5), json(1e30),
                         json{{"a", 1}}, json(true), json::array({1}), json(nullptr)}) {
    EXPECT_EQ(CodeOf(ReadSealRequest(json{{"object_id", id}})), StatusCode::kInvalid)
        << id.dump();
    EXPECT_EQ(CodeOf(ReadIdRequest(json{{"id", id}})), StatusCode::kInvalid) << id.dump();
  }
  EXPECT_EQ(CodeOf(ReadSealRequest(json::object())), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadReleaseRequest(json{{"object_id", "o-12"}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadDropBufferRequest(json{{"id", {{"nested", {1, 2}}}}})),
            StatusCode::kInvalid);
}

TEST(ProtocolTest, GetDataIds) {
  GetDataRequest r;
  r.ids = {1, 2};
  r.wait = true;
  auto ok = ReadGetDataRequest(WriteGetDataRequest(r));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->ids, r.ids);
  EXPECT_TRUE(ok->wait);
  // A single id is a list of one.
  auto one = ReadGetDataRequest(json{{"id", 7}});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->ids, std::vector<ObjectID>{7});
  for (const json& ids : {json::array({1, "oXYZ"}), json::array({json{{"x", 1}}}),
                          json::array({1.25}), json::array({json::array({1})}), json("oXYZ"),
                          json(nullptr)}) {
    EXPECT_EQ(CodeOf(ReadGetDataRequest(json{{"id", ids}})), StatusCode::kInvalid)
        << ids.dump();
  }
  EXPECT_EQ(CodeOf(ReadGetDataRequest(json::object())), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetDataRequest(json{{"id", {1}}, {"wait", "yes"}})),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetDataRequest(json{{"id", {1}}, {"sync_remote", json::array()}})),
            StatusCode::kInvalid);
}

TEST(ProtocolTest, GetBuffersIds) {
  GetBuffersRequest r;
  r.ids = {kEmptyBlobID, 0x8000000000000001ULL};
  auto ok = ReadGetBuffersRequest(WriteGetBuffersRequest(r));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->ids, r.ids);
  // The published client's form: {"num": n, "0": id, ...}.
  auto numbered = ReadGetBuffersRequest(json{{"num", 2}, {"0", 5}, {"1", "o0000000000000006"}});
  ASSERT_TRUE(numbered.ok());
  EXPECT_EQ(numbered->ids, (std::vector<ObjectID>{5, 6}));
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json{{"num", 2}, {"0", 5}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json{{"num", -1}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json{{"num", "1"}, {"0", 5}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json{{"num", 1000000000}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json{{"num", 1}, {"0", "oXYZ"}})),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json{{"ids", {1, 2.5}}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json{{"ids", {1}}, {"unsafe", "no"}})),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersRequest(json::object())), StatusCode::kInvalid);
}

TEST(ProtocolTest, OtherRequests) {
  EXPECT_EQ(CodeOf(ReadCreateDataRequest(json{{"content", "tree"}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadCreateDataRequest(json::object())), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadCreateDatasRequest(json{{"contents", {1, 2}}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadCreateDatasRequest(json{{"contents", json::object()}})),
            StatusCode::kInvalid);

  std::string name;
  bool wait = false;
  EXPECT_EQ(CodeOf(ReadGetNameRequest(json{{"name", 5}}, &name, &wait)), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetNameRequest(json{{"name", "n"}, {"wait", "yes"}}, &name, &wait)),
            StatusCode::kInvalid);
  EXPECT_TRUE(ReadGetNameRequest(json{{"name", "n"}, {"wait", 1}}, &name, &wait).ok());
  EXPECT_TRUE(wait);
  ObjectID id;
  EXPECT_EQ(CodeOf(ReadPutNameRequest(json{{"object_id", 1}, {"name", json::array()}}, &id,
                                      &name)),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadDropNameRequest(json::object())), StatusCode::kInvalid);

  EXPECT_EQ(CodeOf(ReadListDataRequest(json{{"limit", -5}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadListDataRequest(json{{"limit", "5"}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadListDataRequest(json{{"pattern", 3}})), StatusCode::kInvalid);
  auto q = ReadListNameRequest(json::object());
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->pattern, "*");

  EXPECT_EQ(CodeOf(ReadDeleteRequest(json{{"id", {1}}, {"force", "true"}})),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadDeleteRequest(json{{"id", {"oXYZ"}}})), StatusCode::kInvalid);

  uint64_t size;
  EXPECT_EQ(CodeOf(ReadShrinkBufferRequest(json{{"id", 1}, {"size", "1"}}, &id, &size)),
            StatusCode::kInvalid);
  json extra;
  EXPECT_EQ(CodeOf(ReadShallowCopyRequest(json{{"id", 1}, {"extra", 5}}, &id, &extra)),
            StatusCode::kInvalid);
  std::vector<std::string> keys, values;
  EXPECT_EQ(CodeOf(ReadLabelRequest(json{{"id", 1}, {"keys", {"a"}}, {"values", json::array()}},
                                    &id, &keys, &values)),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadIncreaseRefCountRequest(json{{"ids", {json::object()}}})),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadVyPutRequest(json{{"content", 1}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadVyGetRequest(json{{"ids", {"o"}}})), StatusCode::kInvalid);
}

TEST(ProtocolTest, Register) {
  RegisterRequest r;
  r.version = "0.24.2";
  r.session_id = 7;
  auto ok = ReadRegisterRequest(WriteRegisterRequest(r));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->session_id, 7);
  EXPECT_EQ(ok->store_type, "Normal");
  auto plasma = ReadRegisterRequest(json{{"store_type", 2}});
  ASSERT_TRUE(plasma.ok());
  EXPECT_EQ(plasma->store_type, "Plasma");
  EXPECT_EQ(CodeOf(ReadRegisterRequest(json{{"store_type", json::array()}})),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadRegisterRequest(json{{"session_id", "x"}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadRegisterRequest(json{{"version", 24}})), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadRegisterReply(json{{"type", "register_reply"}})), StatusCode::kInvalid);
}

TEST(ProtocolTest, RepliesAndPayloads) {
  Payload p;
  p.object_id = 0x8000000000000007ULL;
  p.store_fd = 9;
  p.data_offset = 4096;
  p.data_size = 100;
  p.map_size = 1 << 20;
  auto back = ReadPayload(WritePayload(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->object_id, p.object_id);
  EXPECT_EQ(back->data_offset, 4096);
  EXPECT_EQ(CodeOf(ReadPayload(json::array())), StatusCode::kInvalid);
  json missing = WritePayload(p);
  missing.erase("store_fd");
  EXPECT_EQ(CodeOf(ReadPayload(missing)), StatusCode::kInvalid);
  json wrong = WritePayload(p);
  wrong["data_size"] = "100";
  EXPECT_EQ(CodeOf(ReadPayload(wrong)), StatusCode::kInvalid);

  std::vector<int> fds;
  EXPECT_EQ(CodeOf(ReadGetBuffersReply(json{{"type", "get_buffers_reply"}}, &fds)),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadGetBuffersReply(
                json{{"type", "get_buffers_reply"}, {"payloads", {1}}, {"fds", json::array()}},
                &fds)),
            StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadCreateDatasReply(json{{"type", "create_datas_reply"}, {"num", 2},
                                             {"ids", {1}}, {"signatures", {1}},
                                             {"instance_ids", {0}}})),
            StatusCode::kInvalid);

  InstanceStatus s;
  s.memory_limit = 100;
  auto st = ReadInstanceStatus(WriteInstanceStatus(s));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->memory_limit, 100u);
  json meta = WriteInstanceStatus(s);
  meta.erase("memory_usage");
  EXPECT_EQ(CodeOf(ReadInstanceStatus(meta)), StatusCode::kInvalid);
  meta = WriteInstanceStatus(s);
  meta["memory_limit"] = -1;
  EXPECT_EQ(CodeOf(ReadInstanceStatus(meta)), StatusCode::kInvalid);
  EXPECT_EQ(CodeOf(ReadMetaReply(json{{"type", "instance_status_reply"}, {"meta", 1}})),
            StatusCode::kInvalid);
  EXPECT_TRUE(
      ReadMetaReply(json{{"code", 12}, {"message", "x"}}).status().IsObjectNotExists());
}

}  // namespace
}  // namespace vineyard
