// Remote access over TCP against a real vineyardd: remote blobs (plain and
// zstd), objects put and read over RPC and IPC alike, concurrent RPC clients,
// bad bytes on the TCP port, transfers cut short, memory limits, logins
// (--htpasswd) and the IPC socket's permissions.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "client/rpc_client.h"
#include "common/transfer.h"
#include "raw_conn.h"
#include "test_server.h"
#include "test_util.h"

namespace vineyard {
namespace {

using testing::Checksum;
using testing::IsError;
using testing::RawConn;
using testing::TestServer;
using testing::ToStatus;
using testing::RandomBytes;
using testing::Usage;
using testing::WaitUsage;

// The TCP port a server picked (--rpc_socket_port=0), from its register reply.
int RpcPort(Client& client) {
  const std::string& ep = client.rpc_endpoint();
  return std::stoi(ep.substr(ep.rfind(':') + 1));
}


class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  void StartServer(std::vector<std::string> args, const std::string& size = "512Mi") {
    args.push_back("--rpc");
    args.push_back("--rpc_socket_port=0");
    server_ = TestServer::Start(args, size);
    ASSERT_TRUE(server_->Running());
    ipc_ = server_->Connect();
    ASSERT_TRUE(ipc_);
    port_ = RpcPort(*ipc_);
  }

  std::shared_ptr<RPCClient> ConnectRpc() {
    auto c = RPCClient::Connect("127.0.0.1", port_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }

  bool UsageSettlesAt(uint64_t baseline) { return WaitUsage(*ipc_, baseline) == baseline; }

  std::unique_ptr<TestServer> server_;
  std::shared_ptr<Client> ipc_;
  int port_ = 0;
};

TEST_F(RpcTest, ConnectsByEndpointAndReportsTheInstance) {
  auto rpc = RPCClient::Connect("127.0.0.1:" + std::to_string(port_));
  ASSERT_OK(rpc);
  EXPECT_TRUE((*rpc)->Connected());
  EXPECT_EQ((*rpc)->remote_instance_id(), ipc_->instance_id());
  EXPECT_EQ((*rpc)->ipc_socket(), ipc_->ipc_socket());
  EXPECT_EQ((*rpc)->version(), ipc_->version());
  ASSERT_OK((*rpc)->Disconnect());
  EXPECT_FALSE((*rpc)->Connected());
  auto after = (*rpc)->Exists(1);
  EXPECT_TRUE(after.status().IsConnectionError()) << after.status();
}

TEST_F(RpcTest, RemoteBlob256MiBRoundTripsByChecksum) {
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  const size_t n = 256ULL << 20;
  auto bytes = RandomBytes(n, 7);
  const uint64_t sum = Checksum(bytes.data(), n);

  auto writer = RemoteBlobWriter::Make(n);
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Copy(0, bytes.data(), n));
  auto meta = rpc->CreateRemoteBlob(**writer);
  ASSERT_OK(meta);
  EXPECT_TRUE(IsBlob(meta->GetId()));
  EXPECT_EQ(meta->GetNBytes(), n);
  EXPECT_EQ(meta->GetInstanceId(), ipc_->instance_id());

  // Over RPC, and mapped over IPC: the same bytes.
  auto back = rpc->GetRemoteBlob(meta->GetId());
  ASSERT_OK(back);
  ASSERT_EQ((*back)->size(), n);
  EXPECT_EQ((*back)->instance_id(), ipc_->instance_id());
  EXPECT_EQ(Checksum((*back)->data(), n), sum);
  auto mapped = ipc_->GetBlob(meta->GetId());
  ASSERT_OK(mapped);
  EXPECT_EQ(Checksum((*mapped)->data(), n), sum);
}

TEST_F(RpcTest, CompressedTransfersRoundTripBothWays) {
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  rpc->set_compression(true);
  ASSERT_TRUE(rpc->compression());
  // Compressible, incompressible, empty and tiny blobs in one request.
  std::vector<uint8_t> zeros(24 << 20, 0);
  for (size_t i = 0; i < zeros.size(); i += 4096) zeros[i] = static_cast<uint8_t>(i >> 12);
  auto noise = RandomBytes(9 << 20, 11);
  std::vector<uint8_t> one = {42};
  std::vector<RPCClient::Bytes> parts = {
      {zeros.data(), zeros.size()}, {noise.data(), noise.size()}, {nullptr, 0}, {one.data(), 1}};
  auto metas = rpc->CreateRemoteBlobs(parts);
  ASSERT_OK(metas);
  ASSERT_EQ(metas->size(), 4u);
  std::vector<ObjectID> ids;
  for (const auto& m : *metas) ids.push_back(m.GetId());
  EXPECT_TRUE(IsEmptyBlob(ids[2]));

  auto blobs = rpc->GetRemoteBlobs(ids);
  ASSERT_OK(blobs);
  EXPECT_EQ(Checksum((*blobs)[0]->data(), zeros.size()), Checksum(zeros.data(), zeros.size()));
  EXPECT_EQ(Checksum((*blobs)[1]->data(), noise.size()), Checksum(noise.data(), noise.size()));
  EXPECT_EQ((*blobs)[2]->size(), 0u);
  EXPECT_EQ((*blobs)[3]->data()[0], 42);
  // What was compressed on the way in is plain in shared memory.
  auto mapped = ipc_->GetBlob(ids[1]);
  ASSERT_OK(mapped);
  EXPECT_EQ(Checksum((*mapped)->data(), noise.size()), Checksum(noise.data(), noise.size()));
}

TEST_F(RpcTest, ObjectsPutOverRpcReadOverIpcAndBack) {
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  auto bytes = RandomBytes(3 << 20, 3);
  auto blobs = rpc->CreateRemoteBlobs({{bytes.data(), bytes.size()}});
  ASSERT_OK(blobs);
  ObjectMeta meta;
  meta.SetTypeName("test::Bytes");
  meta.AddKeyValue("note", "made over tcp");
  meta.AddMember("buffer_", (*blobs)[0]);
  auto id = rpc->Put(meta, /*persist=*/true, "rpc-bytes");
  ASSERT_OK(id);

  auto named = ipc_->GetName("rpc-bytes");
  ASSERT_OK(named);
  EXPECT_EQ(*named, *id);
  auto got = ipc_->GetObject(*id);
  ASSERT_OK(got);
  EXPECT_EQ(*got->GetKeyValueAs<std::string>("note"), "made over tcp");
  auto member = got->GetMember("buffer_");
  ASSERT_OK(member);
  auto blob = got->GetBuffer(member->GetId());
  ASSERT_OK(blob);
  EXPECT_EQ(Checksum((*blob)->data(), bytes.size()), Checksum(bytes.data(), bytes.size()));

  // An object made over IPC, read over RPC: the blobs arrive with the metadata.
  auto writer = ipc_->CreateBlob(bytes.size());
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Copy(0, bytes.data(), bytes.size()));
  ObjectMeta local;
  local.SetTypeName("test::Bytes");
  local.AddMember("buffer_", **writer);
  auto local_id = ipc_->Put(local, {writer->get()});
  ASSERT_OK(local_id);
  auto remote = rpc->GetObject(*local_id);
  ASSERT_OK(remote);
  auto rmember = remote->GetMember("buffer_");
  ASSERT_OK(rmember);
  auto rblob = remote->GetBuffer(rmember->GetId());
  ASSERT_OK(rblob);
  EXPECT_EQ(Checksum((*rblob)->data(), bytes.size()), Checksum(bytes.data(), bytes.size()));
  EXPECT_TRUE(rpc->IsFetchable(*remote));
}

TEST_F(RpcTest, MetadataRequestsWorkOverRpc) {
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  ObjectMeta meta;
  meta.SetTypeName("test::Plain");
  meta.AddKeyValue("x", 1);
  auto id = rpc->CreateMetaData(meta);
  ASSERT_OK(id);
  EXPECT_TRUE(*rpc->Exists(*id));
  ASSERT_OK(rpc->Persist(*id));
  EXPECT_TRUE(*rpc->IsPersisted(*id));
  ASSERT_OK(rpc->PutName(*id, "plain"));
  EXPECT_EQ(*rpc->GetName("plain"), *id);
  auto names = rpc->ListNames("pl*");
  ASSERT_OK(names);
  EXPECT_EQ(names->count("plain"), 1u);
  auto listed = rpc->ListMetaData("test::*");
  ASSERT_OK(listed);
  EXPECT_EQ(listed->size(), 1u);
  auto copy = rpc->ShallowCopy(*id);
  ASSERT_OK(copy);
  ASSERT_OK(rpc->DropName("plain"));
  ASSERT_OK(rpc->Delete({*id, *copy}));
  EXPECT_FALSE(*rpc->Exists(*id));
  auto status = rpc->GetInstanceStatus();
  ASSERT_OK(status);
  EXPECT_GE(status->rpc_connections, 1u);
  auto cluster = rpc->ClusterInfo();
  ASSERT_OK(cluster);
  EXPECT_TRUE(cluster->contains("i" + std::to_string(ipc_->instance_id())));
}

TEST_F(RpcTest, FourConcurrentRpcClients) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto rpc = RPCClient::Connect("127.0.0.1", port_);
      if (!rpc.ok()) {
        ++failures;
        return;
      }
      if (t % 2) (*rpc)->set_compression(true);
      for (int i = 0; i < 10; ++i) {
        auto bytes = RandomBytes((1 << 20) + 4099 * (t * 10 + i), t * 100 + i);
        auto metas = (*rpc)->CreateRemoteBlobs({{bytes.data(), bytes.size()}});
        if (!metas.ok()) {
          ++failures;
          continue;
        }
        auto back = (*rpc)->GetRemoteBlob((*metas)[0].GetId());
        if (!back.ok() || Checksum((*back)->data(), (*back)->size()) !=
                              Checksum(bytes.data(), bytes.size())) {
          ++failures;
        }
        if (!(*rpc)->Delete((*metas)[0].GetId()).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(RpcTest, GarbageAndHalfFramesOnTheTcpPortLeaveTheServerServing) {
  auto baseline = Usage(*ipc_);
  {
    RawConn garbage("127.0.0.1", port_);
    auto noise = RandomBytes(1 << 16, 5);
    garbage.SendRaw(noise.data(), noise.size());
    EXPECT_TRUE(garbage.ClosedByPeer());
  }
  {
    RawConn half("127.0.0.1", port_);
    ASSERT_TRUE(half.SendLength(1000));
    ASSERT_TRUE(half.SendRaw("{\"type\": \"regis", 15));
  }  // closed mid-frame
  {
    RawConn before_register("127.0.0.1", port_);
    json reply = before_register.Call(WriteTypeOnly(req::kClear));
    EXPECT_TRUE(reply.contains("code")) << reply.dump();
  }
  {
    // Fd-passing requests are refused over TCP, with a reason.
    RawConn tcp("127.0.0.1", port_);
    tcp.Register();
    json reply = tcp.Call(WriteCreateBufferRequest(64));
    EXPECT_TRUE(IsError(reply, 1) || IsError(reply, 6)) << reply.dump();
  }
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  EXPECT_TRUE(rpc->GetInstanceStatus().ok());
  EXPECT_TRUE(UsageSettlesAt(baseline));
}

TEST_F(RpcTest, ClientThatVanishesMidUploadLeavesNothing) {
  const uint64_t baseline = Usage(*ipc_);
  for (bool compress : {false, true}) {
    RawConn raw("127.0.0.1", port_);
    raw.Register();
    CreateRemoteBuffersRequest r;
    r.sizes = {64ULL << 20};
    r.single = true;
    r.compress = compress;
    json first = raw.Call(WriteCreateRemoteBuffersRequest(r));
    ASSERT_EQ(first.value("type", ""), "create_buffer_reply") << first.dump();
    EXPECT_GE(Usage(*ipc_), baseline + (64ULL << 20));
    auto part = RandomBytes(8 << 20, 1);
    BlobSender out(raw.fd(), compress);
    ASSERT_TRUE(out.Send(part.data(), part.size()).ok());
    raw.Close();  // 56 MiB short
    EXPECT_TRUE(UsageSettlesAt(baseline)) << "compress=" << compress;
  }
  EXPECT_TRUE(ipc_->ListMetaData("*").ok());
}

TEST_F(RpcTest, ClientThatVanishesMidDownloadLeavesTheBlobIntact) {
  auto bytes = RandomBytes(96 << 20, 9);
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  const uint64_t baseline = Usage(*ipc_);
  auto metas = rpc->CreateRemoteBlobs({{bytes.data(), bytes.size()}});
  ASSERT_OK(metas);
  ObjectID id = (*metas)[0].GetId();
  {
    RawConn raw("127.0.0.1", port_);
    raw.Register();
    GetRemoteBuffersRequest g;
    g.ids = {id};
    json first = raw.Call(WriteGetRemoteBuffersRequest(g));
    ASSERT_EQ(first.value("type", ""), "get_buffers_reply") << first.dump();
    std::vector<uint8_t> some(1 << 20);
    ASSERT_TRUE(RecvBytes(raw.fd(), some.data(), some.size()).ok());
  }  // gone after 1 MiB
  auto again = rpc->GetRemoteBlob(id);
  ASSERT_OK(again);
  EXPECT_EQ(Checksum((*again)->data(), bytes.size()), Checksum(bytes.data(), bytes.size()));
  ASSERT_OK(rpc->Delete(id));
  EXPECT_TRUE(UsageSettlesAt(baseline));  // the interrupted send held no reference
}

TEST_F(RpcTest, RemoteBlobOverTheLimitIsNotEnoughMemory) {
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  const uint64_t baseline = Usage(*ipc_);
  auto writer = RemoteBlobWriter::Make(600ULL << 20);  // --size is 512Mi
  ASSERT_OK(writer);
  auto meta = rpc->CreateRemoteBlob(**writer);
  EXPECT_TRUE(meta.status().IsNotEnoughMemory()) << meta.status();
  // Nothing was sent, nothing is left, and the session goes on.
  EXPECT_EQ(Usage(*ipc_), baseline);
  std::vector<uint8_t> small(100, 1);
  EXPECT_TRUE(rpc->CreateRemoteBlobs({{small.data(), small.size()}}).ok());
}

TEST_F(RpcTest, UnknownBlobsAreObjectNotExists) {
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  auto missing = rpc->GetRemoteBlob(0x8000000000001234ULL);
  EXPECT_TRUE(missing.status().IsObjectNotExists()) << missing.status();
  auto object = rpc->GetObject(0x1234);
  EXPECT_TRUE(object.status().IsObjectNotExists()) << object.status();
  EXPECT_TRUE(rpc->GetInstanceStatus().ok());
}

TEST_F(RpcTest, ServerWithoutCompressionGetsPlainBytes) {
  StartServer({"--nocompression"});
  auto rpc = ConnectRpc();
  ASSERT_TRUE(rpc);
  rpc->set_compression(true);
  EXPECT_FALSE(rpc->compression());
  auto bytes = RandomBytes(1 << 20, 2);
  auto metas = rpc->CreateRemoteBlobs({{bytes.data(), bytes.size()}});
  ASSERT_OK(metas);
  auto back = rpc->GetRemoteBlob((*metas)[0].GetId());
  ASSERT_OK(back);
  EXPECT_EQ(Checksum((*back)->data(), bytes.size()), Checksum(bytes.data(), bytes.size()));
}

TEST(RpcConnect, ClosedPortIsConnectionFailedNamingTheEndpoint) {
  // A port that was free a moment ago: bind, read it, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  auto rpc = RPCClient::Connect("127.0.0.1", port);
  ASSERT_FALSE(rpc.ok());
  EXPECT_TRUE(rpc.status().IsConnectionFailed()) << rpc.status();
  EXPECT_NE(rpc.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << rpc.status();
  auto bad = RPCClient::Connect("127.0.0.1:notaport");
  EXPECT_TRUE(bad.status().IsConnectionFailed()) << bad.status();
}

// --- logins ------------------------------------------------------------------------

class AuthTest : public RpcTest {
 protected:
  void SetUp() override {
    file_ = "/tmp/vy-htpasswd-" + std::to_string(getpid());
    std::string cmd = "htpasswd -B -b -c " + file_ + " alice 's3cret pass' 2>/dev/null && "
                      "htpasswd -B -b " + file_ + " bob hunter2 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "htpasswd (apache2-utils) is needed: make deps";
    server_ = TestServer::Start({"--rpc", "--rpc_socket_port=0", "--htpasswd=" + file_});
    ASSERT_TRUE(server_->Running());
    auto ipc = Client::Connect(server_->socket(), "alice", "s3cret pass");
    ASSERT_OK(ipc);
    ipc_ = *ipc;
    port_ = RpcPort(*ipc_);
  }
  void TearDown() override { unlink(file_.c_str()); }
  std::string file_;
};

TEST_F(AuthTest, RightPasswordsAreLetInOnBothTransports) {
  auto bob = Client::Connect(server_->socket(), "bob", "hunter2");
  ASSERT_OK(bob);
  EXPECT_TRUE((*bob)->GetInstanceStatus().ok());
  auto rpc = RPCClient::Connect("127.0.0.1", port_, "alice", "s3cret pass");
  ASSERT_OK(rpc);
  EXPECT_TRUE((*rpc)->GetInstanceStatus().ok());
}

TEST_F(AuthTest, WrongOrMissingPasswordsAreRefused) {
  struct Case {
    std::string user, password;
  };
  for (const Case& c : {Case{"alice", "wrong"}, Case{"bob", ""}, Case{"", ""},
                        Case{"mallory", "hunter2"}, Case{"alice", "s3cret pas"}}) {
    auto ipc = Client::Connect(server_->socket(), c.user, c.password);
    EXPECT_TRUE(ipc.status().IsConnectionFailed()) << c.user << ": " << ipc.status();
    auto rpc = RPCClient::Connect("127.0.0.1", port_, c.user, c.password);
    EXPECT_TRUE(rpc.status().IsConnectionFailed()) << c.user << ": " << rpc.status();
  }
  auto none = Client::Connect(server_->socket());
  EXPECT_NE(none.status().message().find("username and password"), std::string::npos)
      << none.status();
  // After a refused login the connection serves nothing else.
  RawConn raw(server_->socket());
  json reply = raw.Register();
  EXPECT_TRUE(IsError(reply, 33)) << reply.dump();
  EXPECT_TRUE(raw.ClosedByPeer());
  // Everyone else is still served.
  EXPECT_TRUE(ipc_->GetInstanceStatus().ok());
}

TEST(ServerAuthOptions, UnreadableOrWeakHtpasswdFilesStopTheServer) {
  std::string out;
  EXPECT_NE(testing::RunVineyardd({"--socket=/tmp/vy-auth-missing.sock", "--norpc",
                                   "--htpasswd=/nonexistent/htpasswd"},
                                  &out),
            0);
  EXPECT_NE(out.find("htpasswd"), std::string::npos) << out;
  std::string md5 = "/tmp/vy-htpasswd-md5-" + std::to_string(getpid());
  std::ofstream(md5) << "carol:$apr1$abcdefgh$0123456789abcdefghijkl\n";
  EXPECT_NE(testing::RunVineyardd({"--socket=/tmp/vy-auth-md5.sock", "--norpc",
                                   "--htpasswd=" + md5},
                                  &out),
            0);
  EXPECT_NE(out.find("htpasswd -B"), std::string::npos) << out;
  unlink(md5.c_str());
}

// --- socket permissions -------------------------------------------------------------

TEST(SocketMode, OwnerOnlyByDefaultAndWidenedOnRequest) {
  auto server = TestServer::Start();
  struct stat st {};
  ASSERT_EQ(stat(server->socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto wide = TestServer::Start({"--socket_mode=0666"});
  ASSERT_EQ(stat(wide->socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  std::string out;
  EXPECT_NE(testing::RunVineyardd({"--socket=/tmp/vy-mode.sock", "--norpc",
                                   "--socket_mode=rw-rw-rw-"},
                                  &out),
            0);
  EXPECT_NE(out.find("--socket_mode"), std::string::npos) << out;
}

}  // namespace
}  // namespace vineyard
