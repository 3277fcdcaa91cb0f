#include "common/byte_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "common/socket_io.h"

namespace vineyard {

ssize_t PlainStream::Read(void* buf, size_t n) {
  while (true) {
    ssize_t got = ::recv(fd_, buf, n, 0);
    if (got >= 0) return got;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      want_ = POLLIN;
      return kWouldBlock;
    }
    return -1;
  }
}

ssize_t PlainStream::Write(const void* buf, size_t n) {
  while (true) {
    ssize_t put = ::send(fd_, buf, n, MSG_NOSIGNAL);
    if (put >= 0) return put;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      want_ = POLLOUT;
      return kWouldBlock;
    }
    return -1;
  }
}

ssize_t PrefixedStream::Read(void* buf, size_t n) {
  if (offset_ < prefix_.size()) {
    size_t take = std::min(n, prefix_.size() - offset_);
    memcpy(buf, prefix_.data() + offset_, take);
    offset_ += take;
    return static_cast<ssize_t>(take);
  }
  return inner_->Read(buf, n);
}

Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return Status::IOError("fcntl(O_NONBLOCK): ", strerror(errno));
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Status::OK();
}

namespace {

// Waits until `s` may make progress; IOError on timeout or a poll failure.
Status AwaitProgress(ByteStream& s, int timeout_ms, const char* what) {
  struct pollfd p = {s.fd(), s.WaitEvents(), 0};
  while (true) {
    int n = ::poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
    if (n > 0) return Status::OK();
    if (n == 0) {
      return Status::IOError(what, " timed out: no progress for ", timeout_ms, " ms");
    }
    if (errno != EINTR) return Status::IOError("poll failed: ", strerror(errno));
  }
}

}  // namespace

Status WriteAll(ByteStream& s, const void* data, size_t size, int timeout_ms) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = s.Write(p, size);
    if (n == ByteStream::kWouldBlock) {
      VY_RETURN_NOT_OK(AwaitProgress(s, timeout_ms, "sending"));
      continue;
    }
    if (n < 0) return Status::IOError("send failed: ", strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::OK();
}

Status ReadExact(ByteStream& s, void* data, size_t size, int timeout_ms) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < size) {
    ssize_t n = s.Read(p + got, size - got);
    if (n == ByteStream::kWouldBlock) {
      VY_RETURN_NOT_OK(AwaitProgress(s, timeout_ms, "receiving"));
      continue;
    }
    if (n == 0) {
      return got == 0 ? Status::EndOfFile("connection closed by peer")
                      : Status::IOError("connection closed in the middle of a message");
    }
    if (n < 0) return Status::IOError("receive failed: ", strerror(errno));
    got += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status WriteFrame(ByteStream& s, const std::string& payload, int timeout_ms) {
  if (payload.size() <= 64 * 1024) {
    // One write for small frames: one segment on the wire.
    std::string frame = EncodeFrame(payload);
    return WriteAll(s, frame.data(), frame.size(), timeout_ms);
  }
  uint64_t len = payload.size();  // x86-64 and aarch64 are little-endian
  VY_RETURN_NOT_OK(WriteAll(s, &len, sizeof(len), timeout_ms));
  return WriteAll(s, payload.data(), payload.size(), timeout_ms);
}

Status ReadFrame(ByteStream& s, std::string* payload, uint64_t max_size, int timeout_ms) {
  uint64_t len = 0;
  VY_RETURN_NOT_OK(ReadExact(s, &len, sizeof(len), timeout_ms));
  if (len > max_size) {
    return Status::IOError("message of ", len, " bytes exceeds the limit of ", max_size,
                           " bytes");
  }
  payload->resize(len);
  if (len == 0) return Status::OK();
  Status st = ReadExact(s, payload->data(), len, timeout_ms);
  if (st.IsEndOfFile()) return Status::IOError("connection closed in the middle of a message");
  return st;
}

}  // namespace vineyard
