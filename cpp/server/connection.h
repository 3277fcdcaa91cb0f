// Connection: one client's session — its socket, its state, and everything it
// holds in the stores, released in one place (Teardown) however it ends: EOF,
// a read error, a protocol error, a timeout, exit_request, or server shutdown.
//
// Thread model: a connection is bound to one event loop (io_pool.h). Its
// reads, its fast requests and its reply writes run on that loop's thread. A
// slow request (Dispatcher kSlow, or a large frame) is handed to a worker,
// which handles it and writes its reply with blocking, timed I/O, then hands
// the connection back; while a worker holds it, the loop does not touch it.
// So at any moment one thread owns the fields below, and they need no lock.
// Shutdown() and Resume() may be called from any thread: they post to the loop.
//
// One request at a time: after a frame, the connection stops reading until its
// reply is written (a parked request replies when the metadata changes).
#pragma once

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/byte_stream.h"
#include "common/protocol.h"
#include "server/server_context.h"

namespace vineyard {

struct EventLoop;

/// What a handler sends back: the reply JSON, then the fds it lists.
struct Reply {
  json body;
  std::string body_text;      // instead of `body`: a reply already written as JSON text
  std::vector<int> fds;       // passed after the body, in order
  bool close_after = false;   // end the session once sent (exit_request, failed login)
  bool defer = false;         // not yet: park until the metadata changes, then retry
  json park_as;               // with defer: the request to retry, if not the one received
  bool to_worker = false;     // too large for the event loop: run it again on a worker
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  /// `fd`: an accepted socket, owned from now on (made non-blocking here).
  Connection(ServerContext* ctx, EventLoop* loop, int fd, bool is_ipc, uint64_t serial);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Starts serving (on its loop): reads requests until the session ends.
  void Start();
  /// True while a worker (not the event loop) handles this connection's request.
  bool on_worker() const { return on_worker_; }
  /// Ends the session soon. Thread-safe.
  void Shutdown();
  /// A parked request may now succeed: retry it. Thread-safe.
  void Resume();
  /// Called by the loop's sweep once a second: closes a connection whose
  /// handshake, frame or reply has made no progress for too long.
  void CheckTimeouts(std::chrono::steady_clock::time_point now);

  // --- for handlers (on the thread that runs the request) ---------------------
  ServerContext& ctx() { return *ctx_; }
  bool is_ipc() const { return is_ipc_; }
  bool registered() const { return registered_; }
  void set_registered(SessionID session, bool releases_references) {
    registered_ = true;
    session_ = session;
    pins_references_ = releases_references;
  }
  std::string peer() const;
  /// The client socket (e.g. for the peer's credentials).
  int socket_fd() const { return fd_; }
  /// The connection's bytes, for kSlow handlers that stream blob bytes after a
  /// reply (blocking helpers of byte_stream.h, bounded by io_timeout_ms()).
  ByteStream& stream() { return *stream_; }
  int io_timeout_ms() const;
  /// Sends a reply now, before the handler's final one (remote buffers: the
  /// bytes follow it). Only from kSlow handlers (a worker may block).
  Status SendInterim(const json& body);

  /// Returns `store_fd` if this client has not received it yet (and queues it
  /// on `reply`), else -1: a client receives each fd once.
  int PassFd(int store_fd, Reply* reply);
  /// Who this client is to the bulk store: the owner of the blobs it creates.
  uint64_t serial() const { return serial_; }
  /// Seals one of this client's blobs: it stops being unsealed and becomes a reference.
  Status Seal(ObjectID id);
  /// Undoes Seal(id) of a blob nothing else has seen (a failed request's).
  Status Unseal(ObjectID id);
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

 private:
  using Clock = std::chrono::steady_clock;

  // --- the I/O state machine (on the loop) ------------------------------------
  void ReadSome();                       // reads until a frame is whole, or waits
  void OnFrame(std::string frame);       // dispatches one request
  void RunFast(json& request);     // a request handled on the loop
  void RunOnWorker(std::string frame);   // a request handed to a worker
  void Park(json request);              // waits in ParkedRequests
  void Retry();                          // re-runs the parked request
  void Respond(Reply reply);             // queues the reply and writes it
  void Flush();                          // writes queued bytes and fds, or waits
  void AfterReply();                     // reads again, parks, or closes
  void WaitFor(short events, void (Connection::*next)());
  void Close(const std::string& why);    // the one exit: teardown, unregister
  /// Parses and dispatches `frame`; errors become error replies.
  Reply Handle(const std::string& frame, json* parsed);
  Status WriteReplyBlocking(const Reply& reply);  // on a worker
  std::string StreamError() const;  // why the last Read/Write failed
  void Teardown();

  ServerContext* const ctx_;
  EventLoop* const loop_;        // the loop this connection is bound to
  const int fd_;                 // the client socket (owned by sd_, closed with it)
  asio::posix::stream_descriptor sd_;  // fd_ registered with the loop's reactor
  std::unique_ptr<ByteStream> stream_;  // plain, or TLS on the RPC port
  const bool is_ipc_;            // UNIX socket (fd passing) or TCP
  const uint64_t serial_;        // for logs; owner of the blobs it creates (BulkStore)
  const Clock::time_point accepted_;

  // Input: the frame being read. Its buffer grows as bytes arrive, so an
  // announced length costs nothing until the bytes are there.
  uint8_t header_[8] = {};
  size_t header_got_ = 0;
  uint64_t body_len_ = 0;
  std::string body_;
  std::string pending_;   // bytes read past the last frame (a pipelining client)
  bool drained_ = false;  // the last read emptied the socket: wait, don't read

  // Output: the reply being written, then the fds it passes.
  std::string out_;
  size_t out_off_ = 0;
  std::vector<int> out_fds_;
  size_t out_fds_sent_ = 0;
  bool close_after_ = false;

  json parked_request_;          // the request waiting in ParkedRequests, if any
  bool parked_ = false;
  bool closed_ = false;
  std::atomic<bool> on_worker_{false};  // a worker holds the connection
  Clock::time_point last_progress_;     // last byte moved while mid-frame/mid-reply
  enum class Phase { kIdle, kReading, kWriting, kHandling } phase_ = Phase::kIdle;

  bool registered_ = false;      // register_request done
  bool pins_references_ = false; // the client releases what it takes (ours)
  SessionID session_ = kRootSessionID;
  std::unordered_set<int> fds_sent_;                // store fds already passed
  std::unordered_map<ObjectID, int64_t> refs_;      // references held: released at teardown
  std::unordered_set<ObjectID> held_;  // blobs a client that keeps no references maps: unheld at teardown
};

}  // namespace vineyard
