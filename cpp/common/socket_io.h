// Blocking socket I/O: length-prefixed frames, file-descriptor passing and
// the connect/listen helpers shared by the server and the clients.
//
// Frame: 8-byte little-endian length, then that many bytes of UTF-8 JSON.
// A passed fd travels in its own sendmsg with SCM_RIGHTS and a 1-byte payload.
//
// Thread-safety: functions are reentrant; a given socket must not be read (or
// written) by two threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace vineyard {

/// Frames larger than this are refused by both sides (the connection closes).
constexpr uint64_t kMaxFrameSize = 256ULL << 20;

/// Writes all `size` bytes, retrying on EINTR/partial writes.
Status SendBytes(int fd, const void* data, size_t size);
/// Reads exactly `size` bytes; EndOfFile if the peer closed before the first byte.
Status RecvBytes(int fd, void* data, size_t size);

Status SendFrame(int fd, const std::string& payload);
/// The bytes of one frame: the 8-byte length, then `payload`.
std::string EncodeFrame(const std::string& payload);
/// Reads one frame; a length over `max_size` is an IOError (the caller closes).
Status RecvFrame(int fd, std::string* payload, uint64_t max_size = kMaxFrameSize);

/// Passes one fd, waiting up to `timeout_ms` for room (<= 0: no bound).
Status SendFd(int socket_fd, int fd_to_send, int timeout_ms = 0);
/// Passes one fd without waiting: true when sent, false when the socket is full.
Result<bool> TrySendFd(int socket_fd, int fd_to_send);
/// Receives one passed fd (the caller owns it).
Result<int> RecvFd(int socket_fd);

/// Connects to a UNIX socket; ConnectionFailed names the path and the reason.
Result<int> ConnectUnixSocket(const std::string& path);
/// Connects to host:port over TCP with TCP_NODELAY.
Result<int> ConnectTcpSocket(const std::string& host, int port);

/// Parses "256Mi", "4G", "1.5Gi", "1024" into bytes; error on anything else.
Result<uint64_t> ParseMemorySize(const std::string& text);
/// "1.50 GiB" etc., for messages.
std::string FormatBytes(uint64_t bytes);

/// Whether this machine has no more runnable threads than cores (the 4th field
/// of /proc/loadavg, "running/total", read at most every 10 ms). Polling a
/// socket instead of sleeping pays only then: where threads wait for a core,
/// a polling thread takes one from them (the server's loop, other clients).
bool CoresToSpare();

}  // namespace vineyard
