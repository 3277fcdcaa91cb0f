// TLS over a socket, as a ByteStream: the server's certificate and key
// (--rpc_tls_cert / --rpc_tls_key) or a client's trust (a CA file or the
// system store, with host-name checks), over OpenSSL 3. TLS 1.2 and later only.
//
//   VY_ASSIGN_OR_RETURN(auto ctx, TlsContext::ForServer(cert, key));
//   VY_ASSIGN_OR_RETURN(auto tls, TlsStream::Accept(ctx, fd));
//   VY_RETURN_NOT_OK(CompleteHandshake(*tls, timeout_ms));  // or let Read/Write drive it
//   VY_RETURN_NOT_OK(WriteFrame(*tls, payload, timeout_ms));
//
// The handshake: Accept/Connect only set the side (SSL_set_accept_state /
// SSL_set_connect_state); nothing is exchanged until the first Handshake(),
// Read() or Write(). Read and Write run the handshake implicitly, so a caller
// may skip it, but a failed handshake then surfaces as -1 with errno EPROTO.
// An event loop calls Handshake() until it returns true (waiting for
// WaitEvents() on fd() whenever it returns false): its error names what went
// wrong (an untrusted certificate, a wrong host name, a plain-text peer).
// Blocking callers use CompleteHandshake(). After any -1 from Read/Write,
// error() says why.
//
// Thread-safety: a TlsContext is immutable after creation and shared by any
// number of streams and threads. A TlsStream is used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "common/byte_stream.h"
#include "common/result.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace vineyard {

class TlsContext {
 public:
  /// The server's side: a PEM certificate (chain) and its private key. Errors
  /// name the flag (--rpc_tls_cert / --rpc_tls_key), the file and the reason.
  static Result<std::shared_ptr<TlsContext>> FromFiles(const std::string& cert_path,
                                                       const std::string& key_path);
  /// A client's side: trusts the CAs in `ca_path` (PEM), or the system store if
  /// it is empty. With `verify` (the default) the handshake fails unless the
  /// server's certificate chains to a trusted CA and names the host connected to.
  static Result<std::shared_ptr<TlsContext>> ForClient(const std::string& ca_path = "",
                                                       bool verify = true);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  bool is_server() const { return is_server_; }
  bool verifies() const { return verify_; }
  SSL_CTX* native() const { return ctx_; }

 private:
  TlsContext(SSL_CTX* ctx, bool is_server, bool verify)
      : ctx_(ctx), is_server_(is_server), verify_(verify) {}
  SSL_CTX* const ctx_;  // owned
  const bool is_server_;
  const bool verify_;
};

/// An encrypted stream over a connected non-blocking socket (see the file comment
/// for the handshake). The socket stays owned by the caller; the destructor
/// sends no close_notify (call Shutdown() for an orderly close).
class TlsStream final : public ByteStream {
 public:
  /// The server's end of an accepted socket.
  static Result<std::unique_ptr<TlsStream>> Accept(std::shared_ptr<TlsContext> ctx, int fd);
  /// The client's end of a connected socket; `host` (a DNS name or an IP address)
  /// is what the server's certificate must name, and is sent as SNI.
  static Result<std::unique_ptr<TlsStream>> Connect(std::shared_ptr<TlsContext> ctx, int fd,
                                                    const std::string& host);
  ~TlsStream() override;

  /// Non-blocking: true once the handshake is done; false: wait for
  /// WaitEvents() on fd() and call again; an error says why it failed.
  Result<bool> Handshake();
  /// Sends close_notify (best effort, non-blocking).
  void Shutdown();

  ssize_t Read(void* buf, size_t n) override;
  ssize_t Write(const void* buf, size_t n) override;
  short WaitEvents() const override { return want_; }
  size_t Pending() const override;
  const char* Kind() const override { return "tls"; }

  /// Why the last Read/Write/Handshake failed (OK if none did).
  const Status& error() const { return error_; }
  /// "TLSv1.3" once the handshake is done.
  std::string Version() const;

 private:
  TlsStream(std::shared_ptr<TlsContext> ctx, SSL* ssl, int fd, std::string peer);
  // Maps an OpenSSL result: kWouldBlock (want_ set), 0 at a clean end, or -1 (error_ set).
  ssize_t Fail(int ret, const char* what);

  std::shared_ptr<TlsContext> ctx_;  // keeps the SSL_CTX alive
  SSL* ssl_;                          // owned
  const std::string peer_;            // for messages: the host, or "client"
  short want_ = 0;
  Status error_;
};

/// Runs the handshake to its end, waiting up to `timeout_ms` for each step
/// (<= 0: no bound).
Status CompleteHandshake(TlsStream& s, int timeout_ms);

}  // namespace vineyard
