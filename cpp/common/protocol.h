// The vineyard wire protocol: every message's JSON shape, in one place.
//
// Each message has a pair: Write* builds its JSON (the sender), Read* checks
// and decodes it (the receiver), so encoding and decoding cannot drift. The
// server reads requests and writes replies; clients do the reverse. No other
// file names a JSON field of the protocol.
//
// Message types are those of published vineyard 0.24 (see PROTOCOL.md), plus
// our fused requests (prefix "vy_"): a put in two round trips and a get in one.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/result.h"

namespace vineyard {

using json = nlohmann::json;

/// The protocol version we report; the published client checks compatibility with it.
constexpr const char* kProtocolVersion = "0.24.2";

/// Request type names, as they appear in the "type" field.
namespace req {
constexpr const char* kRegister = "register_request";
constexpr const char* kExit = "exit_request";
constexpr const char* kCreateBuffer = "create_buffer_request";
constexpr const char* kCreateBuffers = "create_buffers_request";
constexpr const char* kCreateDiskBuffer = "create_disk_buffer_request";
constexpr const char* kSeal = "seal_request";
constexpr const char* kGetBuffers = "get_buffers_request";
constexpr const char* kShrinkBuffer = "shrink_buffer_request";
constexpr const char* kDropBuffer = "drop_buffer_request";
constexpr const char* kIncreaseRefCount = "increase_reference_count_request";
constexpr const char* kRelease = "release_request";
constexpr const char* kCreateData = "create_data_request";
constexpr const char* kCreateDatas = "create_datas_request";
constexpr const char* kGetData = "get_data_request";
constexpr const char* kListData = "list_data_request";
constexpr const char* kDelData = "del_data_request";
constexpr const char* kDelDataWithFeedbacks = "del_data_with_feedbacks_request";
constexpr const char* kExists = "exists_request";
constexpr const char* kPersist = "persist_request";
constexpr const char* kIfPersist = "if_persist_request";
constexpr const char* kShallowCopy = "shallow_copy_request";
constexpr const char* kLabel = "label_request";
constexpr const char* kPutName = "put_name_request";
constexpr const char* kGetName = "get_name_request";
constexpr const char* kListName = "list_name_request";
constexpr const char* kDropName = "drop_name_request";
constexpr const char* kClear = "clear_request";
constexpr const char* kMemoryTrim = "memory_trim_request";
constexpr const char* kClusterMeta = "cluster_meta";
constexpr const char* kInstanceStatus = "instance_status_request";
constexpr const char* kIsInUse = "is_in_use_request";
constexpr const char* kIsSpilled = "is_spilled_request";
constexpr const char* kMigrateObject = "migrate_object_request";
// RPC byte paths: the blob bytes travel on the socket after the JSON reply.
constexpr const char* kCreateRemoteBuffer = "create_remote_buffer_request";
constexpr const char* kCreateRemoteBuffers = "create_remote_buffers_request";
constexpr const char* kGetRemoteBuffers = "get_remote_buffers_request";
// Ours: fused requests (a plain vineyard client never sends them).
constexpr const char* kVyPut = "vy_put_request";
constexpr const char* kVyGet = "vy_get_request";
// Streams (vineyard 0.24).
constexpr const char* kCreateStream = "create_stream_request";
constexpr const char* kOpenStream = "open_stream_request";
constexpr const char* kGetNextStreamChunk = "get_next_stream_chunk_request";
constexpr const char* kPushNextStreamChunk = "push_next_stream_chunk_request";
constexpr const char* kPullNextStreamChunk = "pull_next_stream_chunk_request";
constexpr const char* kStopStream = "stop_stream_request";
constexpr const char* kDropStream = "drop_stream_request";
// Spilling blobs to disk and loading them back.
constexpr const char* kEvict = "evict_request";
constexpr const char* kLoad = "load_request";
constexpr const char* kUnpin = "unpin_request";
}  // namespace req

/// Where a blob lives: what a client needs to map it.
struct Payload {
  ObjectID object_id = kEmptyBlobID;
  int store_fd = -1;         // the server's fd number of the mapped region
  int64_t data_offset = 0;   // offset of the data in that region
  uint64_t data_size = 0;
  uint64_t map_size = 0;     // bytes the client must map from offset 0
  uint64_t pointer = 0;      // the server's address of the data
  bool is_sealed = false;
  bool is_owner = true;
  bool is_gpu = false;
};

json WritePayload(const Payload& p);
Result<Payload> ReadPayload(const json& j);

/// Parses a frame into a JSON object; Invalid with a clear message otherwise.
/// A frame of ours may carry binary bytes after its JSON text and a NUL (a NUL
/// never appears in JSON text): they are kept under kAttachmentKey as a binary
/// value (see VyPutRequest::inline_sizes).
Result<json> ParseMessage(const std::string& text);
constexpr const char* kAttachmentKey = "__attachment";
/// The frame of `request` with `attachment` after its JSON text and a NUL.
std::string FrameText(const json& request, std::string_view attachment = {});
/// The "type" of a request; Invalid if missing or not a string.
Result<std::string> ReadMessageType(const json& msg);

/// The error reply of a failed request: {"code": N, "message": "..."}.
json WriteErrorReply(const Status& status);
/// Returns the Status an error reply carries, or OK for any other reply;
/// also checks the reply's type when `expected_type` is given.
Status CheckReply(const json& reply, const char* expected_type = nullptr);

// --- handshake ----------------------------------------------------------------
struct RegisterRequest {
  std::string version;
  std::string store_type = "Normal";
  SessionID session_id = kRootSessionID;
  std::string username;
  std::string password;
  /// Ours: the client gives back every blob reference it takes (release
  /// requests or fused release lists), so its references may pin memory.
  /// Published clients never release; their reads do not pin deleted blobs.
  bool releases_references = false;
};
json WriteRegisterRequest(const RegisterRequest& r);
Result<RegisterRequest> ReadRegisterRequest(const json& j);

struct RegisterReply {
  std::string ipc_socket;
  std::string rpc_endpoint;
  InstanceID instance_id = 0;
  SessionID session_id = kRootSessionID;
  std::string version;
  bool store_match = true;
  bool support_rpc_compression = false;
  /// Ours: vy_put takes inline bytes and new members (a server that does not
  /// say so gets their blobs created first and members created one by one).
  bool whole_tree_put = false;
};
json WriteRegisterReply(const RegisterReply& r);
Result<RegisterReply> ReadRegisterReply(const json& j);

json WriteExitRequest();

// --- blobs --------------------------------------------------------------------
json WriteCreateBufferRequest(uint64_t size);
Result<uint64_t> ReadCreateBufferRequest(const json& j);
json WriteCreateBufferReply(const Payload& p, int fd_to_send);
Result<Payload> ReadCreateBufferReply(const json& j, int* fd_sent);

json WriteCreateBuffersRequest(const std::vector<uint64_t>& sizes);
Result<std::vector<uint64_t>> ReadCreateBuffersRequest(const json& j);
json WriteCreateBuffersReply(const std::vector<Payload>& ps, const std::vector<int>& fds);
Result<std::vector<Payload>> ReadCreateBuffersReply(const json& j, std::vector<int>* fds);

json WriteSealRequest(ObjectID id);
Result<ObjectID> ReadSealRequest(const json& j);

struct GetBuffersRequest {
  std::vector<ObjectID> ids;
  bool unsafe = false;  // also return unsealed blobs
};
json WriteGetBuffersRequest(const GetBuffersRequest& r);
Result<GetBuffersRequest> ReadGetBuffersRequest(const json& j);
json WriteGetBuffersReply(const std::vector<Payload>& ps, const std::vector<int>& fds);
Result<std::vector<Payload>> ReadGetBuffersReply(const json& j, std::vector<int>* fds);

/// create_remote_buffer(s)_request: blobs whose bytes the client streams after
/// the first reply (create_buffer(s)_reply); a second, final reply follows them.
struct CreateRemoteBuffersRequest {
  std::vector<uint64_t> sizes;
  bool compress = false;  // the bytes come zstd-compressed (see common/transfer.h)
  bool use_rdma = false;
  bool single = false;    // create_remote_buffer_request (one blob, singular replies)
};
json WriteCreateRemoteBuffersRequest(const CreateRemoteBuffersRequest& r);
Result<CreateRemoteBuffersRequest> ReadCreateRemoteBuffersRequest(const json& j);

/// get_remote_buffers_request: the reply (get_buffers_reply) is followed by the
/// bytes of each blob, in the reply's order.
struct GetRemoteBuffersRequest {
  std::vector<ObjectID> ids;
  bool unsafe = false;
  bool compress = false;
  bool use_rdma = false;
};
json WriteGetRemoteBuffersRequest(const GetRemoteBuffersRequest& r);
Result<GetRemoteBuffersRequest> ReadGetRemoteBuffersRequest(const json& j);
/// get_buffers_reply for the RPC path: no fds, and whether the bytes are compressed.
json WriteGetRemoteBuffersReply(const std::vector<Payload>& ps, bool compress);
/// Its payloads, and whether the bytes that follow are compressed.
Result<std::vector<Payload>> ReadGetRemoteBuffersReply(const json& j, bool* compress);

json WriteShrinkBufferRequest(ObjectID id, uint64_t size);
Status ReadShrinkBufferRequest(const json& j, ObjectID* id, uint64_t* size);
json WriteDropBufferRequest(ObjectID id);
Result<ObjectID> ReadDropBufferRequest(const json& j);
json WriteIncreaseRefCountRequest(const std::vector<ObjectID>& ids);
Result<std::vector<ObjectID>> ReadIncreaseRefCountRequest(const json& j);
json WriteReleaseRequest(ObjectID id);
Result<ObjectID> ReadReleaseRequest(const json& j);

// --- metadata -----------------------------------------------------------------
json WriteCreateDataRequest(const json& tree);
Result<json> ReadCreateDataRequest(const json& j);

struct CreatedObject {
  ObjectID id = kInvalidObjectID;
  Signature signature = 0;
  InstanceID instance_id = 0;
};
json WriteCreateDataReply(const CreatedObject& c);
Result<CreatedObject> ReadCreateDataReply(const json& j);

json WriteCreateDatasRequest(const std::vector<json>& trees);
Result<std::vector<json>> ReadCreateDatasRequest(const json& j);
json WriteCreateDatasReply(const std::vector<CreatedObject>& cs);
Result<std::vector<CreatedObject>> ReadCreateDatasReply(const json& j);

struct GetDataRequest {
  std::vector<ObjectID> ids;
  bool sync_remote = false;
  bool wait = false;
};
json WriteGetDataRequest(const GetDataRequest& r);
Result<GetDataRequest> ReadGetDataRequest(const json& j);
/// `trees`: "o…" -> full metadata tree.
json WriteGetDataReply(const json& trees);
Result<json> ReadGetDataReply(const json& j);

/// A listing query: a glob (or a regex) over typenames or names, at most `limit` results.
struct ListQuery {
  std::string pattern = "*";
  bool regex = false;
  size_t limit = 5;
};
json WriteListDataRequest(const ListQuery& q);
Result<ListQuery> ReadListDataRequest(const json& j);

struct DeleteRequest {
  std::vector<ObjectID> ids;
  bool force = false;
  bool deep = true;
  bool fastpath = false;
  bool memory_trim = false;
  bool with_feedbacks = false;  // del_data_with_feedbacks_request
  /// Ours: blob references this client gives back first (as in vy_get), so
  /// that what the delete frees is freed at once, in the same round trip.
  std::vector<ObjectID> release;
};
json WriteDeleteRequest(const DeleteRequest& r);
Result<DeleteRequest> ReadDeleteRequest(const json& j);
json WriteDeleteReply(bool with_feedbacks, const std::vector<ObjectID>& deleted_blobs);
Result<std::vector<ObjectID>> ReadDeleteReply(const json& j);

/// exists / persist / if_persist: requests carrying one "id".
json WriteIdRequest(const char* type, ObjectID id);
Result<ObjectID> ReadIdRequest(const json& j);
json WriteExistsReply(bool exists);
Result<bool> ReadExistsReply(const json& j);
json WriteIfPersistReply(bool persist);
Result<bool> ReadIfPersistReply(const json& j);

json WriteShallowCopyRequest(ObjectID id, const json& extra);
Status ReadShallowCopyRequest(const json& j, ObjectID* id, json* extra);
json WriteShallowCopyReply(ObjectID target);
Result<ObjectID> ReadShallowCopyReply(const json& j);

json WriteLabelRequest(ObjectID id, const std::vector<std::string>& keys,
                       const std::vector<std::string>& values);
Status ReadLabelRequest(const json& j, ObjectID* id, std::vector<std::string>* keys,
                        std::vector<std::string>* values);

json WritePutNameRequest(ObjectID id, const std::string& name);
Status ReadPutNameRequest(const json& j, ObjectID* id, std::string* name);
json WriteGetNameRequest(const std::string& name, bool wait);
Status ReadGetNameRequest(const json& j, std::string* name, bool* wait);
json WriteGetNameReply(ObjectID id);
Result<ObjectID> ReadGetNameReply(const json& j);
json WriteListNameRequest(const ListQuery& q);
Result<ListQuery> ReadListNameRequest(const json& j);
json WriteListNameReply(const std::map<std::string, ObjectID>& names);
Result<std::map<std::string, ObjectID>> ReadListNameReply(const json& j);
json WriteDropNameRequest(const std::string& name);
Result<std::string> ReadDropNameRequest(const json& j);

json WriteMemoryTrimReply(bool trimmed);
Result<bool> ReadMemoryTrimReply(const json& j);

/// cluster_meta and instance_status: replies carrying a "meta" object.
json WriteMetaReply(const char* type, const json& meta);
Result<json> ReadMetaReply(const json& j);

json WriteMigrateObjectRequest(ObjectID id);
Result<ObjectID> ReadMigrateObjectRequest(const json& j);
json WriteMigrateObjectReply(ObjectID id);
Result<ObjectID> ReadMigrateObjectReply(const json& j);

/// A request with nothing but its type (clear, memory_trim, cluster_meta, ...).
json WriteTypeOnly(const char* type);

/// What the store has spilled to disk (--spill_path), in instance_status_reply.meta.
struct SpillStatus {
  bool enabled = false;         // --spill_path is set
  std::string path;             // --spill_path
  uint64_t spilled_bytes = 0;   // data bytes of the blobs on disk now
  uint64_t spilled_blobs = 0;   // blobs on disk now
  uint64_t disk_bytes = 0;      // bytes the spill files occupy on disk now
  uint64_t spills = 0;          // blobs written out since start
  uint64_t loads = 0;           // blobs loaded back since start
  uint64_t spill_failures = 0;  // spill attempts that failed (disk full, unwritable, ...)
};

/// Instance status fields, as in instance_status_reply.meta.
struct InstanceStatus {
  InstanceID instance_id = 0;
  std::string deployment = "local";
  uint64_t memory_usage = 0;
  uint64_t memory_limit = 0;
  uint64_t deferred_requests = 0;
  uint64_t ipc_connections = 0;
  uint64_t rpc_connections = 0;
  uint64_t meta_memory_usage = 0;  // ours: bytes the metadata records and names cost
  uint64_t meta_memory_limit = 0;  // ours: --meta_memory_limit
  SpillStatus spill;               // ours: blobs spilled to disk
};
json WriteInstanceStatus(const InstanceStatus& s);
Result<InstanceStatus> ReadInstanceStatus(const json& meta);

// --- fused requests (ours) ----------------------------------------------------
/// Seal `seal` blobs, create the metadata `tree`, optionally persist it and
/// name it, and release `release` references: one round trip.
/// The tree may hold new members (objects without an "id"): they are created
/// first, innermost first, all or nothing. A blob member {"typename":
/// "vineyard::Blob", "__vy_inline": k} is made from the k-th of `inline_sizes`
/// byte runs that follow the request's JSON text in its frame: a small put is
/// then one round trip, allocation included.
struct VyPutRequest {
  std::vector<ObjectID> seal;
  json tree;
  bool persist = false;
  std::string name;  // empty: no name
  std::vector<ObjectID> release;
  std::vector<uint64_t> inline_sizes;
  std::string_view attachment;  // read: the bytes after the JSON text (in the request)
};
constexpr const char* kInlineBlobKey = "__vy_inline";
/// A new member marked {"__vy_share": "t", ...} is created once per vy_put;
/// members that are just {"__vy_share": "t"} refer to it.
constexpr const char* kShareKey = "__vy_share";
/// vy_put's reply: create_data_reply plus the blobs made of the inline runs (in
/// their order) and the new members created with the root.
json WriteVyPutReply(const CreatedObject& created, const std::vector<ObjectID>& inline_blobs,
                     const std::vector<ObjectID>& members);
Status ReadVyPutReply(const json& j, CreatedObject* created, std::vector<ObjectID>* inline_blobs,
                      std::vector<ObjectID>* members);
/// Our client sends a byte run inline when it is at most kMaxInlineBlob bytes and
/// the request's inline bytes stay within kMaxInlineTotal; larger runs go to
/// blobs created first (create_buffers), which the client writes in place.
constexpr uint64_t kMaxInlineBlob = 64 << 10;
constexpr uint64_t kMaxInlineTotal = 64 << 20;
json WriteVyPutRequest(const VyPutRequest& r);
/// The same, taking r.tree over instead of copying it (a large tree is not copied).
json WriteVyPutRequest(VyPutRequest&& r);
Result<VyPutRequest> ReadVyPutRequest(const json& j);
/// All of it but the tree (r.tree left null), which the caller may take over.
Status ReadVyPutRequestHead(const json& j, VyPutRequest* r);

/// Metadata trees of `ids` and the payloads of every local blob in them,
/// with fds this connection has not seen yet: one round trip.
struct VyGetRequest {
  std::vector<ObjectID> ids;
  bool sync_remote = false;
  std::vector<ObjectID> release;
  /// The reply sends an object that appears more than once (a shared member)
  /// in full the first time and as {"__vy_ref": "o…"} after; the client puts
  /// the copies back (ResolveSharedMembers).
  bool share_members = false;
};
json WriteVyGetRequest(const VyGetRequest& r);
Result<VyGetRequest> ReadVyGetRequest(const json& j);
json WriteVyGetReply(json trees, const std::vector<Payload>& ps,
                     const std::vector<int>& fds);
Status ReadVyGetReply(const json& j, json* trees, std::vector<Payload>* ps,
                      std::vector<int>* fds);
/// The same, taking the trees out of `j` instead of copying them.
Status ReadVyGetReply(json&& j, json* trees, std::vector<Payload>* ps,
                      std::vector<int>* fds);
/// The key of a reference to a member sent earlier in the same vy_get reply.
constexpr const char* kSharedMemberRef = "__vy_ref";
/// Replaces every {"__vy_ref": "o…"} in `trees` with a copy of that object's
/// full tree (found elsewhere in `trees`); Invalid if one is missing.
Status ResolveSharedMembers(json* trees);

// --- streams ------------------------------------------------------------------
/// open_stream_request's modes (bits: a stream has one reader and one writer).
enum StreamMode : int64_t { kStreamRead = 1, kStreamWrite = 2 };
json WriteCreateStreamRequest(ObjectID id);
Result<ObjectID> ReadCreateStreamRequest(const json& j);  // {"object_id"}
json WriteOpenStreamRequest(ObjectID id, int64_t mode);
Status ReadOpenStreamRequest(const json& j, ObjectID* id, int64_t* mode);
/// get_next_stream_chunk_request {id, size}: the writer's next blob.
json WriteGetNextStreamChunkRequest(ObjectID stream, uint64_t size);
Status ReadGetNextStreamChunkRequest(const json& j, ObjectID* stream, uint64_t* size);
json WriteGetNextStreamChunkReply(const Payload& p, int fd_to_send);
Result<Payload> ReadGetNextStreamChunkReply(const json& j, int* fd_sent);
/// push_next_stream_chunk_request {id, chunk}: an existing object as the next chunk.
json WritePushNextStreamChunkRequest(ObjectID stream, ObjectID chunk);
Status ReadPushNextStreamChunkRequest(const json& j, ObjectID* stream, ObjectID* chunk);
/// pull_next_stream_chunk_request {id} -> {chunk}. Ours: "release", blob
/// references the reader gives back first (the chunks it is done with).
json WritePullNextStreamChunkRequest(ObjectID stream, const std::vector<ObjectID>& release = {});
Status ReadPullNextStreamChunkRequest(const json& j, ObjectID* stream,
                                      std::vector<ObjectID>* release);
json WritePullNextStreamChunkReply(ObjectID chunk);
Result<ObjectID> ReadPullNextStreamChunkReply(const json& j);
/// stop_stream_request {id, failed}.
json WriteStopStreamRequest(ObjectID stream, bool failed);
Status ReadStopStreamRequest(const json& j, ObjectID* stream, bool* failed);
/// drop_stream_request {id}.
json WriteDropStreamRequest(ObjectID stream);
// --- spilling ---------------------------------------------------------------
/// evict_request{ids}: spill these objects' blobs now. load_request{ids, pin}:
/// load them back (pin: keep them in memory until unpin). unpin_request{ids}.
/// Each has a reply of its type only.
json WriteEvictRequest(const std::vector<ObjectID>& ids);
Result<std::vector<ObjectID>> ReadEvictRequest(const json& j);
json WriteLoadRequest(const std::vector<ObjectID>& ids, bool pin);
Status ReadLoadRequest(const json& j, std::vector<ObjectID>* ids, bool* pin);
json WriteUnpinRequest(const std::vector<ObjectID>& ids);
Result<std::vector<ObjectID>> ReadUnpinRequest(const json& j);
/// is_spilled_request{id} -> is_spilled_reply{is_spilled};
/// is_in_use_request{id} -> is_in_use_reply{is_in_use}.
json WriteIsSpilledRequest(ObjectID id);
Result<ObjectID> ReadIsSpilledRequest(const json& j);
json WriteIsSpilledReply(bool is_spilled);
Result<bool> ReadIsSpilledReply(const json& j);
json WriteIsInUseRequest(ObjectID id);
Result<ObjectID> ReadIsInUseRequest(const json& j);
json WriteIsInUseReply(bool is_in_use);
Result<bool> ReadIsInUseReply(const json& j);

// --- metadata tree keys -------------------------------------------------------
/// Standard keys of a metadata tree (the rest are fields and members).
namespace meta_key {
constexpr const char* kTypename = "typename";
constexpr const char* kId = "id";
constexpr const char* kInstanceId = "instance_id";
constexpr const char* kNBytes = "nbytes";
constexpr const char* kSignature = "signature";
constexpr const char* kTransient = "transient";
constexpr const char* kGlobal = "global";
constexpr const char* kTimestamp = "__timestamp";
constexpr const char* kLength = "length";  // blob trees carry their size here too
constexpr const char* kLabels = "__labels";
}  // namespace meta_key
constexpr const char* kBlobTypename = "vineyard::Blob";

/// The blob leaves of expanded trees (members at any depth, each occurrence),
/// grouped by the instance that holds them: a leaf without an instance_id is
/// `default_owner`'s. Malformed leaves are skipped.
std::map<InstanceID, std::vector<ObjectID>> BlobsByOwner(const json& trees,
                                                         InstanceID default_owner);

}  // namespace vineyard
