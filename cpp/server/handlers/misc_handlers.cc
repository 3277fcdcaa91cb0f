// Handlers for the session and the instance: register, exit, status, trim.
#include "server/dispatcher.h"

namespace vineyard {

namespace {

Status Register(Connection& conn, json& request, Reply* reply) {
  VY_ASSIGN_OR_RETURN(RegisterRequest r, ReadRegisterRequest(request));
  const Htpasswd* users = conn.ctx().users;
  if (users != nullptr) {
    reply->close_after = true;  // a refused login: nothing else is served on this connection
    VY_ASSIGN_OR_RETURN(std::string peer, PeerIdentity(conn.socket_fd(), conn.is_ipc()));
    VY_RETURN_NOT_OK(users->Login(peer, r.username, r.password));
    reply->close_after = false;
  }
  RegisterReply out;
  out.ipc_socket = conn.ctx().ipc_socket;
  out.rpc_endpoint = conn.ctx().rpc_endpoint.empty() ? "0.0.0.0:0" : conn.ctx().rpc_endpoint;
  out.instance_id = conn.ctx().instance_id;
  out.session_id = r.session_id;
  out.version = kProtocolVersion;
  out.store_match = r.store_type == "Normal";
  out.support_rpc_compression = conn.ctx().compression;
  out.whole_tree_put = true;
  conn.set_registered(r.session_id, r.releases_references);
  reply->body = WriteRegisterReply(out);
  return Status::OK();
}

Status Exit(Connection&, json&, Reply* reply) {
  reply->close_after = true;  // no reply: the client is leaving
  return Status::OK();
}

Status MemoryTrim(Connection& conn, json&, Reply* reply) {
  reply->body = WriteMemoryTrimReply(conn.ctx().store->Trim() > 0);
  return Status::OK();
}

Status ClusterMeta(Connection& conn, json&, Reply* reply) {
  VY_ASSIGN_OR_RETURN(json meta, conn.ctx().backend->ClusterMeta());
  reply->body = WriteMetaReply(req::kClusterMeta, meta);
  return Status::OK();
}

Status InstanceStatusHandler(Connection& conn, json&, Reply* reply) {
  ServerContext& ctx = conn.ctx();
  InstanceStatus s;
  s.instance_id = ctx.instance_id;
  s.deployment = ctx.deployment;
  s.memory_usage = ctx.store->usage();
  s.memory_limit = ctx.store->limit();
  s.deferred_requests = static_cast<uint64_t>(std::max<int64_t>(0, ctx.deferred_requests));
  s.ipc_connections = static_cast<uint64_t>(std::max<int64_t>(0, ctx.ipc_connections));
  s.rpc_connections = static_cast<uint64_t>(std::max<int64_t>(0, ctx.rpc_connections));
  s.meta_memory_usage = ctx.meta->memory_usage();
  s.meta_memory_limit = ctx.meta->limits().memory_limit;
  s.spill = ctx.store->spill_status();
  reply->body = WriteMetaReply("instance_status_reply", WriteInstanceStatus(s));
  return Status::OK();
}

}  // namespace

void RegisterMiscHandlers(Dispatcher* d) {
  // kSlow: a password hash takes ~0.1 s and may wait for a hashing slot.
  d->Register(req::kRegister, Register, kBeforeRegister | kSlow);
  d->Register(req::kExit, Exit, kBeforeRegister);
  d->Register(req::kMemoryTrim, MemoryTrim, kSlow);
  d->Register(req::kClusterMeta, ClusterMeta);
  d->Register(req::kInstanceStatus, InstanceStatusHandler);
}

}  // namespace vineyard
