// Object identifiers: 64-bit ids for objects, blobs, signatures and sessions.
//
// Blob ids have the top bit set, object ids and signatures do not; the empty
// blob is 0x8000000000000000. Text forms: "o%016x" for objects and blobs,
// "s%016x" for signatures, "S%016x" for sessions.
//
// Ids are made by the server only (IdGenerator), in a time-ordered layout:
//   [63] blob flag | [62..22] milliseconds since 2020 | [21..12] instance | [11..0] sequence
// which keeps them unique per instance and across instances of one cluster.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "common/result.h"

namespace vineyard {

using ObjectID = uint64_t;
using Signature = uint64_t;
using InstanceID = uint64_t;
using SessionID = int64_t;

constexpr ObjectID kBlobBit = 0x8000000000000000ULL;
constexpr ObjectID kEmptyBlobID = 0x8000000000000000ULL;
constexpr ObjectID kInvalidObjectID = 0xFFFFFFFFFFFFFFFFULL;
constexpr SessionID kRootSessionID = 0;

inline bool IsBlob(ObjectID id) { return (id & kBlobBit) != 0; }
inline bool IsEmptyBlob(ObjectID id) { return id == kEmptyBlobID; }

/// "o" followed by 16 lowercase hex digits.
std::string ObjectIDToString(ObjectID id);
/// Parses "o…" (or bare hex / decimal digits, as some clients send); rejects anything else.
Result<ObjectID> ObjectIDFromString(const std::string& text);
std::string SignatureToString(Signature sig);
std::string SessionIDToString(SessionID id);

/// Generates unique, time-ordered ids for one instance.
/// Thread-safety: all methods may be called concurrently.
class IdGenerator {
 public:
  explicit IdGenerator(InstanceID instance_id) : instance_(instance_id & 0x3FF) {}

  ObjectID NextObjectID() { return Next() & ~kBlobBit; }
  ObjectID NextBlobID() { return Next() | kBlobBit; }
  Signature NextSignature() { return Next() & ~kBlobBit; }

 private:
  uint64_t Next();

  const uint64_t instance_;
  std::mutex mu_;
  uint64_t last_ms_ = 0;   // guarded by mu_
  uint64_t sequence_ = 0;  // guarded by mu_
};

}  // namespace vineyard
