// Hostile metadata requests against a real vineyardd, written by hand on a UNIX
// socket: patterns that make backtracking matchers explode, trees too deep or
// too wide to expand, fields too large to keep. Each one gets a clear error
// reply (or a fast answer), the server keeps serving other clients meanwhile,
// and it is still alive afterwards.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

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
constexpr int kNotEnoughMemory = 41;


bool MessageHas(const json& reply, const std::string& text) {
  return reply.is_object() && reply.value("message", "").find(text) != std::string::npos;
}

// A registered raw connection that knows the instance id.
struct Session {
  explicit Session(const TestServer& server) : conn(server.socket()) {
    json reply = conn.Register();
    EXPECT_TRUE(IsReply(reply, "register_reply"));
    instance_id = reply.value("instance_id", uint64_t{0});
  }
  json Tree(const std::string& type_name) const {
    return json{{"typename", type_name}, {"instance_id", instance_id}};
  }
  json Create(const json& tree) { return conn.Call(WriteCreateDataRequest(tree)); }
  // Creates the tree and returns its id (0 and a failed test if refused).
  ObjectID MustCreate(const json& tree) {
    json reply = Create(tree);
    EXPECT_TRUE(IsReply(reply, "create_data_reply"));
    return reply.value("id", ObjectID{0});
  }
  json List(const std::string& pattern, bool regex, size_t limit = 10) {
    ListQuery q;
    q.pattern = pattern;
    q.regex = regex;
    q.limit = limit;
    return conn.Call(WriteListDataRequest(q));
  }
  json ListNames(const std::string& pattern, bool regex, size_t limit = 10) {
    ListQuery q;
    q.pattern = pattern;
    q.regex = regex;
    q.limit = limit;
    return conn.Call(WriteListNameRequest(q));
  }
  json Get(ObjectID id) {
    GetDataRequest r;
    r.ids = {id};
    return conn.Call(WriteGetDataRequest(r));
  }
  json Status() { return conn.Call(json{{"type", req::kInstanceStatus}}); }
  uint64_t MetaMemory() {
    json reply = Status();
    EXPECT_TRUE(reply.contains("meta") && reply["meta"].contains("meta_memory_usage"))
        << reply.dump();
    return reply.value("/meta/meta_memory_usage"_json_pointer, uint64_t{0});
  }

  RawConn conn;
  InstanceID instance_id = 0;
};

json MemberRef(ObjectID id) { return json{{"id", id}}; }

// The nesting depth and node count of an expanded tree, without recursion.
void Shape(const json& tree, size_t* depth, size_t* nodes) {
  *depth = 0;
  *nodes = 0;
  std::vector<std::pair<const json*, size_t>> stack{{&tree, 1}};
  while (!stack.empty()) {
    auto [t, d] = stack.back();
    stack.pop_back();
    ++*nodes;
    *depth = std::max(*depth, d);
    for (const auto& [key, value] : t->items()) {
      if (value.is_object()) stack.emplace_back(&value, d + 1);
    }
  }
}

// Sends `request` on `slow` without waiting, then checks that another client is
// answered within `ms`, and returns the reply to `request`.
json CallWhileOthersAreServed(const TestServer& server, RawConn& slow, const json& request,
                              int ms = 2000) {
  EXPECT_TRUE(slow.SendJson(request));
  Session other(server);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(other.conn.SendJson(WriteIdRequest(req::kExists, 1)));
  json reply;
  EXPECT_EQ(other.conn.Recv(&reply, ms), RawConn::Outcome::kReply)
      << "another client got no answer within " << ms << " ms of " << request.dump().substr(0, 80);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count(), ms);
  json slow_reply;
  EXPECT_EQ(slow.Recv(&slow_reply, 10000), RawConn::Outcome::kReply)
      << "no reply to " << request.dump().substr(0, 80);
  return slow_reply;
}

TEST(MetaHardeningTest, EvilPatternsAreMatchedInLinearTime) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  const std::string short_a(28, 'a');
  const std::string long_a(100000, 'a');
  for (const std::string& type_name : {short_a, long_a}) {
    ObjectID id = s.MustCreate(s.Tree(type_name));
    ASSERT_TRUE(IsReply(s.conn.Call(WriteIdRequest(req::kPersist, id)), "persist_reply"));
    ASSERT_TRUE(IsReply(s.conn.Call(WritePutNameRequest(id, type_name)), "put_name_reply"));
  }
  struct Case {
    std::string pattern;
    bool regex;
    size_t matches;
  };
  std::string many_stars;
  for (int i = 0; i < 30; ++i) many_stars += "*a";
  many_stars += "*b";
  const std::vector<Case> cases = {
      {"(a*)*b", true, 0},        // catastrophic backtracking for std::regex
      {"(a|b)*", true, 2},        // deep recursion for std::regex on 100,000 characters
      {"(a+)+$", true, 2},
      {many_stars, false, 0},     // fnmatch backtracks on many '*'
      {"*a*a*a*a*a*a*", false, 2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.pattern);
    ListQuery q;
    q.pattern = c.pattern;
    q.regex = c.regex;
    q.limit = 10;
    json listed = CallWhileOthersAreServed(*server, s.conn, WriteListDataRequest(q));
    ASSERT_TRUE(IsReply(listed, "get_data_reply"));
    EXPECT_EQ(listed["content"].size(), c.matches);
    json names = CallWhileOthersAreServed(*server, s.conn, WriteListNameRequest(q));
    ASSERT_TRUE(IsReply(names, "list_name_reply"));
    EXPECT_EQ(names["names"].size(), c.matches);
  }
  EXPECT_TRUE(server->Running());
}

TEST(MetaHardeningTest, LongAndInvalidPatternsAreRefused) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  s.MustCreate(s.Tree("a"));
  const std::string huge(100000, 'a');
  for (bool regex : {true, false}) {
    json reply = s.List(huge, regex);
    EXPECT_TRUE(IsError(reply, kInvalid));
    EXPECT_TRUE(MessageHas(reply, "4096")) << reply.dump().substr(0, 300);
    reply = s.ListNames(huge, regex);
    EXPECT_TRUE(IsError(reply, kInvalid));
    EXPECT_TRUE(MessageHas(reply, "4096")) << reply.dump().substr(0, 300);
  }
  for (const char* bad : {"(", "a{2,1}", "[z-a]"}) {
    json reply = s.List(bad, true);
    EXPECT_TRUE(IsError(reply, kInvalid)) << bad;
    EXPECT_TRUE(MessageHas(reply, "invalid regular expression")) << reply.dump();
  }
  // The longest pattern allowed still works.
  std::string longest(4096 - 2, 'a');
  EXPECT_TRUE(IsReply(s.List("(" + longest + ")", true), "get_data_reply"));
  EXPECT_TRUE(server->Running());
}

// The glob and regex semantics users rely on survive the change of engine.
TEST(MetaHardeningTest, GlobsAndRegexesMatchWholeTypenames) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  s.MustCreate(s.Tree("vineyard::Tensor<int>"));
  s.MustCreate(s.Tree("vineyard::DataFrame"));
  s.MustCreate(s.Tree("a.b*c"));
  auto count = [&](const std::string& pattern, bool regex) {
    json reply = s.List(pattern, regex);
    EXPECT_TRUE(IsReply(reply, "get_data_reply")) << pattern;
    return reply.value("content", json::object()).size();
  };
  EXPECT_EQ(count("*", false), 3u);
  EXPECT_EQ(count("vineyard::*", false), 2u);
  EXPECT_EQ(count("vineyard::Tensor<*>", false), 1u);
  EXPECT_EQ(count("vineyard::T?nsor*", false), 1u);
  EXPECT_EQ(count("[v]ineyard::*", false), 2u);
  EXPECT_EQ(count("[!v]*", false), 1u);
  EXPECT_EQ(count("[a-c].b\\*c", false), 1u);
  EXPECT_EQ(count("a.b[*]c", false), 1u);
  EXPECT_EQ(count("Tensor", false), 0u);
  EXPECT_EQ(count("vineyard::Tensor<.*>", true), 1u);
  EXPECT_EQ(count("vineyard::.*", true), 2u);
  EXPECT_EQ(count("Tensor", true), 0u);  // a full match, not a search
  EXPECT_EQ(count("a\\.b\\*c", true), 1u);
}

TEST(MetaHardeningTest, DeepChainIsRefusedAtTheDepthLimit) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  // 15,000 objects, each holding the previous one.
  std::vector<ObjectID> chain;
  json first_refusal;
  for (int i = 0; i < 15000; ++i) {
    json tree = s.Tree("test::Link");
    if (!chain.empty()) tree["prev"] = MemberRef(chain.back());
    json reply = s.Create(tree);
    if (IsReply(reply, "create_data_reply")) {
      chain.push_back(reply["id"].get<ObjectID>());
    } else if (first_refusal.is_null()) {
      first_refusal = reply;
    }
  }
  EXPECT_EQ(chain.size(), 256u);
  EXPECT_TRUE(IsError(first_refusal, kInvalid));
  EXPECT_TRUE(MessageHas(first_refusal, "--meta_max_depth")) << first_refusal.dump();
  ASSERT_FALSE(chain.empty());

  // The deepest allowed tree goes through every walk.
  json got = s.Get(chain.back());
  ASSERT_TRUE(IsReply(got, "get_data_reply"));
  size_t depth = 0, nodes = 0;
  Shape(got["content"].begin().value(), &depth, &nodes);
  EXPECT_EQ(depth, chain.size());
  EXPECT_EQ(nodes, chain.size());
  VyGetRequest vy;
  vy.ids = {chain.back()};
  EXPECT_TRUE(IsReply(s.conn.Call(WriteVyGetRequest(vy)), "vy_get_reply"));
  EXPECT_TRUE(IsReply(s.conn.Call(WriteIdRequest(req::kPersist, chain.back())),
                      "persist_reply"));
  json persisted = s.conn.Call(WriteIdRequest(req::kIfPersist, chain.front()));
  EXPECT_TRUE(persisted.value("persist", false)) << persisted.dump();
  DeleteRequest del;
  del.ids = {chain.back()};
  del.deep = true;
  EXPECT_TRUE(IsReply(s.conn.Call(WriteDeleteRequest(del)), "del_data_reply"));
  json exists = s.conn.Call(WriteIdRequest(req::kExists, chain.front()));
  EXPECT_FALSE(exists.value("exists", true)) << "a deep delete leaves the chain's end";
  // A forced delete of the bottom takes every holder with it.
  chain.clear();
  for (int i = 0; i < 200; ++i) {
    json tree = s.Tree("test::Link");
    if (!chain.empty()) tree["prev"] = MemberRef(chain.back());
    chain.push_back(s.MustCreate(tree));
  }
  del.ids = {chain.front()};
  del.deep = false;
  del.force = true;
  EXPECT_TRUE(IsReply(s.conn.Call(WriteDeleteRequest(del)), "del_data_reply"));
  exists = s.conn.Call(WriteIdRequest(req::kExists, chain.back()));
  EXPECT_FALSE(exists.value("exists", true)) << "a forced delete leaves a holder";
  EXPECT_TRUE(server->Running());
}

TEST(MetaHardeningTest, DeeplyNestedFieldIsRefused) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  // Deeper than --meta_max_depth (256), within the protocol's 1000 levels.
  std::string nested = std::string(300, '[') + std::string(300, ']');
  std::string request = "{\"type\": \"create_data_request\", \"content\": {\"typename\": "
                        "\"test::Deep\", \"instance_id\": " +
                        std::to_string(s.instance_id) + ", \"deep\": " + nested + "}}";
  ASSERT_TRUE(s.conn.SendText(request));
  json reply;
  ASSERT_EQ(s.conn.Recv(&reply), RawConn::Outcome::kReply);
  EXPECT_TRUE(IsError(reply, kInvalid));
  EXPECT_TRUE(MessageHas(reply, "--meta_max_depth")) << reply.dump().substr(0, 300);
  EXPECT_TRUE(IsReply(s.List("*", false), "get_data_reply"));
  EXPECT_TRUE(server->Running());
}

// Each level holds the previous one twice: level k expands to 2^(k+1) - 1 nodes.
TEST(MetaHardeningTest, DiamondIsRefusedAtTheNodeLimit) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  std::vector<ObjectID> levels;
  json refusal;
  for (int k = 0; k < 40 && refusal.is_null(); ++k) {
    json tree = s.Tree("test::Diamond");
    if (!levels.empty()) {
      tree["left"] = MemberRef(levels.back());
      tree["right"] = MemberRef(levels.back());
    }
    json reply = s.Create(tree);
    if (IsReply(reply, "create_data_reply")) {
      levels.push_back(reply["id"].get<ObjectID>());
    } else {
      refusal = reply;
    }
  }
  // 2^20 - 1 = 1,048,575 nodes is the first over the default 1,000,000.
  EXPECT_EQ(levels.size(), 19u);
  EXPECT_TRUE(IsError(refusal, kInvalid));
  EXPECT_TRUE(MessageHas(refusal, "--meta_max_nodes")) << refusal.dump();
  EXPECT_TRUE(IsReply(s.Status(), "instance_status_reply"));
  EXPECT_TRUE(server->Running());
}

TEST(MetaHardeningTest, DiamondWithinTheLimitExpandsInFull) {
  auto server = TestServer::Start({"--meta_max_nodes=1000"}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  std::vector<ObjectID> levels;
  json refusal;
  for (int k = 0; k < 20 && refusal.is_null(); ++k) {
    json tree = s.Tree("test::Diamond");
    if (!levels.empty()) {
      tree["left"] = MemberRef(levels.back());
      tree["right"] = MemberRef(levels.back());
    }
    json reply = s.Create(tree);
    if (IsReply(reply, "create_data_reply")) {
      levels.push_back(reply["id"].get<ObjectID>());
    } else {
      refusal = reply;
    }
  }
  ASSERT_EQ(levels.size(), 9u);  // 511 nodes; the next would be 1023
  EXPECT_TRUE(MessageHas(refusal, "--meta_max_nodes")) << refusal.dump();
  json got = s.Get(levels.back());
  ASSERT_TRUE(IsReply(got, "get_data_reply"));
  size_t depth = 0, nodes = 0;
  Shape(got["content"].begin().value(), &depth, &nodes);
  EXPECT_EQ(depth, 9u);
  EXPECT_EQ(nodes, 511u);
  // A list whose trees would exceed the limit together stops short of it.
  json listed = s.List("test::Diamond", false, 100);
  ASSERT_TRUE(IsReply(listed, "get_data_reply"));
  size_t total = 0;
  for (const auto& [id, tree] : listed["content"].items()) {
    Shape(tree, &depth, &nodes);
    total += nodes;
  }
  EXPECT_LE(total, 1000u);
  EXPECT_GE(listed["content"].size(), 1u);
}

// Our client's vy_get sends a shared member once: 16 levels of an object holding
// the previous one twice are 16 distinct objects but 65,535 expanded nodes.
TEST(MetaHardeningTest, SharedMembersAreSentOnceToOurClient) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  std::vector<ObjectID> levels;
  for (int k = 0; k < 16; ++k) {
    json tree = s.Tree("test::Diamond");
    tree["level"] = k;
    if (!levels.empty()) {
      tree["left"] = MemberRef(levels.back());
      tree["right"] = MemberRef(levels.back());
    }
    levels.push_back(s.MustCreate(tree));
  }
  VyGetRequest r;
  r.ids = {levels.back()};
  json full = s.conn.Call(WriteVyGetRequest(r));
  r.share_members = true;
  json shared = s.conn.Call(WriteVyGetRequest(r));
  ASSERT_TRUE(IsReply(full, "vy_get_reply")) << full.dump().substr(0, 200);
  ASSERT_TRUE(IsReply(shared, "vy_get_reply")) << shared.dump().substr(0, 200);
  size_t full_bytes = full.dump().size(), shared_bytes = shared.dump().size();
  EXPECT_LT(shared_bytes * 100, full_bytes) << shared_bytes << " vs " << full_bytes;
  // Put back together, it is the same tree.
  json trees = shared["content"];
  ASSERT_TRUE(ResolveSharedMembers(&trees).ok());
  EXPECT_EQ(trees, full["content"]);
  size_t depth = 0, nodes = 0;
  Shape(trees.begin().value(), &depth, &nodes);
  EXPECT_EQ(depth, 16u);
  EXPECT_EQ(nodes, 65535u);
  // And the C++ client (which asks for shared members) sees the whole tree.
  auto client = server->Connect();
  ASSERT_TRUE(client);
  auto meta = client->GetObject(levels.back());
  ASSERT_TRUE(meta.ok()) << meta.status();
  ASSERT_TRUE(meta->HasMember("left")) << meta->MetaData().dump().substr(0, 200);
  auto left = meta->GetMember("left");
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->GetKeyValueAs<int>("level").ValueOrDie(), 14);
  // A reference to a member the reply does not hold is an error, not a crash.
  json broken = {{"o1", {{"id", "o1"}, {"m", {{kSharedMemberRef, "o2"}}}}}};
  EXPECT_FALSE(ResolveSharedMembers(&broken).ok());
}

TEST(MetaHardeningTest, MetadataMemoryIsCountedAndBounded) {
  auto server = TestServer::Start({"--meta_memory_limit=8Mi"}, "64Mi");
  ASSERT_NE(server, nullptr);
  Session s(*server);
  json status = s.Status();
  ASSERT_TRUE(IsReply(status, "instance_status_reply"));
  EXPECT_EQ(status["meta"].value("meta_memory_limit", uint64_t{0}), uint64_t{8} << 20);
  const uint64_t bulk_before = status["meta"].value("memory_usage", uint64_t{0});
  const uint64_t before = s.MetaMemory();

  const std::string big(3 << 20, 'x');
  auto big_tree = [&]() {
    json tree = s.Tree("test::Big");
    tree["payload"] = big;
    return tree;
  };
  ObjectID first = s.MustCreate(big_tree());
  const uint64_t one = s.MetaMemory();
  EXPECT_GE(one - before, big.size());
  EXPECT_LT(one - before, big.size() + 4096);
  ObjectID second = s.MustCreate(big_tree());
  EXPECT_GE(s.MetaMemory() - one, big.size());
  // The third would pass 8 MiB.
  json refused = s.Create(big_tree());
  EXPECT_TRUE(IsError(refused, kNotEnoughMemory));
  EXPECT_TRUE(MessageHas(refused, "--meta_memory_limit")) << refused.dump().substr(0, 300);
  // The bulk store's usage is unchanged: metadata has its own account.
  EXPECT_EQ(s.Status()["meta"].value("memory_usage", uint64_t{1}), bulk_before);

  // Deletes give the bytes back.
  DeleteRequest del;
  del.ids = {first};
  ASSERT_TRUE(IsReply(s.conn.Call(WriteDeleteRequest(del)), "del_data_reply"));
  EXPECT_LE(s.MetaMemory(), one);
  ObjectID third = s.MustCreate(big_tree());
  del.ids = {second, third};
  ASSERT_TRUE(IsReply(s.conn.Call(WriteDeleteRequest(del)), "del_data_reply"));
  EXPECT_EQ(s.MetaMemory(), before);

  // Names and labels count too, and are given back.
  ObjectID small = s.MustCreate(s.Tree("test::Small"));
  ASSERT_TRUE(IsReply(s.conn.Call(WriteIdRequest(req::kPersist, small)), "persist_reply"));
  const uint64_t with_object = s.MetaMemory();
  const std::string long_name(1 << 20, 'n');
  ASSERT_TRUE(IsReply(s.conn.Call(WritePutNameRequest(small, long_name)), "put_name_reply"));
  EXPECT_GE(s.MetaMemory() - with_object, long_name.size());
  ASSERT_TRUE(IsReply(s.conn.Call(WriteDropNameRequest(long_name)), "drop_name_reply"));
  EXPECT_EQ(s.MetaMemory(), with_object);
  EXPECT_TRUE(server->Running());
}

}  // namespace
}  // namespace vineyard
