// Htpasswd: the users allowed to open a session (vineyardd --htpasswd FILE).
//
// The file holds "user:hash" lines as written by `htpasswd -B` (bcrypt); the
// other crypt(3) schemes of libcrypt ($2a$/$2b$/$2y$, $5$, $6$, $y$) are
// accepted too. MD5 ($apr1$), SHA-1 ({SHA}) and plain entries are refused at
// start, since libcrypt cannot check them and they are weak anyway.
//
// Thread-safety: loaded once; Verify() is const and reentrant (crypt_r).
#pragma once

#include <map>
#include <string>

#include "common/result.h"

namespace vineyard {

class Htpasswd {
 public:
  /// Reads and checks the file; errors name the line and what to do.
  static Result<Htpasswd> Load(const std::string& path);

  /// True if `user` is listed and `password` matches its hash.
  bool Verify(const std::string& user, const std::string& password) const;
  size_t size() const { return users_.size(); }

 private:
  std::map<std::string, std::string> users_;  // user -> crypt(3) hash
};

}  // namespace vineyard
