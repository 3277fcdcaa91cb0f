// RecordFields and Members: a record's fields kept as JSON text and interned,
// member names interned; entries go with their last holder, also when many
// threads make and drop the same ones (run under ASan and TSan in CI).
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/record_fields.h"

namespace vineyard {
namespace {

json TensorFields(int64_t n) {
  return json{{"typename", "vineyard::Tensor<int64>"}, {"nbytes", n * 8},
              {"shape_", "[" + std::to_string(n) + "]"}, {"value_type_", "int64"}};
}

TEST(RecordFieldsTest, EqualFieldsShareOneEntryUntilTheLastHolderGoes) {
  const size_t before = RecordFields::InternedCount();
  auto a = RecordFields::Of(TensorFields(8));
  auto b = RecordFields::Of(TensorFields(8));
  auto c = RecordFields::Of(TensorFields(9));
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(RecordFields::InternedCount(), before + 2);
  a.reset();
  EXPECT_EQ(RecordFields::InternedCount(), before + 2);  // b still holds it
  b.reset();
  EXPECT_EQ(RecordFields::InternedCount(), before + 1);
  auto again = RecordFields::Of(TensorFields(8));  // made anew, then shared again
  EXPECT_EQ(again->text(), TensorFields(8).dump());
  EXPECT_EQ(RecordFields::InternedCount(), before + 2);
  c.reset();
  again.reset();
  EXPECT_EQ(RecordFields::InternedCount(), before);
}

TEST(RecordFieldsTest, TheTextIsTheCompactDumpAndParsesBack) {
  json fields = TensorFields(3);
  fields["label"] = "quote \" and \\ and \xc3\xa9";
  fields["nested"] = json{{"b", json::array({1, 2.5, nullptr})}, {"a", true}};
  auto f = RecordFields::Of(fields);
  EXPECT_EQ(f->text(), fields.dump());
  EXPECT_EQ(f->ToJson(), fields);
  EXPECT_EQ(f->type_name(), "vineyard::Tensor<int64>");

  EXPECT_EQ(RecordFields::Empty()->text(), "{}");
  EXPECT_EQ(RecordFields::Empty()->type_name(), "");
  EXPECT_EQ(RecordFields::Of(json{{"typename", 7}})->type_name(), "");  // not a string

  // Invalid UTF-8 is replaced as dump() replaces it, so the text always parses.
  auto bad = RecordFields::Of(json{{"typename", "t"}, {"raw", std::string("a\xff" "b")}});
  EXPECT_EQ(bad->ToJson()["raw"], "a\xef\xbf\xbd" "b");
}

TEST(RecordFieldsTest, ManyThreadsMakingAndDroppingTheSameFields) {
  const size_t before = RecordFields::InternedCount();
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::shared_ptr<const RecordFields>> held;
      for (int i = 0; i < 4000; ++i) {
        auto f = RecordFields::Of(TensorFields(i % 8));
        if (f->text() != TensorFields(i % 8).dump()) mismatches++;
        auto name = InternName("member_" + std::to_string((i + t) % 5));
        if (name->text != "member_" + std::to_string((i + t) % 5)) mismatches++;
        if (i % 3 == 0) held.push_back(std::move(f));
        if (held.size() > 16) held.erase(held.begin(), held.begin() + 8);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(RecordFields::InternedCount(), before);
}

TEST(MembersTest, KeepsOrderSharesNamesAndCopies) {
  Members m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.begin(), m.end());
  for (int i = 0; i < 1000; ++i) m.emplace_back("column_" + std::to_string(i % 10), i);
  ASSERT_EQ(m.size(), 1000u);
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i].name->text, "column_" + std::to_string(i % 10));
    EXPECT_EQ(m[i].id, static_cast<ObjectID>(i));
  }
  EXPECT_EQ(m[3].name.get(), m[13].name.get());  // one string per distinct name

  Members copy = m;
  ASSERT_EQ(copy.size(), m.size());
  EXPECT_EQ(copy[999].id, 999u);
  EXPECT_EQ(copy[5].name.get(), m[5].name.get());

  Members moved = std::move(copy);
  EXPECT_EQ(moved.size(), 1000u);
  EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty

  Members reserved;
  reserved.reserve(3);
  reserved.emplace_back("a", 1);
  reserved.emplace_back("b", 2);
  int seen = 0;
  for (const auto& [name, id] : reserved) seen += static_cast<int>(id) * (name->text == "a" ? 1 : 10);
  EXPECT_EQ(seen, 21);
  copy = reserved;  // assigning into a moved-from list
  EXPECT_EQ(copy.size(), 2u);
}

}  // namespace
}  // namespace vineyard
