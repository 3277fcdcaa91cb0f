// StreamStore: streams of chunks from one writer to one reader (vineyard's
// ByteStream, DataframeStream, RecordBatchStream, ... all ride on it).
//
// A stream is an object (its metadata is created first) that create_stream
// turns into a queue. The writer either asks for a new blob per chunk
// (GetNext: the previous blob is sealed and queued) or hands existing objects
// (Push); the reader pulls chunks in order (Pull: the chunk it read before is
// deleted first). Stop ends the stream: the reader drains what is queued and
// then gets StreamDrained, or StreamFailed after a failed stop or a drop.
//
// Waiting: a writer over the memory bound, or a reader with nothing to read,
// is told to wait (the handler parks its connection, Reply::defer); the store
// keeps the waiting connection and resumes it when the stream moves, and its
// request runs again. Waiting holds no thread.
//
// Memory: blobs handed to writers, and the local blobs of objects pushed, are
// "in flight" until freed; a writer may take a new blob, or push an object,
// while all streams' bytes in flight stay within the bound (--stream_threshold
// percent of --size), and waits otherwise. A stream with nothing in flight may
// always take one, so one stream never starves behind others.
//
// Ownership: a writer's current blob is its own (unsealed; it dies with the
// writer). Queued blobs are sealed and adopted: they belong to the stream,
// which deletes them once read past, or dropped.
//
// Clients: the first to open (or use) a side holds it. A writer that goes away
// fails its stream and wakes the reader; a reader that goes away gives its side
// back, so another reader may open it and go on from the next chunk.
//
// Thread-safety: all methods are thread-safe (one mutex); connections are
// resumed after it is released.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/protocol.h"
#include "common/result.h"

namespace vineyard {

class BulkStore;
class Connection;
class MetaService;

class StreamStore {
 public:
  /// `bound`: the most bytes of writer blobs in flight across all streams.
  StreamStore(BulkStore* store, MetaService* meta, uint64_t bound);

  /// A stream over the object `id` (whose metadata exists).
  Status Create(ObjectID id);
  /// Takes the read (kStreamRead) or write (kStreamWrite) side for `conn`;
  /// StreamOpened when another client holds it.
  Status Open(ObjectID id, int64_t mode, Connection& conn);

  /// The writer's next blob of `size` bytes, after queueing the previous one.
  /// Returns nullopt when the writer must wait (it is resumed later).
  Result<std::optional<Payload>> GetNext(ObjectID id, uint64_t size, Connection& conn);
  /// Queues the existing object `chunk`.
  /// Returns false when the writer must wait: the chunk's blobs would take
  /// the streams' bytes in flight over the bound (its request runs again when
  /// the reader frees a chunk).
  Result<bool> Push(ObjectID id, ObjectID chunk, Connection& conn);
  /// The next chunk for the reader, freeing the one it read before. Returns
  /// nullopt when the reader must wait; StreamDrained / StreamFailed at the end.
  Result<std::optional<ObjectID>> Pull(ObjectID id, Connection& conn);
  /// Ends the stream: drained, or failed.
  Status Stop(ObjectID id, bool failed);
  /// Fails the stream and frees what is queued.
  Status Drop(ObjectID id);
  /// The stream objects `ids` were deleted: their streams go with their chunks.
  void Forget(const std::vector<ObjectID>& ids);
  /// Every stream goes (clear_request).
  void ForgetAll();
  /// `serial`'s connection went away (after the bulk store released what it owned).
  void OnClose(uint64_t serial);

  struct Stats {
    size_t streams = 0;
    uint64_t bytes_in_flight = 0;
    size_t waiting = 0;  // readers and writers parked
  };
  Stats stats() const;

 private:
  // The bytes of the local blobs of `chunk` (a blob, or an object's tree).
  uint64_t ChunkBytes(ObjectID chunk);
  struct Chunk {
    ObjectID id = 0;
    uint64_t bytes = 0;  // counted in flight: a writer blob's size, a pushed object's blobs'
    bool made = false;   // a blob made for the writer (else an object it pushed)
  };
  struct Stream {
    uint64_t reader = 0;   // serial of the client holding the read side (0: none)
    uint64_t writer = 0;   // ... the write side
    std::optional<Chunk> writing;   // the writer's current blob (unsealed)
    std::deque<Chunk> ready;        // queued for the reader
    std::optional<Chunk> reading;   // the reader's current chunk
    bool drained = false;
    bool failed = false;
    uint64_t in_flight = 0;
    std::weak_ptr<Connection> waiting_reader;
    std::weak_ptr<Connection> waiting_writer;
    uint64_t waiting_size = 0;  // what the waiting writer asked for
  };
  using Wakes = std::vector<std::shared_ptr<Connection>>;

  Result<Stream*> FindLocked(ObjectID id, const char* what);
  // Seals the writer's current blob and queues it.
  Status QueueWritingLocked(Stream& s);
  // Deletes a chunk the stream owns (a blob, or a pushed object with its members).
  void FreeLocked(Stream& s, const Chunk& c);
  // Moves the waiting reader and writer of `s` to `wakes`.
  static void TakeWaiters(Stream& s, Wakes* wakes);
  static void WakeAll(const Wakes& wakes);
  bool AllocatableLocked(const Stream& s, uint64_t size) const;

  BulkStore* const store_;
  MetaService* const meta_;
  const uint64_t bound_;

  mutable std::mutex mu_;
  std::unordered_map<ObjectID, Stream> streams_;  // guarded by mu_
  uint64_t in_flight_ = 0;                        // guarded by mu_
};

}  // namespace vineyard
