// The fuzzer's corpus: one valid request of every type the protocol knows
// (PROTOCOL.md and common/protocol.h), built with the protocol module's own
// Write* functions so the corpus cannot drift from what clients send.
//
// Thread-safety: plain functions over values; safe from any thread.
#pragma once

#include <string>
#include <vector>

#include "common/protocol.h"

namespace vineyard::fuzz {

/// Ids of live objects the corpus refers to, so that valid requests reach the
/// handlers' real paths (and mutations can swap one kind of id for another).
struct LiveIds {
  ObjectID blob = kEmptyBlobID;       // a sealed blob
  ObjectID object = kEmptyBlobID;     // an object holding `blob`, persisted
  std::string name = "fuzz-name";     // a name of `object`
  InstanceID instance = 0;
  uint64_t signature = 0;
};

/// One valid request per type: the published ones, our fused ones, and the
/// stream requests of PROTOCOL.md (answered as unknown types if not served).
std::vector<json> Corpus(const LiveIds& ids);

}  // namespace vineyard::fuzz
