// RPC throughput: a remote blob put and get of the same bytes against a plain
// loopback TCP transfer of them, measured in the same run, interleaved.
//
//   rpc_bench [--size=1Gi] [--reps=5]
//
// Starts its own vineyardd (TCP on a free port). Prints one JSON object per
// measurement: {"case": ..., "rep": i, "seconds": s, "bytes": n}. Cases:
//   tcp/resident   send() from a resident buffer to recv() into a resident one
//   tcp/fresh      the same into a freshly allocated buffer (what a reader of new data has)
//   rpc/put        RPCClient::CreateRemoteBlobs from the resident buffer
//   rpc/get        RPCClient::GetRemoteBlob (into fresh memory)
//   rpc/put+zstd, rpc/get+zstd   the same with compression (random bytes: no gain)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/rpc_client.h"
#include "common/socket_io.h"
#include "test_server.h"

namespace {

using Clock = std::chrono::steady_clock;
using vineyard::RPCClient;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Emit(const char* name, int rep, double seconds, size_t bytes) {
  printf("{\"case\": \"%s\", \"rep\": %d, \"seconds\": %.6f, \"bytes\": %zu}\n", name, rep,
         seconds, bytes);
  fflush(stdout);
}

// One plain TCP transfer over loopback: a sender thread, a receiver here.
double TcpTransfer(const uint8_t* src, size_t n, bool fresh, std::vector<uint8_t>* resident) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::listen(listener, 1);
  socklen_t len = sizeof(addr);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  auto start = Clock::now();
  std::thread sender([&] {
    int fd = vineyard::ConnectTcpSocket("127.0.0.1", port).ValueOrDie();
    (void)vineyard::SendBytes(fd, src, n);
    ::close(fd);
  });
  int fd = ::accept(listener, nullptr, nullptr);
  uint8_t* dst = resident->data();
  std::unique_ptr<uint8_t, void (*)(void*)> owned(nullptr, std::free);
  if (fresh) {
    owned.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)));
    dst = owned.get();
  }
  (void)vineyard::RecvBytes(fd, dst, n);
  double s = Seconds(start);
  sender.join();
  ::close(fd);
  ::close(listener);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string size_text = "1Gi";
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--size=", 0) == 0) size_text = a.substr(7);
    if (a.rfind("--reps=", 0) == 0) reps = std::stoi(a.substr(7));
  }
  size_t n = vineyard::ParseMemorySize(size_text).ValueOrDie();
  // Room for one blob being written while the previous one is deleted.
  auto server = vineyard::testing::TestServer::Start(
      {"--rpc", "--rpc_socket_port=0"}, std::to_string(2 * n + (64 << 20)));
  auto ipc = server->Connect();
  const std::string& ep = ipc->rpc_endpoint();
  int port = std::stoi(ep.substr(ep.rfind(':') + 1));
  auto rpc = RPCClient::Connect("127.0.0.1", port).ValueOrDie();

  std::vector<uint8_t> data(n), resident(n);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t w = rng();
    memcpy(&data[i], &w, 8);
  }
  memset(resident.data(), 1, n);

  for (int rep = 0; rep < reps; ++rep) {
    Emit("tcp/resident", rep, TcpTransfer(data.data(), n, false, &resident), n);
    Emit("tcp/fresh", rep, TcpTransfer(data.data(), n, true, &resident), n);
    for (bool zstd : {false, true}) {
      if (zstd && rep > 0) continue;  // once: it shows the cost, not a contender
      rpc->set_compression(zstd);
      auto start = Clock::now();
      auto metas = rpc->CreateRemoteBlobs({{data.data(), n}}).ValueOrDie();
      Emit(zstd ? "rpc/put+zstd" : "rpc/put", rep, Seconds(start), n);
      start = Clock::now();
      auto blob = rpc->GetRemoteBlob(metas[0].GetId()).ValueOrDie();
      Emit(zstd ? "rpc/get+zstd" : "rpc/get", rep, Seconds(start), n);
      if (memcmp(blob->data(), data.data(), 4096) != 0) {
        fprintf(stderr, "rpc_bench: the fetched bytes differ\n");
        return 1;
      }
      blob.reset();
      rpc->Delete(metas[0].GetId()).ok();
    }
  }
  return 0;
}
