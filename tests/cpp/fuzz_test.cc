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

#include "common/protocol.h"
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

// Findings of the fuzzer in the protocol's decoders, one test each.

// A number field given as a float outside the field's range (or with a
// fraction, for an integer field) was converted with a plain cast: undefined
// behaviour (UBSan: float-cast-overflow), in practice a size or id nobody sent.
TEST(FuzzFindings, NumberFieldsOutOfRangeAreInvalid) {
  for (const json& size : {json(1e300), json(-1.5), json(1e19 * 10), json(2.5), json(-1e308)}) {
    json request = WriteCreateBufferRequest(0);
    request["size"] = size;
    auto got = ReadCreateBufferRequest(request);
    EXPECT_TRUE(got.status().IsInvalid()) << size.dump() << " read as " << (got.ok() ? *got : 0);
  }
  // An integral float within range is still a number (some encoders send 4096.0).
  json request = WriteCreateBufferRequest(0);
  request["size"] = 4096.0;
  auto got = ReadCreateBufferRequest(request);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, 4096u);
  // The same in lists of numbers.
  for (const json& size : {json(1e308), json(-1.5), json(0.5)}) {
    json request = WriteCreateBuffersRequest({1, 2});
    request["sizes"][1] = size;
    auto sizes = ReadCreateBuffersRequest(request);
    EXPECT_TRUE(sizes.status().IsInvalid()) << request.dump();
  }
  // An int field given a value beyond int's range.
  json list = WriteListDataRequest({});
  list["limit"] = -1;
  EXPECT_TRUE(ReadListDataRequest(list).status().IsInvalid());
  Payload p;
  json payload = WritePayload(p);
  payload["store_fd"] = int64_t{1} << 40;
  EXPECT_TRUE(ReadPayload(payload).status().IsInvalid());
}

}  // namespace
}  // namespace vineyard
