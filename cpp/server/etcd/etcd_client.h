// EtcdClient: etcd v3 for the cluster metadata backend, spoken through etcd's
// JSON gateway (HTTP/1.1 POST /v3/..., libcurl + nlohmann::json).
//
// Why the gateway: it is part of every etcd 3.4 server (Debian's etcd-server
// included), so the server needs no gRPC/protobuf toolchain. Keys and values
// travel base64-encoded and are binary-safe; int64 fields come back as JSON
// strings. See docs/architecture.md, "The etcd client".
//
// Every call:
//   - is bounded by the client's timeout (Lock may be given a longer wait);
//   - tries the endpoints in order, starting with the last one that answered,
//     and moves to the next one when it cannot connect (a request that was
//     sent is never replayed elsewhere: a conditional txn must not run twice);
//   - fails with Status::EtcdError naming the endpoint(s) tried and the last
//     error, or the error etcd answered with.
//
// Every call blocks the calling thread (up to its deadline): call it from a
// worker thread (a kSlow handler) or the backend's own threads, never from an
// event loop.
//
// Thread-safety: an EtcdClient is safe to use from any number of threads at
// once (each call takes its own libcurl handle from a small pool). A Watcher
// and a LeaseKeeper each run one background thread of their own and call
// their callbacks on it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace vineyard::etcd {

/// etcd refuses a transaction of more than 128 operations by default
/// (--max-txn-ops); Commit() splits batches into transactions of at most this many.
inline constexpr size_t kMaxTxnOps = 127;

/// One key as etcd stores it.
struct KeyValue {
  std::string key;    ///< raw bytes
  std::string value;  ///< raw bytes (empty for a delete event)
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;  ///< 0: no lease
};

/// Get(): the key if it exists, and the store revision the read saw.
struct GetResult {
  std::optional<KeyValue> kv;
  int64_t revision = 0;
};

/// Range(): the keys under a prefix in key order, and the store revision the
/// read saw (watch from revision + 1 to follow what comes after).
struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;
};

/// One operation of a transaction.
struct Op {
  enum class Type { kPut, kDelete, kDeletePrefix, kGet, kRange };
  Type type = Type::kPut;
  std::string key;    ///< the key, or the prefix for kDeletePrefix / kRange
  std::string value;  ///< kPut only
  int64_t lease = 0;  ///< kPut only; 0: no lease

  static Op Put(std::string key, std::string value, int64_t lease = 0);
  static Op Delete(std::string key);
  static Op DeletePrefix(std::string prefix);
  static Op Get(std::string key);
  static Op Range(std::string prefix);
};

/// One condition of a transaction, e.g. Compare::Missing("k") or
/// Compare::Value("k", Compare::Op::kEqual, "v").
struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Op { kEqual, kNotEqual, kGreater, kLess };
  std::string key;
  Target target = Target::kVersion;
  Op op = Op::kEqual;
  int64_t number = 0;  ///< for kVersion, kCreateRevision, kModRevision
  std::string value;   ///< for kValue

  static Compare Version(std::string key, Op op, int64_t version);
  static Compare CreateRevision(std::string key, Op op, int64_t revision);
  static Compare ModRevision(std::string key, Op op, int64_t revision);
  static Compare Value(std::string key, Op op, std::string value);
  /// The key does not exist (its create revision is 0).
  static Compare Missing(std::string key);
};

/// Txn(): which branch ran, the revision after it, and for each operation of
/// that branch the keys it read (empty for puts and deletes).
struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
  std::vector<std::vector<KeyValue>> reads;
};

/// One change seen by a watch.
struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  ///< for a delete: key and mod_revision only
};

/// Called with the events of one watch response, in revision order, and the
/// mod_revision of the last of them (everything up to it has been delivered;
/// resume a watch from revision + 1).
using WatchCallback = std::function<void(const std::vector<Event>& events, int64_t revision)>;
/// Called once when a watch ends other than by Stop(): its start revision was
/// compacted, or the stream broke. Re-list, then watch again from the listing's
/// revision + 1.
using WatchErrorCallback = std::function<void(const Status& status)>;
/// Called once when a LeaseKeeper loses its lease.
using LeaseLostCallback = std::function<void(const Status& status)>;

class Watcher;

/// A connection to an etcd cluster. Create() it once and share it.
class EtcdClient : public std::enable_shared_from_this<EtcdClient> {
 public:
  /// \param endpoints comma-separated base URLs, "http://a:2379,http://b:2379".
  /// \param timeout the bound on every call.
  /// \return Invalid for an empty or malformed endpoint list. Does not contact
  ///   etcd (a cluster that is down now may be up at the first call).
  static Result<std::shared_ptr<EtcdClient>> Create(
      const std::string& endpoints,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~EtcdClient();

  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // --- keys -------------------------------------------------------------------
  Result<GetResult> Get(const std::string& key);
  /// Every key starting with `prefix` ("" means every key).
  Result<RangeResult> Range(const std::string& prefix);
  /// \return the revision of the put.
  Result<int64_t> Put(const std::string& key, const std::string& value, int64_t lease = 0);
  /// \return how many keys were deleted (0 or 1).
  Result<int64_t> Delete(const std::string& key);
  /// \return how many keys were deleted.
  Result<int64_t> DeletePrefix(const std::string& prefix);
  /// One atomic transaction: if every compare holds, `success` runs, else
  /// `failure`. At most 128 operations per branch (etcd's default limit).
  Result<TxnResult> Txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure = {});
  /// Applies `ops` unconditionally in transactions of at most kMaxTxnOps each,
  /// in order. Each transaction is atomic; the batch as a whole is not: on an
  /// error, the transactions before it stay applied.
  /// \return the revision after the last transaction (the current revision if
  ///   `ops` is empty).
  Result<int64_t> Commit(const std::vector<Op>& ops);
  /// The cluster's current revision.
  Result<int64_t> Revision();
  /// Discards the history before `revision`: a watch starting earlier then
  /// ends as compacted.
  Status Compact(int64_t revision);

  // --- leases -------------------------------------------------------------------
  /// \return the new lease's id.
  Result<int64_t> Grant(int64_t ttl_seconds);
  /// Refreshes a lease once.
  /// \return its TTL in seconds, or 0 when the lease no longer exists (expired
  ///   or revoked): that is an answer, not an error.
  Result<int64_t> KeepAliveOnce(int64_t lease);
  /// Revokes a lease, deleting its keys. Revoking a lease that is gone is OK.
  Status Revoke(int64_t lease);

  // --- watch ----------------------------------------------------------------------
  /// Watches every key under `prefix` from `start_revision` (0: from now) on a
  /// background thread. Returns once etcd has created the watch, so a change
  /// made after Watch() returns is always seen.
  /// The callbacks run on the watcher's thread, one at a time; after Stop()
  /// returns, none runs.
  Result<std::unique_ptr<Watcher>> Watch(const std::string& prefix, int64_t start_revision,
                                         WatchCallback on_events,
                                         WatchErrorCallback on_error);

  // --- locks (etcd's lock service) ----------------------------------------------
  /// Waits until this holds the lock `name`, at most `wait` (default: the
  /// client's timeout). The lock is tied to `lease` (required, non-zero): it
  /// is released when the lease ends, so a holder that dies cannot keep it.
  /// \return the key that represents ownership; pass it to Unlock().
  Result<std::string> Lock(const std::string& name, int64_t lease,
                           std::optional<std::chrono::milliseconds> wait = std::nullopt);
  Status Unlock(const std::string& key);

 private:
  struct Impl;
  friend class Watcher;
  EtcdClient(std::vector<std::string> endpoints, std::chrono::milliseconds timeout);

  const std::vector<std::string> endpoints_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
};

/// A running watch (see EtcdClient::Watch). Stop() or destroy it to end the
/// watch; it stops promptly (no waiting for etcd to send anything). Stop() may
/// be called from its own callbacks.
///
/// Thread-safety: Stop() and running() may be called from any thread.
class Watcher {
 public:
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  /// Ends the watch and waits for its thread (unless called from it).
  void Stop();
  /// False once the watch has ended (stopped, compacted or broken).
  bool running() const;

 private:
  struct State;
  friend class EtcdClient;
  explicit Watcher(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

/// Keeps a lease alive from a background thread: refreshes it every ttl/3.
/// When the lease is gone (expired, revoked, or not refreshed within its TTL
/// because etcd could not be reached), it calls `on_lost` once, from its
/// thread, and stops: losing the lease is an event for the owner to handle
/// (re-register, drop the lock), not an exception.
///
/// Thread-safety: Stop() and lost() may be called from any thread, and the
/// keeper may be stopped or destroyed from `on_lost`.
class LeaseKeeper {
 public:
  LeaseKeeper(std::shared_ptr<EtcdClient> client, int64_t lease, int64_t ttl_seconds,
              LeaseLostCallback on_lost);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  int64_t lease() const { return lease_; }
  /// Stops refreshing (the lease then expires after its TTL unless revoked).
  void Stop();
  bool lost() const { return lost_.load(); }

 private:
  void Run();

  const std::shared_ptr<EtcdClient> client_;
  const int64_t lease_;
  const int64_t ttl_seconds_;
  const LeaseLostCallback on_lost_;
  std::atomic<bool> lost_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace vineyard::etcd
