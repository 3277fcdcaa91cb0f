// Connection: one client's session — its socket, its state, and everything it
// holds in the stores, released in one place (Teardown) however it ends: EOF,
// a read error, a protocol error, exit_request, or server shutdown.
//
// Thread model: one thread per connection runs Serve(); only that thread
// touches the fields below, so they need no lock. Shutdown() may be called
// from any thread to make Serve() return.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/protocol.h"
#include "server/server_context.h"

namespace vineyard {

/// What a handler sends back: the reply JSON, then the fds it lists.
struct Reply {
  json body;
  std::vector<int> fds;       // passed after the body, in order
  bool close_after = false;   // end the session once sent (exit_request)
};

class Connection {
 public:
  Connection(ServerContext* ctx, int fd, bool is_ipc, uint64_t serial);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Serves requests until the session ends, then releases everything it held.
  void Serve();
  /// Makes Serve() return soon (shuts the socket down). Thread-safe.
  void Shutdown();

  // --- for handlers (called on the connection's own thread) -------------------
  ServerContext& ctx() { return *ctx_; }
  bool is_ipc() const { return is_ipc_; }
  bool registered() const { return registered_; }
  void set_registered(SessionID session, bool releases_references) {
    registered_ = true;
    session_ = session;
    pins_references_ = releases_references;
  }
  std::string peer() const;
  /// The client socket, for handlers that stream blob bytes after a reply.
  int socket_fd() const { return fd_; }
  /// Sends a reply now, before the handler's final one (remote buffers: the
  /// bytes follow it).
  Status SendInterim(const json& body);

  /// Returns `store_fd` if this client has not received it yet (and queues it
  /// on `reply`), else -1: a client receives each fd once.
  int PassFd(int store_fd, Reply* reply);
  /// Who this client is to the bulk store: the owner of the blobs it creates.
  uint64_t serial() const { return serial_; }
  /// Seals one of this client's blobs: it stops being unsealed and becomes a reference.
  Status Seal(ObjectID id);
  /// Drops one of this client's unsealed blobs.
  Status Abort(ObjectID id);
  /// Records a reference the store granted to this client. A client that never
  /// gives references back (the published one) does not keep it: its reads
  /// cannot pin deleted memory until it disconnects.
  void AddRef(ObjectID id);
  /// Payloads of `ids` for this client, all or none: takes a reference on
  /// each and queues on `reply` the fds it has not received (listed in `fds`).
  /// Our clients get sealed blobs with the store's read-only fd.
  Result<std::vector<Payload>> GetPayloads(const std::vector<ObjectID>& ids, bool unsafe,
                                           Reply* reply, std::vector<int>* fds);
  /// Gives back one reference (no-op if this client holds none on `id`).
  void Release(ObjectID id);
  /// True while a blocking handler should go on waiting.
  bool PeerAlive() const;

 private:
  Status HandleOne(const std::string& frame, Reply* reply);
  Status SendReply(const Reply& reply);
  void Teardown();

  ServerContext* const ctx_;
  const int fd_;                 // the client socket, closed by the destructor
  const bool is_ipc_;            // UNIX socket (fd passing) or TCP
  const uint64_t serial_;        // for logs; owner of the blobs it creates (BulkStore)
  bool registered_ = false;      // register_request done
  bool pins_references_ = false; // the client releases what it takes (ours)
  SessionID session_ = kRootSessionID;
  std::unordered_set<int> fds_sent_;                // store fds already passed
  std::unordered_map<ObjectID, int64_t> refs_;      // references held: released at teardown
};

}  // namespace vineyard
