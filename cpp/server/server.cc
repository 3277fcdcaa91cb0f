#include "server/server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "common/socket_io.h"

namespace vineyard {

namespace {

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

Server::~Server() {
  if (ipc_fd_ >= 0) ::close(ipc_fd_);
  if (rpc_fd_ >= 0) ::close(rpc_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status Server::Start() {
  ctx_.instance_id = options_.instance_id;
  ctx_.compression = options_.compression;
  if (!options_.htpasswd.empty()) {
    auto users = Htpasswd::Load(options_.htpasswd);
    if (!users.ok()) return users.status().WithContext("--htpasswd");
    users_ = std::make_unique<Htpasswd>(std::move(users).value());
    ctx_.users = users_.get();
    spdlog::info("clients must log in: {} users in {}", users_->size(), options_.htpasswd);
  }
  ids_ = std::make_unique<IdGenerator>(options_.instance_id);
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
  store_ = std::make_unique<BulkStore>(std::move(arena).value(), options_.size, ids_.get(),
                                      options_.unsealed_quota);
  backend_ = std::make_unique<LocalBackend>();
  meta_ = std::make_unique<MetaService>(ctx_.instance_id, ids_.get(), store_.get(),
                                        backend_.get());
  ctx_.ids = ids_.get();
  ctx_.store = store_.get();
  ctx_.meta = meta_.get();
  ctx_.backend = backend_.get();

  json entry = {{"hostid", static_cast<uint64_t>(gethostid())},
                {"hostname", Hostname()},
                {"nodename", Hostname()},
                {"ipc_socket", ctx_.ipc_socket},
                {"rpc_endpoint", ctx_.rpc_endpoint.empty() ? "0.0.0.0:0" : ctx_.rpc_endpoint},
                {"timestamp", static_cast<uint64_t>(time(nullptr))}};
  VY_RETURN_NOT_OK(backend_->RegisterInstance(ctx_.instance_id, entry));

  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Status::IOError("eventfd: ", strerror(errno));
  spdlog::info("vineyardd serving on {} ({}), rpc {}, {} of shared memory, metadata: {}",
               ctx_.ipc_socket, "ipc", ctx_.rpc_endpoint.empty() ? "off" : ctx_.rpc_endpoint,
               FormatBytes(options_.size), backend_->Name());
  guard.armed = false;
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
  rpc_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rpc_fd_ < 0) return Status::IOError("socket(): ", strerror(errno));
  int one = 1;
  setsockopt(rpc_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(options_.rpc_port));
  if (::bind(rpc_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::IOError("cannot listen on TCP port ", options_.rpc_port, ": ",
                           strerror(errno), ". Choose another --rpc_socket_port, or --norpc");
  }
  if (::listen(rpc_fd_, 1024) != 0) return Status::IOError("listen(): ", strerror(errno));
  socklen_t len = sizeof(addr);
  getsockname(rpc_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string host = options_.rpc_host.empty() ? Hostname() : options_.rpc_host;
  ctx_.rpc_endpoint = host + ":" + std::to_string(ntohs(addr.sin_port));
  return Status::OK();
}

void Server::Run() {
  while (!ctx_.stopping) {
    struct pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {ipc_fd_, POLLIN, 0}, {rpc_fd_, POLLIN, 0}};
    int n = ::poll(fds, rpc_fd_ >= 0 ? 3 : 2, 1000);
    if (n < 0 && errno != EINTR) {
      spdlog::error("poll failed: {}", strerror(errno));
      break;
    }
    if (fds[1].revents & POLLIN) Accept(ipc_fd_, true);
    if (rpc_fd_ >= 0 && (fds[2].revents & POLLIN)) Accept(rpc_fd_, false);
    ReapFinished();
  }
  // Shutdown: no new clients, end every session, then remove the socket file.
  ::close(ipc_fd_);
  ipc_fd_ = -1;
  if (rpc_fd_ >= 0) ::close(rpc_fd_);
  rpc_fd_ = -1;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    for (auto& s : sessions_) s.conn->Shutdown();
  }
  for (auto& s : sessions_) s.thread.join();
  sessions_.clear();
  ::unlink(options_.socket.c_str());
  spdlog::info("vineyardd stopped; removed {}", options_.socket);
}

void Server::Accept(int listen_fd, bool is_ipc) {
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno != EAGAIN && errno != EINTR) spdlog::warn("accept failed: {}", strerror(errno));
    return;
  }
  if (!is_ipc) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
  }
  std::lock_guard<std::mutex> lock(sessions_mu_);
  Session& s = sessions_.emplace_back();
  s.conn = std::make_unique<Connection>(&ctx_, fd, is_ipc, ++serial_);
  s.thread = std::thread([&s] {
    s.conn->Serve();
    s.done = true;
  });
}

void Server::ReapFinished() {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->done) {
      it->thread.join();
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::Stop() {
  ctx_.stopping = true;
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
}

}  // namespace vineyard
