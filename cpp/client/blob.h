// Blob and BlobWriter: a blob's bytes in shared memory, mapped into this process;
// RemoteBlob and RemoteBlobWriter: a blob's bytes in this process's own memory,
// moved over TCP by RPCClient.
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

#include "client/object_builder.h"
#include "common/ids.h"
#include "common/protocol.h"
#include "common/result.h"

namespace vineyard {

class Client;
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
  /// `holder` keeps `data` alive (a Mapping, or a heap buffer); `owner` gets
  /// the server reference back when the Blob goes (none for remote blobs).
  Blob(ObjectID id, size_t size, const uint8_t* data, std::shared_ptr<const void> holder,
       std::weak_ptr<ClientCore> owner);
  virtual ~Blob();
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
  std::shared_ptr<const void> holder_;  // keeps the bytes mapped (or allocated)
  std::weak_ptr<ClientCore> owner_;     // to give the reference back
};

/// A blob fetched over TCP into this process's memory: read-only like any
/// Blob, and usable wherever one is (e.g. as an ObjectMeta's buffer).
class RemoteBlob : public Blob {
 public:
  /// Room for `size` bytes of blob `id` of `instance` (filled by RPCClient).
  static Result<std::shared_ptr<RemoteBlob>> Allocate(ObjectID id, InstanceID instance,
                                                      size_t size);
  RemoteBlob(ObjectID id, InstanceID instance, size_t size, std::shared_ptr<uint8_t> buffer);
  /// The instance the blob lives on.
  InstanceID instance_id() const { return instance_id_; }
  /// Where RPCClient receives the bytes; read-only once handed out.
  uint8_t* mutable_data() { return const_cast<uint8_t*>(data()); }

 private:
  const InstanceID instance_id_;
};

/// The bytes of a blob to create over TCP, built in this process's memory,
/// then sent by RPCClient::CreateRemoteBlob. Writable until sent or aborted.
class RemoteBlobWriter {
 public:
  static Result<std::unique_ptr<RemoteBlobWriter>> Make(size_t size);
  /// Over `size` bytes at `data` that the caller owns: `owner` keeps them
  /// alive (null: the caller must, until the writer is sent). Read-only bytes
  /// (`writable` false) can be sent but not written through the writer.
  static std::unique_ptr<RemoteBlobWriter> Wrap(const uint8_t* data, size_t size,
                                                std::shared_ptr<const void> owner,
                                                bool writable);
  RemoteBlobWriter(size_t size, std::shared_ptr<uint8_t> buffer);

  size_t size() const { return size_; }
  uint8_t* data() { return buffer_.get(); }
  const uint8_t* data() const { return buffer_.get(); }
  bool aborted() const { return aborted_; }
  /// False for a writer over read-only bytes (Wrap).
  bool writable() const { return writable_; }

  /// Copies `n` bytes from `src` to `offset` (threads for large copies).
  Status Copy(size_t offset, const void* src, size_t n, int concurrency = 0);
  /// Frees the bytes; the writer can no longer be sent.
  void Abort();

 private:
  size_t size_;
  std::shared_ptr<uint8_t> buffer_;
  bool aborted_ = false;
  bool writable_ = true;
};

class BlobWriter : public ObjectBuilder {
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
  bool sealed() const override { return sealed_; }
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
  /// ObjectBuilder's Seal: the blob is its own object (`client` is not needed).
  Result<ObjectID> Seal(Client& client) override;

  /// Marks the writer sealed by a fused request (Client::Put); the server holds
  /// one reference for this client, given back when the writer goes away.
  void MarkSealed() { sealed_ = true; }
  /// A stream chunk: the server seals it when the writer moves on, and the
  /// writer never drops or releases it.
  void MarkStreamChunk() { stream_chunk_ = true; }
  bool stream_chunk() const { return stream_chunk_; }

 private:
  Payload payload_;  // where the blob lives (to map it read-only once sealed)
  const ObjectID id_;
  size_t size_;
  uint8_t* const data_;
  std::shared_ptr<Mapping> mapping_;  // writable mapping
  std::shared_ptr<ClientCore> owner_;
  bool sealed_ = false;
  bool aborted_ = false;
  bool stream_chunk_ = false;
};

/// memcpy with up to `threads` threads for large buffers (0: automatic).
void ParallelMemcpy(void* dst, const void* src, size_t n, int threads = 0);

}  // namespace vineyard
