#include "fuzz/engine.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "client/client.h"
#include "client/rpc_client.h"
#include "common/socket_io.h"
#include "fuzz/corpus.h"
#include "fuzz/mutator.h"

namespace vineyard::fuzz {

namespace {

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// The server process as /proc sees it: gone (or a zombie) means it died.
struct ProcState {
  bool alive = false;
  uint64_t rss_kb = 0;
};

ProcState ReadProc(pid_t pid) {
  ProcState s;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("State:", 0) == 0) {
      s.alive = line.find('Z') == std::string::npos && line.find('X') == std::string::npos;
    } else if (line.rfind("VmRSS:", 0) == 0) {
      s.rss_kb = std::stoull(line.substr(6));
    }
  }
  return s;
}

// Sends everything by `deadline`; false if the peer is gone or stopped reading.
bool SendAll(int fd, const std::string& bytes, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    struct pollfd p = {fd, POLLOUT, 0};
    if (::poll(&p, 1, MsLeft(deadline)) <= 0) return false;
  }
  return true;
}

enum class Got { kReply, kClosed, kTimeout };

// Reads exactly `n` bytes by `deadline`.
Got RecvAll(int fd, char* out, size_t n, Clock::time_point deadline) {
  size_t got = 0;
  while (got < n) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = ::poll(&p, 1, MsLeft(deadline));
    if (r == 0) return Got::kTimeout;
    if (r < 0 && errno != EINTR) return Got::kClosed;
    ssize_t k = ::recv(fd, out + got, n - got, MSG_DONTWAIT);
    if (k == 0) return Got::kClosed;
    if (k < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Got::kClosed;
    }
    got += static_cast<size_t>(k);
  }
  return Got::kReply;
}

// Receives one passed fd (and closes it) by `deadline`.
Got RecvOneFd(int fd, Clock::time_point deadline) {
  struct pollfd p = {fd, POLLIN, 0};
  if (::poll(&p, 1, MsLeft(deadline)) <= 0) return Got::kTimeout;
  auto passed = RecvFd(fd);
  if (!passed.ok()) return Got::kClosed;
  ::close(*passed);
  return Got::kReply;
}

// One fuzzing connection: IPC or TCP, registered or not.
struct Lane {
  bool ipc = true;
  int fd = -1;
  // False once a frame may have put the stream out of step (a wrong length,
  // blob bytes that follow a reply): what comes back is then not checked.
  bool in_step = true;
  std::deque<std::string> recent;  // the last frames sent on this connection

  void Close() {
    if (fd < 0) return;
    // Reset instead of a FIN: a TCP client that reconnects a million times
    // must not fill the port range with TIME_WAIT sockets.
    struct linger lg = {1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    ::close(fd);
    fd = -1;
  }
};

// The result of a health check, filled by a thread that may never finish.
struct CheckState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  LiveIds ids;
};

Status RoundTrip(const FuzzOptions& o, uint64_t round, LiveIds* ids) {
  std::vector<uint8_t> data(1000 + round % 97);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31 + round);
  std::string name = "fuzz-check-" + std::to_string(round);

  VY_ASSIGN_OR_RETURN(auto client, Client::Connect(o.socket));
  VY_ASSIGN_OR_RETURN(auto writer, client->CreateBlob(data.size()));
  VY_RETURN_NOT_OK(writer->Copy(0, data.data(), data.size()));
  ObjectMeta meta;
  meta.SetTypeName("fuzz::Check");
  meta.AddMember("buffer_", *writer);
  VY_ASSIGN_OR_RETURN(ObjectID id, client->Put(meta, {writer.get()}, true, name));
  VY_ASSIGN_OR_RETURN(ObjectID named, client->GetName(name));
  if (named != id) return Status::Invalid("get_name returned another object");
  VY_ASSIGN_OR_RETURN(ObjectMeta got, client->GetObject(id));
  VY_ASSIGN_OR_RETURN(ObjectID blob_id, got.GetMemberId("buffer_"));
  VY_ASSIGN_OR_RETURN(auto blob, got.GetBuffer(blob_id));
  if (blob->size() != data.size() || std::memcmp(blob->data(), data.data(), data.size()) != 0) {
    return Status::Invalid("IPC get returned other bytes than were put");
  }
  // The previous check's objects go (fuzzed clear requests may have taken them already).
  if (ids->object != kEmptyBlobID) (void)client->Delete(ids->object, true, true);
  ids->blob = blob_id;
  ids->object = id;
  ids->name = name;
  ids->instance = client->instance_id();
  ids->signature = got.GetSignature();

  if (o.rpc_port > 0) {
    VY_ASSIGN_OR_RETURN(auto rpc, RPCClient::Connect(o.rpc_host, o.rpc_port));
    VY_ASSIGN_OR_RETURN(auto blobs, rpc->CreateRemoteBlobs({{data.data(), data.size()}}));
    ObjectMeta rmeta;
    rmeta.SetTypeName("fuzz::Check");
    rmeta.AddMember("buffer_", blobs.at(0));
    VY_ASSIGN_OR_RETURN(ObjectID rid, rpc->Put(rmeta));
    VY_ASSIGN_OR_RETURN(ObjectMeta rgot, rpc->GetObject(rid));
    VY_ASSIGN_OR_RETURN(ObjectID rblob_id, rgot.GetMemberId("buffer_"));
    VY_ASSIGN_OR_RETURN(auto rblob, rgot.GetBuffer(rblob_id));
    if (rblob->size() != data.size() ||
        std::memcmp(rblob->data(), data.data(), data.size()) != 0) {
      return Status::Invalid("RPC get returned other bytes than were put");
    }
    VY_RETURN_NOT_OK(rpc->Delete(rid, true, true));
  }
  return Status::OK();
}

// A fresh client's round trip, bounded by the timeout even if the server hangs
// (the thread is then left to fail when the server goes).
Status HealthCheck(const FuzzOptions& o, uint64_t round, LiveIds* ids) {
  auto state = std::make_shared<CheckState>();
  state->ids = *ids;
  std::thread([o, round, state] {
    LiveIds local;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      local = state->ids;
    }
    Status st = RoundTrip(o, round, &local);
    std::lock_guard<std::mutex> lock(state->mu);
    state->status = st;
    state->ids = local;
    state->done = true;
    state->cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(state->mu);
  if (!state->cv.wait_for(lock, std::chrono::milliseconds(o.alive_timeout_ms),
                          [&] { return state->done; })) {
    return Status::IOError("a fresh client got no answer within ", o.alive_timeout_ms, " ms");
  }
  *ids = state->ids;
  return state->status;
}

}  // namespace

std::string Escape(const std::string& bytes, size_t max) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (bytes.size() > max) out += "...(" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

std::string FuzzReport::Summary() const {
  std::ostringstream s;
  s << messages << " messages in " << seconds << " s (" << replies << " replies, "
    << error_replies << " errors, " << timeouts << " timeouts, " << closed_by_server
    << " closed by the server, " << connections << " connections, " << checks
    << " health checks); crashes: " << (failure.empty() ? 0 : 1) << "; server RSS "
    << rss_first_kb / 1024 << " MiB at start, " << rss_peak_kb / 1024 << " MiB peak, "
    << rss_last_kb / 1024 << " MiB at the end";
  if (!failure.empty()) s << "\nFAILED: " << failure;
  return s.str();
}

FuzzReport RunFuzz(const FuzzOptions& o) {
  FuzzReport report;
  auto start = Clock::now();
  Mutator mutator(o.seed);
  LiveIds ids;
  uint64_t round = 0;
  std::vector<Lane> lanes(o.rpc_port > 0 ? 2 : 1);
  lanes[0].ipc = true;
  if (lanes.size() > 1) lanes[1].ipc = false;

  auto fail = [&](const std::string& why) {
    report.failure = why;
    for (auto& lane : lanes) {
      for (const auto& f : lane.recent) {
        report.recent.push_back(std::string(lane.ipc ? "ipc: " : "rpc: ") + "\"" + Escape(f) +
                                "\"");
      }
    }
  };

  // Between batches: the server is alive, answers a fresh client, and its RSS is bounded.
  auto check = [&]() -> bool {
    if (o.server_pid > 0 && !ReadProc(o.server_pid).alive) {
      fail("the server died");
      return false;
    }
    Status st = HealthCheck(o, round++, &ids);
    if (!st.ok()) {
      fail((o.server_pid > 0 && !ReadProc(o.server_pid).alive ? "the server died: "
                                                              : "health check failed: ") +
           st.ToString());
      return false;
    }
    ++report.checks;
    if (o.server_pid > 0) {
      uint64_t rss = ReadProc(o.server_pid).rss_kb;
      if (report.rss_first_kb == 0) report.rss_first_kb = rss;
      report.rss_last_kb = rss;
      report.rss_peak_kb = std::max(report.rss_peak_kb, rss);
      if (rss > report.rss_first_kb + o.rss_growth_limit_kb) {
        fail("the server's RSS grew from " + std::to_string(report.rss_first_kb) + " kB to " +
             std::to_string(rss) + " kB (the bound is +" +
             std::to_string(o.rss_growth_limit_kb) + " kB)");
        return false;
      }
    }
    return true;
  };

  auto connect = [&](Lane& lane) {
    lane.Close();
    auto fd = lane.ipc ? ConnectUnixSocket(o.socket) : ConnectTcpSocket(o.rpc_host, o.rpc_port);
    if (!fd.ok()) return false;
    lane.fd = *fd;
    lane.in_step = true;
    ++report.connections;
    lane.recent.clear();
    return true;
  };

  // Sends one frame and reads what comes back: a reply (and its fds), nothing, or a close.
  auto exchange = [&](Lane& lane, const Frame& frame) {
    lane.recent.push_back(frame.bytes);
    if (lane.recent.size() > 8) lane.recent.pop_front();
    ++report.messages;
    if (frame.may_stall || frame.what.find("+twice") != std::string::npos) lane.in_step = false;
    int timeout = frame.may_stall ? o.stall_timeout_ms : o.reply_timeout_ms;
    auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout, 1000));
    if (!SendAll(lane.fd, frame.bytes, deadline)) {
      ++report.closed_by_server;
      lane.Close();
      return;
    }
    deadline = Clock::now() + std::chrono::milliseconds(timeout);
    uint64_t len = 0;
    Got g = RecvAll(lane.fd, reinterpret_cast<char*>(&len), sizeof(len), deadline);
    std::string body;
    if (g == Got::kReply) {
      if (len > (uint64_t{1} << 30)) {
        if (lane.in_step) fail("the server sent a frame of " + std::to_string(len) + " bytes");
        lane.Close();
        return;
      }
      body.resize(len);
      g = RecvAll(lane.fd, body.data(), len, Clock::now() + std::chrono::seconds(5));
    }
    if (g == Got::kTimeout) {
      ++report.timeouts;
      lane.Close();
      return;
    }
    if (g == Got::kClosed) {
      ++report.closed_by_server;
      lane.Close();
      return;
    }
    ++report.replies;
    json reply = json::parse(body, nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) {
      if (!lane.in_step) {
        lane.Close();
        return;
      }
      fail("the server sent a reply that is not a JSON object: \"" + Escape(body) + "\"");
      return;
    }
    if (reply.contains("code")) ++report.error_replies;
    // Passed fds follow the reply; read them so the stream stays in step.
    size_t nfds = 0;
    auto fd = reply.find("fd");
    if (fd != reply.end() && fd->is_number_integer() && fd->get<int64_t>() >= 0) ++nfds;
    auto fds = reply.find("fds");
    if (fds != reply.end() && fds->is_array()) nfds += fds->size();
    for (size_t i = 0; i < nfds; ++i) {
      if (RecvOneFd(lane.fd, Clock::now() + std::chrono::seconds(2)) != Got::kReply) {
        lane.Close();
        return;
      }
    }
  };

  if (!check()) return report;
  uint64_t next_check = o.batch;
  std::vector<json> corpus = Corpus(ids);
  while (report.messages < o.messages && report.ok()) {
    Lane& lane = lanes[mutator.Below(lanes.size())];
    if (lane.fd < 0) {
      if (!connect(lane)) {
        bool died = o.server_pid > 0 && !ReadProc(o.server_pid).alive;
        fail(died ? "the server died" : "cannot connect to the server");
        break;
      }
      // Most sessions register first; some send garbage before, some never do.
      // (Each counts as a message: never past the run's number of messages.)
      if (mutator.Chance(0.1) && report.messages < o.messages) {
        exchange(lane, mutator.Garbage());
      }
      if (lane.fd >= 0 && mutator.Chance(0.8) && report.messages < o.messages) {
        Frame reg;
        reg.what = "register";
        reg.bytes = MakeFrame(corpus[0].dump());
        exchange(lane, reg);
      }
      if (lane.fd < 0 || report.messages >= o.messages) continue;
    }
    const json& msg = corpus[mutator.Below(corpus.size())];
    // Clearing everything now and then keeps the store bounded, but rarely,
    // so that live ids stay live for most of a batch.
    std::string type = msg.value("type", "");
    if ((type == req::kClear || type == req::kExit) && !mutator.Chance(0.1)) continue;
    exchange(lane, mutator.Mutate(msg, ids));
    if (report.messages >= next_check && report.ok()) {
      next_check = report.messages + o.batch;
      if (!check()) break;
      corpus = Corpus(ids);
      if (o.progress) {
        report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        o.progress(report.Summary());
      }
    }
  }
  for (auto& lane : lanes) lane.Close();
  if (report.ok()) check();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace vineyard::fuzz
