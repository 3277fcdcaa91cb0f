// Logins: the users allowed to open a session (vineyardd --htpasswd FILE), and
// the policy that keeps password guessing slow and cheap for the server.
//
// The file holds "user:hash" lines as written by `htpasswd -B` (bcrypt); the
// other crypt(3) schemes of libcrypt ($2a$/$2b$/$2y$, $5$, $6$, $y$) are
// accepted too. MD5 ($apr1$), SHA-1 ({SHA}) and plain entries are refused at
// start, since libcrypt cannot check them and they are weak anyway.
//
// A login costs the same whether the user exists or not (an unknown user is
// hashed against a dummy entry of the file's scheme and cost), so timing does
// not tell which users exist. A peer (an IP address over TCP, a uid over IPC)
// that fails kLoginFailureBurst times within kLoginFailureWindow is refused
// without hashing for a backoff that doubles with each lockout, and at most
// kMaxParallelHashes() hashes run at once server-wide.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/result.h"

namespace vineyard {

/// Failed logins from one peer within kLoginFailureWindow that lock it out.
constexpr int kLoginFailureBurst = 5;
constexpr std::chrono::seconds kLoginFailureWindow{10};
/// The first lockout; each further one doubles it, up to kLoginBackoffMax.
constexpr std::chrono::seconds kLoginBackoffInitial{10};
constexpr std::chrono::seconds kLoginBackoffMax{15 * 60};
/// How long a login may wait for a free hashing slot before it is refused.
constexpr std::chrono::seconds kLoginQueueTimeout{10};
/// Password hashes that may run at once: half the cores (at least one), so
/// logins can never occupy every core.
int kMaxParallelHashes();

/// Who is logging in, as the limiter counts it: "127.0.0.2" (TCP: the peer's
/// IP address, IPv4-mapped IPv6 shown as IPv4) or "uid 1000" (IPC: SO_PEERCRED).
Result<std::string> PeerIdentity(int socket_fd, bool is_ipc);

/// LoginLimiter: counts failed logins per peer, locks out a peer after a burst
/// of failures, and bounds the hashes running at once (per peer: no more than
/// its remaining failure budget; server-wide: max_parallel).
///
/// Thread-safety: every method may be called from any thread; Begin() may
/// block (up to queue_timeout) waiting for a hashing slot, so callers run on a
/// worker thread (the register handler is kSlow).
class LoginLimiter {
 public:
  struct Policy {
    int burst = kLoginFailureBurst;
    std::chrono::milliseconds window = kLoginFailureWindow;
    std::chrono::milliseconds backoff_initial = kLoginBackoffInitial;
    std::chrono::milliseconds backoff_max = kLoginBackoffMax;
    std::chrono::milliseconds queue_timeout = kLoginQueueTimeout;
    int max_parallel = kMaxParallelHashes();
  };

  LoginLimiter() : LoginLimiter(Policy{}) {}
  explicit LoginLimiter(Policy policy) : policy_(policy) {}

  /// Takes a hashing slot for one attempt of `peer`, or refuses at once with
  /// ConnectionFailed ("too many failed logins from <peer>: retry in N s") if
  /// the peer is locked out. Every OK must be followed by one End().
  Status Begin(const std::string& peer);
  /// Gives the slot back and records the outcome.
  void End(const std::string& peer, bool success);
  /// Peers tracked (for tests: entries are forgotten once they carry no state).
  size_t tracked() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct PeerState {
    std::deque<Clock::time_point> failures;  // within the window, oldest first
    int in_flight = 0;                       // attempts holding a hashing slot
    int lockouts = 0;                        // consecutive lockouts: the backoff exponent
    Clock::time_point locked_until{};        // refused without hashing until then
    Clock::time_point last_failure{};        // lockouts are forgiven after a quiet backoff_max
  };
  void Forget(const std::string& peer, Clock::time_point now);  // drops a stateless entry

  const Policy policy_;
  mutable std::mutex mu_;
  std::condition_variable slot_freed_;
  int hashing_ = 0;                                     // guarded by mu_
  std::unordered_map<std::string, PeerState> peers_;    // guarded by mu_
};

/// Htpasswd: the users of the --htpasswd file and the login policy over them.
///
/// Thread-safety: loaded once; Verify() and Login() are const and may be
/// called from any thread (crypt_r; the limiter has its own lock).
class Htpasswd {
 public:
  /// Reads and checks the file; errors name the line and what to do.
  static Result<Htpasswd> Load(const std::string& path);

  /// True if `user` is listed and `password` matches its hash. Costs one hash
  /// of the file's scheme and cost whether or not `user` is listed.
  bool Verify(const std::string& user, const std::string& password) const;
  /// Checks one login from `peer` under the limiter: OK, or ConnectionFailed
  /// with what the user should do. May block waiting for a hashing slot.
  Status Login(const std::string& peer, const std::string& user,
               const std::string& password) const;
  size_t size() const { return users_.size(); }

 private:
  std::map<std::string, std::string> users_;  // user -> crypt(3) hash
  std::string dummy_;  // hashed against for unknown users: same scheme and cost
  std::unique_ptr<LoginLimiter> limiter_ = std::make_unique<LoginLimiter>();
};

}  // namespace vineyard
