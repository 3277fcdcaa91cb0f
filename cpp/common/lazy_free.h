// Large JSON documents freed on a background thread.
//
// A metadata tree of a many-part object (a Table of 10,000 chunks is 80,000
// nodes) takes as long to free as to parse: millions of small frees. Like
// Redis's lazy free (UNLINK), LazyFree hands such a document to one background
// thread, so that the request or reply that used it is not kept waiting. Small
// documents are freed at once, and so is everything when the thread is behind
// (at most kMaxPending documents wait), so memory stays bounded.
//
// Fork-safe: a child process starts its own thread on first use.
#pragma once

#include <memory>

#include "common/protocol.h"

namespace vineyard {

/// More than `limit` nodes (counted up to the limit: cheap for small documents).
bool IsLargeDocument(const json& doc, size_t limit = 4096);

/// Frees `doc` on the background thread when it is large, else now.
void LazyFree(std::unique_ptr<json> doc);

/// Empties `doc` (left null), freeing what it held as LazyFree does.
void LazyFree(json& doc);

/// A document owned by a shared_ptr that frees it as LazyFree does.
std::shared_ptr<json> MakeLazyFreed(json doc);

}  // namespace vineyard
