// Migrator: copies another instance's object to this one (migrate_object_request,
// and the client's get(..., fetch=True)).
//
// The object's tree comes from the cluster's metadata; its blobs come from
// their owners over the RPC port (get_remote_buffers; zstd with
// --migration_compression when the source offers it), received straight into this instance's shared memory; then the
// tree is rebuilt bottom-up with the new blob ids, created and persisted here.
// A global object is copied whole, as a local object whose members are all here.
// Concurrent migrations of one object run once (the others wait for it), and
// a migrated object is remembered: migrating it again returns the same copy
// while that copy exists. A migration that fails (the source killed midway,
// say) leaves nothing behind.
//
// Thread-safety: Migrate() is thread-safe and blocks (run it on a worker).
#pragma once

#include <atomic>
#include <future>
#include <map>
#include <mutex>

#include "common/ids.h"
#include "common/result.h"

namespace vineyard {

struct ServerContext;

class Migrator {
 public:
  explicit Migrator(ServerContext* ctx) : ctx_(ctx) {}

  /// The local copy of `id` (or `id` itself when all its blobs are here).
  Result<ObjectID> Migrate(ObjectID id);

  /// Counters since start, for the metrics: objects copied here, migrations that
  /// failed, and blob bytes received.
  uint64_t migrated() const { return migrated_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  uint64_t bytes_received() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  Result<ObjectID> MigrateOnce(ObjectID id);

  ServerContext* const ctx_;
  std::mutex mu_;
  std::map<ObjectID, std::shared_future<Result<ObjectID>>> running_;  // guarded by mu_
  std::map<ObjectID, ObjectID> copies_;  // guarded by mu_: source -> local copy
  std::atomic<uint64_t> migrated_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace vineyard
