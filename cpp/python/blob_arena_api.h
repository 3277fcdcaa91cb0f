// The functions of a BlobArena (python/blob_arena.h) for a module that does not
// link the client: the pointer in a capsule named "vineyard.blob_arena" made
// by vineyard._C's IPCClient.blob_arena().capsule(); the capsule holds one
// reference of the arena (`release` when it goes).
#pragma once

#include <cstdint>

namespace vineyard::py {

struct BlobArenaApi {
  void* arena;
  /// Null when the server has no memory for it (the caller uses other memory).
  uint8_t* (*allocate)(void* arena, int64_t size);
  /// Null when it cannot move: `p` stays valid then.
  uint8_t* (*reallocate)(void* arena, uint8_t* p, int64_t old_size, int64_t new_size);
  int (*owns)(void* arena, const uint8_t* p);
  void (*free)(void* arena, uint8_t* p);
  void (*retain)(void* arena);
  void (*release)(void* arena);
};

constexpr const char* kBlobArenaCapsule = "vineyard.blob_arena";

}  // namespace vineyard::py
