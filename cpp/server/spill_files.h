// SpillFiles: the directory where the bulk store writes the blobs it spills
// (vineyardd --spill_path), and reads them back.
//
// One Write() makes one file, "spill-<n>.blobs", holding several blobs back to
// back, each at a 4 KiB-aligned offset, written with sequential 4 MiB writes
// straight from the blob's memory, then flushed (fdatasync) and dropped from
// the page cache: a spilled blob leaves memory for real. Each blob's extent
// carries an XXH3-64 checksum of its bytes (hashed as they move), verified on
// every Read(): a
// corrupted or truncated file yields an IOError naming the blob, never wrong
// bytes. Drop() punches an extent out of its file (its disk blocks are
// freed); the file is removed with its last extent.
//
// The directory belongs to one vineyardd: Open() takes an exclusive lock on
// "<dir>/.vineyardd.lock" (refusing a directory another live vineyardd uses),
// then removes the spill files left by an earlier process (killed mid-spill:
// nothing refers to them any more). The destructor removes every file.
//
// Thread-safety: all public methods are thread-safe; Write() and Read() do
// their I/O without holding the internal mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/result.h"

namespace vineyard {

class SpillFiles {
 public:
  /// Where one blob's bytes are on disk.
  struct Extent {
    uint64_t file = 0;      // the n of spill-<n>.blobs
    uint64_t offset = 0;    // in that file, 4 KiB-aligned
    uint64_t size = 0;      // the blob's data bytes
    uint64_t checksum = 0;  // XXH3-64 of those bytes
  };
  /// A blob to write: its id (for messages) and its bytes.
  struct Source {
    ObjectID id = 0;
    const uint8_t* data = nullptr;
    uint64_t size = 0;
  };

  /// Opens (creating it if missing) and locks `dir`, and removes its orphans.
  static Result<std::unique_ptr<SpillFiles>> Open(const std::string& dir);
  /// Removes every spill file and releases the lock.
  ~SpillFiles();
  SpillFiles(const SpillFiles&) = delete;
  SpillFiles& operator=(const SpillFiles&) = delete;

  /// Writes `blobs` into one new file; their extents, in order. All or nothing:
  /// on any error (disk full, unwritable) the file is removed and IOError says why.
  Result<std::vector<Extent>> Write(const std::vector<Source>& blobs);
  /// Reads `e` into `out` (e.size bytes) and verifies its checksum; IOError
  /// naming blob `id` if the file is missing, short or corrupted.
  Status Read(ObjectID id, const Extent& e, uint8_t* out) const;
  /// Frees `e`'s bytes on disk; removes its file with its last extent.
  void Drop(const Extent& e);

  const std::string& dir() const { return dir_; }
  /// Bytes the spill files occupy on disk (allocated blocks).
  uint64_t DiskBytes() const;
  /// The path of spill file `file`.
  std::string PathOf(uint64_t file) const;

  /// Extents are aligned to this within a file.
  static constexpr uint64_t kAlign = 4096;
  /// Callers batch blobs into one Write() until the batch reaches this many bytes.
  static constexpr uint64_t kFileBytes = uint64_t{256} << 20;

 private:
  SpillFiles(std::string dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}

  const std::string dir_;
  const int lock_fd_;
  mutable std::mutex mu_;
  uint64_t next_file_ = 1;                          // guarded by mu_
  std::unordered_map<uint64_t, uint64_t> live_;     // guarded by mu_; file -> live extents
};

}  // namespace vineyard
