// ClientCore (internal): one session with vineyardd — the socket (UNIX or TCP),
// the request lock, the regions mapped from received fds, and the references
// to give back. Client/RPCClient, Blob and BlobWriter share it through
// shared_ptr/weak_ptr.
//
// Thread-safety: Request() serialises whole request/reply exchanges (fds
// included) with `mu_`; the release queue has its own lock so destructors
// never wait for a request in flight.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/blob.h"
#include "common/byte_stream.h"
#include "common/protocol.h"
#include "common/tls.h"

namespace vineyard {

class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  ~ClientCore();

  /// Who to log in as (empty: no authentication) and what we do with references.
  struct Login {
    std::string username;
    std::string password;
  };
  /// Connects over the UNIX socket and registers; ConnectionFailed says what was tried.
  static Result<std::shared_ptr<ClientCore>> Connect(const std::string& socket,
                                                     const Login& login = {});
  /// Connects over TCP to host:port and registers; with `tls`, over TLS (the
  /// server's certificate must chain to the context's CAs and name `host`).
  static Result<std::shared_ptr<ClientCore>> ConnectTcp(const std::string& host, int port,
                                                        const Login& login = {},
                                                        std::shared_ptr<TlsContext> tls = {});

  /// Sends one request and reads its reply (an error reply becomes the Status).
  Result<json> Request(const json& request);
  /// Request() with `attachment` after the JSON text in the same frame (vy_put's
  /// inline blobs; only our server reads it).
  Result<json> Request(const json& request, std::string_view attachment);
  /// Like Request(), then receives the fds the reply lists in `fds_key`.
  Result<json> RequestWithFds(const json& request, const char* fds_key);

  /// A request whose reply is followed by raw bytes on the socket (the RPC
  /// byte paths): sends `request`, reads the first reply, runs `stream` on the
  /// socket with it, then (if `final_reply`) reads and returns the final reply.
  /// A failure inside `stream` ends the session: the socket is out of step.
  Result<json> RequestStreaming(const json& request,
                                const std::function<Status(ByteStream& s, const json& reply)>& stream,
                                bool final_reply);

  /// Maps the server region `store_fd` (received earlier), read-only or writable.
  Result<std::shared_ptr<Mapping>> MapRegion(int store_fd, size_t map_size, bool writable);
  /// Builds a read-only Blob over a payload (taking over its server reference).
  Result<std::shared_ptr<Blob>> MakeBlob(const Payload& p);
  Result<std::unique_ptr<BlobWriter>> MakeWriter(const Payload& p);

  /// Queues a reference to give back with the next fused request.
  void QueueRelease(ObjectID id);
  /// Takes the queued releases (to piggyback them on a request).
  bool HasReleases();
  std::vector<ObjectID> TakeReleases();
  /// Sends every queued release now.
  Status FlushReleases();

  Status Disconnect();
  bool connected() const;

  const RegisterReply& info() const { return info_; }
  /// The UNIX socket path or "host:port" this session talks to.
  const std::string& endpoint() const { return endpoint_; }
  bool is_ipc() const { return is_ipc_; }
  static int SpinUs();

 private:
  ClientCore() = default;
  static Result<std::shared_ptr<ClientCore>> Register(std::shared_ptr<ClientCore> core,
                                                      const Login& login);
  Status SendAndReceive(const json& request, json* reply, std::string_view attachment = {});
  Status Broken(const std::string& what, const Status& cause);  // closes fd_; needs mu_

  std::string endpoint_;
  bool is_ipc_ = true;
  /// $VINEYARD_SPIN_US (default 30): how long a reply is polled for before recv
  /// sleeps, when the machine has a core to spare.
  const int spin_us_ = SpinUs();
  RegisterReply info_;

  mutable std::mutex mu_;
  int fd_ = -1;                      // guarded by mu_; -1 once disconnected
  std::unique_ptr<ByteStream> stream_;  // guarded by mu_; fd_'s bytes, plain or TLS
  std::map<int, int> received_fds_;  // guarded by mu_: server fd number -> our fd
  /// guarded by mu_: server fd number -> the first one received for the same
  /// file (the server passes its store read-write to writers and read-only to
  /// readers: both are one region, and reads of it share one mapping).
  std::map<int, int> same_file_;
  /// (server fd, writable) -> the region, mapped once for the whole session
  /// (Blobs share it, so it outlives the session while they do). Read-only
  /// mappings are keyed by same_file_'s canonical fd.
  std::map<std::pair<int, bool>, std::shared_ptr<Mapping>> mappings_;  // guarded by mu_

  std::mutex release_mu_;
  std::vector<ObjectID> releases_;  // guarded by release_mu_
};

}  // namespace vineyard
