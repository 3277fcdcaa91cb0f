#include "common/ids.h"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

namespace vineyard {

namespace {
std::string Hex16(char prefix, uint64_t v) {
  char buf[20];
  snprintf(buf, sizeof(buf), "%c%016" PRIx64, prefix, v);
  return buf;
}
}  // namespace

std::string ObjectIDToString(ObjectID id) { return Hex16('o', id); }
std::string SignatureToString(Signature sig) { return Hex16('s', sig); }
std::string SessionIDToString(SessionID id) { return Hex16('S', static_cast<uint64_t>(id)); }

Result<ObjectID> ObjectIDFromString(const std::string& text) {
  if (text.empty() || text.size() > 20) {
    return Status::Invalid("malformed object id '", text, "': expected 'o' and 16 hex digits");
  }
  const char* begin = text.c_str();
  int base = 10;
  if (text[0] == 'o' || text[0] == 's') {
    ++begin;
    base = 16;
  }
  // Digits only: strtoull alone would skip spaces and accept signs and "0x".
  const char* stop = text.c_str() + text.size();
  bool digits = begin != stop;
  for (const char* c = begin; c != stop; ++c) {
    if (!(base == 16 ? isxdigit(static_cast<unsigned char>(*c))
                     : isdigit(static_cast<unsigned char>(*c)))) {
      digits = false;
    }
  }
  if (!digits) {
    return Status::Invalid("malformed object id '", text, "': expected 'o' and 16 hex digits");
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(begin, &end, base);
  if (errno != 0 || end == nullptr || *end != '\0' || *begin == '-' || *begin == '+') {
    return Status::Invalid("malformed object id '", text, "': expected 'o' and 16 hex digits");
  }
  return static_cast<ObjectID>(v);
}

uint64_t IdGenerator::Next() {
  using namespace std::chrono;
  constexpr uint64_t kEpochMs = 1577836800000ULL;  // 2020-01-01
  uint64_t now = static_cast<uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()) - kEpochMs;
  std::lock_guard<std::mutex> lock(mu_);
  if (now > last_ms_) {
    last_ms_ = now;
    sequence_ = 0;
  } else if (++sequence_ > 0xFFF) {
    // Over 4096 ids in one millisecond: borrow from the next one.
    ++last_ms_;
    sequence_ = 0;
  }
  return ((last_ms_ & 0x1FFFFFFFFFFULL) << 22) | (instance_ << 12) | sequence_;
}

}  // namespace vineyard
