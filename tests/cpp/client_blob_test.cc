// Blobs through the C++ client against a real vineyardd: create, write, seal,
// read, shrink, abort, limits, read-only mappings and the memory lifecycle.
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstring>
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
using testing::WaitUsage;


constexpr size_t kMiB = 1 << 20;



bool Aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }



// Creates, fills and seals a blob; returns the sealed blob.
std::shared_ptr<Blob> MakeSealed(Client& c, const std::vector<uint8_t>& bytes) {
  auto w = c.CreateBlob(bytes.size());
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  if (!w.ok()) return nullptr;
  EXPECT_OK((*w)->Copy(0, bytes.data(), bytes.size()));
  auto b = (*w)->Seal();
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? *b : nullptr;
}

class BlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestServer::Start();
    ASSERT_TRUE(server_->Running());
    client_ = server_->Connect();
    reader_ = server_->Connect();
    ASSERT_TRUE(client_ && reader_);
  }
  void TearDown() override {
    client_.reset();
    reader_.reset();
    server_.reset();
  }
  std::unique_ptr<TestServer> server_;
  std::shared_ptr<Client> client_;
  std::shared_ptr<Client> reader_;
};

TEST_F(BlobTest, CreateCopySealGet) {
  const auto bytes = RandomBytes(100000, 1);
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(bytes.size()));
  EXPECT_TRUE(IsBlob(writer->id()));
  EXPECT_FALSE(IsEmptyBlob(writer->id()));
  EXPECT_EQ(writer->size(), bytes.size());
  EXPECT_FALSE(writer->sealed());
  EXPECT_TRUE(Aligned64(writer->data()));
  ASSERT_OK(writer->Copy(0, bytes.data(), 50000));
  ASSERT_OK(writer->Copy(50000, bytes.data() + 50000, 50000));
  // Writing past the end is refused.
  EXPECT_STATUS(kInvalid, writer->Copy(99999, bytes.data(), 2));
  const ObjectID id = writer->id();

  ASSERT_OK_AND_ASSIGN(auto sealed, writer->Seal());
  EXPECT_TRUE(writer->sealed());
  EXPECT_EQ(sealed->id(), id);
  EXPECT_EQ(sealed->size(), bytes.size());
  EXPECT_EQ(memcmp(sealed->data(), bytes.data(), bytes.size()), 0);
  // Immutable once sealed.
  EXPECT_STATUS(kObjectSealed, writer->Copy(0, bytes.data(), 1));

  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(id));
  EXPECT_EQ(got->id(), id);
  EXPECT_EQ(got->size(), bytes.size());
  EXPECT_FALSE(got->IsEmpty());
  EXPECT_TRUE(Aligned64(got->data()));
  EXPECT_EQ(memcmp(got->data(), bytes.data(), bytes.size()), 0);
  // Same client, again.
  ASSERT_OK_AND_ASSIGN(auto again, client_->GetBlob(id));
  EXPECT_EQ(memcmp(again->data(), bytes.data(), bytes.size()), 0);

  ASSERT_OK_AND_ASSIGN(bool exists, reader_->Exists(id));
  EXPECT_TRUE(exists);
  // The blob's own metadata tree.
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, reader_->GetMetaData(id));
  EXPECT_TRUE(meta.IsBlob());
  EXPECT_EQ(meta.GetId(), id);
  EXPECT_EQ(meta.GetNBytes(), bytes.size());
}

TEST_F(BlobTest, CreateBlobsAndGetBlobs) {
  const std::vector<size_t> sizes = {1, 63, 64, 0, 65, 4096, 100000, 3 * kMiB + 7};
  ASSERT_OK_AND_ASSIGN(auto writers, client_->CreateBlobs(sizes));
  ASSERT_EQ(writers.size(), sizes.size());
  std::vector<std::vector<uint8_t>> contents;
  std::vector<ObjectID> ids;
  std::set<ObjectID> distinct;
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(writers[i]->size(), sizes[i]);
    if (sizes[i] > 0) {
      EXPECT_TRUE(Aligned64(writers[i]->data())) << i;
    }
    contents.push_back(RandomBytes(sizes[i], 100 + i));
    ASSERT_OK(writers[i]->Copy(0, contents[i].data(), sizes[i]));
    ids.push_back(writers[i]->id());
    distinct.insert(writers[i]->id());
  }
  EXPECT_EQ(distinct.size(), sizes.size());
  EXPECT_EQ(writers[3]->id(), kEmptyBlobID);
  // Blobs must not overlap: rewrite-check every one after all were written.
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] > 0) {  // the empty blob has no memory (data() is null)
      EXPECT_EQ(memcmp(writers[i]->data(), contents[i].data(), sizes[i]), 0) << i;
    }
  }
  std::vector<std::shared_ptr<Blob>> sealed;
  for (auto& w : writers) {
    ASSERT_OK_AND_ASSIGN(auto b, w->Seal());
    sealed.push_back(b);
  }
  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlobs(ids));
  ASSERT_EQ(got.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(got[i]->id(), ids[i]);
    EXPECT_EQ(got[i]->size(), sizes[i]);
    if (sizes[i] > 0) {
      EXPECT_TRUE(Aligned64(got[i]->data())) << i;
      EXPECT_EQ(memcmp(got[i]->data(), contents[i].data(), sizes[i]), 0) << i;
    }
  }
  // A batch with one unknown id fails as a whole.
  std::vector<ObjectID> with_unknown = ids;
  with_unknown.push_back(kBlobBit | 0x1234);
  EXPECT_STATUS(kObjectNotExists, reader_->GetBlobs(with_unknown));
}

TEST_F(BlobTest, EmptyBlob) {
  const uint64_t before = Usage(*client_);
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(0));
  EXPECT_EQ(writer->id(), ObjectID{0x8000000000000000ULL});
  EXPECT_EQ(writer->id(), kEmptyBlobID);
  EXPECT_EQ(writer->size(), 0u);
  EXPECT_OK(writer->Copy(0, nullptr, 0));
  ASSERT_OK_AND_ASSIGN(auto sealed, writer->Seal());
  EXPECT_TRUE(sealed->IsEmpty());
  EXPECT_EQ(sealed->id(), kEmptyBlobID);
  EXPECT_EQ(sealed->size(), 0u);

  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(kEmptyBlobID));
  EXPECT_TRUE(got->IsEmpty());
  EXPECT_EQ(got->id(), kEmptyBlobID);
  EXPECT_EQ(got->size(), 0u);
  ASSERT_OK_AND_ASSIGN(bool exists, reader_->Exists(kEmptyBlobID));
  EXPECT_TRUE(exists);

  auto made = Blob::MakeEmpty();
  EXPECT_TRUE(made->IsEmpty());
  EXPECT_EQ(made->id(), kEmptyBlobID);

  // Two empty blobs are the same blob; neither costs memory.
  ASSERT_OK_AND_ASSIGN(auto w2, client_->CreateBlob(0));
  EXPECT_EQ(w2->id(), kEmptyBlobID);
  EXPECT_EQ(Usage(*client_), before);

  // An object holding the empty blob round-trips.
  ASSERT_OK_AND_ASSIGN(auto w3, client_->CreateBlob(0));
  ObjectMeta meta;
  meta.SetTypeName("test::Empty");
  meta.AddMember("buffer_", *w3);
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->Put(meta, {w3.get()}));
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, reader_->GetObject(id));
  ASSERT_OK_AND_ASSIGN(ObjectID bid, obj.GetMemberId("buffer_"));
  EXPECT_EQ(bid, kEmptyBlobID);
  ASSERT_OK_AND_ASSIGN(auto buf, obj.GetBuffer(bid));
  EXPECT_TRUE(buf->IsEmpty());
  EXPECT_EQ(Usage(*client_), before);
}

TEST_F(BlobTest, ShrinkBeforeSeal) {
  const uint64_t before = Usage(*client_);
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(kMiB));
  const uint64_t created = Usage(*client_);
  EXPECT_GE(created - before, kMiB);
  const auto bytes = RandomBytes(1000, 7);
  ASSERT_OK(writer->Copy(0, bytes.data(), bytes.size()));
  EXPECT_STATUS(kInvalid, writer->Shrink(2 * kMiB));  // cannot grow
  ASSERT_OK(writer->Shrink(1000));
  EXPECT_EQ(writer->size(), 1000u);
  EXPECT_LT(Usage(*client_), created);
  // The shrunk blob refuses writes beyond its new size.
  EXPECT_STATUS(kInvalid, writer->Copy(0, bytes.data(), 1001));
  const ObjectID id = writer->id();
  ASSERT_OK_AND_ASSIGN(auto sealed, writer->Seal());
  EXPECT_EQ(sealed->size(), 1000u);
  EXPECT_STATUS(kObjectSealed, writer->Shrink(10));

  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(id));
  EXPECT_EQ(got->size(), 1000u);
  EXPECT_EQ(memcmp(got->data(), bytes.data(), bytes.size()), 0);
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, reader_->GetMetaData(id));
  EXPECT_EQ(meta.GetNBytes(), 1000u);
}

TEST_F(BlobTest, ShrinkToZero) {
  const uint64_t before = Usage(*client_);
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(64 * 1024));
  const ObjectID id = writer->id();
  ASSERT_OK(writer->Shrink(0));
  EXPECT_EQ(writer->size(), 0u);
  ASSERT_OK_AND_ASSIGN(auto sealed, writer->Seal());
  EXPECT_EQ(sealed->size(), 0u);
  EXPECT_EQ(sealed->id(), id);
  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(id));
  EXPECT_EQ(got->size(), 0u);
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, reader_->GetMetaData(id));
  EXPECT_EQ(meta.GetNBytes(), 0u);
  // Its references go back like any other blob's.
  sealed.reset();
  got.reset();
  ASSERT_OK(client_->FlushReleases());
  ASSERT_OK(reader_->FlushReleases());
  ASSERT_OK(client_->Delete(id));
  EXPECT_EQ(Usage(*client_), before);
}

TEST_F(BlobTest, AbortWhileAnUnsafeReaderHoldsIt) {
  const uint64_t before = Usage(*client_);
  const size_t size = 4 * kMiB;
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(size));
  memset(writer->data(), 0x33, size);
  // Only the creator may read its unsealed blob (unsafe).
  EXPECT_STATUS(kObjectNotSealed, reader_->GetBlob(writer->id(), /*unsafe=*/true));
  ASSERT_OK_AND_ASSIGN(auto peek, client_->GetBlob(writer->id(), /*unsafe=*/true));
  const ObjectID id = writer->id();
  ASSERT_OK(writer->Abort());
  EXPECT_STATUS(kObjectNotExists, client_->GetBlob(id, true));
  EXPECT_GE(Usage(*client_), before + size);  // still mapped by the reader
  ASSERT_OK_AND_ASSIGN(auto w2, client_->CreateBlob(size));
  memset(w2->data(), 0x44, size);
  for (size_t i = 0; i < size; i += 4096) ASSERT_EQ(peek->data()[i], 0x33) << i;
  ASSERT_OK(w2->Abort());
  peek.reset();
  ASSERT_OK(client_->FlushReleases());
  EXPECT_EQ(Usage(*client_), before);
}

TEST_F(BlobTest, AbortBeforeSeal) {
  const uint64_t before = Usage(*client_);
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(4 * kMiB));
  const ObjectID id = writer->id();
  EXPECT_GE(Usage(*client_), before + 4 * kMiB);
  ASSERT_OK(writer->Abort());
  EXPECT_STATUS(kObjectNotExists, reader_->GetBlob(id));
  EXPECT_STATUS(kObjectNotExists, reader_->GetBlob(id, /*unsafe=*/true));
  EXPECT_STATUS(kObjectNotExists, client_->GetBlob(id));
  ASSERT_OK_AND_ASSIGN(bool exists, reader_->Exists(id));
  EXPECT_FALSE(exists);
  EXPECT_EQ(Usage(*client_), before);
  // A dropped writer can be neither written nor sealed.
  uint8_t byte = 1;
  EXPECT_FALSE(writer->Copy(0, &byte, 1).ok());
  EXPECT_FALSE(writer->Seal().ok());
  writer.reset();
  EXPECT_EQ(Usage(*client_), before);

  // A writer destroyed without sealing gives its memory back too.
  {
    ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(2 * kMiB));
    EXPECT_GE(Usage(*client_), before + 2 * kMiB);
  }
  EXPECT_EQ(Usage(*client_), before);

  // And so does a client that goes away with an unsealed blob.
  auto leaver = server_->Connect();
  ASSERT_OK_AND_ASSIGN(auto orphan, leaver->CreateBlob(3 * kMiB));
  const ObjectID orphan_id = orphan->id();
  EXPECT_GE(Usage(*client_), before + 3 * kMiB);
  ASSERT_OK(leaver->Disconnect());
  orphan.reset();
  leaver.reset();
  EXPECT_EQ(WaitUsage(*client_, before), before);
  EXPECT_STATUS(kObjectNotExists, reader_->GetBlob(orphan_id, true));
}

TEST_F(BlobTest, SealTwiceIsObjectSealed) {
  const auto bytes = RandomBytes(64, 3);
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(bytes.size()));
  ASSERT_OK(writer->Copy(0, bytes.data(), bytes.size()));
  ASSERT_OK_AND_ASSIGN(auto sealed, writer->Seal());
  EXPECT_STATUS(kObjectSealed, writer->Seal());
  EXPECT_STATUS(kObjectSealed, writer->Abort());
  // Putting an object with an already sealed writer is refused too.
  ObjectMeta meta;
  meta.SetTypeName("test::Twice");
  meta.AddMember("buffer_", *writer);
  EXPECT_STATUS(kObjectSealed, client_->Put(meta, {writer.get()}));
  // The blob itself is fine.
  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(writer->id()));
  EXPECT_EQ(memcmp(got->data(), bytes.data(), bytes.size()), 0);

  // Sealing via Put, then Seal() again.
  ASSERT_OK_AND_ASSIGN(auto w2, client_->CreateBlob(16));
  ObjectMeta m2;
  m2.SetTypeName("test::Twice");
  m2.AddMember("buffer_", *w2);
  ASSERT_OK(client_->Put(m2, {w2.get()}));
  EXPECT_TRUE(w2->sealed());
  EXPECT_STATUS(kObjectSealed, w2->Seal());
}

TEST_F(BlobTest, UnsealedBlobNeedsUnsafe) {
  const auto bytes = RandomBytes(4096, 4);
  ASSERT_OK_AND_ASSIGN(auto writer, client_->CreateBlob(bytes.size()));
  ASSERT_OK(writer->Copy(0, bytes.data(), bytes.size()));
  const ObjectID id = writer->id();
  EXPECT_STATUS(kObjectNotSealed, reader_->GetBlob(id));
  EXPECT_STATUS(kObjectNotSealed, client_->GetBlob(id));
  EXPECT_STATUS(kObjectNotSealed, reader_->GetBlobs({id}));
  // Only its creator may peek at it before it is sealed.
  EXPECT_STATUS(kObjectNotSealed, reader_->GetBlob(id, /*unsafe=*/true));
  {
    ASSERT_OK_AND_ASSIGN(auto peek, client_->GetBlob(id, /*unsafe=*/true));
    EXPECT_EQ(peek->id(), id);
    EXPECT_EQ(peek->size(), bytes.size());
    EXPECT_EQ(memcmp(peek->data(), bytes.data(), bytes.size()), 0);
  }
  // Only the creator may seal it; afterwards everyone may read it.
  ASSERT_OK_AND_ASSIGN(auto sealed, writer->Seal());
  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(id));
  EXPECT_EQ(memcmp(got->data(), bytes.data(), bytes.size()), 0);
}

TEST(BlobLimitTest, LargerThanSizeIsNotEnoughMemory) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_TRUE(server->Running());
  auto client = server->Connect();
  ASSERT_TRUE(client);
  ASSERT_OK_AND_ASSIGN(InstanceStatus st, client->GetInstanceStatus());
  EXPECT_EQ(st.memory_limit, 64 * kMiB);
  const uint64_t before = st.memory_usage;

  EXPECT_STATUS(kNotEnoughMemory, client->CreateBlob(64 * kMiB + 1));
  EXPECT_STATUS(kNotEnoughMemory, client->CreateBlob(100 * kMiB));
  EXPECT_STATUS(kNotEnoughMemory, client->CreateBlob(uint64_t{1} << 40));
  EXPECT_STATUS(kNotEnoughMemory, client->CreateBlob(~size_t{0} >> 1));
  // All or nothing for a batch.
  EXPECT_STATUS(kNotEnoughMemory, client->CreateBlobs({kMiB, kMiB, 80 * kMiB}));
  EXPECT_EQ(Usage(*client), before);
  EXPECT_TRUE(server->Running());

  // The server keeps serving, to this client and to new ones.
  const auto bytes = RandomBytes(kMiB, 9);
  auto sealed = MakeSealed(*client, bytes);
  ASSERT_TRUE(sealed);
  auto other = server->Connect();
  ASSERT_TRUE(other);
  ASSERT_OK_AND_ASSIGN(auto got, other->GetBlob(sealed->id()));
  EXPECT_EQ(memcmp(got->data(), bytes.data(), bytes.size()), 0);
  // Whatever is left is still usable, up to the limit.
  // (a blob costs its allocator size class: 56 MiB is the largest that fits)
  ASSERT_OK_AND_ASSIGN(auto rest, client->CreateBlob(56 * kMiB));
  EXPECT_STATUS(kNotEnoughMemory, client->CreateBlob(8 * kMiB));
  ASSERT_OK(rest->Abort());
  EXPECT_TRUE(server->Running());
}

TEST(BlobLimitTest, FillDeleteAndReuse) {
  auto server = TestServer::Start({}, "64Mi");
  ASSERT_TRUE(server->Running());
  auto client = server->Connect();
  auto reader = server->Connect();
  ASSERT_TRUE(client && reader);
  const uint64_t limit = 64 * kMiB;
  ASSERT_EQ(Usage(*client), 0u);
  const size_t rounds[] = {4 * kMiB, kMiB, 16 * kMiB, 3 * kMiB + 12345};
  for (size_t round = 0; round < std::size(rounds); ++round) {
    const size_t size = rounds[round];
    std::vector<ObjectID> ids;
    std::vector<uint64_t> sums;
    while (true) {
      auto w = client->CreateBlob(size);
      if (!w.ok()) {
        EXPECT_TRUE(w.status().IsNotEnoughMemory()) << w.status().ToString();
        break;
      }
      auto bytes = RandomBytes(size, round * 1000 + ids.size());
      ASSERT_OK((*w)->Copy(0, bytes.data(), size));
      ASSERT_OK_AND_ASSIGN(auto b, (*w)->Seal());
      ids.push_back(b->id());
      sums.push_back(Checksum(bytes.data(), size));
      ASSERT_LE(ids.size(), limit / size) << "more blobs than the limit allows";
    }
    // The limit is reached (less than one blob's cost is left over: its size
    // class plus bookkeeping), not exceeded.
    const uint64_t used = Usage(*client);
    EXPECT_LE(used, limit);
    EXPECT_LT(limit - used, used / ids.size()) << "round " << round;
    // Every blob kept its own bytes.
    ASSERT_OK_AND_ASSIGN(auto blobs, reader->GetBlobs(ids));
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(Checksum(blobs[i]->data(), size), sums[i]) << "round " << round << " blob " << i;
    }
    blobs.clear();
    ASSERT_OK(reader->FlushReleases());
    ASSERT_OK(client->Delete(ids));
    ASSERT_OK(client->FlushReleases());
    EXPECT_EQ(Usage(*client), 0u) << "round " << round;
    for (ObjectID id : ids) EXPECT_STATUS(kObjectNotExists, reader->GetBlob(id));
  }
}

TEST_F(BlobTest, GotBlobIsReadOnly) {
  const auto bytes = RandomBytes(8192, 11);
  auto sealed = MakeSealed(*client_, bytes);
  ASSERT_TRUE(sealed);
  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(sealed->id()));
  uint8_t* p = const_cast<uint8_t*>(got->data());
  EXPECT_EXIT(
      {
        *reinterpret_cast<volatile uint8_t*>(p + 100) = 0x5a;
        *reinterpret_cast<volatile uint8_t*>(p) = 0x5a;
        _exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
  // The sealer's own view is read-only as well.
  uint8_t* q = const_cast<uint8_t*>(sealed->data());
  EXPECT_EXIT(
      {
        *reinterpret_cast<volatile uint8_t*>(q + 1) = 0xa5;
        _exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EQ(memcmp(got->data(), bytes.data(), bytes.size()), 0);
  ASSERT_OK_AND_ASSIGN(auto fresh, client_->GetBlob(sealed->id()));
  EXPECT_EQ(memcmp(fresh->data(), bytes.data(), bytes.size()), 0);
}

TEST_F(BlobTest, DeletedBlobStaysWhileHeld) {
  const uint64_t base = Usage(*client_);
  const size_t size = 8 * kMiB;
  const auto bytes = RandomBytes(size, 21);
  const uint64_t sum = Checksum(bytes.data(), size);
  auto sealed = MakeSealed(*client_, bytes);
  ASSERT_TRUE(sealed);
  const ObjectID id = sealed->id();
  sealed.reset();  // the writer keeps no reference
  ASSERT_OK(client_->FlushReleases());
  const uint64_t with_blob = Usage(*client_);
  EXPECT_GE(with_blob, base + size);

  ASSERT_OK_AND_ASSIGN(auto held, reader_->GetBlob(id));
  ASSERT_OK(client_->Delete(id));
  // Gone for everyone else at once...
  ASSERT_OK_AND_ASSIGN(bool exists, client_->Exists(id));
  EXPECT_FALSE(exists);
  EXPECT_STATUS(kObjectNotExists, client_->GetBlob(id));
  EXPECT_STATUS(kObjectNotExists, client_->Delete(id));
  // ...but its memory is still charged while the reader holds it.
  EXPECT_EQ(Usage(*client_), with_blob);

  // New blobs never land on the held bytes.
  std::vector<std::shared_ptr<Blob>> others;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(size));
    memset(w->data(), 0xEE, size);
    ASSERT_OK_AND_ASSIGN(auto b, w->Seal());
    others.push_back(b);
  }
  EXPECT_EQ(Checksum(held->data(), size), sum);
  EXPECT_EQ(Usage(*client_), with_blob + 4 * (with_blob - base));  // 4 more of the same
  std::vector<ObjectID> other_ids;
  for (auto& b : others) other_ids.push_back(b->id());
  others.clear();
  ASSERT_OK(client_->Delete(other_ids));
  ASSERT_OK(client_->FlushReleases());
  EXPECT_EQ(Usage(*client_), with_blob);
  EXPECT_EQ(Checksum(held->data(), size), sum);

  // Dropping the Blob alone queues the release; FlushReleases sends it.
  held.reset();
  ASSERT_OK(reader_->FlushReleases());
  EXPECT_EQ(Usage(*client_), base);

  // The same, with a reader that disconnects instead of releasing.
  auto again = MakeSealed(*client_, bytes);
  ASSERT_TRUE(again);
  const ObjectID id2 = again->id();
  again.reset();
  ASSERT_OK(client_->FlushReleases());
  auto leaver = server_->Connect();
  ASSERT_OK_AND_ASSIGN(auto held2, leaver->GetBlob(id2));
  ASSERT_OK(client_->Delete(id2));
  EXPECT_EQ(Usage(*client_), with_blob);
  // Other clients' new blobs leave the held bytes alone.
  {
    ASSERT_OK_AND_ASSIGN(auto w, reader_->CreateBlob(size));
    memset(w->data(), 0x11, size);
    ASSERT_OK_AND_ASSIGN(auto b, w->Seal());
    EXPECT_EQ(Checksum(held2->data(), size), sum);
    const ObjectID bid = b->id();
    b.reset();
    ASSERT_OK(reader_->FlushReleases());
    ASSERT_OK(reader_->Delete(bid));
  }
  EXPECT_EQ(Checksum(held2->data(), size), sum);
  ASSERT_OK(leaver->Disconnect());
  EXPECT_EQ(WaitUsage(*client_, base), base);
  held2.reset();  // after the client is gone: nothing to send, nothing breaks
  leaver.reset();
}

TEST_F(BlobTest, EveryReferenceCounts) {
  const uint64_t base = Usage(*client_);
  const auto bytes = RandomBytes(kMiB, 51);
  auto sealed = MakeSealed(*client_, bytes);
  ASSERT_TRUE(sealed);
  const ObjectID id = sealed->id();
  ASSERT_OK_AND_ASSIGN(auto first, reader_->GetBlob(id));
  ASSERT_OK_AND_ASSIGN(auto second, reader_->GetBlob(id));
  ASSERT_OK_AND_ASSIGN(auto both, reader_->GetBlobs({id, id}));
  ASSERT_OK(client_->Delete(id));
  sealed.reset();
  ASSERT_OK(client_->FlushReleases());
  const uint64_t held = Usage(*client_);
  EXPECT_GE(held, base + kMiB);
  first.reset();
  both.clear();
  ASSERT_OK(reader_->FlushReleases());
  EXPECT_EQ(Usage(*client_), held);  // `second` still holds it
  EXPECT_EQ(memcmp(second->data(), bytes.data(), bytes.size()), 0);
  second.reset();
  ASSERT_OK(reader_->FlushReleases());
  EXPECT_EQ(Usage(*client_), base);
}

TEST_F(BlobTest, DeleteWithMemoryTrim) {
  const size_t size = 32 * kMiB;
  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(size));
  memset(w->data(), 0x42, size);
  ASSERT_OK_AND_ASSIGN(auto b, w->Seal());
  const ObjectID id = b->id();
  b.reset();
  ASSERT_OK(client_->FlushReleases());
  ASSERT_OK(client_->Delete(std::vector<ObjectID>{id}, false, true, /*memory_trim=*/true));
  EXPECT_EQ(Usage(*client_), 0u);
  EXPECT_STATUS(kObjectNotExists, reader_->GetBlob(id));
}

TEST_F(BlobTest, DeletedObjectBlobsStayWhileHeldThroughGetObject) {
  const uint64_t base = Usage(*client_);
  const size_t size = 2 * kMiB;
  const auto bytes = RandomBytes(size, 31);
  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(size));
  ASSERT_OK(w->Copy(0, bytes.data(), size));
  ObjectMeta meta;
  meta.SetTypeName("test::Held");
  meta.AddMember("buffer_", *w);
  ASSERT_OK_AND_ASSIGN(ObjectID id, client_->Put(meta, {w.get()}));
  w.reset();
  ASSERT_OK(client_->FlushReleases());
  ASSERT_OK_AND_ASSIGN(ObjectMeta obj, reader_->GetObject(id));
  ASSERT_OK(client_->Delete(id));
  const uint64_t held_usage = Usage(*client_);
  EXPECT_GE(held_usage, base + size);
  ASSERT_OK_AND_ASSIGN(ObjectID bid, obj.GetMemberId("buffer_"));
  ASSERT_OK_AND_ASSIGN(auto buf, obj.GetBuffer(bid));
  EXPECT_EQ(memcmp(buf->data(), bytes.data(), size), 0);
  buf.reset();
  obj = ObjectMeta();
  ASSERT_OK(reader_->FlushReleases());
  EXPECT_EQ(Usage(*client_), base);
}

TEST_F(BlobTest, MemoryTrimAfterFreeingLargeBlob) {
  const size_t size = 64 * kMiB;
  ASSERT_OK_AND_ASSIGN(auto w, client_->CreateBlob(size));
  memset(w->data(), 0x42, size);  // make every page resident
  ASSERT_OK_AND_ASSIGN(auto b, w->Seal());
  const ObjectID id = b->id();
  ASSERT_OK(client_->Delete(id));
  b.reset();  // the release goes with MemoryTrim
  ASSERT_OK_AND_ASSIGN(bool trimmed, client_->MemoryTrim());
  EXPECT_TRUE(trimmed);
  EXPECT_EQ(Usage(*client_), 0u);
  // Nothing left to trim now.
  ASSERT_OK_AND_ASSIGN(bool again, client_->MemoryTrim());
  EXPECT_FALSE(again);
  // The memory is usable again.
  const auto bytes = RandomBytes(kMiB, 41);
  auto fresh = MakeSealed(*client_, bytes);
  ASSERT_TRUE(fresh);
  ASSERT_OK_AND_ASSIGN(auto got, reader_->GetBlob(fresh->id()));
  EXPECT_EQ(memcmp(got->data(), bytes.data(), bytes.size()), 0);
}

TEST(BlobLargeTest, Blob256MiBParallelCopy) {
  auto server = TestServer::Start({}, "512Mi");
  ASSERT_TRUE(server->Running());
  auto writer_client = server->Connect();
  auto reader_client = server->Connect();
  ASSERT_TRUE(writer_client && reader_client);
  const size_t size = 256 * kMiB;
  std::vector<uint8_t> src(size);
  {
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    uint64_t* words = reinterpret_cast<uint64_t*>(src.data());
    for (size_t i = 0; i < size / 8; ++i) {  // splitmix64: fast and not periodic
      x += 0x9E3779B97F4A7C15ULL;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      words[i] = z ^ (z >> 31);
    }
  }
  const uint64_t sum = Checksum(src.data(), size);
  ASSERT_OK_AND_ASSIGN(auto w, writer_client->CreateBlob(size));
  EXPECT_TRUE(Aligned64(w->data()));
  ASSERT_OK(w->Copy(0, src.data(), size, /*concurrency=*/4));
  ASSERT_OK_AND_ASSIGN(auto sealed, w->Seal());
  const ObjectID id = sealed->id();
  src.clear();
  src.shrink_to_fit();

  ASSERT_OK_AND_ASSIGN(auto got, reader_client->GetBlob(id));
  ASSERT_EQ(got->size(), size);
  EXPECT_TRUE(Aligned64(got->data()));
  EXPECT_EQ(Checksum(got->data(), size), sum);
  ASSERT_OK_AND_ASSIGN(InstanceStatus st, reader_client->GetInstanceStatus());
  EXPECT_GE(st.memory_usage, size);
}

}  // namespace
}  // namespace vineyard
