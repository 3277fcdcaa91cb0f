// Blob bytes on an RPC connection: what follows a remote-buffer reply.
//
// Plain: the raw bytes of each blob, back to back. Compressed (the request's
// `compress` flag, offered by the server's `support_rpc_compression`): one zstd
// stream per request, flushed at the end of each blob, sent as chunks of
// [8-byte little-endian length][bytes], each at most ZSTD_CStreamOutSize()
// bytes (what vineyard's receivers accept). Bytes go straight from and into
// the blob's memory: neither side holds a second copy of a blob.
//
// Thread-safety: one BlobSender/BlobReceiver per request, used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/byte_stream.h"
#include "common/result.h"

namespace vineyard {

class BlobSender {
 public:
  /// Over a blocking socket (clients).
  BlobSender(int fd, bool compress);
  /// Over a stream; `timeout_ms` bounds each wait for progress (0: none).
  BlobSender(ByteStream& stream, bool compress, int timeout_ms);
  ~BlobSender();
  BlobSender(const BlobSender&) = delete;
  BlobSender& operator=(const BlobSender&) = delete;

  /// Sends one blob's `size` bytes.
  Status Send(const void* data, size_t size);

 private:
  struct Zstd;
  void Init(bool compress);
  std::unique_ptr<ByteStream> owned_;  // the stream made for an fd, if any
  ByteStream& stream_;
  const int timeout_ms_;
  std::unique_ptr<Zstd> zstd_;  // null: plain bytes
};

class BlobReceiver {
 public:
  BlobReceiver(int fd, bool compress);
  BlobReceiver(ByteStream& stream, bool compress, int timeout_ms);
  ~BlobReceiver();
  BlobReceiver(const BlobReceiver&) = delete;
  BlobReceiver& operator=(const BlobReceiver&) = delete;

  /// Receives one blob's `size` bytes into `dst`. A stream that ends early,
  /// is corrupt, or carries more than `size` bytes for this blob is an IOError.
  Status Receive(void* dst, size_t size);

 private:
  struct Zstd;
  std::unique_ptr<ByteStream> owned_;
  ByteStream& stream_;
  const int timeout_ms_;
  std::unique_ptr<Zstd> zstd_;
};

}  // namespace vineyard
