// The request table: one entry per request type — its handler and the checks
// made before it runs. A new request type is one Register() call in its
// topic's handlers file (handlers/*.cc).
//
// Thread-safety: built once at start-up, then only read.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "server/connection.h"

namespace vineyard {

/// A handler may take parts of `request` (a large tree, moved instead of
/// copied) only once it will neither defer nor ask for a worker: a parked or
/// re-run request is read again.
using Handler = Status (*)(Connection& conn, json& request, Reply* reply);

enum HandlerFlags : unsigned {
  kNone = 0,
  kBeforeRegister = 1u << 0,  // allowed before register_request
  kIpcOnly = 1u << 1,         // needs fd passing: refused over TCP
  kSlow = 1u << 2,            // may take long (a password hash, blob bytes on the socket,
                              // a store-wide sweep): run on the worker pool, never on an
                              // event-loop thread
  kWritesThrough = 1u << 3,   // writes to the cluster (etcd): kSlow when the backend is remote
  kMaySync = 1u << 4,         // with "sync_remote": true, waits for the cluster: kSlow then
};

class Dispatcher {
 public:
  static const Dispatcher& Get();

  struct Entry {
    Handler handler;
    unsigned flags;
  };

  void Register(const char* type, Handler handler, unsigned flags = kNone);
  /// The entry of the request's type, or null (Dispatch then answers the error).
  const Entry* Find(const json& request) const;
  /// Runs the handler of the request's type after the central checks (counted and
  /// timed when the server serves metrics).
  Status Dispatch(Connection& conn, json& request, Reply* reply) const;
  /// Every request type in the table.
  std::vector<std::string> Types() const;

 private:
  std::unordered_map<std::string, Entry> table_;
};

void RegisterBlobHandlers(Dispatcher* d);
void RegisterMetaHandlers(Dispatcher* d);
void RegisterMiscHandlers(Dispatcher* d);
void RegisterRemoteHandlers(Dispatcher* d);
void RegisterStreamHandlers(Dispatcher* d);
void RegisterSpillHandlers(Dispatcher* d);

}  // namespace vineyard
