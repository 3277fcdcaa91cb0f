// TlsStream over a real loopback TCP connection, with a CA and a server
// certificate (for 127.0.0.1 and localhost) made by the `openssl` command:
// frames both ways (up to 64 MiB), an untrusted CA, a wrong host name, a
// plain-text client on a TLS server, and the server's certificate errors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "client/rpc_client.h"
#include "common/byte_stream.h"
#include "common/tls.h"
#include "raw_conn.h"
#include "test_server.h"

namespace vineyard {
namespace {

constexpr int kTimeoutMs = 10000;
constexpr uint64_t kMaxFrame = 256ull << 20;

bool Contains(const Status& st, const std::string& text) {
  return st.message().find(text) != std::string::npos;
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/vy-tls-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string cmd =
        "cd " + dir_ + " && " +
        "openssl req -x509" + ec + " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && " +
        "openssl req -x509" + ec + " -keyout other.key -out other.pem -days 2 "
        "-subj /CN=other-ca && " +
        "openssl req" + ec + " -keyout server.key -out server.csr -subj /CN=localhost && " +
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && " +
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out server.pem -days 2 -extfile ext.cnf";
    ASSERT_EQ(std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()), 0)
        << "the openssl command is needed: make deps";
  }
  static void TearDownTestSuite() { (void)std::system(("rm -rf " + dir_).c_str()); }

  void SetUp() override {
    auto server = TlsContext::FromFiles(dir_ + "/server.pem", dir_ + "/server.key");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ctx_ = *server;
    auto client = TlsContext::ForClient(dir_ + "/ca.pem");
    ASSERT_TRUE(client.ok()) << client.status();
    client_ctx_ = *client;
  }

  // A connected loopback TCP pair, both ends non-blocking: {server end, client end}.
  static std::pair<int, int> SocketPair() {
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(lfd, 1), 0);
    getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
    int cfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    int sfd = ::accept(lfd, nullptr, nullptr);
    ::close(lfd);
    EXPECT_TRUE(SetNonBlocking(sfd).ok());
    EXPECT_TRUE(SetNonBlocking(cfd).ok());
    return {sfd, cfd};
  }

  // The server's end in a thread: the handshake's outcome.
  std::future<Status> ServeHandshake(int fd) {
    return std::async(std::launch::async, [this, fd]() -> Status {
      VY_ASSIGN_OR_RETURN(auto tls, TlsStream::Accept(server_ctx_, fd));
      return CompleteHandshake(*tls, kTimeoutMs);
    });
  }

  // A client handshake with `host` under `ctx`; both ends' outcomes.
  std::pair<Status, Status> Handshake(std::shared_ptr<TlsContext> ctx, const std::string& host) {
    auto [sfd, cfd] = SocketPair();
    auto server = ServeHandshake(sfd);
    Status client = [&]() -> Status {
      VY_ASSIGN_OR_RETURN(auto tls, TlsStream::Connect(ctx, cfd, host));
      return CompleteHandshake(*tls, kTimeoutMs);
    }();
    ::close(cfd);  // the server must not wait for a client that gave up
    Status served = server.get();
    ::close(sfd);
    return {client, served};
  }

  static std::string dir_;
  std::shared_ptr<TlsContext> server_ctx_, client_ctx_;
};
std::string TlsTest::dir_;

TEST_F(TlsTest, FramesRoundTripBothWaysIncludingLargeOnes) {
  auto [sfd, cfd] = SocketPair();
  std::string big(64ull << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096 * 31 + 7);
  const std::vector<std::string> frames = {"{\"type\":\"register_request\"}", "", big, "bye"};
  // The server handshakes explicitly, then echoes every frame back.
  auto server = std::async(std::launch::async, [&, fd = sfd]() -> Status {
    VY_ASSIGN_OR_RETURN(auto tls, TlsStream::Accept(server_ctx_, fd));
    VY_RETURN_NOT_OK(CompleteHandshake(*tls, kTimeoutMs));
    for (size_t i = 0; i < frames.size(); ++i) {
      std::string frame;
      VY_RETURN_NOT_OK(ReadFrame(*tls, &frame, kMaxFrame, kTimeoutMs));
      VY_RETURN_NOT_OK(WriteFrame(*tls, frame, kTimeoutMs));
    }
    tls->Shutdown();
    return Status::OK();
  });
  // The client lets its first write run the handshake.
  auto tls = TlsStream::Connect(client_ctx_, cfd, "127.0.0.1");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_STREQ((*tls)->Kind(), "tls");
  for (const std::string& sent : frames) {
    ASSERT_TRUE(WriteFrame(**tls, sent, kTimeoutMs).ok()) << (*tls)->error();
    std::string echoed;
    ASSERT_TRUE(ReadFrame(**tls, &echoed, kMaxFrame, kTimeoutMs).ok()) << (*tls)->error();
    ASSERT_EQ(echoed.size(), sent.size());
    EXPECT_TRUE(echoed == sent) << "frame of " << sent.size() << " bytes changed on the way";
  }
  EXPECT_EQ((*tls)->Version().rfind("TLSv1.", 0), 0u) << (*tls)->Version();
  Status served = server.get();
  EXPECT_TRUE(served.ok()) << served;
  // After the server's close_notify the client reads the end of the stream.
  std::string none;
  EXPECT_TRUE(ReadFrame(**tls, &none, kMaxFrame, kTimeoutMs).IsEndOfFile());
  ::close(sfd);
  ::close(cfd);
}

TEST_F(TlsTest, HostNamesTheCertificateListsAreAccepted) {
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    auto [client, served] = Handshake(client_ctx_, host);
    EXPECT_TRUE(client.ok()) << host << ": " << client;
    EXPECT_TRUE(served.ok()) << host << ": " << served;
  }
}

TEST_F(TlsTest, ClientThatDoesNotTrustTheCaIsRefused) {
  auto other = TlsContext::ForClient(dir_ + "/other.pem");
  ASSERT_TRUE(other.ok()) << other.status();
  auto system = TlsContext::ForClient();  // the system store: verification is on by default
  ASSERT_TRUE(system.ok()) << system.status();
  for (auto ctx : {*other, *system}) {
    auto [client, served] = Handshake(ctx, "127.0.0.1");
    ASSERT_TRUE(client.IsConnectionFailed()) << client;
    EXPECT_TRUE(Contains(client, "certificate is not trusted")) << client;
    EXPECT_TRUE(Contains(client, "give the CA file")) << client;
    ASSERT_TRUE(served.IsConnectionFailed()) << served;
    EXPECT_TRUE(Contains(served, "the client refused this server's certificate")) << served;
  }
  // Without verification the same client gets through (an explicit opt-out).
  auto unverified = TlsContext::ForClient(dir_ + "/other.pem", /*verify=*/false);
  ASSERT_TRUE(unverified.ok());
  EXPECT_TRUE(Handshake(*unverified, "127.0.0.1").first.ok());
}

TEST_F(TlsTest, WrongHostNameIsRefused) {
  for (const std::string host : {"vineyard.example", "127.0.0.2"}) {
    auto [client, served] = Handshake(client_ctx_, host);
    ASSERT_TRUE(client.IsConnectionFailed()) << host << ": " << client;
    EXPECT_TRUE(Contains(client, "does not name '" + host + "'")) << client;
    EXPECT_FALSE(served.ok());
  }
}

TEST_F(TlsTest, PlainTextClientOnTlsServerFailsCleanly) {
  auto [sfd, cfd] = SocketPair();
  auto server = ServeHandshake(sfd);
  PlainStream plain(cfd);
  ASSERT_TRUE(WriteFrame(plain, "{\"type\":\"register_request\"}", kTimeoutMs).ok());
  Status served = server.get();
  ASSERT_TRUE(served.IsConnectionFailed()) << served;
  EXPECT_TRUE(Contains(served, "TLS handshake with client failed")) << served;
  EXPECT_TRUE(Contains(served, "does not speak TLS")) << served;
  ::close(sfd);
  // The client sees an error (an alert is no frame), not a hang.
  std::string reply;
  EXPECT_FALSE(ReadFrame(plain, &reply, 1 << 20, kTimeoutMs).ok());
  ::close(cfd);
}

TEST_F(TlsTest, ServerCertificateErrorsNameTheFlagAndTheFile) {
  auto missing = TlsContext::FromFiles(dir_ + "/nope.pem", dir_ + "/server.key");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.status(), "--rpc_tls_cert")) << missing.status();
  EXPECT_TRUE(Contains(missing.status(), dir_ + "/nope.pem")) << missing.status();

  std::ofstream(dir_ + "/garbage.pem") << "not a certificate\n";
  auto garbage = TlsContext::FromFiles(dir_ + "/garbage.pem", dir_ + "/server.key");
  ASSERT_FALSE(garbage.ok());
  EXPECT_TRUE(Contains(garbage.status(), "--rpc_tls_cert")) << garbage.status();
  EXPECT_TRUE(Contains(garbage.status(), "garbage.pem")) << garbage.status();

  auto no_key = TlsContext::FromFiles(dir_ + "/server.pem", dir_ + "/nokey.pem");
  ASSERT_FALSE(no_key.ok());
  EXPECT_TRUE(Contains(no_key.status(), "--rpc_tls_key")) << no_key.status();

  auto mismatch = TlsContext::FromFiles(dir_ + "/server.pem", dir_ + "/other.key");
  ASSERT_FALSE(mismatch.ok());
  EXPECT_TRUE(Contains(mismatch.status(), "--rpc_tls_key")) << mismatch.status();
  EXPECT_TRUE(Contains(mismatch.status(), "does not belong")) << mismatch.status();
}

// --- a real vineyardd with --rpc_tls_cert ----------------------------------------

class TlsServerTest : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    server_ = testing::TestServer::Start({"--rpc", "--rpc_socket_port=0", "--rpc_host=127.0.0.1",
                                          "--rpc_tls_cert=" + dir_ + "/server.pem",
                                          "--rpc_tls_key=" + dir_ + "/server.key"});
    ASSERT_TRUE(server_->Running());
    auto ipc = server_->Connect();
    ASSERT_TRUE(ipc);
    const std::string& ep = ipc->rpc_endpoint();
    port_ = std::stoi(ep.substr(ep.rfind(':') + 1));
  }
  std::unique_ptr<testing::TestServer> server_;
  int port_ = 0;
};

TEST_F(TlsServerTest, RpcClientRoundTripsBlobsOverTls) {
  auto rpc = RPCClient::Connect("127.0.0.1", port_, "", "", dir_ + "/ca.pem");
  ASSERT_TRUE(rpc.ok()) << rpc.status();
  for (bool compress : {false, true}) {
    (*rpc)->set_compression(compress);
    std::string data(8 << 20, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + compress);
    auto metas = (*rpc)->CreateRemoteBlobs({{data.data(), data.size()}});
    ASSERT_TRUE(metas.ok()) << metas.status();
    auto blob = (*rpc)->GetRemoteBlob((*metas)[0].GetId());
    ASSERT_TRUE(blob.ok()) << blob.status();
    ASSERT_EQ((*blob)->size(), data.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>((*blob)->data()), data.size()), data);
  }
  // IPC clients are unaffected.
  auto ipc = server_->Connect();
  ASSERT_TRUE(ipc);
  EXPECT_TRUE(ipc->GetInstanceStatus().ok());
}

TEST_F(TlsServerTest, ClientsThatDoNotVerifyOrSpeakPlainAreRefused) {
  auto untrusted = RPCClient::Connect("127.0.0.1", port_, "", "", dir_ + "/other.pem");
  ASSERT_FALSE(untrusted.ok());
  EXPECT_EQ(untrusted.status().code(), StatusCode::kConnectionFailed) << untrusted.status();
  EXPECT_TRUE(Contains(untrusted.status(), "TLS")) << untrusted.status();
  // A plain-text client gets no session; the server keeps serving.
  auto plain = RPCClient::Connect("127.0.0.1", port_, "", "", "");
  EXPECT_FALSE(plain.ok());
  testing::RawConn raw("127.0.0.1", port_);
  json reply;
  (void)raw.SendJson({{"type", "register_request"}, {"version", "0.24.2"}});
  EXPECT_NE(raw.Recv(&reply, 3000), testing::RawConn::Outcome::kReply);
  auto good = RPCClient::Connect("127.0.0.1", port_, "", "", dir_ + "/ca.pem");
  EXPECT_TRUE(good.ok()) << good.status();
}

TEST(TlsServerFlags, CertWithoutKeyIsAnError) {
  std::string out;
  int code = testing::RunVineyardd({"--socket=/tmp/vy-tls-flags.sock", "--rpc_tls_cert=x.pem"},
                                   &out, 10);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("--rpc_tls_key"), std::string::npos) << out;
}

}  // namespace
}  // namespace vineyard
