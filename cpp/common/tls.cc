#include "common/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace vineyard {

namespace {

// OpenSSL's error queue of this thread, as text ("a; b"), emptied.
std::string DrainErrors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof(buf));
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason != nullptr ? reason : buf;
  }
  return out.empty() ? std::string("no detail from OpenSSL") : out;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// A socket BIO that sends with MSG_NOSIGNAL: a peer that hangs up must not
// kill the process with SIGPIPE (OpenSSL's own socket BIO uses write()).
int SocketOf(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

int BioWrite(BIO* b, const char* data, size_t n, size_t* written) {
  BIO_clear_retry_flags(b);
  while (true) {
    ssize_t put = ::send(SocketOf(b), data, n, MSG_NOSIGNAL);
    if (put >= 0) {
      *written = static_cast<size_t>(put);
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
    return 0;
  }
}

int BioRead(BIO* b, char* data, size_t n, size_t* got) {
  BIO_clear_retry_flags(b);
  while (true) {
    ssize_t r = ::recv(SocketOf(b), data, n, 0);
    if (r > 0) {
      *got = static_cast<size_t>(r);
      return 1;
    }
    if (r == 0) {
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(b);
    return 0;
  }
}

long BioCtrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
      return 0;
  }
}

const BIO_METHOD* SocketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vineyard socket");
    BIO_meth_set_write_ex(m, BioWrite);
    BIO_meth_set_read_ex(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    return m;
  }();
  return method;
}

Status CheckReadable(const char* flag, const char* what, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) {
    return Status::IOError(flag, ": cannot read the ", what, " '", path, "': ", strerror(errno));
  }
  return Status::OK();
}

SSL_CTX* NewContext(const SSL_METHOD* method) {
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) return nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A TCP close without close_notify reads as the end of the stream: our frames
  // carry their length, so a cut-short message is still detected.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

}  // namespace

// --- TlsContext ----------------------------------------------------------------------

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<TlsContext>> TlsContext::FromFiles(const std::string& cert_path,
                                                         const std::string& key_path) {
  VY_RETURN_NOT_OK(CheckReadable("--rpc_tls_cert", "certificate", cert_path));
  VY_RETURN_NOT_OK(CheckReadable("--rpc_tls_key", "private key", key_path));
  ERR_clear_error();
  SSL_CTX* raw = NewContext(TLS_server_method());
  if (raw == nullptr) return Status::IOError("cannot create a TLS context: ", DrainErrors());
  std::shared_ptr<TlsContext> ctx(new TlsContext(raw, /*is_server=*/true, /*verify=*/false));
  if (SSL_CTX_use_certificate_chain_file(raw, cert_path.c_str()) != 1) {
    return Status::Invalid("--rpc_tls_cert: cannot load the certificate '", cert_path,
                           "': ", DrainErrors(),
                           ": give a PEM file with the server's certificate (then its chain)");
  }
  if (SSL_CTX_use_PrivateKey_file(raw, key_path.c_str(), SSL_FILETYPE_PEM) != 1) {
    int reason = ERR_GET_REASON(ERR_peek_last_error());
    if (reason == X509_R_KEY_VALUES_MISMATCH || reason == X509_R_KEY_TYPE_MISMATCH) {
      return Status::Invalid("--rpc_tls_key: the key '", key_path,
                             "' does not belong to the certificate '", cert_path, "' (",
                             DrainErrors(), "): give the key the certificate was made for");
    }
    return Status::Invalid("--rpc_tls_key: cannot load the private key '", key_path, "': ",
                           DrainErrors(), ": give the unencrypted PEM key of --rpc_tls_cert");
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    return Status::Invalid("--rpc_tls_key: the key '", key_path,
                           "' does not belong to the certificate '", cert_path, "' (",
                           DrainErrors(), "): give the key the certificate was made for");
  }
  return ctx;
}

Result<std::shared_ptr<TlsContext>> TlsContext::ForClient(const std::string& ca_path,
                                                         bool verify) {
  ERR_clear_error();
  SSL_CTX* raw = NewContext(TLS_client_method());
  if (raw == nullptr) return Status::IOError("cannot create a TLS context: ", DrainErrors());
  std::shared_ptr<TlsContext> ctx(new TlsContext(raw, /*is_server=*/false, verify));
  if (!ca_path.empty()) {
    if (::access(ca_path.c_str(), R_OK) != 0) {
      return Status::IOError("cannot read the CA file '", ca_path, "': ", strerror(errno));
    }
    if (SSL_CTX_load_verify_locations(raw, ca_path.c_str(), nullptr) != 1) {
      return Status::Invalid("cannot load the CA file '", ca_path, "': ", DrainErrors(),
                             ": give PEM certificates of the CAs to trust");
    }
  } else if (SSL_CTX_set_default_verify_paths(raw) != 1) {
    return Status::IOError("cannot load the system's trusted CAs: ", DrainErrors());
  }
  SSL_CTX_set_verify(raw, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return ctx;
}

// --- TlsStream -----------------------------------------------------------------------

TlsStream::TlsStream(std::shared_ptr<TlsContext> ctx, SSL* ssl, int fd, std::string peer)
    : ByteStream(fd), ctx_(std::move(ctx)), ssl_(ssl), peer_(std::move(peer)) {}

TlsStream::~TlsStream() { SSL_free(ssl_); }

namespace {

Result<SSL*> NewSsl(const TlsContext& ctx, int fd) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx.native());
  BIO* bio = ssl != nullptr ? BIO_new(SocketMethod()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl);
    return Status::IOError("cannot create a TLS session: ", DrainErrors());
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);  // the SSL owns the BIO
  return ssl;
}

}  // namespace

Result<std::unique_ptr<TlsStream>> TlsStream::Accept(std::shared_ptr<TlsContext> ctx, int fd) {
  if (!ctx->is_server()) {
    return Status::Invalid("TlsStream::Accept needs a server context (TlsContext::FromFiles)");
  }
  VY_ASSIGN_OR_RETURN(SSL * ssl, NewSsl(*ctx, fd));
  SSL_set_accept_state(ssl);
  return std::unique_ptr<TlsStream>(new TlsStream(std::move(ctx), ssl, fd, "client"));
}

Result<std::unique_ptr<TlsStream>> TlsStream::Connect(std::shared_ptr<TlsContext> ctx, int fd,
                                                      const std::string& host) {
  if (ctx->is_server()) {
    return Status::Invalid("TlsStream::Connect needs a client context (TlsContext::ForClient)");
  }
  VY_ASSIGN_OR_RETURN(SSL * ssl, NewSsl(*ctx, fd));
  std::unique_ptr<TlsStream> s(new TlsStream(std::move(ctx), ssl, fd, host));
  bool ip = IsIpAddress(host);
  if (!ip && !host.empty()) SSL_set_tlsext_host_name(ssl, host.c_str());  // SNI
  if (s->ctx_->verifies()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (host.empty() || ok != 1) {
      return Status::Invalid("cannot check the server's certificate against the host name '",
                             host, "': give the name or address the certificate lists");
    }
  }
  SSL_set_connect_state(ssl);
  return s;
}

ssize_t TlsStream::Fail(int ret, const char* what) {
  int saved = errno;
  int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      want_ = POLLIN;
      return kWouldBlock;
    case SSL_ERROR_WANT_WRITE:
      want_ = POLLOUT;
      return kWouldBlock;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      if (saved == 0) return 0;  // EOF
      error_ = Status::IOError("TLS ", what, " with ", peer_, " failed: ", strerror(saved));
      errno = saved;
      return -1;
    default:
      break;
  }
  const int first = ERR_GET_REASON(ERR_peek_error());
  const bool peer_alert = first >= SSL_AD_REASON_OFFSET && first < SSL_AD_REASON_OFFSET + 256;
  const bool not_tls = first == SSL_R_WRONG_VERSION_NUMBER || first == SSL_R_HTTP_REQUEST ||
                       first == SSL_R_PACKET_LENGTH_TOO_LONG ||
                       first == SSL_R_RECORD_LENGTH_MISMATCH;
  std::string reasons = DrainErrors();
  long verify = SSL_get_verify_result(ssl_);
  if (ctx_->verifies() && verify != X509_V_OK) {
    const char* why = X509_verify_cert_error_string(verify);
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      error_ = Status::ConnectionFailed("TLS handshake with ", peer_,
                                        " failed: the server's certificate does not name '",
                                        peer_, "' (", why, "): connect with a host name or "
                                        "address the certificate lists");
    } else {
      error_ = Status::ConnectionFailed("TLS handshake with ", peer_,
                                        " failed: the server's certificate is not trusted (",
                                        why, "): give the CA file that signed it");
    }
  } else if (!SSL_is_init_finished(ssl_)) {
    const char* hint = not_tls      ? " (the peer does not speak TLS: plain text on a TLS port?)"
                       : peer_alert ? (ctx_->is_server()
                                            ? " (the client refused this server's certificate: "
                                              "does it trust the CA that signed it?)"
                                            : " (the server refused the handshake)")
                                    : "";
    error_ = Status::ConnectionFailed("TLS handshake with ", peer_, " failed: ", reasons, hint);
  } else {
    error_ = Status::IOError("TLS ", what, " with ", peer_, " failed: ", reasons);
  }
  errno = EPROTO;
  return -1;
}

Result<bool> TlsStream::Handshake() {
  if (SSL_is_init_finished(ssl_)) return true;
  ERR_clear_error();
  errno = 0;
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) return true;
  ssize_t r = Fail(ret, "handshake");
  if (r == kWouldBlock) return false;
  if (r == 0) {
    error_ = Status::ConnectionFailed("TLS handshake with ", peer_,
                                      " failed: the peer closed the connection (does it speak "
                                      "TLS, and trust the other side's certificate?)");
  }
  return error_;
}

void TlsStream::Shutdown() {
  ERR_clear_error();
  if (SSL_is_init_finished(ssl_)) (void)SSL_shutdown(ssl_);
  ERR_clear_error();
}

ssize_t TlsStream::Read(void* buf, size_t n) {
  ERR_clear_error();
  errno = 0;
  size_t got = 0;
  int ret = SSL_read_ex(ssl_, buf, n, &got);
  if (ret == 1) return static_cast<ssize_t>(got);
  return Fail(ret, "receive");
}

ssize_t TlsStream::Write(const void* buf, size_t n) {
  ERR_clear_error();
  errno = 0;
  size_t put = 0;
  int ret = SSL_write_ex(ssl_, buf, n, &put);
  if (ret == 1) return static_cast<ssize_t>(put);
  ssize_t r = Fail(ret, "send");
  if (r == 0) {  // the peer closed: nothing more can be sent
    error_ = Status::IOError("TLS send to ", peer_, " failed: the peer closed the connection");
    errno = EPIPE;
    return -1;
  }
  return r;
}

size_t TlsStream::Pending() const { return static_cast<size_t>(SSL_pending(ssl_)); }

std::string TlsStream::Version() const { return SSL_get_version(ssl_); }

Status CompleteHandshake(TlsStream& s, int timeout_ms) {
  while (true) {
    VY_ASSIGN_OR_RETURN(bool done, s.Handshake());
    if (done) return Status::OK();
    struct pollfd p = {s.fd(), s.WaitEvents(), 0};
    int n = ::poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
    if (n == 0) {
      return Status::IOError("TLS handshake timed out: no progress for ", timeout_ms, " ms");
    }
    if (n < 0 && errno != EINTR) return Status::IOError("poll failed: ", strerror(errno));
  }
}

}  // namespace vineyard
