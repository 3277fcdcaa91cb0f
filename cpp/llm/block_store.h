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

/// Fills the payload of blocks[i] (PayloadBytes(tokens) bytes at `payload`).
using Filler = std::function<void(size_t i, uint8_t* payload)>;

class BlockStore {
 public:
  virtual ~BlockStore() = default;
  /// How many of `blocks`, from the first, are present.
  virtual Result<size_t> Has(const std::vector<BlockSpec>& blocks) = 0;
  /// The payloads of the leading present blocks (fewer than asked when one is
  /// missing, evicted meanwhile, or found corrupted: it is dropped).
  virtual Result<std::vector<BlockView>> Get(const std::vector<BlockSpec>& blocks) = 0;
  /// Stores `blocks` (each filled by `fill`); blocks already present are kept
  /// as they are. Returns how many of them are present afterwards.
  virtual Result<size_t> Put(const std::vector<BlockSpec>& blocks, const Filler& fill) = 0;
};

}  // namespace vineyard::llm
