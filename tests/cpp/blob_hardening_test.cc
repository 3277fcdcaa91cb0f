// Blob ownership, isolation and accounting, checked against a real vineyardd
// with hand-driven protocol frames: what one client may do to another's
// blobs, what happens to blobs whose creator goes away, which fds readers
// receive, and what the server charges for blobs.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "common/protocol.h"
#include "common/socket_io.h"
#include "raw_conn.h"
#include "test_server.h"
#include "test_util.h"

namespace vineyard::testing {
namespace {

// A raw IPC session that keeps the fds the server passes (by the server's fd
// number) and maps blobs itself, as a client would.
class Peer {
 public:
  Peer(const std::string& socket, bool ours) {
    auto fd = ConnectUnixSocket(socket);
    EXPECT_TRUE(fd.ok()) << fd.status();
    fd_ = fd.ok() ? *fd : -1;
    RegisterRequest r;
    r.version = kProtocolVersion;
    r.releases_references = ours;
    json reply = Call(WriteRegisterRequest(r));
    instance_id = reply.value("instance_id", InstanceID{0});
  }
  ~Peer() {
    Close();
    for (const auto& [theirs, mine] : fds_) ::close(mine);
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  json Call(const json& request) {
    EXPECT_TRUE(SendFrame(fd_, request.dump()).ok()) << request.dump();
    std::string frame;
    Status st = RecvFrame(fd_, &frame);
    EXPECT_TRUE(st.ok()) << "no reply to " << request.dump() << ": " << st;
    if (!st.ok()) return json::object();
    json reply = json::parse(frame, nullptr, false);
    std::vector<int> listed;
    if (reply.contains("fd") && reply["fd"].is_number_integer() && reply["fd"].get<int>() >= 0) {
      listed.push_back(reply["fd"].get<int>());
    }
    if (reply.contains("fds") && reply["fds"].is_array()) {
      for (const auto& f : reply["fds"]) listed.push_back(f.get<int>());
    }
    for (int theirs : listed) {
      auto mine = RecvFd(fd_);
      EXPECT_TRUE(mine.ok()) << mine.status();
      if (mine.ok()) fds_[theirs] = *mine;
    }
    return reply;
  }

  Payload Create(uint64_t size) {
    json reply = Call(WriteCreateBufferRequest(size));
    int sent = -1;
    auto p = ReadCreateBufferReply(reply, &sent);
    EXPECT_TRUE(p.ok()) << reply.dump();
    return p.ok() ? *p : Payload{};
  }
  std::vector<Payload> Get(ObjectID id, bool unsafe, json* reply_out = nullptr) {
    GetBuffersRequest r;
    r.ids = {id};
    r.unsafe = unsafe;
    json reply = Call(WriteGetBuffersRequest(r));
    if (reply_out) *reply_out = reply;
    std::vector<int> fds;
    auto ps = ReadGetBuffersReply(reply, &fds);
    return ps.ok() ? *ps : std::vector<Payload>{};
  }
  // The local fd for the server's fd number `theirs` (-1 if never received).
  int LocalFd(int theirs) const {
    auto it = fds_.find(theirs);
    return it == fds_.end() ? -1 : it->second;
  }
  // Maps a blob's region with `prot`; nullptr (errno set) on failure.
  uint8_t* Map(const Payload& p, int prot) {
    void* addr = mmap(nullptr, p.map_size, prot, MAP_SHARED, LocalFd(p.store_fd), 0);
    if (addr == MAP_FAILED) return nullptr;
    maps_.emplace_back(addr, p.map_size);
    return static_cast<uint8_t*>(addr) + p.data_offset;
  }
  void Fill(const Payload& p, uint8_t byte) {
    uint8_t* data = Map(p, PROT_READ | PROT_WRITE);
    ASSERT_NE(data, nullptr) << strerror(errno);
    memset(data, byte, p.data_size);
  }
  void Seal(ObjectID id) {
    json reply = Call(WriteSealRequest(id));
    EXPECT_EQ(reply.value("type", ""), "seal_reply") << reply.dump();
  }
  // A metadata object holding `blob` as its member "buffer_".
  ObjectID CreateObjectHolding(ObjectID blob, uint64_t size) {
    json tree = {{"typename", "vineyard::Tensor<uint8>"},
                 {"instance_id", instance_id},
                 {"nbytes", size},
                 {"buffer_",
                  {{"id", ObjectIDToString(blob)}, {"typename", "vineyard::Blob"},
                   {"instance_id", instance_id}, {"nbytes", size}}}};
    json reply = Call(WriteCreateDataRequest(tree));
    auto c = ReadCreateDataReply(reply);
    EXPECT_TRUE(c.ok()) << reply.dump();
    return c.ok() ? c->id : kInvalidObjectID;
  }

  InstanceID instance_id = 0;

 private:
  int fd_ = -1;
  std::map<int, int> fds_;
  std::vector<std::pair<void*, size_t>> maps_;
};

// Every byte of `p`'s data, as `reader` sees it, equals `byte`.
::testing::AssertionResult AllBytesAre(Peer& reader, const Payload& p, uint8_t byte) {
  const uint8_t* data = reader.Map(p, PROT_READ);
  if (data == nullptr) return ::testing::AssertionFailure() << "mmap: " << strerror(errno);
  for (uint64_t i = 0; i < p.data_size; ++i) {
    if (data[i] != byte) {
      return ::testing::AssertionFailure() << "byte " << i << " is " << int(data[i])
                                           << ", expected " << int(byte);
    }
  }
  return ::testing::AssertionSuccess();
}

json DelData(ObjectID id) {
  DeleteRequest r;
  r.ids = {id};
  return WriteDeleteRequest(r);
}

int CodeOf(const json& reply) { return reply.value("code", 0); }

class BlobHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }
  void Start(const std::vector<std::string>& args) {
    monitor_.reset();
    server_ = TestServer::Start(args, "256Mi");
    ASSERT_TRUE(server_->Running());
    monitor_ = server_->Connect();
    ASSERT_NE(monitor_, nullptr);
  }
  uint64_t Usage() { return testing::Usage(*monitor_); }

  std::unique_ptr<TestServer> server_;
  std::shared_ptr<Client> monitor_;
};

// --- 1. another client's unsealed blob ------------------------------------------

TEST_F(BlobHardeningTest, OnlyTheCreatorMayDropShrinkSealOrReadAnUnsealedBlob) {
  Peer creator(server_->socket(), true);
  Peer other(server_->socket(), true);
  const uint64_t kSize = 1 << 20;
  Payload p = creator.Create(kSize);
  ASSERT_FALSE(IsEmptyBlob(p.object_id));
  creator.Fill(p, 0xab);
  const uint64_t usage = Usage();

  json reply = other.Call(DelData(p.object_id));
  EXPECT_TRUE(IsError(reply, static_cast<int>(StatusCode::kObjectNotSealed))) << reply.dump();
  EXPECT_NE(reply.value("message", "").find("drop_buffer"), std::string::npos) << reply.dump();
  reply = other.Call(WriteShrinkBufferRequest(p.object_id, 16));
  EXPECT_NE(CodeOf(reply), 0) << "a stranger shrank the blob: " << reply.dump();
  reply = other.Call(WriteDropBufferRequest(p.object_id));
  EXPECT_NE(CodeOf(reply), 0) << "a stranger dropped the blob: " << reply.dump();
  reply = other.Call(WriteSealRequest(p.object_id));
  EXPECT_NE(CodeOf(reply), 0) << "a stranger sealed the blob: " << reply.dump();
  other.Get(p.object_id, /*unsafe=*/true, &reply);
  EXPECT_TRUE(CodeOf(reply) == static_cast<int>(StatusCode::kObjectNotSealed) ||
              CodeOf(reply) == static_cast<int>(StatusCode::kObjectNotExists))
      << "a stranger read an unsealed blob: " << reply.dump();
  EXPECT_EQ(Usage(), usage);

  // The creator still owns it whole: a new blob cannot take its memory.
  Payload third = other.Create(kSize);
  other.Fill(third, 0x11);
  other.Seal(third.object_id);
  creator.Seal(p.object_id);
  auto got = other.Get(p.object_id, false);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(AllBytesAre(other, got[0], 0xab));
  // The creator may read its own unsealed blob (unsafe).
  Payload mine = creator.Create(64);
  EXPECT_EQ(creator.Get(mine.object_id, true).size(), 1u);
}

TEST_F(BlobHardeningTest, RemoteReadersSeeOnlyTheirOwnUnsealedBlobs) {
  Start({"--rpc", "--rpc_socket_port=0"});
  const std::string& ep = monitor_->rpc_endpoint();
  const int port = std::stoi(ep.substr(ep.rfind(':') + 1));
  Peer creator(server_->socket(), true);
  Payload p = creator.Create(4096);
  RawConn remote("127.0.0.1", port);
  remote.Register();
  GetRemoteBuffersRequest r;
  r.ids = {p.object_id};
  r.unsafe = true;
  json reply = remote.Call(WriteGetRemoteBuffersRequest(r));
  EXPECT_TRUE(CodeOf(reply) == static_cast<int>(StatusCode::kObjectNotSealed) ||
              CodeOf(reply) == static_cast<int>(StatusCode::kObjectNotExists))
      << "a remote stranger read an unsealed blob: " << reply.dump();
}

TEST_F(BlobHardeningTest, ShrinkChargesWhatTheAllocatorKeeps) {
  Peer creator(server_->socket(), true);
  const uint64_t base = Usage();
  Payload p = creator.Create(1 << 20);
  json reply = creator.Call(WriteShrinkBufferRequest(p.object_id, 100));
  ASSERT_EQ(reply.value("type", ""), "shrink_buffer_reply") << reply.dump();
  // A 1 MiB allocation shrinks in place to whole pages at best, never to 100 bytes.
  EXPECT_GE(Usage() - base, 4096u);
}

// --- 2. sealed blobs that no object references ----------------------------------

TEST_F(BlobHardeningTest, UnreferencedSealedBlobsDieWithTheirCreator) {
  const uint64_t base = Usage();
  {
    Peer creator(server_->socket(), false);  // a published client: never releases
    for (int i = 0; i < 4; ++i) {
      Payload p = creator.Create(1 << 20);
      creator.Seal(p.object_id);
    }
    EXPECT_GE(Usage(), base + (4u << 20));
  }  // the connection closes, as when the process is killed
  EXPECT_EQ(WaitUsage(*monitor_, base), base);
}

TEST_F(BlobHardeningTest, BlobsHeldByMetadataOrPersistedOutliveTheirCreator) {
  ObjectID held, persisted, object;
  Payload held_p, persisted_p;
  {
    Peer creator(server_->socket(), false);
    held_p = creator.Create(8192);
    creator.Fill(held_p, 0x5a);
    creator.Seal(held_p.object_id);
    held = held_p.object_id;
    object = creator.CreateObjectHolding(held, 8192);
    persisted_p = creator.Create(4096);
    creator.Fill(persisted_p, 0x6b);
    creator.Seal(persisted_p.object_id);
    persisted = persisted_p.object_id;
    json reply = creator.Call(WriteIdRequest(req::kPersist, persisted));
    EXPECT_EQ(reply.value("type", ""), "persist_reply") << reply.dump();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let teardown run
  Peer reader(server_->socket(), true);
  GetDataRequest g;
  g.ids = {object};
  EXPECT_EQ(CodeOf(reader.Call(WriteGetDataRequest(g))), 0);
  auto got = reader.Get(held, false);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(AllBytesAre(reader, got[0], 0x5a));
  got = reader.Get(persisted, false);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(AllBytesAre(reader, got[0], 0x6b));
}

// --- 3. readers cannot write ------------------------------------------------------

TEST_F(BlobHardeningTest, OurReadersReceiveAReadOnlyFd) {
  Peer writer(server_->socket(), true);
  Payload p = writer.Create(4096);
  writer.Fill(p, 0x77);
  writer.Seal(p.object_id);

  Peer reader(server_->socket(), true);
  auto got = reader.Get(p.object_id, false);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_GE(reader.LocalFd(got[0].store_fd), 0);
  errno = 0;
  EXPECT_EQ(reader.Map(got[0], PROT_READ | PROT_WRITE), nullptr)
      << "a reader could map the store writable";
  EXPECT_EQ(errno, EACCES);
  EXPECT_TRUE(AllBytesAre(reader, got[0], 0x77));
  // The writer goes on creating and filling blobs.
  Payload q = writer.Create(4096);
  writer.Fill(q, 0x78);
  writer.Seal(q.object_id);
  got = reader.Get(q.object_id, false);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(AllBytesAre(reader, got[0], 0x78));
}

TEST_F(BlobHardeningTest, VyGetGivesOurReadersAReadOnlyFd) {
  Peer writer(server_->socket(), true);
  Payload p = writer.Create(4096);
  writer.Fill(p, 0x79);
  writer.Seal(p.object_id);
  const ObjectID object = writer.CreateObjectHolding(p.object_id, 4096);

  Peer reader(server_->socket(), true);
  VyGetRequest r;
  r.ids = {object};
  json reply = reader.Call(WriteVyGetRequest(r));
  json trees;
  std::vector<Payload> payloads;
  std::vector<int> fds;
  ASSERT_TRUE(ReadVyGetReply(reply, &trees, &payloads, &fds).ok()) << reply.dump();
  ASSERT_EQ(payloads.size(), 1u);
  errno = 0;
  EXPECT_EQ(reader.Map(payloads[0], PROT_READ | PROT_WRITE), nullptr)
      << "a reader could map the store writable";
  EXPECT_EQ(errno, EACCES);
  EXPECT_TRUE(AllBytesAre(reader, payloads[0], 0x79));
}

// --- 4. accounting -----------------------------------------------------------------

TEST_F(BlobHardeningTest, TinyBlobsAreChargedWhatTheyCost) {
  Peer creator(server_->socket(), true);
  const uint64_t base = Usage();
  const int kBlobs = 1000;
  std::vector<uint64_t> sizes(kBlobs, 1);
  json reply = creator.Call(WriteCreateBuffersRequest(sizes));
  ASSERT_EQ(CodeOf(reply), 0) << reply.dump().substr(0, 300);
  const uint64_t per_blob = (Usage() - base) / kBlobs;
  // 64 bytes of arena (the smallest 64-byte-aligned class) plus the table's record.
  EXPECT_GT(per_blob, 64u);
  EXPECT_LT(per_blob, 1024u);
}

TEST_F(BlobHardeningTest, UnsealedQuotaLimitsEachConnection) {
  Start({"--unsealed_quota=1Mi"});
  Peer a(server_->socket(), true);
  Peer b(server_->socket(), true);
  Payload first = a.Create(600 << 10);
  ASSERT_FALSE(IsEmptyBlob(first.object_id));
  json reply = a.Call(WriteCreateBufferRequest(600 << 10));
  EXPECT_TRUE(IsError(reply, static_cast<int>(StatusCode::kNotEnoughMemory))) << reply.dump();
  EXPECT_NE(reply.value("message", "").find("--unsealed_quota"), std::string::npos)
      << reply.dump();
  // Another connection has its own quota; sealed blobs do not count.
  EXPECT_EQ(CodeOf(b.Call(WriteCreateBufferRequest(600 << 10))), 0);
  a.Seal(first.object_id);
  EXPECT_EQ(CodeOf(a.Call(WriteCreateBufferRequest(600 << 10))), 0);
}

}  // namespace
}  // namespace vineyard::testing
