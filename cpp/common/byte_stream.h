// ByteStream: the bytes of one connection, plain (a socket) or encrypted (TLS
// over a socket), behind one interface, so that framing, fd passing and blob
// transfers are written once for both.
//
// The socket is non-blocking. Read/Write never block: they return what they
// moved, or kWouldBlock after which the caller waits for WaitEvents() on fd()
// (a TLS stream may need to write in order to read, and the reverse). The
// blocking helpers below do that wait with poll(), bounded by a timeout.
//
// Thread-safety: a stream is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace vineyard {

class ByteStream {
 public:
  static constexpr ssize_t kWouldBlock = -2;

  virtual ~ByteStream() = default;

  /// Bytes read (> 0), 0 at end of stream, kWouldBlock, or -1 (errno set).
  virtual ssize_t Read(void* buf, size_t n) = 0;
  /// Bytes written (> 0), kWouldBlock, or -1 (errno set).
  virtual ssize_t Write(const void* buf, size_t n) = 0;
  /// After kWouldBlock: the poll events to wait for on fd() (POLLIN or POLLOUT).
  virtual short WaitEvents() const = 0;
  /// Bytes already decrypted and buffered: readable without waiting on fd().
  virtual size_t Pending() const { return 0; }
  /// "plain" or "tls".
  virtual const char* Kind() const = 0;

  /// The socket; owned (closed) by whoever made the stream, not by the stream.
  int fd() const { return fd_; }

 protected:
  explicit ByteStream(int fd) : fd_(fd) {}
  const int fd_;
};

/// A plain socket: recv/send (MSG_NOSIGNAL).
class PlainStream final : public ByteStream {
 public:
  explicit PlainStream(int fd) : ByteStream(fd) {}
  ssize_t Read(void* buf, size_t n) override;
  ssize_t Write(const void* buf, size_t n) override;
  short WaitEvents() const override { return want_; }
  const char* Kind() const override { return "plain"; }

 private:
  short want_ = 0;
};

/// Bytes already read from a stream, served before the stream's own.
class PrefixedStream final : public ByteStream {
 public:
  PrefixedStream(std::string prefix, std::unique_ptr<ByteStream> inner)
      : ByteStream(inner->fd()), prefix_(std::move(prefix)), inner_(std::move(inner)) {}
  ssize_t Read(void* buf, size_t n) override;
  ssize_t Write(const void* buf, size_t n) override { return inner_->Write(buf, n); }
  short WaitEvents() const override { return inner_->WaitEvents(); }
  size_t Pending() const override { return prefix_.size() - offset_ + inner_->Pending(); }
  const char* Kind() const override { return inner_->Kind(); }

 private:
  std::string prefix_;
  size_t offset_ = 0;
  std::unique_ptr<ByteStream> inner_;
};

/// Makes a socket non-blocking (and close-on-exec).
Status SetNonBlocking(int fd);

// Blocking helpers over a non-blocking stream. `timeout_ms` bounds each wait
// for progress (not the whole transfer); <= 0 waits without a bound.
Status WriteAll(ByteStream& s, const void* data, size_t size, int timeout_ms);
/// EndOfFile if the peer closed before the first byte.
Status ReadExact(ByteStream& s, void* data, size_t size, int timeout_ms);
/// One frame: 8-byte little-endian length, then the bytes.
Status WriteFrame(ByteStream& s, const std::string& payload, int timeout_ms);
Status ReadFrame(ByteStream& s, std::string* payload, uint64_t max_size, int timeout_ms);

}  // namespace vineyard
