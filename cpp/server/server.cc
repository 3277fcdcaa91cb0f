#include "server/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/socket_io.h"
#include "server/dispatcher.h"
#include "server/etcd_backend.h"

namespace vineyard {

namespace {

constexpr char kOutOfFds[] =
    "vineyardd is out of file descriptors: retry later, or raise its `ulimit -n`";
constexpr uint64_t kSpareFds = 16;  // kept free of clients

// Arena capacity beyond the limit. The allocator rounds large sizes up by as
// much as 25% and a large allocation needs a free range larger still, so the
// address range must be about twice what the limit lets clients hold to stay
// unfragmented. Untouched capacity costs no memory (the memfd is sparse) — except
// with --reserve_memory, which backs all of it, so there the slack is smaller.
uint64_t ArenaCapacity(uint64_t limit, bool reserve) {
  if (reserve) return limit + limit / 4 + (16ULL << 20);
  return 2 * limit + (64ULL << 20);
}

std::string Hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

// The number of file descriptors this process may open (raised to the hard
// limit at start, so thousands of clients fit).
static uint64_t RaiseFdLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY ? (1ULL << 20) : rl.rlim_cur;
}

static bool IsLoopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

Server::~Server() {
  if (backend_) backend_->Stop();  // its threads call into meta_
  if (ipc_fd_ >= 0) ::close(ipc_fd_);
  if (rpc_fd_ >= 0) ::close(rpc_fd_);
  if (spare_fd_ >= 0) ::close(spare_fd_);
  listeners_.clear();
  pool_.reset();  // joins the threads before the stores go away
}

Status Server::Start() {
  ctx_.instance_id = options_.instance_id;
  ctx_.compression = options_.compression;
  ctx_.migration_compression = options_.migration_compression;
  if (!options_.htpasswd.empty()) {
    auto users = Htpasswd::Load(options_.htpasswd);
    if (!users.ok()) return users.status().WithContext("--htpasswd");
    users_ = std::make_unique<Htpasswd>(std::move(users).value());
    ctx_.users = users_.get();
    spdlog::info("clients must log in: {} users in {}", users_->size(), options_.htpasswd);
  }
  if (!options_.rpc_tls_cert.empty()) {
    auto tls = TlsContext::FromFiles(options_.rpc_tls_cert, options_.rpc_tls_key);
    if (!tls.ok()) return tls.status();
    ctx_.tls = std::move(tls).value();
    spdlog::info("RPC clients must speak TLS: certificate {}", options_.rpc_tls_cert);
  }
  ctx_.deployment = options_.deployment;
  ctx_.limits = options_.limits;
  uint64_t fd_limit = fd_limit_ = RaiseFdLimit();
  if (ctx_.limits.max_connections == 0) {
    // What the fd limit allows, keeping some for the stores, logs and etcd.
    ctx_.limits.max_connections = fd_limit > 128 ? fd_limit - 64 : fd_limit / 2;
  } else if (ctx_.limits.max_connections + 32 > fd_limit) {
    spdlog::warn("--max_connections={} is above what the file descriptor limit ({}) allows: "
                 "raise `ulimit -n`", ctx_.limits.max_connections, fd_limit);
  }
  VY_RETURN_NOT_OK(BindIpcSocket());
  // A failure from here on removes the socket file just created.
  struct RemoveSocketOnFailure {
    const std::string& path;
    bool armed = true;
    ~RemoveSocketOnFailure() {
      if (armed) ::unlink(path.c_str());
    }
  } guard{options_.socket};
  if (options_.rpc) VY_RETURN_NOT_OK(BindRpcSocket());

  auto arena = Arena::Create(ArenaCapacity(options_.size, options_.reserve_memory),
                             options_.reserve_memory);
  if (!arena.ok()) return arena.status().WithContext("cannot set up shared memory");
  VY_RETURN_NOT_OK(MakeBackend());
  json entry = {{"hostid", static_cast<uint64_t>(gethostid())},
                {"hostname", Hostname()},
                {"nodename", Hostname()},
                {"ipc_socket", ctx_.ipc_socket},
                {"rpc_endpoint", ctx_.rpc_endpoint.empty() ? "0.0.0.0:0" : ctx_.rpc_endpoint},
                {"timestamp", static_cast<uint64_t>(time(nullptr))}};
  VY_ASSIGN_OR_RETURN(ctx_.instance_id, backend_->Register(entry));
  ids_ = std::make_unique<IdGenerator>(ctx_.instance_id);
  store_ = std::make_unique<BulkStore>(std::move(arena).value(), options_.size, ids_.get(),
                                      options_.unsealed_quota);
  if (!options_.spill_path.empty()) {
    auto files = SpillFiles::Open(options_.spill_path);
    if (!files.ok()) return files.status().WithContext("--spill_path");
    store_->EnableSpill(std::move(files).value(), options_.spill_lower_rate,
                        options_.spill_upper_rate);
  }
  meta_ = std::make_unique<MetaService>(
      ctx_.instance_id, ids_.get(), store_.get(), backend_.get(),
      MetaLimits{options_.meta_max_depth, options_.meta_max_nodes, options_.meta_memory_limit});
  ctx_.ids = ids_.get();
  ctx_.store = store_.get();
  ctx_.meta = meta_.get();
  migrator_ = std::make_unique<Migrator>(&ctx_);
  ctx_.migrator = migrator_.get();
  ctx_.backend = backend_.get();
  parked_ = std::make_unique<ParkedRequests>();
  ctx_.parked = parked_.get();
  meta_->SetChangeListener([parked = parked_.get()] { parked->WakeAll(); });
  streams_ = std::make_unique<StreamStore>(
      store_.get(), meta_.get(),
      static_cast<uint64_t>(static_cast<double>(options_.size) * options_.stream_threshold / 100));
  ctx_.streams = streams_.get();
  pool_ = std::make_unique<IoPool>(options_.io_threads, options_.worker_threads,
                                   options_.spin_us);
  ctx_.pool = pool_.get();

  VY_RETURN_NOT_OK(backend_->Attach(meta_.get()));
  if (options_.metrics) {
    VY_ASSIGN_OR_RETURN(metrics_, Metrics::Start(options_.rpc_host, options_.metrics_port,
                                                 Dispatcher::Get().Types(), &ctx_));
    ctx_.metrics = metrics_.get();
    spdlog::info("metrics at http://{}:{}/metrics",
                 options_.rpc_host.empty() ? Hostname() : options_.rpc_host, metrics_->port());
  }

  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  out_of_fds_frame_ = EncodeFrame(WriteErrorReply(Status::IOError(kOutOfFds)).dump());
  spdlog::info("vineyardd serving on {} ({}), rpc {}, {} of shared memory, metadata: {}, "
               "instance {}, {} event loops, {} workers, at most {} connections",
               ctx_.ipc_socket, "ipc", ctx_.rpc_endpoint.empty() ? "off" : ctx_.rpc_endpoint,
               FormatBytes(options_.size), backend_->Name(), ctx_.instance_id,
               options_.io_threads,
               options_.worker_threads, ctx_.limits.max_connections);
  guard.armed = false;
  return Status::OK();
}

Status Server::MakeBackend() {
  if (options_.meta == "local") {
    backend_ = std::make_unique<LocalBackend>(options_.instance_id);
    return Status::OK();
  }
  const auto timeout = std::chrono::seconds(options_.meta_timeout_s);
  EtcdBackendOptions eo;
  eo.endpoints = options_.etcd_endpoint;
  eo.prefix = options_.etcd_prefix;
  eo.timeout = timeout;
  eo.instance_ttl_s = options_.instance_ttl_s;
  bool may_launch = !options_.skip_launch_etcd && EtcdLauncher::IsLocal(eo.endpoints);
  if (may_launch) {
    auto binary = EtcdLauncher::FindBinary(options_.etcd_cmd);
    if (binary.ok()) {
      launcher_ = std::make_shared<EtcdLauncher>(*binary, eo.endpoints, options_.etcd_data_dir);
      eo.launcher = launcher_;
    } else if (!options_.etcd_cmd.empty()) {
      return binary.status();
    }
  }
  auto backend = EtcdBackend::Connect(eo);
  if (!backend.ok() && launcher_) {
    VY_RETURN_NOT_OK(launcher_->EnsureRunning(timeout));
    backend = EtcdBackend::Connect(eo);
  } else if (!backend.ok() && may_launch) {
    spdlog::warn("no etcd answers at {} and no etcd executable was found: running standalone "
                 "(--meta=local). Install etcd (Debian: etcd-server) to form a cluster",
                 eo.endpoints);
    backend_ = std::make_unique<LocalBackend>(options_.instance_id);
    return Status::OK();
  }
  // A remote etcd may still be starting: wait for it up to --meta_timeout.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!backend.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    backend = EtcdBackend::Connect(eo);
  }
  if (!backend.ok()) {
    return Status::EtcdError(backend.status().message(),
                             "; or run standalone with --meta=local");
  }
  backend_ = std::move(backend).value();
  return Status::OK();
}

Status Server::BindIpcSocket() {
  namespace fs = std::filesystem;
  const std::string& path = options_.socket;
  auto fix = " Choose a writable path with --socket, e.g. --socket=/tmp/vineyard.sock";
  fs::path dir = fs::absolute(fs::path(path)).parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::IOError("cannot create the IPC socket '", path, "': directory '",
                           dir.string(), "' does not exist.", fix);
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::IOError("cannot create the IPC socket '", path, "': directory '",
                           dir.string(), "' is not writable (", strerror(errno), ").", fix);
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::IOError("'", path, "' exists and is not a socket: remove it or choose "
                             "another path with --socket");
    }
    auto probe = ConnectUnixSocket(path);
    if (probe.ok()) {
      ::close(*probe);
      return Status::IOError("another vineyardd is serving '", path,
                             "': stop it, or choose another path with --socket");
    }
    ::unlink(path.c_str());  // a stale socket left by a server that died
    spdlog::info("replaced the stale socket file {}", path);
  }
  struct sockaddr_un addr {};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::IOError("socket path '", path, "' is longer than ", sizeof(addr.sun_path) - 1,
                           " bytes.", fix);
  }
  ipc_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ipc_fd_ < 0) return Status::IOError("socket(): ", strerror(errno));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size());
  // The socket file is born with --socket_mode: no window in which others may connect.
  mode_t old_mask = ::umask(~static_cast<mode_t>(options_.socket_mode) & 0777);
  int bound = ::bind(ipc_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0) {
    return Status::IOError("cannot bind the IPC socket '", path, "': ", strerror(bind_errno), ".",
                           fix);
  }
  ::chmod(path.c_str(), static_cast<mode_t>(options_.socket_mode));
  if (::listen(ipc_fd_, 1024) != 0) return Status::IOError("listen(): ", strerror(errno));
  ctx_.ipc_socket = fs::absolute(fs::path(path)).string();
  return Status::OK();
}

Status Server::BindRpcSocket() {
  // --rpc_host is both where the port listens and what clients are told;
  // without it the port listens on every address, as vineyard's does.
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(options_.rpc_port));
  if (!options_.rpc_host.empty()) {
    struct addrinfo hints {};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* found = nullptr;
    int rc = getaddrinfo(options_.rpc_host.c_str(), nullptr, &hints, &found);
    if (rc != 0 || found == nullptr) {
      return Status::IOError("cannot resolve --rpc_host '", options_.rpc_host,
                             "': ", gai_strerror(rc), ". Give an address of this host");
    }
    addr.sin_addr = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr;
    freeaddrinfo(found);
  }
  rpc_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rpc_fd_ < 0) return Status::IOError("socket(): ", strerror(errno));
  int one = 1;
  setsockopt(rpc_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int bound = ::bind(rpc_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (bound != 0 && errno == EADDRINUSE && options_.rpc_port_is_default) {
    // The default port is taken (another instance on this host): any free one
    // will do, since clients and the cluster are told the real endpoint.
    addr.sin_port = 0;
    bound = ::bind(rpc_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (bound == 0) spdlog::info("port {} is taken: RPC on a free port", options_.rpc_port);
  }
  if (bound != 0) {
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
    return Status::IOError("cannot listen on TCP ", text, ":", options_.rpc_port, ": ",
                           strerror(errno),
                           ". Choose another --rpc_socket_port (or --rpc_host), or --norpc");
  }
  if (::listen(rpc_fd_, 1024) != 0) return Status::IOError("listen(): ", strerror(errno));
  socklen_t len = sizeof(addr);
  getsockname(rpc_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string host = options_.rpc_host.empty() ? Hostname() : options_.rpc_host;
  ctx_.rpc_endpoint = host + ":" + std::to_string(ntohs(addr.sin_port));
  if ((options_.rpc_host.empty() || !IsLoopback(options_.rpc_host)) &&
      options_.htpasswd.empty()) {
    spdlog::warn("the RPC port {} is open to the network without --htpasswd: anyone who can "
                 "reach it may read and delete objects. Set --htpasswd (with --rpc_tls_cert, "
                 "so passwords and data are encrypted), bind a local address with "
                 "--rpc_host=127.0.0.1, or turn it off with --norpc",
                 ctx_.rpc_endpoint);
  }
  return Status::OK();
}

void Server::Run() {
  pool_->Start([this](EventLoop& loop) { Sweep(loop); });
  EventLoop& first = *pool_->loops().front();
  asio::post(first.io, [this, &first] {
    listeners_.push_back(std::make_unique<Listener>(first.io, ipc_fd_, true));
    ipc_fd_ = -1;
    if (rpc_fd_ >= 0) {
      listeners_.push_back(std::make_unique<Listener>(first.io, rpc_fd_, false));
      rpc_fd_ = -1;
    }
    for (auto& l : listeners_) ArmAccept(*l);
  });
  {
    std::unique_lock<std::mutex> lock(stop_mu_);
    stop_cv_.wait(lock, [this] { return stop_requested_; });
  }

  // Shutdown: no new clients; every session ends (a worker's blocking I/O
  // fails at once on its shut-down socket); then the loops stop.
  auto on_each_loop = [this](auto fn) {
    std::vector<std::future<void>> done;
    for (auto& loop : pool_->loops()) {
      auto task = std::make_shared<std::packaged_task<void()>>([&loop, fn] { fn(*loop); });
      done.push_back(task->get_future());
      asio::post(loop->io, [task] { (*task)(); });
    }
    for (auto& d : done) d.wait();
  };
  on_each_loop([this](EventLoop& loop) {
    if (loop.index == 0) listeners_.clear();
    auto conns = loop.connections;
    for (auto& c : conns) c->Shutdown();
  });
  pool_->JoinWorkers();
  on_each_loop([](EventLoop& loop) {
    auto conns = loop.connections;
    for (auto& c : conns) c->Shutdown();
  });
  pool_->StopLoops();
  metrics_.reset();  // the endpoint stops before the state it reads
  ctx_.metrics = nullptr;
  backend_->Stop();  // leaves the cluster: this instance's objects go with it
  ::unlink(options_.socket.c_str());
  spdlog::info("vineyardd stopped; removed {}", options_.socket);
}

void Server::ArmAccept(Listener& l) {
  l.sd.async_wait(asio::posix::stream_descriptor::wait_read,
                  [this, &l](const asio::error_code& ec) {
                    if (ec || ctx_.stopping) return;
                    AcceptReady(l);
                  });
}

void Server::AcceptReady(Listener& l) {
  for (int accepted = 0; accepted < 256; ++accepted) {
    int fd = ::accept4(l.sd.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
        // Out of descriptors: free the spare, accept the client only to tell it why.
        ::close(spare_fd_);
        spare_fd_ = -1;
        int refused = ::accept4(l.sd.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
        if (refused >= 0) SendRefusal(refused, out_of_fds_frame_, kOutOfFds);
        spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        continue;
      }
      // Still failing (no spare to free, or another error): pause this
      // listener instead of spinning, doubling the pause up to a second.
      l.backoff_ms = std::min(std::max(l.backoff_ms * 2, 10), 1000);
      static std::atomic<int64_t> last_log{0};
      int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::steady_clock::now().time_since_epoch()).count();
      if (last_log.exchange(now) != now) {
        spdlog::warn("accept failed: {}; pausing new connections for {} ms", strerror(errno),
                     l.backoff_ms);
      }
      l.backoff.expires_after(std::chrono::milliseconds(l.backoff_ms));
      l.backoff.async_wait([this, &l](const asio::error_code& ec) {
        if (!ec && !ctx_.stopping) ArmAccept(l);
      });
      return;
    }
    l.backoff_ms = 0;
    // A few descriptors stay free for the server's own work (spill files, etcd,
    // migrations, the sanitizers' probes): a client that would take one of them
    // is refused as one past the last descriptor would be.
    if (static_cast<uint64_t>(fd) + kSpareFds >= fd_limit_) {
      SendRefusal(fd, out_of_fds_frame_, kOutOfFds);
      continue;
    }
    uint64_t open = static_cast<uint64_t>(std::max<int64_t>(
        0, ctx_.ipc_connections.load() + ctx_.rpc_connections.load()));
    if (open >= ctx_.limits.max_connections) {
      Refuse(fd, Status::IOError("too many connections: this vineyardd serves at most ",
                                 ctx_.limits.max_connections,
                                 " at once (--max_connections); retry later"));
      continue;
    }
    if (!l.is_ipc) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    EventLoop& loop = pool_->NextLoop();
    auto conn = std::make_shared<Connection>(&ctx_, &loop, fd, l.is_ipc, ++serial_);
    asio::post(loop.io, [conn, &loop] {
      loop.connections.insert(conn);
      conn->Start();
    });
  }
  ArmAccept(l);
}

void Server::Refuse(int fd, const Status& why) {
  SendRefusal(fd, EncodeFrame(WriteErrorReply(why).dump()), why.message());
}

void Server::SendRefusal(int fd, const std::string& frame, const std::string& why) {
  static std::atomic<int64_t> last_log{0};
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch()).count();
  if (last_log.exchange(now) != now) spdlog::warn("refusing a client: {}", why);
  (void)!::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
}

void Server::Sweep(EventLoop& loop) {
  auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<Connection>> conns(loop.connections.begin(),
                                                 loop.connections.end());
  for (auto& c : conns) c->CheckTimeouts(now);
}

void Server::Stop() {
  ctx_.stopping = true;
  std::lock_guard<std::mutex> lock(stop_mu_);
  stop_requested_ = true;
  stop_cv_.notify_all();
}

}  // namespace vineyard
