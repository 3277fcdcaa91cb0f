// LazyFree: large JSON documents freed on a background thread, small ones at
// once; many threads at once (under TSan in CI), and in a forked child.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/lazy_free.h"

namespace vineyard {
namespace {

// A document of `n` members, each a small object, as a many-part tree is.
json Document(int n) {
  json doc = json::object();
  for (int i = 0; i < n; ++i) {
    doc["member_" + std::to_string(i)] = json{{"id", "o" + std::to_string(i)}, {"length_", i}};
  }
  return doc;
}


TEST(LazyFreeTest, SizesAreCountedOnlyUpToTheLimit) {
  EXPECT_FALSE(IsLargeDocument(json::object()));
  EXPECT_FALSE(IsLargeDocument(Document(10)));
  EXPECT_TRUE(IsLargeDocument(Document(2000)));
  EXPECT_TRUE(IsLargeDocument(Document(10), 5));
  json deep = json::array();
  json* at = &deep;
  for (int i = 0; i < 5000; ++i) {  // large by depth, not by width
    at->push_back(json::array());
    at = &at->back();
  }
  EXPECT_TRUE(IsLargeDocument(deep));
}

TEST(LazyFreeTest, DocumentsAreEmptiedAndAnOwnedOneIsFreedLater) {
  json small = Document(3);
  LazyFree(small);
  EXPECT_TRUE(small.is_null());
  json large = Document(5000);
  LazyFree(large);
  EXPECT_TRUE(large.is_null());
  // A shared owner frees through LazyFree: the document is usable until then.
  auto shared = MakeLazyFreed(Document(5000));
  EXPECT_EQ(shared->size(), 5000u);
  std::weak_ptr<json> weak = shared;
  shared.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(LazyFreeTest, ManyThreadsAtOnce) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 50; ++i) {
        json doc = Document(i % 2 == 0 ? 3000 : 10);
        LazyFree(doc);
        auto owned = MakeLazyFreed(Document(2000));
        owned.reset();
      }
    });
  }
  for (auto& t : threads) t.join();
}

TEST(LazyFreeTest, AForkedChildFreesWithItsOwnThread) {
  json before = Document(5000);
  LazyFree(before);  // the parent's thread is running now
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < 20; ++i) {
      json doc = Document(3000);
      LazyFree(doc);
      if (!doc.is_null()) _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace vineyard
