// Many concurrent clients: 1,000 IPC clients connected to one vineyardd at once, each in
// turn doing a small put + get, for a fixed time.
//
//   many_clients_bench --vineyardd=PATH [--clients=1000] [--threads=8] [--seconds=10]
//                      [--size=256Mi] [--label=TEXT] [--log=PATH]
//   many_clients_bench --socket=PATH --pid=PID ...     (a vineyardd already running)
//
// With --vineyardd it starts that binary (`--meta=local --norpc`) on a fresh socket and
// stops it at the end; only the server differs between runs, the client is always ours
// (cpp/client). The clients are spread over --threads threads, each thread owning
// clients/threads of them and cycling through them: every client stays connected for the
// whole run, and --threads requests are in flight at a time. One round is, for one client:
// CreateBlob(64) + Copy + Put(ObjectMeta with the blob as member) + GetObject (timed as
// the put+get latency), then a deep Delete (not timed). Prints one JSON object:
//   {"label", "clients", "connected", "completed" (clients with at least one put+get),
//    "pairs", "seconds", "pairs_per_s", "p50_us", "p99_us", "errors", "first_error",
//    "connect_seconds", "server_threads", "server_rss_kib", "server_anon_kib"}
// The server numbers are the largest seen while every client was connected
// (/proc/<pid>/status: Threads, VmRSS, RssAnon). The exit code is 0 when every client
// connected and completed a put+get without errors, 1 otherwise, 2 on bad arguments.
//
// Raises its own RLIMIT_NOFILE soft limit to the hard limit (a started vineyardd inherits
// it): each client holds a socket and the store's file descriptor.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "common/socket_io.h"

namespace {

using Clock = std::chrono::steady_clock;
using vineyard::Client;
using vineyard::ObjectID;
using vineyard::ObjectMeta;
using vineyard::Status;

constexpr size_t kBlobBytes = 64;

struct Options {
  std::string vineyardd;  // start this binary, or
  std::string socket;     // use the server already listening here
  pid_t pid = -1;         // ... whose process this is (for its thread count and memory)
  int clients = 1000;
  int threads = 8;
  double seconds = 10;
  std::string size = "256Mi";
  std::string label;
  std::string log = "/dev/null";
};

[[noreturn]] void Usage(const std::string& why) {
  fprintf(stderr,
          "many_clients_bench: %s\n"
          "usage: many_clients_bench (--vineyardd=PATH | --socket=PATH --pid=PID)\n"
          "       [--clients=1000] [--threads=8] [--seconds=10] [--size=256Mi] [--label=TEXT]"
          " [--log=PATH]\n",
          why.c_str());
  exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      size_t n = strlen(flag);
      return a.compare(0, n, flag) == 0 ? argv[i] + n : nullptr;
    };
    if (const char* v = value("--vineyardd=")) o.vineyardd = v;
    else if (const char* v = value("--socket=")) o.socket = v;
    else if (const char* v = value("--pid=")) o.pid = std::stoi(v);
    else if (const char* v = value("--clients=")) o.clients = std::stoi(v);
    else if (const char* v = value("--threads=")) o.threads = std::stoi(v);
    else if (const char* v = value("--seconds=")) o.seconds = std::stod(v);
    else if (const char* v = value("--size=")) o.size = v;
    else if (const char* v = value("--label=")) o.label = v;
    else if (const char* v = value("--log=")) o.log = v;
    else Usage("unknown argument " + a);
  }
  if (o.vineyardd.empty() == o.socket.empty()) Usage("give --vineyardd or --socket");
  if (!o.socket.empty() && o.pid <= 0) Usage("--socket needs the server's --pid");
  if (o.clients <= 0 || o.threads <= 0 || o.seconds <= 0) Usage("counts must be positive");
  o.threads = std::min(o.threads, o.clients);
  if (o.label.empty()) o.label = o.vineyardd.empty() ? o.socket : o.vineyardd;
  return o;
}

void RaiseFdLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/// A vineyardd this program started; stopped (SIGTERM, then SIGKILL) when it goes away.
/// Not thread-safe; owned by main.
class StartedServer {
 public:
  StartedServer(const Options& o) {
    socket_ = "/tmp/vy-many-" + std::to_string(getpid()) + ".sock";
    pid_ = fork();
    if (pid_ == 0) {
      FILE* log = fopen(o.log.c_str(), "a");
      if (log != nullptr) {
        dup2(fileno(log), 1);
        dup2(fileno(log), 2);
      }
      std::vector<std::string> args = {o.vineyardd, "--socket=" + socket_, "--size=" + o.size,
                                       "--meta=local", "--norpc"};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~StartedServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // 5 s to shut down
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        unlink_socket();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    unlink_socket();
  }
  /// Waits (10 s at most) until the socket accepts connections.
  bool WaitListening() const {
    for (int i = 0; i < 500; ++i) {
      auto fd = vineyard::ConnectUnixSocket(socket_);
      if (fd.ok()) {
        close(*fd);
        return true;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }

 private:
  void unlink_socket() { ::unlink(socket_.c_str()); }
  std::string socket_;
  pid_t pid_ = -1;
};

/// A field of /proc/<pid>/status as a number (KiB for memory), 0 if unknown.
long ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) {
      return std::stol(line.substr(field.size() + 1));
    }
  }
  return 0;
}

/// The largest server numbers seen. Thread-safe (one sampler, read after it stops).
struct ServerPeak {
  std::atomic<long> threads{0}, rss_kib{0}, anon_kib{0};
  void Sample(pid_t pid) {
    threads = std::max(threads.load(), ProcStatus(pid, "Threads"));
    rss_kib = std::max(rss_kib.load(), ProcStatus(pid, "VmRSS"));
    anon_kib = std::max(anon_kib.load(), ProcStatus(pid, "RssAnon"));
  }
};

/// Errors of all threads: a count and the first message. Thread-safe.
class Errors {
 public:
  void Add(const std::string& what, const Status& s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_++ == 0) first_ = what + ": " + s.ToString();
  }
  long count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  std::string first() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }

 private:
  mutable std::mutex mu_;
  long count_ = 0;
  std::string first_;
};

/// One round for one client: put + get of a 64-byte blob object (timed), then a deep
/// delete (not timed). Returns the put+get seconds, or a negative number after an error.
double Round(Client& c, const uint8_t* src, Errors* errors) {
  auto start = Clock::now();
  auto w = c.CreateBlob(kBlobBytes);
  if (!w.ok()) return errors->Add("CreateBlob", w.status()), -1;
  if (Status s = (*w)->Copy(0, src, kBlobBytes); !s.ok()) return errors->Add("Copy", s), -1;
  ObjectMeta meta;
  meta.SetTypeName("vineyard::bench::Bytes");
  meta.AddKeyValue("size", kBlobBytes);
  meta.AddMember("buffer_", **w);
  auto id = c.Put(meta, {w->get()});
  if (!id.ok()) return errors->Add("Put", id.status()), -1;
  ObjectID blob_id = (*w)->id();
  auto got = c.GetObject(*id);
  if (!got.ok()) return errors->Add("GetObject", got.status()), -1;
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  auto blob = got->GetBuffer(blob_id);
  if (!blob.ok()) return errors->Add("GetBuffer", blob.status()), -1;
  if ((*blob)->size() != kBlobBytes || (*blob)->data()[kBlobBytes - 1] != src[kBlobBytes - 1]) {
    return errors->Add("GetObject", Status::Invalid("the bytes read back differ")), -1;
  }
  blob->reset();
  *got = ObjectMeta();
  w->reset();
  if (Status s = c.Delete(*id, false, true); !s.ok()) return errors->Add("Delete", s), -1;
  return seconds;
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(q / 100 * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
    out += ch;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  RaiseFdLimit();
  std::unique_ptr<StartedServer> started;
  std::string socket = o.socket;
  pid_t pid = o.pid;
  if (!o.vineyardd.empty()) {
    started = std::make_unique<StartedServer>(o);
    if (!started->WaitListening()) {
      fprintf(stderr, "many_clients_bench: %s did not start listening on %s (%s)\n",
              o.vineyardd.c_str(), started->socket().c_str(),
              o.log == "/dev/null" ? "give --log=PATH to keep its output"
                                   : ("its output is in " + o.log).c_str());
      return 1;
    }
    socket = started->socket();
    pid = started->pid();
  }

  std::vector<uint8_t> src(kBlobBytes);
  for (size_t i = 0; i < kBlobBytes; ++i) src[i] = static_cast<uint8_t>(i * 7 + 1);

  Errors errors;
  ServerPeak peak;
  std::atomic<int> connected{0}, completed{0};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(static_cast<size_t>(o.threads));
  // main + the client threads meet twice: all connected, then the timed loop begins.
  std::barrier sync(o.threads + 1);
  auto connect_start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::shared_ptr<Client>> mine;
      for (int i = t; i < o.clients; i += o.threads) {
        auto c = Client::Connect(socket);
        if (!c.ok()) {
          errors.Add("Connect", c.status());
          continue;
        }
        mine.push_back(*c);
        ++connected;
      }
      sync.arrive_and_wait();  // every client is connected (or failed to)
      sync.arrive_and_wait();  // the clock starts
      std::vector<bool> done(mine.size(), false);
      auto& lat = latencies[static_cast<size_t>(t)];
      lat.reserve(1 << 16);
      while (!stop.load(std::memory_order_relaxed)) {
        for (size_t i = 0; i < mine.size() && !stop.load(std::memory_order_relaxed); ++i) {
          double s = Round(*mine[i], src.data(), &errors);
          if (s < 0) continue;
          lat.push_back(s);
          if (!done[i]) {
            done[i] = true;
            ++completed;
          }
        }
        if (mine.empty()) break;
      }
      sync.arrive_and_wait();  // main has sampled the server with every client still here
      mine.clear();
    });
  }
  sync.arrive_and_wait();
  double connect_seconds = std::chrono::duration<double>(Clock::now() - connect_start).count();
  peak.Sample(pid);
  sync.arrive_and_wait();
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(o.seconds));
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(100), deadline - Clock::now()));
    peak.Sample(pid);
  }
  stop = true;
  peak.Sample(pid);
  // The threads finish the round they are in, then wait here with their clients still
  // connected; the time counts until the last round has ended.
  sync.arrive_and_wait();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& th : threads) th.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  double p50 = Percentile(all, 50), p99 = Percentile(all, 99);
  started.reset();

  printf("{\"label\": %s, \"clients\": %d, \"threads\": %d, \"connected\": %d, "
         "\"completed\": %d, \"pairs\": %zu, \"seconds\": %.3f, \"pairs_per_s\": %.1f, "
         "\"p50_us\": %.1f, \"p99_us\": %.1f, \"errors\": %ld, \"first_error\": %s, "
         "\"connect_seconds\": %.3f, \"server_threads\": %ld, \"server_rss_kib\": %ld, "
         "\"server_anon_kib\": %ld}\n",
         JsonString(o.label).c_str(), o.clients, o.threads, connected.load(), completed.load(),
         all.size(), seconds, static_cast<double>(all.size()) / seconds, p50 * 1e6, p99 * 1e6,
         errors.count(), JsonString(errors.first()).c_str(), connect_seconds,
         peak.threads.load(), peak.rss_kib.load(), peak.anon_kib.load());
  bool ok = connected == o.clients && completed == o.clients && errors.count() == 0;
  return ok ? 0 : 1;
}
