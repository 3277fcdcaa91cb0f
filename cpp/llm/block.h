// The unit of the LLM KV cache: a block of up to `block_size` consecutive
// tokens of one sequence, with the K and V tensors of every layer of each.
//
// A block is named by a 128-bit key chained over the sequence, as vLLM's
// prefix caching does: key(block k) = XXH3-128(key(block k-1), tokens of
// block k), and the first block chains from a root key made of the cache's
// shape (layers, bytes per tensor, block size). Two sequences share the key of
// block k exactly when they share all tokens up to the end of block k, so a
// prefix lookup walks one key per block. A block shorter than `block_size`
// (the tail of a sequence) has its own key: it chains from the same parent
// over fewer tokens.
//
// A chunk file starts with a BlockHeader holding its key, its tokens and a
// checksum, so a reader checks that what it found is what it asked for (a
// corrupted file is a miss). A shared-memory block is a blob of the payload
// alone, its key and tokens in its vineyard object (memory_store.h).
//
// Payload layout of a block of n tokens, L layers, T bytes per tensor:
// token-major, then layer, then K before V:
//   offset(i, j, kv) = ((i * L + j) * 2 + kv) * T
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vineyard::llm {

using Token = int32_t;

struct BlockKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const BlockKey& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const BlockKey& o) const { return !(*this == o); }
  /// 32 lowercase hex digits.
  std::string Hex() const;
};

/// The shape every block of one cache shares.
struct Shape {
  uint32_t layer = 1;
  uint64_t tensor_nbytes = 0;
  uint32_t block_size = 16;

  uint64_t TokenBytes() const { return static_cast<uint64_t>(layer) * 2 * tensor_nbytes; }
  uint64_t PayloadBytes(uint32_t ntokens) const { return TokenBytes() * ntokens; }
  uint64_t Offset(uint32_t token, uint32_t layer_index, int kv) const {
    return ((static_cast<uint64_t>(token) * layer + layer_index) * 2 + kv) * tensor_nbytes;
  }
  /// The key the first block of every sequence chains from.
  BlockKey Root() const;
};

/// key(parent, tokens): the key of a block holding `tokens` after `parent`.
BlockKey ChainKey(const BlockKey& parent, const Token* tokens, size_t n);

/// A block wanted by an operation: its key and the tokens it must hold.
struct BlockSpec {
  BlockKey key;
  std::vector<Token> tokens;
};

/// The on-store header of a block (blob or file), followed by its tokens,
/// padded to 64 bytes; the payload follows.
struct BlockHeader {
  static constexpr uint64_t kMagic = 0x31424b4d4c4c5956ULL;  // "VYLLMKB1"
  uint64_t magic = kMagic;
  uint32_t ntokens = 0;
  uint32_t layer = 0;
  uint64_t tensor_nbytes = 0;
  uint64_t key_hi = 0;
  uint64_t key_lo = 0;
  uint64_t payload_nbytes = 0;
  uint64_t payload_checksum = 0;  // XXH3-64 of the payload (files); 0 in blobs
};

/// Bytes before the payload for a block of `ntokens` tokens.
size_t HeaderBytes(uint32_t ntokens);

/// Writes the header and tokens of `spec` at `dst` (HeaderBytes(n) bytes).
void WriteHeader(uint8_t* dst, const Shape& shape, const BlockSpec& spec, uint64_t checksum);

/// True when `src` (of `size` bytes) holds the header of `spec` in `shape`
/// with a payload of the right size after it.
bool HeaderMatches(const uint8_t* src, size_t size, const Shape& shape, const BlockSpec& spec);

uint64_t Checksum(const uint8_t* data, size_t n);

}  // namespace vineyard::llm
