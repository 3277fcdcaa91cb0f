#include "common/transfer.h"

#include <zstd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/byte_stream.h"

namespace vineyard {

namespace {
// Fast: the link, not the ratio, is what a transfer waits on.
constexpr int kCompressionLevel = 1;

Status ZstdError(const char* what, size_t code) {
  return Status::IOError("zstd ", what, " failed: ", ZSTD_getErrorName(code));
}
}  // namespace

// --- sender --------------------------------------------------------------------

struct BlobSender::Zstd {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  std::vector<uint8_t> out = std::vector<uint8_t>(ZSTD_CStreamOutSize());
  ~Zstd() { ZSTD_freeCCtx(ctx); }
};

BlobSender::BlobSender(int fd, bool compress)
    : owned_(std::make_unique<PlainStream>(fd)), stream_(*owned_), timeout_ms_(0) {
  Init(compress);
}

BlobSender::BlobSender(ByteStream& stream, bool compress, int timeout_ms)
    : stream_(stream), timeout_ms_(timeout_ms) {
  Init(compress);
}

void BlobSender::Init(bool compress) {
  if (compress) {
    zstd_ = std::make_unique<Zstd>();
    ZSTD_CCtx_setParameter(zstd_->ctx, ZSTD_c_compressionLevel, kCompressionLevel);
  }
}

BlobSender::~BlobSender() = default;

Status BlobSender::Send(const void* data, size_t size) {
  if (size == 0) return Status::OK();
  if (!zstd_) return WriteAll(stream_, data, size, timeout_ms_);
  ZSTD_inBuffer in{data, size, 0};
  // Compress everything, then flush so the receiver can finish this blob.
  for (ZSTD_EndDirective mode : {ZSTD_e_continue, ZSTD_e_flush}) {
    size_t remaining = 1;
    while (mode == ZSTD_e_continue ? in.pos < in.size : remaining != 0) {
      ZSTD_outBuffer out{zstd_->out.data(), zstd_->out.size(), 0};
      remaining = ZSTD_compressStream2(zstd_->ctx, &out, &in, mode);
      if (ZSTD_isError(remaining)) return ZstdError("compression", remaining);
      if (out.pos == 0) continue;
      uint64_t length = out.pos;  // little-endian on every platform we build for
      VY_RETURN_NOT_OK(WriteAll(stream_, &length, sizeof(length), timeout_ms_));
      VY_RETURN_NOT_OK(WriteAll(stream_, out.dst, out.pos, timeout_ms_));
    }
  }
  return Status::OK();
}

// --- receiver ------------------------------------------------------------------

struct BlobReceiver::Zstd {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  std::vector<uint8_t> in =
      std::vector<uint8_t>(std::max(ZSTD_CStreamOutSize(), ZSTD_DStreamInSize()));
  ~Zstd() { ZSTD_freeDCtx(ctx); }
};

BlobReceiver::BlobReceiver(int fd, bool compress)
    : owned_(std::make_unique<PlainStream>(fd)), stream_(*owned_), timeout_ms_(0) {
  if (compress) zstd_ = std::make_unique<Zstd>();
}

BlobReceiver::BlobReceiver(ByteStream& stream, bool compress, int timeout_ms)
    : stream_(stream), timeout_ms_(timeout_ms) {
  if (compress) zstd_ = std::make_unique<Zstd>();
}

BlobReceiver::~BlobReceiver() = default;

Status BlobReceiver::Receive(void* dst, size_t size) {
  if (size == 0) return Status::OK();
  if (!zstd_) {
    Status st = ReadExact(stream_, dst, size, timeout_ms_);
    if (st.IsEndOfFile()) return Status::IOError("the peer closed the connection mid-transfer");
    return st;
  }
  ZSTD_outBuffer out{dst, size, 0};
  while (out.pos < out.size) {
    uint64_t length = 0;
    Status st = ReadExact(stream_, &length, sizeof(length), timeout_ms_);
    if (st.ok() && (length == 0 || length > zstd_->in.size())) {
      st = Status::IOError("compressed chunk of ", length, " bytes: at most ",
                           zstd_->in.size(), " expected");
    }
    if (st.ok()) st = ReadExact(stream_, zstd_->in.data(), length, timeout_ms_);
    if (st.IsEndOfFile()) return Status::IOError("the peer closed the connection mid-transfer");
    VY_RETURN_NOT_OK(st);
    ZSTD_inBuffer in{zstd_->in.data(), static_cast<size_t>(length), 0};
    while (in.pos < in.size) {
      size_t in_before = in.pos, out_before = out.pos;
      size_t r = ZSTD_decompressStream(zstd_->ctx, &out, &in);
      if (ZSTD_isError(r)) return ZstdError("decompression", r);
      if (in.pos == in_before && out.pos == out_before) {
        return Status::IOError("the compressed stream holds more than the blob's ", size,
                               " bytes");
      }
    }
  }
  return Status::OK();
}

}  // namespace vineyard
