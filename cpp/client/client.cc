#include "client/client.h"

#include <cstdlib>

#include "client/client_core.h"
#include "common/socket_io.h"

namespace vineyard {

// --- Client ----------------------------------------------------------------------

Client::Client(std::shared_ptr<ClientCore> core) : ClientBase(std::move(core)) {}

Result<std::shared_ptr<Client>> Client::Connect(const std::string& socket,
                                                const std::string& username,
                                                const std::string& password) {
  std::string path = socket;
  if (path.empty()) {
    const char* env = getenv("VINEYARD_IPC_SOCKET");
    if (env == nullptr || *env == '\0') {
      return Status::ConnectionFailed(
          "no socket given and VINEYARD_IPC_SOCKET is not set: pass the path of vineyardd's "
          "--socket");
    }
    path = env;
  }
  VY_ASSIGN_OR_RETURN(auto core, ClientCore::Connect(path, {username, password}));
  return std::shared_ptr<Client>(new Client(std::move(core)));
}

Result<std::unique_ptr<BlobWriter>> Client::CreateBlob(size_t size) {
  auto answered = core_->RequestWithFds(WriteCreateBufferRequest(size), "fd");
  if (answered.status().IsNotEnoughMemory() && core_->HasReleases()) {
    // Blobs this client let go of may be what holds the memory: give them back, retry.
    VY_RETURN_NOT_OK(core_->FlushReleases());
    answered = core_->RequestWithFds(WriteCreateBufferRequest(size), "fd");
  }
  VY_ASSIGN_OR_RETURN(json reply, std::move(answered));
  int fd_sent = -1;
  VY_ASSIGN_OR_RETURN(Payload p, ReadCreateBufferReply(reply, &fd_sent));
  return core_->MakeWriter(p);
}

Result<std::unique_ptr<BlobWriter>> Client::GetNextStreamChunk(ObjectID stream, size_t size) {
  VY_ASSIGN_OR_RETURN(json reply,
                      core_->RequestWithFds(WriteGetNextStreamChunkRequest(stream, size), "fd"));
  int fd_sent = -1;
  VY_ASSIGN_OR_RETURN(Payload p, ReadGetNextStreamChunkReply(reply, &fd_sent));
  VY_ASSIGN_OR_RETURN(auto writer, core_->MakeWriter(p));
  writer->MarkStreamChunk();
  return writer;
}

Result<std::shared_ptr<Blob>> Client::PullNextStreamBlob(ObjectID stream) {
  VY_ASSIGN_OR_RETURN(ObjectID chunk, PullNextStreamChunk(stream));
  return GetBlob(chunk);
}

Result<std::vector<std::unique_ptr<BlobWriter>>> Client::CreateBlobs(
    const std::vector<size_t>& sizes) {
  std::vector<uint64_t> s(sizes.begin(), sizes.end());
  auto answered = core_->RequestWithFds(WriteCreateBuffersRequest(s), "fds");
  if (answered.status().IsNotEnoughMemory() && core_->HasReleases()) {
    VY_RETURN_NOT_OK(core_->FlushReleases());
    answered = core_->RequestWithFds(WriteCreateBuffersRequest(s), "fds");
  }
  VY_ASSIGN_OR_RETURN(json reply, std::move(answered));
  std::vector<int> fds;
  VY_ASSIGN_OR_RETURN(std::vector<Payload> ps, ReadCreateBuffersReply(reply, &fds));
  std::vector<std::unique_ptr<BlobWriter>> writers;
  for (const auto& p : ps) {
    VY_ASSIGN_OR_RETURN(auto w, core_->MakeWriter(p));
    writers.push_back(std::move(w));
  }
  return writers;
}

Result<std::vector<std::shared_ptr<Blob>>> Client::GetBlobs(const std::vector<ObjectID>& ids,
                                                           bool unsafe) {
  GetBuffersRequest r{ids, unsafe};
  auto answered = core_->RequestWithFds(WriteGetBuffersRequest(r), "fds");
  if (answered.status().IsNotEnoughMemory() && core_->HasReleases()) {
    // A spilled blob is loaded back into memory that blobs this client let go
    // of may still hold: give them back, retry.
    VY_RETURN_NOT_OK(core_->FlushReleases());
    answered = core_->RequestWithFds(WriteGetBuffersRequest(r), "fds");
  }
  VY_ASSIGN_OR_RETURN(json reply, std::move(answered));
  std::vector<int> fds;
  VY_ASSIGN_OR_RETURN(std::vector<Payload> ps, ReadGetBuffersReply(reply, &fds));
  std::vector<std::shared_ptr<Blob>> blobs;
  for (const auto& p : ps) {
    VY_ASSIGN_OR_RETURN(auto b, core_->MakeBlob(p));
    blobs.push_back(std::move(b));
  }
  return blobs;
}

Result<std::shared_ptr<Blob>> Client::GetBlob(ObjectID id, bool unsafe) {
  VY_ASSIGN_OR_RETURN(auto blobs, GetBlobs({id}, unsafe));
  if (blobs.size() != 1) return Status::ObjectNotExists("blob ", ObjectIDToString(id));
  return blobs[0];
}

namespace {

// The inline placeholders of `tree` ({"__vy_inline": k}), in the order met.
std::vector<json*> InlinePlaceholders(json* tree) {
  std::vector<json*> found;
  std::vector<json*> pending{tree};
  while (!pending.empty()) {
    json* n = pending.back();
    pending.pop_back();
    for (auto& [key, value] : n->items()) {
      if (!value.is_object()) continue;
      auto k = value.find(kInlineBlobKey);
      if (k != value.end()) {
        found.push_back(&value);
        continue;
      }
      pending.push_back(&value);
    }
  }
  return found;
}

json BlobMember(ObjectID id, uint64_t size, InstanceID instance) {
  return json{{meta_key::kId, ObjectIDToString(id)},
              {meta_key::kTypename, kBlobTypename},
              {meta_key::kLength, size},
              {meta_key::kNBytes, size},
              {meta_key::kInstanceId, instance}};
}

}  // namespace

Result<ObjectID> Client::Put(ObjectMeta& meta, const std::vector<BlobWriter*>& blobs,
                             bool persist, const std::string& name,
                             const std::vector<std::string_view>& inline_blobs,
                             std::vector<ObjectID>* made_out) {
  PrepareForCreate(meta);
  VyPutRequest r;
  for (BlobWriter* w : blobs) {
    if (w == nullptr) continue;
    if (w->sealed()) return Status::ObjectSealed("blob ", ObjectIDToString(w->id()),
                                                 " is already sealed");
    if (!IsEmptyBlob(w->id())) r.seal.push_back(w->id());
  }
  // The byte runs the tree refers to: small ones travel in the request, the
  // others go to blobs created for them first (one request for all).
  std::vector<json*> placeholders = InlinePlaceholders(&meta.MutableMetaData());
  std::string attachment;
  std::vector<std::unique_ptr<BlobWriter>> created;
  std::vector<std::pair<json*, uint64_t>> big;  // placeholders of runs sent as blobs
  std::map<uint64_t, uint64_t> sent;  // index in inline_blobs -> index in the request
  for (json* p : placeholders) {
    const json& k = (*p)[kInlineBlobKey];
    if (!k.is_number_unsigned() || k.get<uint64_t>() >= inline_blobs.size()) {
      return Status::Invalid("an inline blob member names byte run ", k.dump(), " of ",
                             inline_blobs.size());
    }
    const uint64_t index = k.get<uint64_t>();
    std::string_view bytes = inline_blobs[index];
    auto seen = sent.find(index);
    if (seen != sent.end()) {
      (*p)[kInlineBlobKey] = seen->second;
    } else if (whole_tree_put() && bytes.size() <= kMaxInlineBlob &&
               attachment.size() + bytes.size() <= kMaxInlineTotal) {
      sent.emplace(index, r.inline_sizes.size());
      (*p)[kInlineBlobKey] = r.inline_sizes.size();
      r.inline_sizes.push_back(bytes.size());
      attachment.append(bytes);
    } else {
      big.emplace_back(p, index);
    }
  }
  if (!big.empty()) {
    // One blob per distinct run, created in one request.
    std::map<uint64_t, size_t> slot;  // run index -> created blob
    std::vector<size_t> sizes;
    for (const auto& [p, index] : big) {
      if (slot.emplace(index, sizes.size()).second) sizes.push_back(inline_blobs[index].size());
    }
    VY_ASSIGN_OR_RETURN(created, CreateBlobs(sizes));
    for (const auto& [index, i] : slot) {
      std::string_view bytes = inline_blobs[index];
      VY_RETURN_NOT_OK(created[i]->Copy(0, bytes.data(), bytes.size()));
      if (!IsEmptyBlob(created[i]->id())) r.seal.push_back(created[i]->id());
    }
    for (const auto& [p, index] : big) {
      const auto& w = created[slot[index]];
      *p = BlobMember(w->id(), w->size(), instance_id());
    }
  }
  // The tree travels in the request and comes back into `meta` afterwards (the
  // placeholders point into it): a large tree is never copied.
  r.tree = std::move(meta.MutableMetaData());
  r.persist = persist;
  r.name = name;
  r.release = core_->TakeReleases();
  std::vector<uint64_t> inline_sizes = r.inline_sizes;
  json request = WriteVyPutRequest(std::move(r));
  auto answered = core_->Request(request, attachment);
  meta.MutableMetaData() = std::move(request["content"]);
  VY_ASSIGN_OR_RETURN(json reply, std::move(answered));
  CreatedObject c;
  std::vector<ObjectID> made_blobs, made_members;
  VY_RETURN_NOT_OK(ReadVyPutReply(reply, &c, &made_blobs, &made_members));
  for (BlobWriter* w : blobs) {
    if (w != nullptr) w->MarkSealed();
  }
  for (auto& w : created) w->MarkSealed();
  if (made_out != nullptr) {
    for (auto& w : created) {
      if (!IsEmptyBlob(w->id())) made_out->push_back(w->id());
    }
    for (const auto* ids : {&made_blobs, &made_members}) {
      for (ObjectID id : *ids) {
        if (!IsEmptyBlob(id)) made_out->push_back(id);
      }
    }
  }
  for (json* p : placeholders) {
    auto k = p->find(kInlineBlobKey);
    if (k == p->end()) continue;
    uint64_t i = k->get<uint64_t>();
    if (i < made_blobs.size()) *p = BlobMember(made_blobs[i], inline_sizes[i], instance_id());
  }
  ApplyCreated(meta, c);
  if (persist || !name.empty()) meta.MutableMetaData()[meta_key::kTransient] = false;
  return c.id;
}

Result<std::vector<ObjectMeta>> Client::Attach(json trees, const std::vector<Payload>& payloads,
                                               const std::vector<ObjectID>& order) {
  std::vector<std::pair<ObjectID, std::shared_ptr<Blob>>> blobs;
  for (const auto& p : payloads) {
    VY_ASSIGN_OR_RETURN(auto b, core_->MakeBlob(p));
    blobs.emplace_back(p.object_id, std::move(b));
  }
  std::vector<ObjectMeta> metas;
  std::map<ObjectID, size_t> first;  // an id asked twice: the same tree again
  for (ObjectID id : order) {
    auto again = first.find(id);
    if (again != first.end()) {
      metas.push_back(metas[again->second]);
      continue;
    }
    first.emplace(id, metas.size());
    auto it = trees.find(ObjectIDToString(id));
    if (it == trees.end()) {
      return Status::ObjectNotExists("object ", ObjectIDToString(id), " does not exist");
    }
    ObjectMeta meta = ObjectMeta::FromJSON(std::move(*it));
    meta.SetViewer(instance_id());
    for (const auto& [bid, blob] : blobs) meta.SetBuffer(bid, blob);
    metas.push_back(std::move(meta));
  }
  return metas;
}

Result<std::vector<ObjectMeta>> Client::GetObjects(const std::vector<ObjectID>& ids) {
  auto got = GetObjectsOnce(ids);
  if (got.status().IsObjectNotExists() && SyncMetaData().ok()) {
    // Maybe persisted elsewhere a moment ago: after the barrier it is here.
    return GetObjectsOnce(ids);
  }
  return got;
}

Result<std::vector<ObjectMeta>> Client::GetObjectsOnce(const std::vector<ObjectID>& ids) {
  VyGetRequest r;
  r.ids = ids;
  r.release = core_->TakeReleases();
  r.share_members = true;
  VY_ASSIGN_OR_RETURN(json reply, core_->RequestWithFds(WriteVyGetRequest(r), "fds"));
  json trees;
  std::vector<Payload> payloads;
  std::vector<int> fds;
  VY_RETURN_NOT_OK(ReadVyGetReply(std::move(reply), &trees, &payloads, &fds));
  VY_RETURN_NOT_OK(ResolveSharedMembers(&trees));
  return Attach(std::move(trees), payloads, ids);
}

Result<ObjectMeta> Client::GetObject(ObjectID id) {
  VY_ASSIGN_OR_RETURN(auto metas, GetObjects({id}));
  return std::move(metas[0]);
}

Status Client::FlushReleases() { return core_->FlushReleases(); }

}  // namespace vineyard
