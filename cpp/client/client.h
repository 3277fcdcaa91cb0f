// Client: the C++ client of vineyardd over its UNIX socket (IPC): blobs live
// in shared memory that this process maps, so reads copy nothing.
//
//   VY_ASSIGN_OR_RETURN(auto client, Client::Connect("/tmp/vineyard.sock"));
//   VY_ASSIGN_OR_RETURN(auto writer, client->CreateBlob(1024));
//   writer->Copy(0, data, 1024);
//   ObjectMeta meta;
//   meta.SetTypeName("my::Bytes");
//   meta.AddMember("buffer_", *writer);
//   VY_ASSIGN_OR_RETURN(ObjectID id, client->Put(meta, {writer.get()}));
//   VY_ASSIGN_OR_RETURN(ObjectMeta got, client->GetObject(id));   // blobs mapped
//
// Metadata, names and the rest are ClientBase's. Put costs 2 round trips
// (allocate; seal + create [+ persist + name]) and GetObject 1 (metadata +
// payloads + fds).
//
// Thread-safety: a Client may be shared by threads; requests are serialised.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/blob.h"
#include "client/client_base.h"

namespace vineyard {

class Client : public ClientBase {
 public:
  /// Connects to `socket`, or to $VINEYARD_IPC_SOCKET when it is empty; a
  /// server started with --htpasswd needs `username` and `password`.
  static Result<std::shared_ptr<Client>> Connect(const std::string& socket = "",
                                                 const std::string& username = "",
                                                 const std::string& password = "");

  // --- blobs -------------------------------------------------------------------
  Result<std::unique_ptr<BlobWriter>> CreateBlob(size_t size);
  Result<std::vector<std::unique_ptr<BlobWriter>>> CreateBlobs(const std::vector<size_t>& sizes);
  /// A sealed blob, mapped read-only (`unsafe`: unsealed ones too).
  Result<std::shared_ptr<Blob>> GetBlob(ObjectID id, bool unsafe = false);
  Result<std::vector<std::shared_ptr<Blob>>> GetBlobs(const std::vector<ObjectID>& ids,
                                                     bool unsafe = false);

  // --- objects -----------------------------------------------------------------
  /// Seals `blobs`, creates `meta`, optionally persists and names it: one round trip.
  /// `meta` may hold new members (ObjectMeta without an id: created with it) and
  /// blobs made of byte runs (ObjectMeta::AddInlineBlob(name, k): a blob of
  /// `inline_blobs[k]`): small runs travel in the put request itself, larger ones
  /// are copied to blobs created first (one more request for all of them).
  /// `made` gets the ids of what the put made besides the root: the blobs of
  /// the byte runs and the new members (to undo it all if a caller must).
  Result<ObjectID> Put(ObjectMeta& meta, const std::vector<BlobWriter*>& blobs,
                       bool persist = false, const std::string& name = "",
                       const std::vector<std::string_view>& inline_blobs = {},
                       std::vector<ObjectID>* made = nullptr);
  /// The metadata with every local blob of the tree mapped: one round trip.
  Result<ObjectMeta> GetObject(ObjectID id);
  Result<std::vector<ObjectMeta>> GetObjects(const std::vector<ObjectID>& ids);

  // --- streams (and ClientBase's) ---------------------------------------------------
  /// The writer's next chunk of a stream: a new blob of `size` bytes to fill,
  /// queued for the reader at the next call (or StopStream). Waits while the
  /// stream's chunks in flight are over the server's --stream_threshold.
  Result<std::unique_ptr<BlobWriter>> GetNextStreamChunk(ObjectID stream, size_t size);
  /// The reader's next chunk of a stream of blobs, mapped read-only.
  Result<std::shared_ptr<Blob>> PullNextStreamBlob(ObjectID stream);

  /// Gives back blob references released locally but not yet sent.
  Status FlushReleases();

 private:
  explicit Client(std::shared_ptr<ClientCore> core);
  Result<std::vector<ObjectMeta>> GetObjectsOnce(const std::vector<ObjectID>& ids);
  Result<std::vector<ObjectMeta>> Attach(json trees, const std::vector<Payload>& payloads,
                                         const std::vector<ObjectID>& order);
};

}  // namespace vineyard
