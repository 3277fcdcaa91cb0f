#include "server/migration.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <functional>
#include <vector>

#include <spdlog/spdlog.h>

#include "client/rpc_client.h"
#include "common/socket_io.h"
#include "server/server_context.h"

namespace vineyard {

namespace {

// MADV_POPULATE_WRITE (Linux 5.14); older kernels refuse it, harmlessly.
constexpr int kPopulateWrite = 23;
constexpr uint64_t kPrefaultAtLeast = 16ULL << 20;

// Faults in [address, address + size) in steps, from the front (where recv()
// writes first).
void PrefaultAhead(uintptr_t address, uint64_t size) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t step = 8ULL << 20;
  uintptr_t begin = (address + page - 1) & ~(page - 1);
  const uintptr_t end = (address + size) & ~(page - 1);
  while (begin < end) {
    uintptr_t stop = std::min(begin + step, end);
    if (madvise(reinterpret_cast<void*>(begin), stop - begin, kPopulateWrite) != 0) return;
    begin = stop;
  }
}

}  // namespace

Result<ObjectID> Migrator::Migrate(ObjectID id) {
  if (IsBlob(id)) {
    return Status::Invalid("cannot migrate blob ", ObjectIDToString(id),
                           " alone: migrate an object that holds it");
  }
  std::promise<Result<ObjectID>> promise;
  std::shared_future<Result<ObjectID>> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto copy = copies_.find(id);
    if (copy != copies_.end()) {
      if (ctx_->meta->Exists(copy->second)) return copy->second;
      copies_.erase(copy);
    }
    auto r = running_.find(id);
    if (r != running_.end()) {
      running = r->second;
    } else {
      running_[id] = promise.get_future().share();
    }
  }
  if (running.valid()) return running.get();  // another request is migrating it
  Result<ObjectID> result = MigrateOnce(id);
  if (!result.ok()) {
    failed_.fetch_add(1, std::memory_order_relaxed);
  } else if (*result != id) {
    migrated_.fetch_add(1, std::memory_order_relaxed);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(id);
    if (result.ok() && *result != id) copies_[id] = *result;
  }
  promise.set_value(result);
  return result;
}

Result<ObjectID> Migrator::MigrateOnce(ObjectID id) {
  ServerContext& ctx = *ctx_;
  VY_ASSIGN_OR_RETURN(json trees, ctx.meta->Get({id}));
  // A global object is copied whole: every member brought here, the copy local.
  const json& tree = trees[ObjectIDToString(id)];
  auto remote = BlobsByOwner(tree, ctx.instance_id);
  remote.erase(ctx.instance_id);
  for (auto it = remote.begin(); it != remote.end();) {
    auto& ids = it->second;
    ids.erase(std::remove_if(ids.begin(), ids.end(), IsEmptyBlob), ids.end());
    it = ids.empty() ? remote.erase(it) : std::next(it);
  }
  if (remote.empty()) return id;  // every blob is here already

  VY_ASSIGN_OR_RETURN(json cluster, ctx.backend->ClusterMeta());
  const auto started = std::chrono::steady_clock::now();
  uint64_t fetched_bytes = 0;
  // Blobs received straight into the store, owned by this migration until the
  // rebuilt tree adopts them.
  static std::atomic<uint64_t> serial{uint64_t{1} << 62};
  const BulkStore::Owner owner = serial.fetch_add(1);
  std::map<ObjectID, ObjectID> new_blobs;  // remote id -> local id
  std::vector<ObjectID> created_blobs;
  std::vector<ObjectID> created_objects;
  auto undo = [&]() {
    if (!created_objects.empty()) {
      DeleteRequest del;
      del.ids = created_objects;
      del.deep = false;
      del.force = true;
      std::vector<ObjectID> unused;
      (void)ctx.meta->Delete(del, &unused);
    }
    for (ObjectID b : created_blobs) {
      if (ctx.store->IsSealed(b)) {
        (void)ctx.store->Delete(b);
      } else {
        (void)ctx.store->Abort(b, owner);
      }
    }
  };

  for (const auto& [instance, ids] : remote) {
    auto entry = cluster.find("i" + std::to_string(instance));
    if (entry == cluster.end() || !entry->contains("rpc_endpoint")) {
      undo();
      return Status::ObjectNotExists("cannot migrate ", ObjectIDToString(id), ": instance ",
                                     instance, ", which holds its blobs, is not in the cluster");
    }
    std::string endpoint = (*entry)["rpc_endpoint"].get<std::string>();
    auto client = RPCClient::Connect(endpoint);
    if (!client.ok()) {
      undo();
      return Status::IOError("cannot migrate ", ObjectIDToString(id), ": instance ", instance,
                             " at ", endpoint, " cannot be reached: ",
                             client.status().message());
    }
    (*client)->set_compression(ctx.migration_compression);
    (*client)->set_io_timeout(ctx.limits.io_timeout_s * 1000);
    static char empty_target;
    std::vector<std::thread> prefault;
    auto place = [&](ObjectID remote_id, uint64_t size) -> Result<void*> {
      if (size == 0) {
        new_blobs[remote_id] = kEmptyBlobID;
        return static_cast<void*>(&empty_target);
      }
      VY_ASSIGN_OR_RETURN(Payload p, ctx.store->Create(size, owner));
      fetched_bytes += size;
      created_blobs.push_back(p.object_id);
      new_blobs[remote_id] = p.object_id;
      // Fresh shared memory costs a page fault per page: a helper faults it in
      // ahead of recv(), so the faults overlap the transfer.
      if (size >= kPrefaultAtLeast) prefault.emplace_back(PrefaultAhead, p.pointer, size);
      return reinterpret_cast<void*>(p.pointer);
    };
    Status fetched = (*client)->FetchRemoteBlobs(ids, place);
    for (auto& t : prefault) t.join();
    prefault.clear();
    (void)(*client)->Disconnect();
    if (!fetched.ok()) {
      undo();
      return fetched.WithContext("migrating " + ObjectIDToString(id) + " from instance " +
                                 std::to_string(instance) + " at " + endpoint);
    }
  }
  for (ObjectID b : created_blobs) {
    Status sealed = ctx.store->Seal(b, owner);
    if (!sealed.ok()) {
      undo();
      return sealed;
    }
    ctx.store->Release(b);  // the sealer's reference: the tree holds the blob now
  }

  // The tree again, bottom-up, with local blob ids; a member shared by several
  // holders is rebuilt once.
  std::map<ObjectID, json> rebuilt;
  std::function<Result<json>(const json&)> rebuild = [&](const json& node) -> Result<json> {
    VY_ASSIGN_OR_RETURN(ObjectID old, ObjectIDFromString(node.value(meta_key::kId, "")));
    std::string type_name = node.value(meta_key::kTypename, "");
    if (type_name == kBlobTypename) {
      auto moved = new_blobs.find(old);
      ObjectID local = moved == new_blobs.end() ? old : moved->second;
      return json{{meta_key::kId, ObjectIDToString(local)},
                  {meta_key::kTypename, kBlobTypename},
                  {meta_key::kInstanceId, ctx.instance_id}};
    }
    auto done = rebuilt.find(old);
    if (done != rebuilt.end()) return done->second;
    json copy = json::object();
    for (const auto& [key, value] : node.items()) {
      if (value.is_object()) {
        VY_ASSIGN_OR_RETURN(copy[key], rebuild(value));
      } else if (key != meta_key::kId) {
        copy[key] = value;
      }
    }
    copy[meta_key::kInstanceId] = ctx.instance_id;
    copy[meta_key::kGlobal] = false;
    VY_ASSIGN_OR_RETURN(CreatedObject created, ctx.meta->Create(copy));
    created_objects.push_back(created.id);
    json ref = {{meta_key::kId, ObjectIDToString(created.id)},
                {meta_key::kTypename, type_name},
                {meta_key::kInstanceId, ctx.instance_id}};
    rebuilt[old] = ref;
    return ref;
  };
  auto root = rebuild(tree);
  if (!root.ok()) {
    undo();
    return root.status();
  }
  ObjectID local = created_objects.back();
  Status persisted = ctx.meta->Persist(local);
  if (!persisted.ok()) {
    // Usable here all the same; the others learn of it when it is persisted.
    spdlog::warn("migrated {} to {} but could not persist it: {}", ObjectIDToString(id),
                 ObjectIDToString(local), persisted.message());
  }
  bytes_.fetch_add(fetched_bytes, std::memory_order_relaxed);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                       .count();
  spdlog::info("migrated {} to {}: {} blobs, {} in {:.3f} s", ObjectIDToString(id),
               ObjectIDToString(local), created_blobs.size(), FormatBytes(fetched_bytes),
               seconds);
  return local;
}

}  // namespace vineyard
