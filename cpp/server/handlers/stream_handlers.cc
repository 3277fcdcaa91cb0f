// Handlers for streams (StreamStore): create, open, write, read, stop, drop.
// A writer over the memory bound and a reader with nothing to read wait
// parked (Reply::defer), resumed by the stream when it moves.
#include "server/dispatcher.h"
#include "server/stream_store.h"

namespace vineyard {

namespace {

Status CreateStream(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadCreateStreamRequest(request));
  VY_RETURN_NOT_OK(conn.ctx().streams->Create(id));
  reply->body = WriteTypeOnly("create_stream_reply");
  return Status::OK();
}

Status OpenStream(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  int64_t mode;
  VY_RETURN_NOT_OK(ReadOpenStreamRequest(request, &id, &mode));
  VY_RETURN_NOT_OK(conn.ctx().streams->Open(id, mode, conn));
  reply->body = WriteTypeOnly("open_stream_reply");
  return Status::OK();
}

Status GetNextStreamChunk(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  uint64_t size;
  VY_RETURN_NOT_OK(ReadGetNextStreamChunkRequest(request, &id, &size));
  if (!conn.on_worker() && conn.ctx().store->WouldSpill(size)) {
    reply->to_worker = true;  // the blob needs room made on disk first: not on the loop
    return Status::OK();
  }
  VY_ASSIGN_OR_RETURN(auto chunk, conn.ctx().streams->GetNext(id, size, conn));
  if (!chunk) {
    reply->defer = true;  // over the memory bound: until the reader frees a chunk
    return Status::OK();
  }
  reply->body = WriteGetNextStreamChunkReply(*chunk, conn.PassFd(chunk->store_fd, reply));
  return Status::OK();
}

Status PushNextStreamChunk(Connection& conn, json& request, Reply* reply) {
  ObjectID id, chunk;
  VY_RETURN_NOT_OK(ReadPushNextStreamChunkRequest(request, &id, &chunk));
  VY_ASSIGN_OR_RETURN(bool queued, conn.ctx().streams->Push(id, chunk, conn));
  if (!queued) {
    reply->defer = true;  // over the memory bound: until the reader frees a chunk
    return Status::OK();
  }
  reply->body = WriteTypeOnly("push_next_stream_chunk_reply");
  return Status::OK();
}

Status PullNextStreamChunk(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  std::vector<ObjectID> release;
  VY_RETURN_NOT_OK(ReadPullNextStreamChunkRequest(request, &id, &release));
  for (ObjectID blob : release) conn.Release(blob);
  VY_ASSIGN_OR_RETURN(auto chunk, conn.ctx().streams->Pull(id, conn));
  if (!chunk) {
    reply->defer = true;  // nothing ready: until the writer queues a chunk or stops
    if (!release.empty()) {
      reply->park_as = WritePullNextStreamChunkRequest(id);  // released once, not on retries
    }
    return Status::OK();
  }
  reply->body = WritePullNextStreamChunkReply(*chunk);
  return Status::OK();
}

Status StopStream(Connection& conn, json& request, Reply* reply) {
  ObjectID id;
  bool failed;
  VY_RETURN_NOT_OK(ReadStopStreamRequest(request, &id, &failed));
  VY_RETURN_NOT_OK(conn.ctx().streams->Stop(id, failed));
  reply->body = WriteTypeOnly("stop_stream_reply");
  return Status::OK();
}

Status DropStream(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(ObjectID id, ReadIdRequest(request));
  VY_RETURN_NOT_OK(conn.ctx().streams->Drop(id));
  reply->body = WriteTypeOnly("drop_stream_reply");
  return Status::OK();
}

}  // namespace

void RegisterStreamHandlers(Dispatcher* d) {
  d->Register(req::kCreateStream, CreateStream);
  d->Register(req::kOpenStream, OpenStream);
  d->Register(req::kGetNextStreamChunk, GetNextStreamChunk, kIpcOnly);  // maps a new blob
  d->Register(req::kPushNextStreamChunk, PushNextStreamChunk);
  d->Register(req::kPullNextStreamChunk, PullNextStreamChunk);
  d->Register(req::kStopStream, StopStream);
  d->Register(req::kDropStream, DropStream);
}

}  // namespace vineyard
