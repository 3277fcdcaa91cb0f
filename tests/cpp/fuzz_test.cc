// A bounded run of the protocol fuzzer (tests/cpp/fuzz/) against a fresh
// vineyardd, over its UNIX socket and its TCP port: the server must survive
// every batch, keep answering fresh clients with the right bytes, keep its
// RSS bounded, and still exit cleanly on SIGTERM. `make fuzz` is the long run.
//
// VINEYARD_FUZZ_MESSAGES and VINEYARD_FUZZ_SEED override the defaults (a
// failing seed from a long run replays here).
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

#include <gtest/gtest.h>

#include "fuzz/engine.h"
#include "test_server.h"

namespace vineyard {
namespace {

using testing::TestServer;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::stoull(v) : fallback;
}

TEST(FuzzTest, ServerSurvivesMutatedRequestsOverIpcAndTcp) {
  auto server = TestServer::Start({"--rpc", "--rpc_socket_port=0"});
  ASSERT_TRUE(server->Running());
  auto client = server->Connect();
  ASSERT_TRUE(client);
  const std::string& ep = client->rpc_endpoint();
  int port = std::stoi(ep.substr(ep.rfind(':') + 1));
  client.reset();

  fuzz::FuzzOptions o;
  o.seed = EnvOr("VINEYARD_FUZZ_SEED", 20240601);
  o.messages = EnvOr("VINEYARD_FUZZ_MESSAGES", 20000);
  o.socket = server->socket();
  o.rpc_port = port;
  o.server_pid = server->pid();
  fuzz::FuzzReport report = fuzz::RunFuzz(o);
  std::string repro;
  for (const auto& f : report.recent) repro += "  " + f + "\n";
  ASSERT_TRUE(report.ok()) << report.Summary() << "\nseed " << o.seed
                           << "; last frames sent (oldest first):\n" << repro;
  EXPECT_EQ(report.messages, o.messages);
  EXPECT_GT(report.replies, o.messages / 2) << report.Summary();
  EXPECT_TRUE(server->Running());
  EXPECT_EQ(server->Stop(SIGTERM), 0) << "vineyardd did not exit cleanly after the fuzz run";
  std::cout << report.Summary() << std::endl;
}

}  // namespace
}  // namespace vineyard
