#include "common/pages.h"

#include <sys/mman.h>

#include <cstdint>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace vineyard {

void PopulatePages(const void* p, size_t n, bool write) {
  if (n == 0) return;
  constexpr uintptr_t kPage = 4096;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(kPage - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  (void)madvise(reinterpret_cast<void*>(begin), end - begin,
                write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

}  // namespace vineyard
