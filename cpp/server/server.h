// Server: vineyardd's runner. It owns the stores and the listening sockets,
// accepts clients (one thread each, see Connection) and shuts down cleanly:
// Stop() closes the listeners, ends every session and removes the socket file.
//
// Thread-safety: Start() and Run() from one thread; Stop() from any thread.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "server/connection.h"
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
  struct Session {
    std::unique_ptr<Connection> conn;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  Status BindIpcSocket();
  Status BindRpcSocket();
  void Accept(int listen_fd, bool is_ipc);
  void ReapFinished();

  ServerOptions options_;
  std::unique_ptr<IdGenerator> ids_;
  std::unique_ptr<BulkStore> store_;
  std::unique_ptr<MetaBackend> backend_;
  std::unique_ptr<MetaService> meta_;
  std::unique_ptr<Htpasswd> users_;
  ServerContext ctx_;

  int ipc_fd_ = -1;
  int rpc_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop() wakes the accept loop
  uint64_t serial_ = 0;

  std::mutex sessions_mu_;
  std::list<Session> sessions_;  // guarded by sessions_mu_
};

}  // namespace vineyard
