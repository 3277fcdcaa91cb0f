// Object metadata through the C++ client against a real vineyardd: fields,
// members, put/get, listing, persistence, copies, labels and deletion.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
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
using testing::RandomBytes;
using testing::Usage;


constexpr size_t kMiB = 1 << 20;



bool Exists(Client& c, ObjectID id) {
  auto e = c.Exists(id);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() && *e;
}

size_t CountObjects(Client& c, const std::string& pattern = "*") {
  auto l = c.ListMetaData(pattern, false, 100000);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? l->size() : 0;
}

std::set<std::string> TypeNames(const std::vector<ObjectMeta>& metas) {
  std::set<std::string> names;
  for (const auto& m : metas) names.insert(m.GetTypeName());
  return names;
}

class MetaTest : public testing::TwoClientTest {
 protected:
  // A sealed-by-Put object "test::Bytes" with one blob member holding `bytes`.
  ObjectID PutBytes(Client& c, const std::vector<uint8_t>& bytes, ObjectID* blob_id = nullptr) {
    auto w = c.CreateBlob(bytes.size());
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (!w.ok()) return kInvalidObjectID;
    EXPECT_OK((*w)->Copy(0, bytes.data(), bytes.size()));
    ObjectMeta meta;
    meta.SetTypeName("test::Bytes");
    meta.SetNBytes(bytes.size());
    meta.AddMember("buffer_", **w);
    auto id = c.Put(meta, {w->get()});
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (blob_id != nullptr) *blob_id = (*w)->id();
    return id.ok() ? *id : kInvalidObjectID;
  }

};

TEST_F(MetaTest, FieldsOfEveryType) {
  const json config = {{"alpha", 1}, {"beta", {1, 2, 3}}, {"nested", {{"x", "y"}}}};
  ObjectMeta meta;
  meta.SetTypeName("test::Fields");
  meta.SetNBytes(12345);
  meta.AddKeyValue("str", "hello, vineyard");
  meta.AddKeyValue("empty_str", "");
  meta.AddKeyValue("int", 42);
  meta.AddKeyValue("negative", -7);
  meta.AddKeyValue("big", std::numeric_limits<uint64_t>::max());
  meta.AddKeyValue("double", 3.25);
  meta.AddKeyValue("flag", true);
  meta.AddKeyValue("off", false);
  meta.AddKeyValue("config", config);
  meta.AddKeyValue("list", json::array({1, "two", 3.0}));
  meta.AddKeyValue("shape_", "[2, 3]");
  EXPECT_TRUE(meta.HasKey("str"));
  EXPECT_FALSE(meta.HasKey("nope"));

  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->CreateMetaData(meta));
  EXPECT_FALSE(IsBlob(id));
  EXPECT_EQ(meta.GetId(), id);
  EXPECT_NE(meta.GetSignature(), 0u);
  EXPECT_FALSE(IsBlob(meta.GetSignature()));
  EXPECT_EQ(meta.GetInstanceId(), client_->instance_id());

  ASSERT_OK_AND_ASSIGN(ObjectMeta got, other_->GetMetaData(id));
  EXPECT_EQ(got.GetId(), id);
  EXPECT_EQ(got.GetTypeName(), "test::Fields");
  EXPECT_EQ(got.GetNBytes(), 12345u);
  EXPECT_EQ(got.GetInstanceId(), client_->instance_id());
  EXPECT_EQ(got.GetSignature(), meta.GetSignature());
  EXPECT_TRUE(got.IsTransient());
  EXPECT_FALSE(got.IsGlobal());
  EXPECT_FALSE(got.IsBlob());

  ASSERT_OK_AND_ASSIGN(std::string s, got.GetKeyValueAs<std::string>("str"));
  EXPECT_EQ(s, "hello, vineyard");
  ASSERT_OK_AND_ASSIGN(std::string es, got.GetKeyValueAs<std::string>("empty_str"));
  EXPECT_EQ(es, "");
  ASSERT_OK_AND_ASSIGN(int i, got.GetKeyValueAs<int>("int"));
  EXPECT_EQ(i, 42);
  ASSERT_OK_AND_ASSIGN(int64_t neg, got.GetKeyValueAs<int64_t>("negative"));
  EXPECT_EQ(neg, -7);
  ASSERT_OK_AND_ASSIGN(uint64_t big, got.GetKeyValueAs<uint64_t>("big"));
  EXPECT_EQ(big, std::numeric_limits<uint64_t>::max());
  ASSERT_OK_AND_ASSIGN(double d, got.GetKeyValueAs<double>("double"));
  EXPECT_DOUBLE_EQ(d, 3.25);
  ASSERT_OK_AND_ASSIGN(bool flag, got.GetKeyValueAs<bool>("flag"));
  EXPECT_TRUE(flag);
  ASSERT_OK_AND_ASSIGN(bool off, got.GetKeyValueAs<bool>("off"));
  EXPECT_FALSE(off);
  ASSERT_OK_AND_ASSIGN(json cfg, got.GetKeyValue("config"));
  EXPECT_EQ(cfg, config);
  ASSERT_OK_AND_ASSIGN(json list, got.GetKeyValue("list"));
  EXPECT_EQ(list, json::array({1, "two", 3.0}));
  ASSERT_OK_AND_ASSIGN(std::string shape, got.GetKeyValueAs<std::string>("shape_"));
  EXPECT_EQ(shape, "[2, 3]");

  // As vineyard does, a JSON object is stored as its text.
  EXPECT_TRUE(got.MetaData()["config"].is_string());
  ASSERT_OK_AND_ASSIGN(std::string cfg_text, got.GetKeyValueAs<std::string>("config"));
  EXPECT_EQ(json::parse(cfg_text), config);
  ASSERT_OK_AND_ASSIGN(json cfg_as, got.GetKeyValueAs<json>("config"));
  EXPECT_EQ(cfg_as, config);
  // A JSON field is a field, not a member.
  EXPECT_TRUE(got.HasKey("config"));
  EXPECT_FALSE(got.HasMember("config"));
  EXPECT_TRUE(got.MemberNames().empty());
  auto fields = got.FieldNames();
  std::set<std::string> field_set(fields.begin(), fields.end());
  for (const char* f : {"str", "empty_str", "int", "negative", "big", "double", "flag", "off",
                        "config", "list", "shape_"}) {
    EXPECT_TRUE(field_set.count(f)) << f;
  }
  EXPECT_STATUS(kKeyError, got.GetKeyValue("missing"));
  EXPECT_STATUS(kTypeError, got.GetKeyValueAs<int>("str"));

  // The same through the fused put.
  ObjectMeta put_meta;
  put_meta.SetTypeName("test::Fields");
  put_meta.AddKeyValue("config", config);
  put_meta.AddKeyValue("double", -0.5);
  ASSERT_OK_AND_ASSIGN(ObjectID put_id, client_->Put(put_meta, {}));
  ASSERT_OK_AND_ASSIGN(ObjectMeta put_got, other_->GetObject(put_id));
  ASSERT_OK_AND_ASSIGN(json cfg2, put_got.GetKeyValue("config"));
  EXPECT_EQ(cfg2, config);
  ASSERT_OK_AND_ASSIGN(double d2, put_got.GetKeyValueAs<double>("double"));
  EXPECT_DOUBLE_EQ(d2, -0.5);
}

TEST_F(MetaTest, MembersNestedBlobsAndById) {
  const auto bytes1 = RandomBytes(1000, 1);
  const auto bytes2 = RandomBytes(5000, 2);
  const auto bytes3 = RandomBytes(300, 3);

  // A leaf object, referred to by id.
  ObjectMeta leaf;
  leaf.SetTypeName("test::Leaf");
  leaf.AddKeyValue("value_", 7);
  ASSERT_OK_AND_ASSIGN(ObjectID leaf_id, other_->CreateMetaData(leaf));

  // An inner object with its own blob.
  ASSERT_OK_AND_ASSIGN(auto w2, client_->CreateBlob(bytes2.size()));
  ASSERT_OK(w2->Copy(0, bytes2.data(), bytes2.size()));
  ObjectMeta inner;
  inner.SetTypeName("test::Inner");
  inner.AddKeyValue("tag", "inner");
  inner.AddMember("buffer_", *w2);
  ASSERT_OK_AND_ASSIGN(ObjectID inner_id, client_->Put(inner, {w2.get()}));

  // A blob sealed on its own, added as a Blob.
  ASSERT_OK_AND_ASSIGN(auto w3, client_->CreateBlob(bytes3.size()));
  ASSERT_OK(w3->Copy(0, bytes3.data(), bytes3.size()));
  ASSERT_OK_AND_ASSIGN(auto b3, w3->Seal());

  // The outer object: a tree member, a writer member, a Blob member, a member by id.
  ASSERT_OK_AND_ASSIGN(auto w1, client_->CreateBlob(bytes1.size()));
  ASSERT_OK(w1->Copy(0, bytes1.data(), bytes1.size()));
  ObjectMeta outer;
  outer.SetTypeName("test::Outer");
  outer.AddKeyValue("n", 3);
  outer.AddMember("inner_", inner);
  outer.AddMember("buffer_", *w1);
  outer.AddMember("sealed_", *b3);
  outer.AddMember("leaf_", leaf_id);
  EXPECT_TRUE(outer.HasMember("inner_"));
  EXPECT_FALSE(outer.HasKey("inner_"));
  ASSERT_OK_AND_ASSIGN(ObjectID outer_id, client_->Put(outer, {w1.get()}));

  // The tree as stored.
  ASSERT_OK_AND_ASSIGN(ObjectMeta got, other_->GetMetaData(outer_id));
  EXPECT_EQ(got.GetTypeName(), "test::Outer");
  auto members = got.MemberNames();
  EXPECT_EQ(std::set<std::string>(members.begin(), members.end()),
            (std::set<std::string>{"inner_", "buffer_", "sealed_", "leaf_"}));
  ASSERT_OK_AND_ASSIGN(ObjectMeta got_inner, got.GetMember("inner_"));
  EXPECT_EQ(got_inner.GetId(), inner_id);
  EXPECT_EQ(got_inner.GetTypeName(), "test::Inner");
  ASSERT_OK_AND_ASSIGN(std::string tag, got_inner.GetKeyValueAs<std::string>("tag"));
  EXPECT_EQ(tag, "inner");
  ASSERT_OK_AND_ASSIGN(ObjectMeta inner_buf, got_inner.GetMember("buffer_"));
  EXPECT_TRUE(inner_buf.IsBlob());
  EXPECT_EQ(inner_buf.GetId(), w2->id());
  EXPECT_EQ(inner_buf.GetNBytes(), bytes2.size());
  ASSERT_OK_AND_ASSIGN(ObjectMeta got_leaf, got.GetMember("leaf_"));
  EXPECT_EQ(got_leaf.GetId(), leaf_id);
  EXPECT_EQ(got_leaf.GetTypeName(), "test::Leaf");
  ASSERT_OK_AND_ASSIGN(int v, got_leaf.GetKeyValueAs<int>("value_"));
  EXPECT_EQ(v, 7);
  ASSERT_OK_AND_ASSIGN(ObjectID buf_id, got.GetMemberId("buffer_"));
  EXPECT_EQ(buf_id, w1->id());
  ASSERT_OK_AND_ASSIGN(ObjectMeta got_sealed, got.GetMember("sealed_"));
  EXPECT_TRUE(got_sealed.IsBlob());
  EXPECT_EQ(got_sealed.GetNBytes(), bytes3.size());
  EXPECT_STATUS(kKeyError, got.GetMember("nope"));
  auto blob_ids = got.GetBlobIds();
  EXPECT_EQ(std::set<ObjectID>(blob_ids.begin(), blob_ids.end()),
            (std::set<ObjectID>{w1->id(), w2->id(), b3->id()}));
  // Metadata alone maps nothing.
  EXPECT_STATUS(kObjectNotExists, got.GetBuffer(w1->id()));

  // GetObject maps every blob of the tree.
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, other_->GetObject(outer_id));
  ASSERT_OK_AND_ASSIGN(auto buf1, obj.GetBuffer(w1->id()));
  ASSERT_EQ(buf1->size(), bytes1.size());
  EXPECT_EQ(memcmp(buf1->data(), bytes1.data(), bytes1.size()), 0);
  ASSERT_OK_AND_ASSIGN(auto buf3, obj.GetBuffer(b3->id()));
  ASSERT_EQ(buf3->size(), bytes3.size());
  EXPECT_EQ(memcmp(buf3->data(), bytes3.data(), bytes3.size()), 0);
  // Through the member's view as well.
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj_inner, obj.GetMember("inner_"));
  ASSERT_OK_AND_ASSIGN(ObjectID inner_blob, obj_inner.GetMemberId("buffer_"));
  ASSERT_OK_AND_ASSIGN(auto buf2, obj_inner.GetBuffer(inner_blob));
  ASSERT_EQ(buf2->size(), bytes2.size());
  EXPECT_EQ(memcmp(buf2->data(), bytes2.data(), bytes2.size()), 0);

  // Several objects in one call.
  ASSERT_OK_AND_ASSIGN(auto objs, other_->GetObjects({inner_id, outer_id, leaf_id}));
  ASSERT_EQ(objs.size(), 3u);
  EXPECT_EQ(objs[0].GetId(), inner_id);
  EXPECT_EQ(objs[1].GetId(), outer_id);
  EXPECT_EQ(objs[2].GetId(), leaf_id);
  ASSERT_OK_AND_ASSIGN(auto buf2b, objs[0].GetBuffer(w2->id()));
  EXPECT_EQ(memcmp(buf2b->data(), bytes2.data(), bytes2.size()), 0);
  ASSERT_OK_AND_ASSIGN(auto metas, other_->GetMetaData({leaf_id, inner_id}));
  ASSERT_EQ(metas.size(), 2u);
  EXPECT_EQ(metas[0].GetTypeName(), "test::Leaf");
  EXPECT_EQ(metas[1].GetTypeName(), "test::Inner");

  EXPECT_STATUS(kObjectNotExists, other_->GetMetaData(ObjectID{0x1234}));
  EXPECT_STATUS(kObjectNotExists, other_->GetObject(ObjectID{0x1234}));
  EXPECT_STATUS(kObjectNotExists, other_->GetObjects({outer_id, ObjectID{0x1234}}));
}

TEST_F(MetaTest, CreateMetaDataVector) {
  std::vector<ObjectMeta> metas(3);
  for (int i = 0; i < 3; ++i) {
    metas[i].SetTypeName("test::Batch");
    metas[i].AddKeyValue("index", i);
  }
  ASSERT_OK_AND_ASSIGN(auto ids, client_->CreateMetaData(metas));
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(std::set<ObjectID>(ids.begin(), ids.end()).size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(metas[i].GetId(), ids[i]);
  ASSERT_OK_AND_ASSIGN(auto got, other_->GetMetaData(ids));
  ASSERT_EQ(got.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i].GetId(), ids[i]);
    ASSERT_OK_AND_ASSIGN(int index, got[i].GetKeyValueAs<int>("index"));
    EXPECT_EQ(index, i);
  }
  EXPECT_EQ(CountObjects(*client_, "test::Batch"), 3u);

  // One bad tree fails the batch, and nothing of it is left.
  std::vector<ObjectMeta> bad(3);
  bad[0].SetTypeName("test::Batch2");
  bad[1].SetTypeName("test::Batch2");
  bad[2].AddKeyValue("no_typename", true);
  EXPECT_STATUS(kInvalid, client_->CreateMetaData(bad));
  EXPECT_EQ(CountObjects(*client_, "test::Batch2"), 0u);
}

TEST_F(MetaTest, ListMetaDataGlobRegexLimit) {
  const std::vector<std::string> types = {"test::A<int>", "test::A<double>", "test::B",
                                          "other::C"};
  std::map<std::string, ObjectID> ids;
  for (const auto& t : types) {
    ObjectMeta m;
    m.SetTypeName(t);
    ASSERT_OK_AND_ASSIGN(ids[t], client_->CreateMetaData(m));
  }
  for (int i = 0; i < 12; ++i) {
    ObjectMeta m;
    m.SetTypeName("test::Many");
    m.AddKeyValue("i", i);
    ASSERT_OK(client_->CreateMetaData(m));
  }
  // A blob is not an object listed by typename.
  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(10));
  ASSERT_OK(w->Seal());

  ASSERT_OK_AND_ASSIGN(auto a, other_->ListMetaData("test::A*", false, 100));
  EXPECT_EQ(TypeNames(a), (std::set<std::string>{"test::A<int>", "test::A<double>"}));
  EXPECT_EQ(a.size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto b, other_->ListMetaData("test::B", false, 100));
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].GetId(), ids["test::B"]);
  ASSERT_OK_AND_ASSIGN(auto all_test, other_->ListMetaData("test::*", false, 100));
  EXPECT_EQ(all_test.size(), 15u);
  ASSERT_OK_AND_ASSIGN(auto all, other_->ListMetaData("*", false, 100));
  EXPECT_EQ(all.size(), 16u);
  ASSERT_OK_AND_ASSIGN(auto none, other_->ListMetaData("nothing::*", false, 100));
  EXPECT_TRUE(none.empty());

  ASSERT_OK_AND_ASSIGN(auto re, other_->ListMetaData("test::A<(int|double)>", true, 100));
  EXPECT_EQ(TypeNames(re), (std::set<std::string>{"test::A<int>", "test::A<double>"}));
  ASSERT_OK_AND_ASSIGN(auto re2, other_->ListMetaData(".*::[BC]", true, 100));
  EXPECT_EQ(TypeNames(re2), (std::set<std::string>{"test::B", "other::C"}));
  // A regex matches the whole typename.
  ASSERT_OK_AND_ASSIGN(auto re3, other_->ListMetaData("test", true, 100));
  EXPECT_TRUE(re3.empty());
  EXPECT_STATUS(kInvalid, other_->ListMetaData("test::(", true, 100));

  ASSERT_OK_AND_ASSIGN(auto limited, other_->ListMetaData("test::Many", false, 3));
  EXPECT_EQ(limited.size(), 3u);
  ASSERT_OK_AND_ASSIGN(auto by_default, other_->ListMetaData("test::Many"));
  EXPECT_EQ(by_default.size(), 5u);
  ASSERT_OK_AND_ASSIGN(auto many, other_->ListMetaData("test::Many", false, 1000));
  EXPECT_EQ(many.size(), 12u);
  for (const auto& m : many) {
    EXPECT_EQ(m.GetTypeName(), "test::Many");
    EXPECT_TRUE(m.HasKey("i"));
  }
}

TEST_F(MetaTest, ExistsPersistIsPersisted) {
  ObjectMeta member;
  member.SetTypeName("test::Member");
  ASSERT_OK_AND_ASSIGN(ObjectID member_id, client_->CreateMetaData(member));
  ObjectMeta deeper;
  deeper.SetTypeName("test::Deeper");
  deeper.AddMember("m", member);
  ASSERT_OK_AND_ASSIGN(ObjectID deeper_id, client_->CreateMetaData(deeper));
  ObjectMeta root;
  root.SetTypeName("test::Root");
  root.AddMember("d", deeper);
  ASSERT_OK_AND_ASSIGN(ObjectID root_id, client_->CreateMetaData(root));

  EXPECT_TRUE(Exists(*other_, root_id));
  EXPECT_FALSE(Exists(*other_, ObjectID{0x42}));
  EXPECT_FALSE(Exists(*other_, kBlobBit | 0x42));
  for (ObjectID id : {root_id, deeper_id, member_id}) {
    ASSERT_OK_AND_ASSIGN(bool p, other_->IsPersisted(id));
    EXPECT_FALSE(p);
  }
  ASSERT_OK(other_->Persist(root_id));
  for (ObjectID id : {root_id, deeper_id, member_id}) {
    ASSERT_OK_AND_ASSIGN(bool p, client_->IsPersisted(id));
    EXPECT_TRUE(p) << ObjectIDToString(id);
    ASSERT_OK_AND_ASSIGN(ObjectMeta m, client_->GetMetaData(id));
    EXPECT_FALSE(m.IsTransient());
  }
  ASSERT_OK_AND_ASSIGN(ObjectMeta got, client_->GetMetaData(root_id));
  ASSERT_OK_AND_ASSIGN(ObjectMeta got_d, got.GetMember("d"));
  EXPECT_FALSE(got_d.IsTransient());
  // Persisting again is harmless.
  EXPECT_OK(client_->Persist(root_id));
  EXPECT_STATUS(kObjectNotExists, client_->Persist(ObjectID{0x42}));
  EXPECT_STATUS(kObjectNotExists, client_->IsPersisted(ObjectID{0x42}));

  // A persisted member does not make its holder persisted.
  ObjectMeta holder;
  holder.SetTypeName("test::Holder");
  holder.AddMember("m", member_id);
  ASSERT_OK_AND_ASSIGN(ObjectID holder_id, client_->CreateMetaData(holder));
  ASSERT_OK_AND_ASSIGN(bool hp, client_->IsPersisted(holder_id));
  EXPECT_FALSE(hp);
}

TEST_F(MetaTest, ShallowCopy) {
  const auto bytes = RandomBytes(777, 5);
  ObjectID blob_id = kInvalidObjectID;
  ObjectID bytes_id = PutBytes(*client_, bytes, &blob_id);
  ObjectMeta src;
  src.SetTypeName("test::Source");
  src.SetNBytes(777);
  src.AddKeyValue("a", 1);
  src.AddKeyValue("s", "text");
  src.AddMember("bytes_", bytes_id);
  ASSERT_OK_AND_ASSIGN(ObjectID src_id, client_->CreateMetaData(src));

  ASSERT_OK_AND_ASSIGN(ObjectID plain, other_->ShallowCopy(src_id));
  ASSERT_OK_AND_ASSIGN(ObjectID copy_id,
                       other_->ShallowCopy(src_id, json{{"extra", "yes"}, {"a", 2}, {"n", 5}}));
  EXPECT_NE(plain, src_id);
  EXPECT_NE(copy_id, src_id);
  EXPECT_NE(copy_id, plain);

  ASSERT_OK_AND_ASSIGN(ObjectMeta p, client_->GetMetaData(plain));
  EXPECT_EQ(p.GetId(), plain);
  EXPECT_EQ(p.GetTypeName(), "test::Source");
  EXPECT_EQ(p.GetNBytes(), 777u);
  ASSERT_OK_AND_ASSIGN(int pa, p.GetKeyValueAs<int>("a"));
  EXPECT_EQ(pa, 1);
  ASSERT_OK_AND_ASSIGN(ObjectID pm, p.GetMemberId("bytes_"));
  EXPECT_EQ(pm, bytes_id);

  ASSERT_OK_AND_ASSIGN(ObjectMeta c, client_->GetMetaData(copy_id));
  EXPECT_EQ(c.GetTypeName(), "test::Source");
  ASSERT_OK_AND_ASSIGN(std::string s, c.GetKeyValueAs<std::string>("s"));
  EXPECT_EQ(s, "text");
  ASSERT_OK_AND_ASSIGN(std::string extra, c.GetKeyValueAs<std::string>("extra"));
  EXPECT_EQ(extra, "yes");
  ASSERT_OK_AND_ASSIGN(int n, c.GetKeyValueAs<int>("n"));
  EXPECT_EQ(n, 5);
  ASSERT_OK_AND_ASSIGN(int ca, c.GetKeyValueAs<int>("a"));
  EXPECT_EQ(ca, 2);  // extra fields win
  ASSERT_OK_AND_ASSIGN(ObjectID cm, c.GetMemberId("bytes_"));
  EXPECT_EQ(cm, bytes_id);
  // The source is unchanged.
  ASSERT_OK_AND_ASSIGN(ObjectMeta s2, client_->GetMetaData(src_id));
  EXPECT_FALSE(s2.HasKey("extra"));
  ASSERT_OK_AND_ASSIGN(int sa, s2.GetKeyValueAs<int>("a"));
  EXPECT_EQ(sa, 1);

  // Deleting the source leaves the copy's (shared) members intact.
  ASSERT_OK(client_->Delete(src_id));
  EXPECT_FALSE(Exists(*client_, src_id));
  EXPECT_TRUE(Exists(*client_, bytes_id));
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, other_->GetObject(copy_id));
  ASSERT_OK_AND_ASSIGN(auto buf, obj.GetBuffer(blob_id));
  EXPECT_EQ(memcmp(buf->data(), bytes.data(), bytes.size()), 0);

  EXPECT_STATUS(kObjectNotExists, other_->ShallowCopy(ObjectID{0x42}));
  EXPECT_STATUS(kObjectIsBlob, other_->ShallowCopy(blob_id));
}

TEST_F(MetaTest, Label) {
  ObjectMeta meta;
  meta.SetTypeName("test::Labelled");
  meta.AddKeyValue("f", 1);
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->CreateMetaData(meta));
  ASSERT_OK(client_->Label(id, "owner", "alice"));
  ASSERT_OK(other_->Label(id, std::map<std::string, std::string>{{"team", "db"}, {"tier", "1"}}));
  ASSERT_OK(other_->Label(id, "owner", "bob"));  // relabel

  ASSERT_OK_AND_ASSIGN(ObjectMeta got, client_->GetMetaData(id));
  ASSERT_TRUE(got.MetaData().contains("__labels")) << got.ToString();
  json labels = got.MetaData()["__labels"];
  if (labels.is_string()) labels = json::parse(labels.get<std::string>());
  EXPECT_EQ(labels.value("owner", ""), "bob");
  EXPECT_EQ(labels.value("team", ""), "db");
  EXPECT_EQ(labels.value("tier", ""), "1");
  // Labels are neither members nor break the object.
  EXPECT_TRUE(got.MemberNames().empty()) << got.ToString();
  ASSERT_OK_AND_ASSIGN(int f, got.GetKeyValueAs<int>("f"));
  EXPECT_EQ(f, 1);
  ASSERT_OK(client_->GetObject(id));
  ASSERT_OK_AND_ASSIGN(ObjectID copy, client_->ShallowCopy(id));
  ASSERT_OK(client_->GetMetaData(copy));
  ObjectMeta holder;
  holder.SetTypeName("test::HoldsLabelled");
  holder.AddMember("m", got);
  ASSERT_OK(client_->CreateMetaData(holder));

  EXPECT_STATUS(kObjectNotExists, client_->Label(ObjectID{0x42}, "k", "v"));
}

TEST_F(MetaTest, DeepDeleteFreesMembers) {
  const uint64_t base = Usage(*client_);
  ObjectID blob_a = kInvalidObjectID;
  const auto bytes = RandomBytes(2 * kMiB, 9);
  ObjectID inner_id = PutBytes(*client_, bytes, &blob_a);

  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(3 * kMiB));
  const ObjectID blob_b = w->id();
  ObjectMeta outer;
  outer.SetTypeName("test::Outer");
  outer.AddMember("inner_", inner_id);
  outer.AddMember("buffer_", *w);
  ASSERT_OK_AND_ASSIGN(ObjectID outer_id, client_->Put(outer, {w.get()}));
  w.reset();
  ASSERT_OK(client_->FlushReleases());
  EXPECT_GE(Usage(*client_), base + 5 * kMiB);

  ASSERT_OK(other_->Delete(outer_id));
  for (ObjectID id : {outer_id, inner_id, blob_a, blob_b}) {
    EXPECT_FALSE(Exists(*other_, id)) << ObjectIDToString(id);
  }
  EXPECT_STATUS(kObjectNotExists, other_->GetBlob(blob_a));
  EXPECT_EQ(Usage(*client_), base);
  EXPECT_STATUS(kObjectNotExists, other_->Delete(outer_id));
}

TEST_F(MetaTest, ShallowDeleteKeepsMembers) {
  const uint64_t base = Usage(*client_);
  const auto bytes = RandomBytes(kMiB, 10);
  ObjectID blob = kInvalidObjectID;
  ObjectID inner_id = PutBytes(*client_, bytes, &blob);
  ObjectMeta outer;
  outer.SetTypeName("test::Outer");
  outer.AddMember("inner_", inner_id);
  ASSERT_OK_AND_ASSIGN(ObjectID outer_id, client_->CreateMetaData(outer));
  ASSERT_OK(client_->FlushReleases());
  const uint64_t with = Usage(*client_);
  EXPECT_GE(with, base + kMiB);

  ASSERT_OK(other_->Delete(outer_id, /*force=*/false, /*deep=*/false));
  EXPECT_FALSE(Exists(*other_, outer_id));
  EXPECT_TRUE(Exists(*other_, inner_id));
  EXPECT_TRUE(Exists(*other_, blob));
  EXPECT_EQ(Usage(*client_), with);
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, other_->GetObject(inner_id));
  ASSERT_OK_AND_ASSIGN(auto buf, obj.GetBuffer(blob));
  EXPECT_EQ(memcmp(buf->data(), bytes.data(), bytes.size()), 0);
}

TEST_F(MetaTest, MemberIsNotDeletedWithoutForce) {
  ObjectMeta inner;
  inner.SetTypeName("test::Inner");
  ASSERT_OK_AND_ASSIGN(ObjectID inner_id, client_->CreateMetaData(inner));
  ObjectMeta outer;
  outer.SetTypeName("test::Outer");
  outer.AddMember("inner_", inner_id);
  ASSERT_OK_AND_ASSIGN(ObjectID outer_id, client_->CreateMetaData(outer));
  ObjectMeta bystander;
  bystander.SetTypeName("test::Bystander");
  ASSERT_OK_AND_ASSIGN(ObjectID bystander_id, client_->CreateMetaData(bystander));

  (void)other_->Delete(inner_id);  // refused or ignored: either way it stays
  EXPECT_TRUE(Exists(*other_, inner_id));
  EXPECT_TRUE(Exists(*other_, outer_id));
  ASSERT_OK_AND_ASSIGN(ObjectMeta got, other_->GetMetaData(outer_id));
  ASSERT_OK_AND_ASSIGN(ObjectID member, got.GetMemberId("inner_"));
  EXPECT_EQ(member, inner_id);

  ASSERT_OK(other_->Delete(inner_id, /*force=*/true));
  EXPECT_FALSE(Exists(*other_, inner_id));
  EXPECT_FALSE(Exists(*other_, outer_id));
  EXPECT_TRUE(Exists(*other_, bystander_id));

  // A member shared by two holders survives deleting one of them (deep).
  ObjectMeta shared;
  shared.SetTypeName("test::Shared");
  ASSERT_OK_AND_ASSIGN(ObjectID shared_id, client_->CreateMetaData(shared));
  ObjectMeta h1, h2;
  h1.SetTypeName("test::Holder");
  h1.AddMember("s", shared_id);
  h2.SetTypeName("test::Holder");
  h2.AddMember("s", shared_id);
  ASSERT_OK_AND_ASSIGN(ObjectID h1_id, client_->CreateMetaData(h1));
  ASSERT_OK_AND_ASSIGN(ObjectID h2_id, client_->CreateMetaData(h2));
  ASSERT_OK(client_->Delete(h1_id));
  EXPECT_FALSE(Exists(*client_, h1_id));
  EXPECT_TRUE(Exists(*client_, shared_id));
  ASSERT_OK(client_->Delete(h2_id));
  EXPECT_FALSE(Exists(*client_, shared_id));
}

TEST_F(MetaTest, DeleteUnknownIsObjectNotExists) {
  EXPECT_STATUS(kObjectNotExists, client_->Delete(ObjectID{0x42}));
  EXPECT_STATUS(kObjectNotExists, client_->Delete(kBlobBit | 0x42));
  ObjectMeta m;
  m.SetTypeName("test::Known");
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->CreateMetaData(m));
  // A batch naming an unknown id deletes nothing.
  EXPECT_STATUS(kObjectNotExists, client_->Delete(std::vector<ObjectID>{id, ObjectID{0x42}}));
  EXPECT_TRUE(Exists(*client_, id));
}

TEST_F(MetaTest, ClearRemovesEverything) {
  for (int i = 0; i < 5; ++i) PutBytes(*client_, RandomBytes(100000 + i, i));
  ObjectMeta named;
  named.SetTypeName("test::Named");
  ASSERT_OK(client_->Put(named, {}, true, "clear-me"));
  ASSERT_OK_AND_ASSIGN(auto w, other_->CreateBlob(kMiB));
  ASSERT_OK_AND_ASSIGN(auto loose, w->Seal());
  const ObjectID loose_id = loose->id();
  loose.reset();
  ASSERT_OK(other_->FlushReleases());
  ASSERT_OK(client_->FlushReleases());
  EXPECT_GT(Usage(*client_), 0u);

  ASSERT_OK(client_->Clear());
  EXPECT_EQ(CountObjects(*client_), 0u);
  ASSERT_OK_AND_ASSIGN(auto names, client_->ListNames("*", false, 100));
  EXPECT_TRUE(names.empty());
  EXPECT_STATUS(kObjectNotExists, client_->GetName("clear-me"));
  EXPECT_FALSE(Exists(*client_, loose_id));
  EXPECT_EQ(Usage(*client_), 0u);
  // And the server works as before.
  const auto bytes = RandomBytes(1000, 99);
  ObjectID blob = kInvalidObjectID;
  ObjectID id = PutBytes(*client_, bytes, &blob);
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, other_->GetObject(id));
  ASSERT_OK_AND_ASSIGN(auto buf, obj.GetBuffer(blob));
  EXPECT_EQ(memcmp(buf->data(), bytes.data(), bytes.size()), 0);
}

TEST_F(MetaTest, GlobalFlagRoundTrips) {
  ObjectMeta g;
  g.SetTypeName("test::Global");
  g.SetGlobal();
  EXPECT_TRUE(g.IsGlobal());
  ASSERT_OK_AND_ASSIGN(ObjectID gid, client_->CreateMetaData(g));
  ObjectMeta l;
  l.SetTypeName("test::Local");
  ASSERT_OK_AND_ASSIGN(ObjectID lid, client_->CreateMetaData(l));
  ASSERT_OK_AND_ASSIGN(ObjectMeta gg, other_->GetMetaData(gid));
  EXPECT_TRUE(gg.IsGlobal());
  ASSERT_OK_AND_ASSIGN(ObjectMeta lg, other_->GetMetaData(lid));
  EXPECT_FALSE(lg.IsGlobal());
  // A global object holding a local member; the member stays non-global.
  ObjectMeta g2;
  g2.SetTypeName("test::GlobalHolder");
  g2.SetGlobal(true);
  g2.AddMember("part_0", lid);
  ASSERT_OK_AND_ASSIGN(ObjectID g2id, client_->Put(g2, {}, /*persist=*/true));
  ASSERT_OK_AND_ASSIGN(ObjectMeta g2g, other_->GetMetaData(g2id));
  EXPECT_TRUE(g2g.IsGlobal());
  EXPECT_FALSE(g2g.IsTransient());
  ASSERT_OK_AND_ASSIGN(ObjectMeta part, g2g.GetMember("part_0"));
  EXPECT_FALSE(part.IsGlobal());
}

TEST_F(MetaTest, InvalidTrees) {
  const size_t before = CountObjects(*client_);
  ObjectMeta no_type;
  no_type.AddKeyValue("x", 1);
  EXPECT_STATUS(kInvalid, client_->CreateMetaData(no_type));
  EXPECT_STATUS(kInvalid, client_->Put(no_type, {}));
  ObjectMeta blob_type;
  blob_type.SetTypeName("vineyard::Blob");
  EXPECT_STATUS(kInvalid, client_->CreateMetaData(blob_type));

  ObjectMeta unknown_member;
  unknown_member.SetTypeName("test::Bad");
  unknown_member.AddMember("m", ObjectID{0x4242});
  EXPECT_STATUS(kObjectNotExists, client_->CreateMetaData(unknown_member));
  ObjectMeta unknown_blob;
  unknown_blob.SetTypeName("test::Bad");
  unknown_blob.AddMember("m", kBlobBit | 0x4242);
  EXPECT_STATUS(kObjectNotExists, client_->CreateMetaData(unknown_blob));

  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(100));
  ObjectMeta unsealed;
  unsealed.SetTypeName("test::Bad");
  unsealed.AddMember("buffer_", *w);
  EXPECT_STATUS(kObjectNotSealed, client_->CreateMetaData(unsealed));
  // Another client cannot use it either.
  ObjectMeta unsealed2;
  unsealed2.SetTypeName("test::Bad");
  unsealed2.AddMember("buffer_", w->id());
  EXPECT_STATUS(kObjectNotSealed, other_->CreateMetaData(unsealed2));
  EXPECT_EQ(CountObjects(*client_), before);
  // Once sealed it is fine.
  ASSERT_OK(w->Seal());
  ObjectMeta good;
  good.SetTypeName("test::Good");
  good.AddMember("buffer_", w->id());
  ASSERT_OK(client_->CreateMetaData(good));
}

TEST_F(MetaTest, PutPersistAndName) {
  const auto bytes = RandomBytes(4096, 12);
  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(bytes.size()));
  ASSERT_OK(w->Copy(0, bytes.data(), bytes.size()));
  ObjectMeta meta;
  meta.SetTypeName("test::Named");
  meta.AddKeyValue("k", "v");
  meta.AddMember("buffer_", *w);
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->Put(meta, {w.get()}, true, "the-name"));
  EXPECT_FALSE(meta.IsTransient());
  ASSERT_OK_AND_ASSIGN(ObjectID named, other_->GetName("the-name"));
  EXPECT_EQ(named, id);
  ASSERT_OK_AND_ASSIGN(bool persisted, other_->IsPersisted(id));
  EXPECT_TRUE(persisted);
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, other_->GetObject(named));
  EXPECT_FALSE(obj.IsTransient());
  ASSERT_OK_AND_ASSIGN(auto buf, obj.GetBuffer(w->id()));
  EXPECT_EQ(memcmp(buf->data(), bytes.data(), bytes.size()), 0);

  // persist without a name.
  ObjectMeta p;
  p.SetTypeName("test::Persisted");
  ASSERT_OK_AND_ASSIGN(ObjectID pid, client_->Put(p, {}, true));
  ASSERT_OK_AND_ASSIGN(bool pp, other_->IsPersisted(pid));
  EXPECT_TRUE(pp);
  // a plain put stays transient.
  ObjectMeta t;
  t.SetTypeName("test::Transient");
  ASSERT_OK_AND_ASSIGN(ObjectID tid, client_->Put(t, {}));
  ASSERT_OK_AND_ASSIGN(bool tp, other_->IsPersisted(tid));
  EXPECT_FALSE(tp);
  EXPECT_TRUE(t.IsTransient());
}

TEST_F(MetaTest, FailedPutLeavesNothingBehind) {
  const size_t objects_before = CountObjects(*client_);
  const uint64_t usage_before = Usage(*client_);
  {
    ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(2 * kMiB));
    memset(w->data(), 7, w->size());
    ObjectMeta meta;
    meta.SetTypeName("test::Failing");
    meta.AddMember("buffer_", *w);
    meta.AddMember("missing_", ObjectID{0x4242});
    EXPECT_STATUS(kObjectNotExists, client_->Put(meta, {w.get()}, true, "failed-name"));
    EXPECT_STATUS(kObjectNotExists, other_->GetName("failed-name"));
    EXPECT_EQ(CountObjects(*client_), objects_before);
    // The blob is the client's again, unsealed, its bytes intact: a put without
    // the bad member seals it.
    ASSERT_TRUE(w->writable());
    ObjectMeta retried;
    retried.SetTypeName("test::Retried");
    retried.AddMember("buffer_", *w);
    ASSERT_OK_AND_ASSIGN(ObjectID rid, client_->Put(retried, {w.get()}));
    {
      ASSERT_OK_AND_ASSIGN(ObjectMeta got, other_->GetObject(rid));
      ASSERT_OK_AND_ASSIGN(auto buf, got.GetBuffer(w->id()));
      EXPECT_EQ(buf->data()[0], 7);
      EXPECT_EQ(buf->data()[buf->size() - 1], 7);
    }
    ASSERT_OK(other_->FlushReleases());
    ASSERT_OK(client_->Delete(rid, false, true));
  }
  {
    // Several blobs, and a tree without typename.
    ASSERT_OK_AND_ASSIGN(auto ws, client_->CreateBlobs({kMiB, kMiB, 10}));
    ObjectMeta meta;
    for (size_t i = 0; i < ws.size(); ++i) meta.AddMember("b" + std::to_string(i), *ws[i]);
    EXPECT_STATUS(kInvalid,
                  client_->Put(meta, {ws[0].get(), ws[1].get(), ws[2].get()}, false, "n2"));
    EXPECT_STATUS(kObjectNotExists, other_->GetName("n2"));
  }
  ASSERT_OK(client_->FlushReleases());
  EXPECT_EQ(CountObjects(*client_), objects_before);
  EXPECT_EQ(Usage(*client_), usage_before);
  ASSERT_OK_AND_ASSIGN(auto names, other_->ListNames("*", false, 100));
  EXPECT_TRUE(names.empty());
  // The client is still in a good state.
  const auto bytes = RandomBytes(100, 13);
  ObjectID blob = kInvalidObjectID;
  ObjectID id = PutBytes(*client_, bytes, &blob);
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, other_->GetObject(id));
  ASSERT_OK_AND_ASSIGN(auto buf, obj.GetBuffer(blob));
  EXPECT_EQ(memcmp(buf->data(), bytes.data(), bytes.size()), 0);
}

TEST_F(MetaTest, GetMetaDataWaitsForTheObject) {
  // wait=true returns at once for an existing object.
  ObjectMeta m;
  m.SetTypeName("test::Now");
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->CreateMetaData(m));
  ASSERT_OK_AND_ASSIGN(ObjectMeta got, other_->GetMetaData(id, false, true));
  EXPECT_EQ(got.GetId(), id);
}

}  // namespace
}  // namespace vineyard
