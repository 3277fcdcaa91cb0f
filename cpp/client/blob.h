// Blob and BlobWriter: a blob's bytes in shared memory, mapped into this process.
//
// BlobWriter is an unsealed blob: writable by its creator only, until Seal()
// (or Client::Put) makes it immutable. Blob is a sealed blob, mapped
// read-only: a consumer cannot corrupt shared data. A Blob holds one server
// reference, given back when the last copy of the shared_ptr goes away, and
// keeps its mapping alive even if the client is gone.
//
// Thread-safety: a Blob may be read from any thread. A BlobWriter must be used
// by one thread at a time (Copy() parallelises internally).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/ids.h"
#include "common/protocol.h"
#include "common/result.h"

namespace vineyard {

class ClientCore;

/// A mapped region of the server's shared memory; unmapped on destruction.
struct Mapping {
  uint8_t* base = nullptr;
  size_t size = 0;
  Mapping(uint8_t* b, size_t s) : base(b), size(s) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

class Blob {
 public:
  Blob(ObjectID id, size_t size, const uint8_t* data, std::shared_ptr<Mapping> mapping,
       std::weak_ptr<ClientCore> owner);
  ~Blob();
  Blob(const Blob&) = delete;
  Blob& operator=(const Blob&) = delete;

  /// The empty blob (id 0x8000000000000000, no bytes).
  static std::shared_ptr<Blob> MakeEmpty();

  ObjectID id() const { return id_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  bool IsEmpty() const { return size_ == 0; }

 private:
  const ObjectID id_;
  const size_t size_;
  const uint8_t* const data_;
  std::shared_ptr<Mapping> mapping_;   // keeps the bytes mapped
  std::weak_ptr<ClientCore> owner_;    // to give the reference back
};

class BlobWriter {
 public:
  BlobWriter(const Payload& payload, uint8_t* data, std::shared_ptr<Mapping> mapping,
             std::shared_ptr<ClientCore> owner);
  /// An unsealed writer that was never sealed is dropped on the server.
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  ObjectID id() const { return id_; }
  size_t size() const { return size_; }
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  bool sealed() const { return sealed_; }
  /// Neither sealed nor aborted: its bytes may still be written.
  bool writable() const { return !sealed_ && !aborted_; }

  /// Copies `n` bytes from `src` to offset `offset`, with `concurrency` threads
  /// for large copies (0: as many as pays off on this machine).
  Status Copy(size_t offset, const void* src, size_t n, int concurrency = 0);
  /// Shrinks the blob to `size` bytes before sealing.
  Status Shrink(size_t size);
  /// Drops the blob (before sealing).
  Status Abort();
  /// Seals the blob: it becomes immutable and readable by everyone.
  Result<std::shared_ptr<Blob>> Seal();

  /// Marks the writer sealed by a fused request (Client::Put); the server holds
  /// one reference for this client, given back when the writer goes away.
  void MarkSealed() { sealed_ = true; }

 private:
  Payload payload_;  // where the blob lives (to map it read-only once sealed)
  const ObjectID id_;
  size_t size_;
  uint8_t* const data_;
  std::shared_ptr<Mapping> mapping_;  // writable mapping
  std::shared_ptr<ClientCore> owner_;
  bool sealed_ = false;
  bool aborted_ = false;
};

/// memcpy with up to `threads` threads for large buffers (0: automatic).
void ParallelMemcpy(void* dst, const void* src, size_t n, int threads = 0);

}  // namespace vineyard
