#include "common/socket_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace vineyard {

Status SendBytes(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("send failed: ", strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::OK();
}

Status RecvBytes(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::recv(fd, p + got, size - got, 0);
    if (n == 0) {
      return got == 0 ? Status::EndOfFile("connection closed by peer")
                      : Status::IOError("connection closed in the middle of a message");
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("receive failed: ", strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status SendFrame(int fd, const std::string& payload) {
  uint64_t len = payload.size();  // x86-64 and aarch64 are little-endian
  struct iovec iov[2] = {{&len, sizeof(len)},
                         {const_cast<char*>(payload.data()), payload.size()}};
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  size_t total = sizeof(len) + payload.size();
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::IOError("send failed: ", strerror(errno));
  if (static_cast<size_t>(n) == total) return Status::OK();
  // Partial write: finish the rest plainly.
  size_t sent = static_cast<size_t>(n);
  if (sent < sizeof(len)) {
    VY_RETURN_NOT_OK(SendBytes(fd, reinterpret_cast<char*>(&len) + sent, sizeof(len) - sent));
    sent = sizeof(len);
  }
  size_t off = sent - sizeof(len);
  return SendBytes(fd, payload.data() + off, payload.size() - off);
}

Status RecvFrame(int fd, std::string* payload, uint64_t max_size) {
  uint64_t len = 0;
  VY_RETURN_NOT_OK(RecvBytes(fd, &len, sizeof(len)));
  if (len > max_size) {
    return Status::IOError("message of ", len, " bytes exceeds the limit of ", max_size,
                           " bytes");
  }
  payload->resize(len);
  if (len == 0) return Status::OK();
  Status st = RecvBytes(fd, payload->data(), len);
  if (st.IsEndOfFile()) return Status::IOError("connection closed in the middle of a message");
  return st;
}

Result<bool> TrySendFd(int socket_fd, int fd_to_send) {
  char dummy = '\0';
  struct iovec iov = {&dummy, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd_to_send, sizeof(int));
  while (true) {
    ssize_t n = ::sendmsg(socket_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    return Status::IOError("passing a file descriptor failed: ", strerror(errno));
  }
}

Status SendFd(int socket_fd, int fd_to_send, int timeout_ms) {
  while (true) {
    VY_ASSIGN_OR_RETURN(bool sent, TrySendFd(socket_fd, fd_to_send));
    if (sent) return Status::OK();
    struct pollfd p = {socket_fd, POLLOUT, 0};
    int n = ::poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
    if (n == 0) return Status::IOError("passing a file descriptor timed out");
    if (n < 0 && errno != EINTR) return Status::IOError("poll failed: ", strerror(errno));
  }
}

std::string EncodeFrame(const std::string& payload) {
  uint64_t len = payload.size();  // x86-64 and aarch64 are little-endian
  std::string frame(sizeof(len) + payload.size(), '\0');
  memcpy(frame.data(), &len, sizeof(len));
  memcpy(frame.data() + sizeof(len), payload.data(), payload.size());
  return frame;
}

Result<int> RecvFd(int socket_fd) {
  char dummy;
  struct iovec iov = {&dummy, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return Status::IOError("receiving a file descriptor failed: ",
                                     n == 0 ? "connection closed" : strerror(errno));
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof(int));
      return fd;
    }
  }
  return Status::IOError("expected a file descriptor from the server, got none");
}

Result<int> ConnectUnixSocket(const std::string& path) {
  struct sockaddr_un addr {};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Status::ConnectionFailed("socket path '", path, "' is longer than ",
                                    sizeof(addr.sun_path) - 1, " bytes");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::ConnectionFailed("socket(): ", strerror(errno));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    return Status::ConnectionFailed("cannot connect to vineyardd at '", path, "': ",
                                    strerror(err),
                                    err == ENOENT || err == ECONNREFUSED
                                        ? " (is vineyardd running with --socket=" + path + "?)"
                                        : "");
  }
  return fd;
}

Result<int> ConnectTcpSocket(const std::string& host, int port) {
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  std::string port_text = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0) {
    return Status::ConnectionFailed("cannot resolve '", host, "': ", gai_strerror(rc));
  }
  int last_err = 0;
  for (auto* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      freeaddrinfo(res);
      return fd;
    }
    last_err = errno;
    ::close(fd);
  }
  freeaddrinfo(res);
  return Status::ConnectionFailed("cannot connect to vineyardd at ", host, ":", port, ": ",
                                  strerror(last_err));
}

Result<uint64_t> ParseMemorySize(const std::string& text) {
  auto bad = [&]() {
    return Status::Invalid("invalid memory size '", text,
                           "': use plain bytes or a number with a unit, e.g. 256Mi, 4G, 1.5Gi");
  };
  size_t i = 0;
  while (i < text.size() && (isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return bad();
  double number;
  try {
    size_t used = 0;
    number = std::stod(text.substr(0, i), &used);
    if (used != i) return bad();  // e.g. "1..5G", "1.2.3"
  } catch (...) {
    return bad();
  }
  std::string unit = text.substr(i);
  while (!unit.empty() && isspace(static_cast<unsigned char>(unit.back()))) unit.pop_back();
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  double mult = 1;
  if (!unit.empty()) {
    bool binary = unit.size() == 2 && (unit[1] == 'i' || unit[1] == 'I');
    if (unit.size() > 2 || (unit.size() == 2 && !binary)) return bad();
    double base = binary ? 1024.0 : 1000.0;
    switch (toupper(static_cast<unsigned char>(unit[0]))) {
      case 'K': mult = base; break;
      case 'M': mult = base * base; break;
      case 'G': mult = base * base * base; break;
      case 'T': mult = base * base * base * base; break;
      default: return bad();
    }
  }
  double bytes = number * mult;
  if (!std::isfinite(bytes) || bytes >= 1.8e19) return bad();
  return static_cast<uint64_t>(bytes);
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

bool CoresToSpare() {
  using Clock = std::chrono::steady_clock;
  static std::atomic<int64_t> checked_ns{0};
  static std::atomic<bool> spare{false};
  static const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  const int64_t now = Clock::now().time_since_epoch().count();
  int64_t last = checked_ns.load(std::memory_order_relaxed);
  if (now - last < 10'000'000) return spare.load(std::memory_order_relaxed);
  if (!checked_ns.compare_exchange_strong(last, now)) return spare.load();
  bool ok = false;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    double a, b, c;
    long running = 0, total = 0;
    if (std::fscanf(f, "%lf %lf %lf %ld/%ld", &a, &b, &c, &running, &total) == 5) {
      ok = running <= cores;
    }
    std::fclose(f);
  }
  spare.store(ok, std::memory_order_relaxed);
  return ok;
}

}  // namespace vineyard
