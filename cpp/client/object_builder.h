// ObjectBuilder: what makes one vineyard object — a BlobWriter, an
// ArrayBuilder<T> — fills it in this process, then Seal()s it: its blobs are
// sealed, its metadata created, and the builder can change nothing after.
//
// Thread-safety: a builder is used by one thread at a time.
#pragma once

#include "common/ids.h"
#include "common/result.h"

namespace vineyard {

class Client;

class ObjectBuilder {
 public:
  virtual ~ObjectBuilder() = default;

  /// True once sealed (or dropped): the object can no longer change.
  virtual bool sealed() const = 0;
  /// Makes the object through `client` (the session the builder's blobs were
  /// created in) and returns its id; ObjectSealed if already sealed.
  virtual Result<ObjectID> Seal(Client& client) = 0;
};

}  // namespace vineyard
