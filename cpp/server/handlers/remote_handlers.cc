// Handlers for the RPC byte paths: blobs whose bytes travel on the socket
// (create_remote_buffer(s), get_remote_buffers), for clients that cannot map
// the server's memory. Bytes go straight between the socket and the blob
// (common/transfer.h); a transfer that breaks ends the session, since the
// stream can no longer be followed.
#include "common/transfer.h"
#include "server/dispatcher.h"

namespace vineyard {

namespace {

uint8_t* DataOf(const Payload& p) { return reinterpret_cast<uint8_t*>(p.pointer); }

// What a remote client is told of a blob: never a server address (`pointer`)
// or the server's fd numbers, which mean nothing off this host.
std::vector<Payload> ForTcp(std::vector<Payload> payloads) {
  for (auto& p : payloads) {
    p.pointer = 0;
    p.store_fd = -1;
    p.data_offset = 0;
    p.map_size = 0;
  }
  return payloads;
}

Status NoRdma() {
  return Status::NotImplemented("RDMA transfers are not supported by this vineyardd: use TCP");
}

// create_remote_buffer(s): allocate (all or nothing) -> reply -> receive the
// bytes -> seal -> final reply. Until sealed, the blobs are the connection's
// unsealed allocations, so a client that vanishes mid-stream leaves nothing.
Status CreateRemoteBuffers(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(CreateRemoteBuffersRequest r, ReadCreateRemoteBuffersRequest(request));
  if (r.use_rdma) return NoRdma();
  BulkStore& store = *conn.ctx().store;
  std::vector<Payload> created;
  for (uint64_t size : r.sizes) {
    auto p = store.Create(size, conn.serial());
    if (!p.ok()) {
      for (const auto& c : created) (void)conn.Abort(c.object_id);
      return p.status();
    }
    created.push_back(*p);
  }
  auto reply_for = [&](const std::vector<Payload>& created_now) {
    auto ps = ForTcp(created_now);
    return r.single ? WriteCreateBufferReply(ps[0], -1) : WriteCreateBuffersReply(ps, {});
  };

  Status st = conn.SendInterim(reply_for(created));
  BlobReceiver in(conn.stream(), r.compress, conn.io_timeout_ms());
  for (size_t i = 0; st.ok() && i < created.size(); ++i) {
    st = in.Receive(DataOf(created[i]), created[i].data_size);
  }
  if (!st.ok()) {
    for (const auto& c : created) {
      if (!IsEmptyBlob(c.object_id)) (void)conn.Abort(c.object_id);
    }
    reply->close_after = true;
    return st.WithContext("receiving remote blob bytes");
  }
  // Sealed and unreferenced, as vineyard leaves them: metadata will adopt them
  // (until then they die with this connection).
  for (auto& c : created) {
    if (IsEmptyBlob(c.object_id)) continue;
    VY_RETURN_NOT_OK(conn.Seal(c.object_id));
    conn.Release(c.object_id);
    c.is_sealed = true;
  }
  reply->body = reply_for(created);
  return Status::OK();
}

// get_remote_buffers: reply -> the bytes of each blob. The blobs are
// referenced for the transfer, so a concurrent delete cannot free them mid-send.
Status GetRemoteBuffers(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(GetRemoteBuffersRequest r, ReadGetRemoteBuffersRequest(request));
  if (r.use_rdma) return NoRdma();
  BulkStore& store = *conn.ctx().store;
  std::vector<Payload> payloads;
  auto release_all = [&] {
    for (const auto& p : payloads) {
      if (!IsEmptyBlob(p.object_id)) store.Release(p.object_id);
    }
  };
  for (ObjectID id : r.ids) {
    auto p = store.Get(id, r.unsafe, conn.serial());  // unsafe: own unsealed blobs only
    if (!p.ok()) {
      release_all();
      return p.status();
    }
    payloads.push_back(*p);
  }
  Status st = conn.SendInterim(WriteGetRemoteBuffersReply(ForTcp(payloads), r.compress));
  BlobSender out(conn.stream(), r.compress, conn.io_timeout_ms());
  for (size_t i = 0; st.ok() && i < payloads.size(); ++i) {
    st = out.Send(DataOf(payloads[i]), payloads[i].data_size);
  }
  release_all();
  if (!st.ok()) {
    reply->close_after = true;
    return st.WithContext("sending remote blob bytes");
  }
  reply->body = json();  // everything has been sent
  return Status::OK();
}

}  // namespace

void RegisterRemoteHandlers(Dispatcher* d) {
  d->Register(req::kCreateRemoteBuffer, CreateRemoteBuffers, kSlow);
  d->Register(req::kCreateRemoteBuffers, CreateRemoteBuffers, kSlow);
  d->Register(req::kGetRemoteBuffers, GetRemoteBuffers, kSlow);
}

}  // namespace vineyard
