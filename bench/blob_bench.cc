// blob_bench: latency and throughput of vineyardd's blob paths, measured
// against a real server started once for the whole run.
//
//   build/blob_bench [--quick] [--benchmark_* flags]
//
// Scenarios (see bench/README.md and docs/benchmarks.md):
//   Small/split/<size>/<cold|warm>   CreateBlob + Copy + Seal, then GetBlob from a
//                                    second client
//   Small/fused/<size>/<cold|warm>   CreateBlob + Copy + Put(meta), then GetObject
//                                    from a second client
//   Put1GiB/vineyard/<threads>/<fresh|reused>  CreateBlob(1 GiB) + Copy + Seal
//   Put1GiB/memcpy/<parallel|plain>/<fresh|fresh_shm|prefaulted>  the physical
//                                    references
//   Get/<size>/<cold|warm>           GetObject of an existing object
//
// "cold": the reading/writing client holds no other blob, so it maps the
// server's region anew for each operation (the client unmaps a region when its
// last blob goes away); "warm": the clients keep one small blob alive, so the
// region stays mapped.
//
// Counters come from the code path itself: `round_trips` counts the request
// frames the clients send (sendmsg is interposed below; each request is one
// sendmsg and one reply), `mmaps` the MAP_SHARED mappings made, `minflt` the
// minor page faults of this process (getrusage), all per iteration and only
// inside the timed region.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/blob.h"
#include "client/client.h"
#include "client/object_meta.h"
#include "common/socket_io.h"

#ifndef VINEYARDD_PATH
#error "VINEYARDD_PATH must name the vineyardd binary"
#endif

// --- counters by interposition -------------------------------------------------
// The client library is linked statically into this executable, so these
// definitions take the place of libc's for its calls (libc's own internal
// calls are not affected). They go straight to the system call.
namespace {
std::atomic<uint64_t> g_requests{0};
std::atomic<uint64_t> g_shared_mmaps{0};
}  // namespace

extern "C" ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  // A request frame is one sendmsg of {8-byte length, JSON} (common/socket_io.cc).
  if (msg != nullptr && msg->msg_iovlen == 2 && msg->msg_iov[0].iov_len == 8) {
    g_requests.fetch_add(1, std::memory_order_relaxed);
  }
  return syscall(SYS_sendmsg, fd, msg, flags);
}

extern "C" void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept {
  if (flags & MAP_SHARED) g_shared_mmaps.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}

namespace {

using vineyard::Blob;
using vineyard::BlobWriter;
using vineyard::Client;
using vineyard::ObjectID;
using vineyard::ObjectMeta;
using Clock = std::chrono::steady_clock;

constexpr size_t kKiB = 1024, kMiB = 1024 * kKiB, kGiB = 1024 * kMiB;

// --- helpers --------------------------------------------------------------------

pid_t g_server_pid = -1;  // vineyardd, killed if we die

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "blob_bench: %s\n", what.c_str());
  if (g_server_pid > 0) kill(g_server_pid, SIGKILL);
  std::exit(1);
}

void MustOk(const vineyard::Status& st, const char* what) {
  if (!st.ok()) Die(std::string(what) + ": " + st.ToString());
}

template <typename T>
T Must(vineyard::Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.status().ToString());
  return std::move(*r);
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

uint64_t MinorFaults() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_minflt);
}

std::string SizeLabel(size_t n) {
  if (n >= kGiB && n % kGiB == 0) return std::to_string(n / kGiB) + "GiB";
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + "MiB";
  if (n >= kKiB && n % kKiB == 0) return std::to_string(n / kKiB) + "KiB";
  return std::to_string(n) + "B";
}

benchmark::Counter Avg(double v) { return benchmark::Counter(v, benchmark::Counter::kAvgIterations); }

// Anonymous private memory; `prefault` writes every page first.
struct AnonRegion {
  uint8_t* p = nullptr;
  size_t n = 0;
  AnonRegion(size_t size, bool prefault) : n(size) {
    void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) Die("cannot mmap " + SizeLabel(size) + ": " + strerror(errno));
    p = static_cast<uint8_t*>(m);
    if (prefault) memset(p, 0xa5, size);
  }
  ~AnonRegion() { munmap(p, n); }
  AnonRegion(const AnonRegion&) = delete;
  AnonRegion& operator=(const AnonRegion&) = delete;
};

// A fresh shared-memory file (memfd, like vineyardd's arena), mapped shared:
// sparse, so every first write of a page faults and allocates it.
struct ShmRegion {
  uint8_t* p = nullptr;
  size_t n = 0;
  int fd = -1;
  explicit ShmRegion(size_t size) : n(size) {
    fd = memfd_create("blob_bench", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) Die("memfd_create failed");
    void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) Die("cannot mmap the memfd: " + std::string(strerror(errno)));
    p = static_cast<uint8_t*>(m);
  }
  ~ShmRegion() {
    munmap(p, n);
    close(fd);
  }
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
};

// The source of every copy: filled once, resident.
const uint8_t* Source(size_t n) {
  static std::unique_ptr<AnonRegion> src;
  if (!src || src->n < n) {
    src = std::make_unique<AnonRegion>(n, false);
    for (size_t i = 0; i < n; i += 4096) memset(src->p + i, static_cast<int>(i >> 12), 4096);
  }
  return src->p;
}

// --- the server -------------------------------------------------------------------

class Server {
 public:
  void Start(const std::string& size) {
    socket_ = "/tmp/vy-bench-" + std::to_string(getpid()) + ".sock";
    log_ = "/tmp/vy-bench-" + std::to_string(getpid()) + ".log";
    unlink(socket_.c_str());
    pid_ = fork();
    if (pid_ < 0) Die("fork failed");
    g_server_pid = pid_;
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the benchmark
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::string a1 = "--socket=" + socket_, a2 = "--size=" + size;
      char* argv[] = {const_cast<char*>(VINEYARDD_PATH), a1.data(), a2.data(),
                      const_cast<char*>("--meta=local"), const_cast<char*>("--norpc"), nullptr};
      execv(VINEYARDD_PATH, argv);
      _exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      auto fd = vineyard::ConnectUnixSocket(socket_);
      if (fd.ok()) {
        close(*fd);
        return;
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = g_server_pid = -1;
        Die("vineyardd (" VINEYARDD_PATH ") exited at start; see " + log_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Die("vineyardd did not listen on " + socket_ + " within 10 s; see " + log_);
  }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      for (int i = 0; i < 500 && waitpid(pid_, &status, WNOHANG) != pid_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (i == 499) {
          kill(pid_, SIGKILL);  // did not stop within 5 s
          waitpid(pid_, &status, 0);
        }
      }
      pid_ = g_server_pid = -1;
    }
    unlink(socket_.c_str());
    unlink(log_.c_str());
  }

  const std::string& socket() const { return socket_; }

 private:
  std::string socket_, log_;
  pid_t pid_ = -1;
};

Server g_server;
std::shared_ptr<Client> g_writer;  // creates and puts
std::shared_ptr<Client> g_reader;  // a second session that reads

// Keeps the server region mapped in the clients (see "warm" above): a writable
// mapping in the writer (an unsealed blob) and read-only ones in both clients.
class KeepMapped {
 public:
  KeepMapped(bool writer_rw, bool writer_ro, bool reader_ro) {
    if (writer_rw) rw_ = Must(g_writer->CreateBlob(64), "keep-alive CreateBlob");
    if (writer_ro || reader_ro) {
      auto w = Must(g_writer->CreateBlob(64), "keep-alive CreateBlob");
      MustOk(w->Copy(0, Source(64), 64), "keep-alive Copy");
      ro_ = Must(w->Seal(), "keep-alive Seal");
      id_ = ro_->id();
      if (reader_ro) reader_ = Must(g_reader->GetBlob(id_), "keep-alive GetBlob");
      if (!writer_ro) ro_.reset();
    }
  }
  ~KeepMapped() {
    rw_.reset();  // never sealed: dropped on the server
    ro_.reset();
    reader_.reset();
    if (id_ != 0) (void)g_writer->Delete(id_);
    (void)g_writer->FlushReleases();
    (void)g_reader->FlushReleases();
  }

 private:
  std::unique_ptr<BlobWriter> rw_;
  std::shared_ptr<Blob> ro_, reader_;
  ObjectID id_ = 0;
};

struct Snapshot {
  uint64_t requests, mmaps, faults;
  Clock::time_point t;
  static Snapshot Now() {
    Snapshot s;
    s.requests = g_requests.load(std::memory_order_relaxed);
    s.mmaps = g_shared_mmaps.load(std::memory_order_relaxed);
    s.faults = MinorFaults();
    s.t = Clock::now();
    return s;
  }
};

// --- 1. small blobs: create + copy + seal + get -------------------------------------

void BM_SmallSplit(benchmark::State& state, size_t size, bool warm) {
  const uint8_t* src = Source(size);
  auto keep = warm ? std::make_unique<KeepMapped>(true, true, true) : nullptr;
  double create = 0, copy = 0, seal = 0, get = 0, rt = 0, maps = 0;
  for (auto _ : state) {
    Snapshot s0 = Snapshot::Now();
    auto w = Must(g_writer->CreateBlob(size), "CreateBlob");
    auto t1 = Clock::now();
    MustOk(w->Copy(0, src, size), "Copy");
    auto t2 = Clock::now();
    auto sealed = Must(w->Seal(), "Seal");
    auto t3 = Clock::now();
    auto got = Must(g_reader->GetBlob(sealed->id()), "GetBlob");
    Snapshot s4 = Snapshot::Now();
    state.SetIterationTime(Seconds(s0.t, s4.t));
    create += Seconds(s0.t, t1), copy += Seconds(t1, t2), seal += Seconds(t2, t3),
        get += Seconds(t3, s4.t);
    rt += static_cast<double>(s4.requests - s0.requests);
    maps += static_cast<double>(s4.mmaps - s0.mmaps);
    // Untimed: check, then give everything back.
    if (got->size() != size || got->data()[size - 1] != src[size - 1]) Die("GetBlob: wrong bytes");
    ObjectID id = sealed->id();
    got.reset();
    sealed.reset();
    w.reset();
    MustOk(g_writer->Delete(id), "Delete");
    MustOk(g_writer->FlushReleases(), "FlushReleases");
    MustOk(g_reader->FlushReleases(), "FlushReleases");
  }
  state.counters["create_us"] = Avg(create * 1e6);
  state.counters["copy_us"] = Avg(copy * 1e6);
  state.counters["seal_us"] = Avg(seal * 1e6);
  state.counters["get_us"] = Avg(get * 1e6);
  state.counters["round_trips"] = Avg(rt);
  state.counters["mmaps"] = Avg(maps);
}

// --- 1a. the floor: one request round trip, and a bare socket ping-pong -----------

// Exists(id): the cheapest request there is (no fds, no allocation), from the
// writer's or the reader's session.
void BM_RoundTripExists(benchmark::State& state, bool reader) {
  auto w = Must(g_writer->CreateBlob(64), "CreateBlob");
  auto sealed = Must(w->Seal(), "Seal");
  ObjectID id = sealed->id();
  Client& c = reader ? *g_reader : *g_writer;
  for (auto _ : state) {
    auto t0 = Clock::now();
    bool exists = Must(c.Exists(id), "Exists");
    state.SetIterationTime(Seconds(t0, Clock::now()));
    if (!exists) Die("Exists: false");
  }
  sealed.reset();
  w.reset();
  MustOk(g_writer->Delete(id), "Delete");
  MustOk(g_writer->FlushReleases(), "FlushReleases");
}

// The same shape of exchange (a small frame each way between this thread and
// one blocked in recv) over a socketpair, with no server code at all.
void BM_RoundTripSocketpair(benchmark::State& state) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) Die("socketpair failed");
  std::thread echo([fd = sv[1]] {
    char buf[64];
    while (true) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;
      if (send(fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) return;
    }
  });
  char msg[48] = "{\"type\":\"exists_request\",\"id\":\"o00000000\"}";
  char reply[64];
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (send(sv[0], msg, sizeof(msg), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(msg))) {
      Die("send failed");
    }
    size_t got = 0;
    while (got < sizeof(msg)) {
      ssize_t n = recv(sv[0], reply + got, sizeof(msg) - got, 0);
      if (n <= 0) Die("recv failed");
      got += static_cast<size_t>(n);
    }
    state.SetIterationTime(Seconds(t0, Clock::now()));
  }
  shutdown(sv[0], SHUT_RDWR);
  echo.join();
  close(sv[0]);
  close(sv[1]);
}

// --- 1b. the fused path: CreateBlob + Put(meta) + GetObject --------------------------

void BM_SmallFused(benchmark::State& state, size_t size, bool warm) {
  const uint8_t* src = Source(size);
  auto keep = warm ? std::make_unique<KeepMapped>(true, true, true) : nullptr;
  double put = 0, get = 0, put_rt = 0, get_rt = 0, maps = 0;
  for (auto _ : state) {
    Snapshot s0 = Snapshot::Now();
    auto w = Must(g_writer->CreateBlob(size), "CreateBlob");
    MustOk(w->Copy(0, src, size), "Copy");
    ObjectMeta meta;
    meta.SetTypeName("vineyard::bench::Bytes");
    meta.AddKeyValue("size", size);
    meta.AddMember("buffer_", *w);
    ObjectID id = Must(g_writer->Put(meta, {w.get()}), "Put");
    Snapshot s1 = Snapshot::Now();
    ObjectMeta got = Must(g_reader->GetObject(id), "GetObject");
    Snapshot s2 = Snapshot::Now();
    state.SetIterationTime(Seconds(s0.t, s2.t));
    put += Seconds(s0.t, s1.t), get += Seconds(s1.t, s2.t);
    put_rt += static_cast<double>(s1.requests - s0.requests);
    get_rt += static_cast<double>(s2.requests - s1.requests);
    maps += static_cast<double>(s2.mmaps - s0.mmaps);
    auto blob = Must(got.GetBuffer(w->id()), "GetBuffer");
    if (blob->size() != size || blob->data()[size - 1] != src[size - 1]) {
      Die("GetObject: wrong bytes");
    }
    blob.reset();
    got = ObjectMeta();
    w.reset();
    MustOk(g_writer->Delete(id, false, true), "Delete");
    MustOk(g_writer->FlushReleases(), "FlushReleases");
    MustOk(g_reader->FlushReleases(), "FlushReleases");
  }
  state.counters["put_us"] = Avg(put * 1e6);
  state.counters["get_us"] = Avg(get * 1e6);
  state.counters["put_round_trips"] = Avg(put_rt);
  state.counters["get_round_trips"] = Avg(get_rt);
  state.counters["mmaps"] = Avg(maps);
}

// --- 2. 1 GiB put throughput and its physical references ------------------------------

// `fresh`: the freed blob's pages are returned to the kernel (MemoryTrim) after
// each iteration, so every put writes never-touched shared memory; otherwise the
// allocator hands the same, still resident ("dirty") pages back. The writer
// keeps the region mapped throughout, as a long-lived client does.
void BM_PutVineyard(benchmark::State& state, size_t size, int concurrency, bool fresh) {
  const uint8_t* src = Source(size);
  KeepMapped keep(true, true, false);
  auto put_once = [&](double* create, double* copy, double* seal, uint64_t* faults) {
    Snapshot s0 = Snapshot::Now();
    auto w = Must(g_writer->CreateBlob(size), "CreateBlob(1 GiB)");
    auto t1 = Clock::now();
    MustOk(w->Copy(0, src, size, concurrency), "Copy");
    auto t2 = Clock::now();
    auto sealed = Must(w->Seal(), "Seal");
    Snapshot s3 = Snapshot::Now();
    *create = Seconds(s0.t, t1), *copy = Seconds(t1, t2), *seal = Seconds(t2, s3.t);
    *faults = s3.faults - s0.faults;
    if (sealed->data()[size - 1] != src[size - 1]) Die("Seal: wrong bytes");
    ObjectID id = sealed->id();
    sealed.reset();
    w.reset();
    MustOk(g_writer->Delete(id), "Delete");
    MustOk(g_writer->FlushReleases(), "FlushReleases");
    if (fresh) (void)Must(g_writer->MemoryTrim(), "MemoryTrim");
    return Seconds(s0.t, s3.t);
  };
  double create = 0, copy = 0, seal = 0, faults = 0, c, p, s;
  uint64_t f;
  if (!fresh) put_once(&c, &p, &s, &f);  // untimed: makes the pages resident
  for (auto _ : state) {
    state.SetIterationTime(put_once(&c, &p, &s, &f));
    create += c, copy += p, seal += s, faults += static_cast<double>(f);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  state.counters["create_ms"] = Avg(create * 1e3);
  state.counters["copy_ms"] = Avg(copy * 1e3);
  state.counters["seal_ms"] = Avg(seal * 1e3);
  state.counters["minflt"] = Avg(faults);
  if (fresh) (void)g_writer->MemoryTrim();
}

// memcpy of the same bytes into memory of this process. `Dest::kFresh`: a new
// private anonymous region per iteration (never touched: every 4 KiB page
// faults and is zeroed); `kFreshShm`: a new memfd per iteration, mapped shared
// (the same, through the shmem fault path vineyardd's memory takes);
// `kPrefaulted`: one anonymous region written once before timing.
enum class Dest { kFresh, kFreshShm, kPrefaulted };

void BM_PutMemcpy(benchmark::State& state, size_t size, int threads, Dest dest) {
  const uint8_t* src = Source(size);
  std::unique_ptr<AnonRegion> anon;
  std::unique_ptr<ShmRegion> shm;
  if (dest == Dest::kPrefaulted) anon = std::make_unique<AnonRegion>(size, true);
  double faults = 0;
  for (auto _ : state) {
    if (dest == Dest::kFresh) anon = std::make_unique<AnonRegion>(size, false);
    if (dest == Dest::kFreshShm) shm = std::make_unique<ShmRegion>(size);
    uint8_t* dst = shm ? shm->p : anon->p;
    Snapshot s0 = Snapshot::Now();
    vineyard::ParallelMemcpy(dst, src, size, threads);
    Snapshot s1 = Snapshot::Now();
    state.SetIterationTime(Seconds(s0.t, s1.t));
    faults += static_cast<double>(s1.faults - s0.faults);
    if (dst[size - 1] != src[size - 1]) Die("memcpy: wrong bytes");
    if (dest != Dest::kPrefaulted) anon.reset(), shm.reset();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  state.counters["minflt"] = Avg(faults);
}

// --- 3. get latency vs object size ---------------------------------------------------

void BM_Get(benchmark::State& state, size_t size, bool warm) {
  // The object: one blob of `size` bytes, written and put once.
  auto w = Must(g_writer->CreateBlob(size), "CreateBlob");
  MustOk(w->Copy(0, Source(size), size), "Copy");
  ObjectMeta meta;
  meta.SetTypeName("vineyard::bench::Bytes");
  meta.AddKeyValue("size", size);
  meta.AddMember("buffer_", *w);
  ObjectID id = Must(g_writer->Put(meta, {w.get()}), "Put");
  ObjectID blob_id = w->id();
  w.reset();
  MustOk(g_writer->FlushReleases(), "FlushReleases");
  auto keep = warm ? std::make_unique<KeepMapped>(false, false, true) : nullptr;
  double rt = 0, maps = 0;
  for (auto _ : state) {
    Snapshot s0 = Snapshot::Now();
    ObjectMeta got = Must(g_reader->GetObject(id), "GetObject");
    Snapshot s1 = Snapshot::Now();
    state.SetIterationTime(Seconds(s0.t, s1.t));
    rt += static_cast<double>(s1.requests - s0.requests);
    maps += static_cast<double>(s1.mmaps - s0.mmaps);
    if (Must(got.GetBuffer(blob_id), "GetBuffer")->size() != size) Die("GetObject: wrong size");
    // `got` goes away here, untimed: its release rides on the next GetObject.
  }
  state.counters["round_trips"] = Avg(rt);
  state.counters["mmaps"] = Avg(maps);
  keep.reset();
  MustOk(g_reader->FlushReleases(), "FlushReleases");
  MustOk(g_writer->Delete(id, false, true), "Delete");
  (void)g_writer->MemoryTrim();
}

// --- registration ---------------------------------------------------------------------

void Register(bool quick) {
  const double small_min_time = quick ? 0.05 : 0.2;
  // One 1 GiB put per repetition: the spread over repetitions is the spread
  // over single puts (the runner's --benchmark_repetitions does not apply).
  const int big_repetitions = quick ? 1 : 3;
  const char* temp[] = {"cold", "warm"};

  benchmark::RegisterBenchmark("RoundTrip/socketpair", BM_RoundTripSocketpair)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(small_min_time);
  for (bool reader : {false, true}) {
    benchmark::RegisterBenchmark(reader ? "RoundTrip/exists/reader" : "RoundTrip/exists/writer",
                                 BM_RoundTripExists, reader)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond)
        ->MinTime(small_min_time);
  }
  for (size_t size : {size_t{64}, 4 * kKiB, 64 * kKiB}) {
    for (int warm = 0; warm < 2; ++warm) {
      std::string suffix = "/" + SizeLabel(size) + "/" + temp[warm];
      benchmark::RegisterBenchmark(("Small/split" + suffix).c_str(), BM_SmallSplit, size,
                                   warm == 1)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(small_min_time);
      benchmark::RegisterBenchmark(("Small/fused" + suffix).c_str(), BM_SmallFused, size,
                                   warm == 1)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(small_min_time);
    }
  }

  const size_t big = kGiB;
  for (bool fresh : {true, false}) {
    for (int threads : {0, 1}) {
      std::string t = threads == 0 ? "auto" : "1thread";
      benchmark::RegisterBenchmark(
          ("Put1GiB/vineyard/" + t + (fresh ? "/fresh" : "/reused")).c_str(), BM_PutVineyard,
          big, threads, fresh)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->Iterations(1)
          ->Repetitions(big_repetitions);
      std::string m = threads == 0 ? "parallel" : "plain";
      for (Dest d : fresh ? std::vector<Dest>{Dest::kFresh, Dest::kFreshShm}
                          : std::vector<Dest>{Dest::kPrefaulted}) {
        const char* dn = d == Dest::kFresh ? "/fresh" : d == Dest::kFreshShm ? "/fresh_shm"
                                                                              : "/prefaulted";
        benchmark::RegisterBenchmark(("Put1GiB/memcpy/" + m + dn).c_str(), BM_PutMemcpy, big,
                                     threads, d)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond)
            ->Iterations(1)
            ->Repetitions(big_repetitions);
      }
    }
  }

  for (size_t size : {kKiB, kMiB, 256 * kMiB}) {
    for (int warm = 0; warm < 2; ++warm) {
      benchmark::RegisterBenchmark(("Get/" + SizeLabel(size) + "/" + temp[warm]).c_str(), BM_Get,
                                   size, warm == 1)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(small_min_time);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string size = "3Gi";
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a.rfind("--vineyardd_size=", 0) == 0) {
      size = a.substr(17);
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

  g_server.Start(size);
  g_writer = Must(Client::Connect(g_server.socket()), "Connect");
  g_reader = Must(Client::Connect(g_server.socket()), "Connect");
  benchmark::AddCustomContext("vineyardd", std::string(VINEYARDD_PATH) + " --size=" + size +
                                               " --meta=local --norpc");
  benchmark::AddCustomContext("quick", quick ? "true" : "false");
  Register(quick);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  g_reader.reset();
  g_writer.reset();
  g_server.Stop();
  return 0;
}
