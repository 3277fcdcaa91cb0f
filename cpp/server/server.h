// Server: vineyardd's runner. It owns the stores, the listening sockets and
// the threads (IoPool: event loops + workers). It accepts clients on the first
// loop, binds each to a loop (see Connection), refuses politely over
// --max_connections, backs off when out of file descriptors, and shuts down
// cleanly: Stop() closes the listeners, ends every session and removes the
// socket file.
//
// Thread-safety: Start() and Run() from one thread; Stop() from any thread.
#pragma once

#include <asio.hpp>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "server/connection.h"
#include "server/etcd_launcher.h"
#include "server/metrics.h"
#include "server/migration.h"
#include "server/io_pool.h"
#include "server/parked_requests.h"
#include "server/stream_store.h"
#include "server/options.h"
#include "server/server_context.h"

namespace vineyard {

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  /// Creates the arena and binds the sockets; errors say what to change.
  Status Start();
  /// Accepts clients until Stop().
  void Run();
  /// Thread-safe; makes Run() return after every session has ended.
  void Stop();

  const ServerContext& context() const { return ctx_; }

 private:
  /// A listening socket registered with the first loop.
  struct Listener {
    Listener(asio::io_context& io, int fd, bool is_ipc) : sd(io, fd), is_ipc(is_ipc) {}
    asio::posix::stream_descriptor sd;  // owns the fd
    bool is_ipc;
    asio::steady_timer backoff{sd.get_executor()};
    int backoff_ms = 0;  // > 0 while paused for lack of file descriptors
  };

  Status BindIpcSocket();
  Status BindRpcSocket();
  /// --meta: the etcd backend (launching etcd when nothing answers at a local
  /// endpoint), or the local one (asked for, or no etcd to be found).
  Status MakeBackend();
  void ArmAccept(Listener& l);
  void AcceptReady(Listener& l);
  /// Over the limit or out of fds: tells the client why and closes it.
  void Refuse(int fd, const Status& why);
  /// Sends `frame` (an error reply) and closes `fd`; logs `why` once a second.
  void SendRefusal(int fd, const std::string& frame, const std::string& why);
  void Sweep(EventLoop& loop);

  ServerOptions options_;
  std::unique_ptr<IdGenerator> ids_;
  std::unique_ptr<BulkStore> store_;
  std::shared_ptr<EtcdLauncher> launcher_;  // an etcd this vineyardd started, if any
  std::unique_ptr<MetaBackend> backend_;
  std::unique_ptr<MetaService> meta_;
  std::unique_ptr<Migrator> migrator_;
  std::unique_ptr<Htpasswd> users_;
  std::unique_ptr<Metrics> metrics_;  // --metrics: the Prometheus endpoint
  ServerContext ctx_;

  std::unique_ptr<ParkedRequests> parked_;
  std::unique_ptr<StreamStore> streams_;
  std::unique_ptr<IoPool> pool_;

  int ipc_fd_ = -1;  // until Run() hands them to listeners_
  int rpc_fd_ = -1;
  int spare_fd_ = -1;  // held in reserve: freed to accept and refuse when out of fds
  // The reply to a client refused for want of fds, made at start: nothing is
  // formatted while the process has no descriptor to spare.
  std::string out_of_fds_frame_;
  uint64_t fd_limit_ = 1024;  // RLIMIT_NOFILE, raised to its hard limit at start
  std::vector<std::unique_ptr<Listener>> listeners_;  // used on the first loop only
  uint64_t serial_ = 0;                               // first loop only

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_requested_ = false;  // guarded by stop_mu_
};

}  // namespace vineyard
