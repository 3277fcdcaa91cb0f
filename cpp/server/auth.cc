#include "server/auth.h"

#include <crypt.h>

#include <fstream>
#include <memory>

namespace vineyard {

namespace {

bool SupportedScheme(const std::string& hash) {
  for (const char* prefix : {"$2a$", "$2b$", "$2y$", "$5$", "$6$", "$y$"}) {
    if (hash.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// Compares without an early exit, so timing says nothing about the hash.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

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
  return h;
}

bool Htpasswd::Verify(const std::string& user, const std::string& password) const {
  auto it = users_.find(user);
  if (it == users_.end()) return false;
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on the stack
  const char* hashed = crypt_r(password.c_str(), it->second.c_str(), data.get());
  return hashed != nullptr && hashed[0] != '*' && ConstantTimeEquals(hashed, it->second);
}

}  // namespace vineyard
