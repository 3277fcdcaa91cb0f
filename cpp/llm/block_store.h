// BlockStore: where blocks live (vineyard shared memory, files, or both).
//
// Every method takes the blocks of one sequence in chain order and answers
// for its leading run: a lookup stops at the first block that is missing, so
// a prefix match costs one probe per block.
//
// Thread-safety: a store may be used by several threads of one process and by
// several processes at once (each with its own BlockStore object).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/result.h"
#include "llm/block.h"

namespace vineyard::llm {

/// A block's payload as found in a store; `owner` keeps the bytes valid (a
/// mapped blob, a heap buffer) for as long as it is held.
struct BlockView {
  const uint8_t* payload = nullptr;
  uint32_t ntokens = 0;
  std::shared_ptr<const void> owner;
};

/// A run of payload bytes to store.
struct Piece {
  const uint8_t* data;
  size_t size;
};

/// Lists the payload of blocks[i] as pieces in payload order (adding up to
/// PayloadBytes of its tokens): the caller's tensors themselves, so a store
/// copies each byte once (into a blob, or into a file by writev).
using Gather = std::function<void(size_t i, std::vector<Piece>* pieces)>;

/// Appends a piece, merged with the last one when they are adjacent.
inline void AddPiece(std::vector<Piece>* pieces, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (!pieces->empty() && pieces->back().data + pieces->back().size == p) {
    pieces->back().size += size;
  } else {
    pieces->push_back({p, size});
  }
}

class BlockStore {
 public:
  virtual ~BlockStore() = default;
  /// How many of `blocks`, from the first, are present.
  virtual Result<size_t> Has(const std::vector<BlockSpec>& blocks) = 0;
  /// The payloads of the leading present blocks (fewer than asked when one is
  /// missing, evicted meanwhile, or found corrupted: it is dropped).
  virtual Result<std::vector<BlockView>> Get(const std::vector<BlockSpec>& blocks) = 0;
  /// Stores `blocks` (payloads listed by `gather`); blocks already present are
  /// kept as they are. Returns how many of them, from the first, are present
  /// afterwards.
  virtual Result<size_t> Put(const std::vector<BlockSpec>& blocks, const Gather& gather) = 0;
};

}  // namespace vineyard::llm
