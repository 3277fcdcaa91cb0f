#include "server/auth.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

namespace vineyard {

namespace {

bool SupportedScheme(const std::string& hash) {
  for (const char* prefix : {"$2a$", "$2b$", "$2y$", "$5$", "$6$", "$y$"}) {
    if (hash.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// What decides a hash's cost: its scheme and parameters, without salt and digest
// ("$2y$05$", "$6$rounds=5000$", "$y$j9T$").
std::string CostKey(const std::string& hash) {
  int strip = hash.rfind("$2", 0) == 0 ? 1 : 2;  // bcrypt: salt and digest are one field
  size_t end = hash.size();
  for (int i = 0; i < strip && end != std::string::npos && end > 0; ++i) {
    end = hash.rfind('$', end - 1);
  }
  return end == std::string::npos ? hash : hash.substr(0, end + 1);
}

// Compares without an early exit, so timing says nothing about the hash.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// crypt_r of `password` with `setting` (a full hash works: its salt and cost are used).
std::string Crypt(const std::string& password, const std::string& setting) {
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on the stack
  const char* hashed = crypt_r(password.c_str(), setting.c_str(), data.get());
  return hashed != nullptr && hashed[0] != '*' ? std::string(hashed) : std::string();
}

std::string RandomPassword() {
  std::random_device rd;
  std::string out(24, '\0');
  for (char& c : out) c = static_cast<char>('a' + rd() % 26);
  return out;
}

}  // namespace

int kMaxParallelHashes() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));
}

Result<std::string> PeerIdentity(int socket_fd, bool is_ipc) {
  if (is_ipc) {
    struct ucred cred {};
    socklen_t len = sizeof(cred);
    if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      return Status::IOError("getsockopt(SO_PEERCRED): ", strerror(errno));
    }
    return "uid " + std::to_string(cred.uid);
  }
  struct sockaddr_storage addr {};
  socklen_t len = sizeof(addr);
  if (getpeername(socket_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Status::IOError("getpeername: ", strerror(errno));
  }
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof(text));
    return std::string(text);
  }
  if (addr.ss_family == AF_INET6) {
    in6_addr a = reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      inet_ntop(AF_INET, &a.s6_addr[12], text, sizeof(text));
      return std::string(text);
    }
    // One IPv6 host usually owns a whole /64: count the prefix, not the address.
    std::fill(a.s6_addr + 8, a.s6_addr + 16, 0);
    inet_ntop(AF_INET6, &a, text, sizeof(text));
    return std::string(text) + "/64";
  }
  return Status::Invalid("unknown address family ", addr.ss_family);
}

// --- LoginLimiter --------------------------------------------------------------------

Status LoginLimiter::Begin(const std::string& peer) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = Clock::now() + policy_.queue_timeout;
  while (true) {
    const auto now = Clock::now();
    PeerState& p = peers_[peer];  // looked up again after each wait: others may erase it
    while (!p.failures.empty() && p.failures.front() <= now - policy_.window) {
      p.failures.pop_front();
    }
    if (now < p.locked_until) {
      auto left = std::chrono::ceil<std::chrono::seconds>(p.locked_until - now).count();
      return Status::ConnectionFailed("too many failed logins from ", peer, ": retry in ",
                                      left, " s");
    }
    // A peer may have no more hashes running than failures it has left before a lockout.
    if (static_cast<int>(p.failures.size()) + p.in_flight < policy_.burst &&
        hashing_ < policy_.max_parallel) {
      ++p.in_flight;
      ++hashing_;
      return Status::OK();
    }
    if (slot_freed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      Forget(peer, Clock::now());
      return Status::ConnectionFailed("the server is busy checking other logins (",
                                      policy_.max_parallel, " at a time): retry in a few "
                                      "seconds");
    }
  }
}

void LoginLimiter::End(const std::string& peer, bool success) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  PeerState& p = peers_[peer];
  --p.in_flight;
  --hashing_;
  if (!success) {
    if (p.lockouts > 0 && now - p.last_failure > policy_.backoff_max) p.lockouts = 0;
    p.last_failure = now;
    p.failures.push_back(now);
    if (static_cast<int>(p.failures.size()) >= policy_.burst) {
      // 10 s, 20 s, 40 s, ... up to the cap.
      auto backoff = policy_.backoff_initial * (int64_t{1} << std::min(p.lockouts, 20));
      backoff = std::min(backoff, policy_.backoff_max);
      ++p.lockouts;
      p.locked_until = now + backoff;
      p.failures.clear();
      spdlog::warn("login: {} failed logins from {}: refusing it for {} s", policy_.burst,
                   peer, std::chrono::ceil<std::chrono::seconds>(backoff).count());
    }
  }
  Forget(peer, now);
  if (peers_.size() > 4096) {  // many peers: drop every entry that carries nothing
    for (auto it = peers_.begin(); it != peers_.end();) {
      const PeerState& q = it->second;
      bool stale = q.in_flight == 0 && q.locked_until <= now &&
                   (q.failures.empty() || q.failures.back() <= now - policy_.window) &&
                   (q.lockouts == 0 || now - q.last_failure > policy_.backoff_max);
      it = stale ? peers_.erase(it) : std::next(it);
    }
  }
  slot_freed_.notify_all();
}

void LoginLimiter::Forget(const std::string& peer, Clock::time_point now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  const PeerState& p = it->second;
  if (p.in_flight == 0 && p.failures.empty() && p.locked_until <= now &&
      (p.lockouts == 0 || now - p.last_failure > policy_.backoff_max)) {
    peers_.erase(it);
  }
}

size_t LoginLimiter::tracked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peers_.size();
}

// --- Htpasswd ------------------------------------------------------------------------

Result<Htpasswd> Htpasswd::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IOError("cannot read the htpasswd file '", path, "'");
  Htpasswd h;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      return Status::Invalid(path, ":", number, ": expected 'user:hash'");
    }
    std::string user = line.substr(0, colon), hash = line.substr(colon + 1);
    if (!SupportedScheme(hash)) {
      return Status::Invalid(path, ":", number, ": the entry of '", user,
                             "' is not a bcrypt/SHA-crypt hash; write it with `htpasswd -B`");
    }
    h.users_[user] = hash;
  }
  if (h.users_.empty()) return Status::Invalid("the htpasswd file '", path, "' lists no user");
  // The dummy takes the most common scheme and cost of the file, so that an unknown
  // user costs what a wrong password of a typical user costs.
  std::map<std::string, int> costs;
  for (const auto& [user, hash] : h.users_) ++costs[CostKey(hash)];
  auto common = std::max_element(costs.begin(), costs.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
  for (const auto& [user, hash] : h.users_) {
    if (CostKey(hash) == common->first) {
      h.dummy_ = Crypt(RandomPassword(), hash);
      break;
    }
  }
  if (h.dummy_.empty()) {
    return Status::Invalid(path, ": libcrypt cannot hash with the scheme '", common->first,
                           "'; write the entries with `htpasswd -B`");
  }
  return h;
}

bool Htpasswd::Verify(const std::string& user, const std::string& password) const {
  auto it = users_.find(user);
  if (it == users_.end()) {
    (void)Crypt(password, dummy_);  // the same work as a known user: timing tells nothing
    return false;
  }
  std::string hashed = Crypt(password, it->second);
  return !hashed.empty() && ConstantTimeEquals(hashed, it->second);
}

Status Htpasswd::Login(const std::string& peer, const std::string& user,
                       const std::string& password) const {
  if (user.empty()) {
    return Status::ConnectionFailed(
        "this vineyardd requires a username and password (--htpasswd): "
        "pass username= and password= when connecting");
  }
  VY_RETURN_NOT_OK(limiter_->Begin(peer));
  bool ok = Verify(user, password);
  limiter_->End(peer, ok);
  if (!ok) return Status::ConnectionFailed("authentication failed: wrong username or password");
  return Status::OK();
}

}  // namespace vineyard
