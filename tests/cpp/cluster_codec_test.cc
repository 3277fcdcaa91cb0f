// The cluster's key layout and encoding (server/cluster_codec.h), checked
// against values a published vineyardd 0.24.2 wrote into etcd.
#include <gtest/gtest.h>

#include "common/protocol.h"
#include "server/cluster_codec.h"

namespace vineyard::cluster {
namespace {

// As written by the published vineyardd (instance 1) for a persisted
// numpy.arange(6).reshape(2, 3), read back with etcdctl.
constexpr const char* kPublishedTensor =
    R"({"__timestamp":1795950376175,"buffer_":"loe889befd3bc00000.vineyard::Blob@1",)"
    R"("global":false,"instance_id":1,"nbytes":48,"order_":"v\"C\"","partition_index_":"v[]",)"
    R"("shape_":"v[2, 3]","signature":7532761846592311297,"transient":false,)"
    R"("typename":"vvineyard::Tensor<int64>","value_type_":"vint64","value_type_meta_":"v<i8"})";

// A global pair over two instances: its members by signature.
constexpr const char* kPublishedPair =
    R"({"__timestamp":1795950376185,"extra":"vhello","first_":"ls6889befd3bc01001.vineyard::Tensor",)"
    R"("global":true,"instance_id":18446744073709551615,"nbytes":0,"num":5,)"
    R"("second_":"ls6889befd3d400004.vineyard::Sequence","signature":7532761846634254339,)"
    R"("transient":false,"typename":"vvineyard::Pair"})";

TEST(ClusterCodecTest, DecodesWhatThePublishedServerWrites) {
  auto t = DecodeObject(0x6889befd3bc01002, kPublishedTensor, nullptr);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->instance_id, 1u);
  EXPECT_EQ(t->signature, 7532761846592311297u);
  EXPECT_FALSE(t->global);
  EXPECT_FALSE(t->transient);
  EXPECT_EQ(t->timestamp, 1795950376175u);
  EXPECT_EQ(t->fields["typename"], "vineyard::Tensor<int64>");
  EXPECT_EQ(t->fields["shape_"], "[2, 3]");
  EXPECT_EQ(t->fields["order_"], "\"C\"");
  EXPECT_EQ(t->fields["nbytes"], 48);
  ASSERT_EQ(t->members.size(), 1u);
  EXPECT_EQ(t->members[0].name, "buffer_");
  EXPECT_EQ(t->members[0].id, 0xe889befd3bc00000);
  EXPECT_TRUE(t->members[0].blob);
  EXPECT_EQ(t->members[0].instance_id, 1u);
}

TEST(ClusterCodecTest, ResolvesSignatureLinksOfGlobalObjects) {
  auto resolve = [](Signature sig) -> std::optional<ObjectID> {
    if (sig == 0x6889befd3bc01001) return 0x6889befd3bc01002;
    if (sig == 0x6889befd3d400004) return 0x6889befd3d400005;
    return std::nullopt;
  };
  auto pair = DecodeObject(0x6889befd3e401004, kPublishedPair, resolve);
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  EXPECT_TRUE(pair->global);
  EXPECT_EQ(pair->fields["extra"], "hello");
  EXPECT_EQ(pair->fields["num"], 5);
  ASSERT_EQ(pair->members.size(), 2u);
  EXPECT_EQ(pair->members[0].id, 0x6889befd3bc01002u);
  EXPECT_EQ(pair->members[1].id, 0x6889befd3d400005u);
  EXPECT_FALSE(pair->members[0].blob);
  // An unknown signature is an error for this key, not a crash.
  auto unresolved = DecodeObject(1, kPublishedPair, nullptr);
  EXPECT_FALSE(unresolved.ok());
}

TEST(ClusterCodecTest, EncodesAsThePublishedServerDoes) {
  ObjectRecord o;
  o.id = 0x0cb226ff05c00001;
  o.fields = {{"typename", "vineyard::Tensor<int64>"}, {"nbytes", 48}, {"shape_", "[2, 3]"}};
  o.signature = 42;
  o.instance_id = 3;
  o.timestamp = 7;
  o.members.push_back({"buffer_", 0x8cb226ff05800000, kBlobTypename, 3, 0});
  auto kvs = EncodeObject(o);
  ASSERT_EQ(kvs.size(), 1u);
  EXPECT_EQ(kvs[0].first, "/data/o0cb226ff05c00001");
  json v = json::parse(kvs[0].second);
  EXPECT_EQ(v["typename"], "vvineyard::Tensor<int64>");
  EXPECT_EQ(v["shape_"], "v[2, 3]");
  EXPECT_EQ(v["nbytes"], 48);
  EXPECT_EQ(v["buffer_"], "lo8cb226ff05800000.vineyard::Blob@3");
  EXPECT_EQ(v["instance_id"], 3);
  EXPECT_EQ(v["transient"], false);
  // And it reads back as it was.
  auto back = DecodeObject(o.id, kvs[0].second, nullptr);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->fields, o.fields);
  EXPECT_EQ(back->members[0].id, o.members[0].id);
  EXPECT_EQ(back->members[0].instance_id, 3u);
}

TEST(ClusterCodecTest, AGlobalObjectNamesItsMembersBySignature) {
  ObjectRecord g;
  g.id = 0x10;
  g.global = true;
  g.fields = {{"typename", "vineyard::Pair"}};
  g.members.push_back({"first_", 0x20, "vineyard::Tensor<double>", 4, 0x21});
  g.members.push_back({"second_", 0x30, "vineyard::Tensor<double>", 5, 0x31});
  g.members.push_back({"again_", 0x20, "vineyard::Tensor<double>", 4, 0x21});
  auto kvs = EncodeObject(g);
  ASSERT_EQ(kvs.size(), 3u) << "one signature key per distinct member, then the object";
  EXPECT_EQ(kvs[0].first, "/signatures/i4/s0000000000000021");
  EXPECT_EQ(kvs[0].second, "\"o0000000000000020\"");
  EXPECT_EQ(kvs[1].first, "/signatures/i5/s0000000000000031");
  EXPECT_EQ(kvs.back().first, "/data/o0000000000000010");
  json v = json::parse(kvs.back().second);
  EXPECT_EQ(v["first_"], "ls0000000000000021.vineyard::Tensor");
  std::map<Signature, ObjectID> sigs = {{0x21, 0x20}, {0x31, 0x30}};
  auto back = DecodeObject(g.id, kvs.back().second, [&](Signature s) -> std::optional<ObjectID> {
    auto it = sigs.find(s);
    if (it == sigs.end()) return std::nullopt;
    return it->second;
  });
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->members.size(), 3u);
  std::map<std::string, ObjectID> by_name;
  for (const auto& m : back->members) by_name[m.name] = m.id;
  EXPECT_EQ(by_name["second_"], 0x30u);
  EXPECT_EQ(by_name["again_"], 0x20u);
}

TEST(ClusterCodecTest, ParsesKeys) {
  EXPECT_EQ(ParseKey("/data/o0000000000000010").kind, ParsedKey::Kind::kData);
  auto field = ParseKey("/data/o0000000000000010/__name");
  EXPECT_EQ(field.kind, ParsedKey::Kind::kDataField);
  EXPECT_EQ(field.field, "__name");
  auto name = ParseKey("/names/my/name");
  EXPECT_EQ(name.kind, ParsedKey::Kind::kName);
  EXPECT_EQ(name.name, "my/name");
  auto inst = ParseKey("/instances/i12/rpc_endpoint");
  EXPECT_EQ(inst.kind, ParsedKey::Kind::kInstance);
  EXPECT_EQ(inst.instance, 12u);
  EXPECT_EQ(inst.field, "rpc_endpoint");
  auto sig = ParseKey("/signatures/i3/s0000000000000021");
  EXPECT_EQ(sig.kind, ParsedKey::Kind::kSignature);
  EXPECT_EQ(sig.instance, 3u);
  EXPECT_EQ(sig.signature, 0x21u);
  EXPECT_EQ(ParseKey("/next_instance_id").kind, ParsedKey::Kind::kNextInstanceId);
  for (const char* other : {"/meta_sync_lock/694d8d1f", "/data/not-an-id", "/instances/ix/a",
                            "/instances/i1", "/signatures/i1", "", "/data/"}) {
    EXPECT_EQ(ParseKey(other).kind, ParsedKey::Kind::kOther) << other;
  }
  KeySpace keys("vineyard");
  EXPECT_EQ(keys.root, "vineyard/S0000000000000000");
  EXPECT_EQ(keys.LockName(), "vineyard/S0000000000000000/meta_sync_lock");
}

TEST(ClusterCodecTest, RefusesMalformedValuesWithoutCrashing) {
  for (const char* bad : {"", "not json", "[1,2]", "{}", R"({"typename":"vX","m":"lnodot"})",
                          R"({"typename":"vX","m":"l.type"})", R"({"typename":"vX","m":"lzz.T"})"}) {
    EXPECT_FALSE(DecodeObject(1, bad, nullptr).ok()) << bad;
  }
  EXPECT_EQ(DecodeFieldValue("\"vpair\""), "pair");
  EXPECT_EQ(DecodeFieldValue("5"), 5);
  EXPECT_EQ(DecodeFieldValue("garbage"), "garbage");
}

}  // namespace
}  // namespace vineyard::cluster
