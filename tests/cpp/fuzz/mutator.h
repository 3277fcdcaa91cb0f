// Mutator: turns a valid request into the bytes of one (possibly broken) frame.
//
// Mutations, picked at random from a seeded generator (the same seed gives the
// same bytes): dropped and duplicated fields, fields of another JSON type,
// extreme numbers, ids of the wrong kind, long strings, deep nesting, another
// request's type, huge id lists; and on the frame itself: random bytes,
// truncated frames, wrong length prefixes, invalid UTF-8, trailing garbage,
// bit flips.
//
// Thread-safety: none; one Mutator per thread.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fuzz/corpus.h"

namespace vineyard::fuzz {

/// One frame to send: the 8-byte length prefix and the body, as raw bytes.
struct Frame {
  std::string bytes;
  /// The server may legitimately wait for more bytes (truncated frame, length
  /// prefix larger than the body, a request that waits): do not wait long.
  bool may_stall = false;
  /// What was done, for the report ("drop_field+long_string", ...).
  std::string what;
};

/// Builds a frame: the 8-byte little-endian length followed by `body`.
std::string MakeFrame(const std::string& body);

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  /// A mutated frame derived from `msg`; `ids` supplies ids of every kind.
  Frame Mutate(const json& msg, const LiveIds& ids);
  /// Random bytes as a frame body (e.g. garbage sent before register).
  Frame Garbage();

  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

 private:
  json RandomValue(const LiveIds& ids, int depth = 0);
  json InterestingNumber();
  json WrongId(const LiveIds& ids);
  std::string RandomString(size_t n);
  void MutateJson(json* msg, const LiveIds& ids, std::string* what);
  void MutateText(std::string* body, Frame* frame);

  void MutatePattern(json* msg, std::string* what);

  std::mt19937_64 rng_;
};

}  // namespace vineyard::fuzz
