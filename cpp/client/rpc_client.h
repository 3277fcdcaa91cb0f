// RPCClient: the C++ client of vineyardd over TCP, for processes on other
// hosts (or without access to the UNIX socket). Metadata works as over IPC
// (ClientBase); blob bytes travel over the connection instead of being mapped:
//
//   VY_ASSIGN_OR_RETURN(auto rpc, RPCClient::Connect("host:9600"));
//   std::vector<RPCClient::Bytes> parts = {{data, size}};
//   VY_ASSIGN_OR_RETURN(auto blobs, rpc->CreateRemoteBlobs(parts));   // metas of blobs
//   ObjectMeta meta;
//   meta.SetTypeName("my::Bytes");
//   meta.AddMember("buffer_", blobs[0]);
//   VY_ASSIGN_OR_RETURN(ObjectID id, rpc->Put(meta));
//   VY_ASSIGN_OR_RETURN(ObjectMeta got, rpc->GetObject(id));   // RemoteBlobs attached
//
// Round trips: CreateRemoteBlobs 1 (its bytes stream inside it), Put 1,
// GetObject 2 (metadata; then every blob of the tree in one transfer).
// zstd compression of the bytes is off by default (it pays on slow links
// only) and available when the server offers it (set_compression).
//
// Thread-safety: an RPCClient may be shared by threads; requests are serialised.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/blob.h"
#include "client/client_base.h"

namespace vineyard {

class RPCClient : public ClientBase {
 public:
  /// `endpoint`: "host:port", or "host" (port 9600), or empty for
  /// $VINEYARD_RPC_ENDPOINT. A server started with --htpasswd needs a login.
  /// `tls_ca`: talk TLS to a server started with --rpc_tls_cert, trusting the
  /// CA certificates in this PEM file ("system": the system's store); empty
  /// takes $VINEYARD_RPC_TLS_CA, and plain TCP when that is unset too. The
  /// server's certificate must chain to a trusted CA and name `host`.
  static Result<std::shared_ptr<RPCClient>> Connect(const std::string& endpoint = "",
                                                    const std::string& username = "",
                                                    const std::string& password = "",
                                                    const std::string& tls_ca = "");
  static Result<std::shared_ptr<RPCClient>> Connect(const std::string& host, int port,
                                                    const std::string& username = "",
                                                    const std::string& password = "",
                                                    const std::string& tls_ca = "");

  /// The instance this client is connected to (where its blobs live).
  InstanceID remote_instance_id() const { return instance_id(); }
  /// True if the object's blobs live on the connected instance.
  bool IsFetchable(const ObjectMeta& meta) const;

  /// Compress blob bytes with zstd (only if the server offers it).
  void set_compression(bool on);
  bool compression() const;

  // --- blobs -------------------------------------------------------------------
  struct Bytes {
    const void* data;
    size_t size;
  };
  /// Creates one sealed blob per buffer, sending the bytes in one request;
  /// returns each blob's metadata (to use as a member).
  Result<std::vector<ObjectMeta>> CreateRemoteBlobs(const std::vector<Bytes>& buffers);
  Result<ObjectMeta> CreateRemoteBlob(const RemoteBlobWriter& writer);
  Result<std::vector<ObjectMeta>> CreateRemoteBlobs(
      const std::vector<const RemoteBlobWriter*>& writers);
  /// Fetches sealed blobs (`unsafe`: unsealed ones too) into this process.
  Result<std::shared_ptr<RemoteBlob>> GetRemoteBlob(ObjectID id, bool unsafe = false);
  Result<std::vector<std::shared_ptr<RemoteBlob>>> GetRemoteBlobs(
      const std::vector<ObjectID>& ids, bool unsafe = false);
  /// Where FetchRemoteBlobs puts a blob: memory for `size` bytes of blob `id`.
  using Placer = std::function<Result<void*>(ObjectID id, uint64_t size)>;
  /// Receives sealed blobs (each distinct id once) straight into the memory
  /// `place` gives, called once per blob in the order they arrive.
  Status FetchRemoteBlobs(const std::vector<ObjectID>& ids, const Placer& place);
  /// Bounds each wait for progress of a transfer (0, the default: none).
  void set_io_timeout(int ms) { io_timeout_ms_ = ms; }

  // --- objects -----------------------------------------------------------------
  /// Creates `meta` (members must exist), optionally persists and names it:
  /// one round trip.
  Result<ObjectID> Put(ObjectMeta& meta, bool persist = false, const std::string& name = "");
  /// The metadata with every blob of the tree on this instance fetched.
  Result<ObjectMeta> GetObject(ObjectID id);
  Result<std::vector<ObjectMeta>> GetObjects(const std::vector<ObjectID>& ids);

 private:
  explicit RPCClient(std::shared_ptr<ClientCore> core);
  Status Fetch(const std::vector<ObjectID>& ids, bool unsafe, const Placer& place);
  bool compress_ = false;
  int io_timeout_ms_ = 0;
  // What Connect() was given, to reach the other instances of the cluster.
  std::string username_, password_, tls_ca_;
};

}  // namespace vineyard
