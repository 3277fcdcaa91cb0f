// Mapping the pages of a shared-memory range in one call instead of taking
// one page fault per 4 KiB page on first touch.
#pragma once

#include <cstddef>

namespace vineyard {

/// Backs [p, p + n) with pages (best effort; a kernel without
/// MADV_POPULATE_* refuses it harmlessly). `write` maps them writable; a read
/// populate maps up to 16 pages per fault and, on a MAP_SHARED range whose
/// pages exist, leaves them writable at about half the cost of a write
/// populate (on holes it costs about the same).
void PopulatePages(const void* p, size_t n, bool write);

}  // namespace vineyard
