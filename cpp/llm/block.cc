#include "llm/block.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <cstring>

namespace vineyard::llm {

std::string BlockKey::Hex() const {
  static const char* digits = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = digits[(hi >> (4 * i)) & 0xf];
    out[31 - i] = digits[(lo >> (4 * i)) & 0xf];
  }
  return out;
}

BlockKey Shape::Root() const {
  uint64_t words[4] = {0x6c6c6d2d6b762d31ULL, layer, tensor_nbytes, block_size};
  XXH128_hash_t h = XXH3_128bits(words, sizeof(words));
  return BlockKey{h.high64, h.low64};
}

BlockKey ChainKey(const BlockKey& parent, const Token* tokens, size_t n) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  uint64_t p[2] = {parent.hi, parent.lo};
  XXH3_128bits_update(&state, p, sizeof(p));
  XXH3_128bits_update(&state, tokens, n * sizeof(Token));
  XXH128_hash_t h = XXH3_128bits_digest(&state);
  return BlockKey{h.high64, h.low64};
}

size_t HeaderBytes(uint32_t ntokens) {
  size_t n = sizeof(BlockHeader) + ntokens * sizeof(Token);
  return (n + 63) & ~size_t{63};
}

void WriteHeader(uint8_t* dst, const Shape& shape, const BlockSpec& spec, uint64_t checksum) {
  BlockHeader h;
  h.ntokens = static_cast<uint32_t>(spec.tokens.size());
  h.layer = shape.layer;
  h.tensor_nbytes = shape.tensor_nbytes;
  h.key_hi = spec.key.hi;
  h.key_lo = spec.key.lo;
  h.payload_nbytes = shape.PayloadBytes(h.ntokens);
  h.payload_checksum = checksum;
  size_t header = HeaderBytes(h.ntokens);
  std::memset(dst, 0, header);
  std::memcpy(dst, &h, sizeof(h));
  std::memcpy(dst + sizeof(h), spec.tokens.data(), spec.tokens.size() * sizeof(Token));
}

bool HeaderMatches(const uint8_t* src, size_t size, const Shape& shape, const BlockSpec& spec) {
  if (size < sizeof(BlockHeader)) return false;
  BlockHeader h;
  std::memcpy(&h, src, sizeof(h));
  uint32_t n = static_cast<uint32_t>(spec.tokens.size());
  if (h.magic != BlockHeader::kMagic || h.ntokens != n || h.layer != shape.layer ||
      h.tensor_nbytes != shape.tensor_nbytes || h.key_hi != spec.key.hi ||
      h.key_lo != spec.key.lo || h.payload_nbytes != shape.PayloadBytes(n)) {
    return false;
  }
  if (size < HeaderBytes(n) + h.payload_nbytes) return false;
  return std::memcmp(src + sizeof(h), spec.tokens.data(), n * sizeof(Token)) == 0;
}

uint64_t Checksum(const uint8_t* data, size_t n) { return XXH3_64bits(data, n); }

}  // namespace vineyard::llm
