#include "server/spill_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/pages.h"

namespace vineyard {

namespace {

constexpr const char* kPrefix = "spill-";
constexpr const char* kSuffix = ".blobs";
constexpr const char* kLockName = ".vineyardd.lock";

std::string Errno() { return std::strerror(errno); }

bool IsSpillFile(const std::string& name) {
  const size_t p = std::strlen(kPrefix), s = std::strlen(kSuffix);
  return name.size() > p + s && name.compare(0, p, kPrefix) == 0 &&
         name.compare(name.size() - s, s, kSuffix) == 0;
}

// Bytes moved per system call; each run is hashed right after it moves, while
// it is still in the CPU's cache (one pass over memory, not two).
constexpr uint64_t kChunk = uint64_t{4} << 20;

// XXH3-64 computed run by run.
class Hasher {
 public:
  Hasher() : state_(XXH3_createState()) { XXH3_64bits_reset(state_); }
  ~Hasher() { XXH3_freeState(state_); }
  void Update(const uint8_t* p, uint64_t n) { XXH3_64bits_update(state_, p, n); }
  uint64_t Digest() const { return XXH3_64bits_digest(state_); }

 private:
  XXH3_state_t* state_;
};

uint64_t AlignUp(uint64_t n) {
  return (n + SpillFiles::kAlign - 1) / SpillFiles::kAlign * SpillFiles::kAlign;
}

// Writes all `size` bytes at `offset` (large writes, retried on partial ones).
bool WriteAll(int fd, const uint8_t* data, uint64_t size, uint64_t offset) {
  constexpr uint64_t kMaxWrite = uint64_t{1} << 30;
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, std::min(size, kMaxWrite), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      return false;
    }
    data += n;
    size -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<SpillFiles>> SpillFiles::Open(const std::string& dir) {
  if (dir.empty()) return Status::Invalid("--spill_path is empty");
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IOError("cannot create the spill directory ", dir, ": ", Errno());
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::IOError("the spill path ", dir, " is not a directory");
  }
  const std::string lock_path = dir + "/" + kLockName;
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return Status::IOError("cannot write in the spill directory ", dir, ": ", Errno());
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return Status::IOError("the spill directory ", dir,
                           " is in use by another vineyardd: give each its own --spill_path");
  }
  // What an earlier process left (killed mid-spill, or before its cleanup):
  // no blob refers to it any more.
  size_t orphans = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (IsSpillFile(name) && ::unlink((dir + "/" + name).c_str()) == 0) ++orphans;
    }
    ::closedir(d);
  }
  if (orphans > 0) spdlog::info("removed {} orphaned spill files from {}", orphans, dir);
  return std::unique_ptr<SpillFiles>(new SpillFiles(dir, lock_fd));
}

SpillFiles::~SpillFiles() {
  for (const auto& [file, count] : live_) ::unlink(PathOf(file).c_str());
  ::close(lock_fd_);
}

std::string SpillFiles::PathOf(uint64_t file) const {
  return dir_ + "/" + kPrefix + std::to_string(file) + kSuffix;
}

Result<std::vector<SpillFiles::Extent>> SpillFiles::Write(const std::vector<Source>& blobs) {
  uint64_t file;
  {
    std::lock_guard<std::mutex> lock(mu_);
    file = next_file_++;
  }
  const std::string path = PathOf(file);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError("cannot create spill file ", path, ": ", Errno());
  std::vector<Extent> extents;
  uint64_t offset = 0;
  uint64_t total = 0;
  for (const auto& b : blobs) total = AlignUp(total) + b.size;
  // Reserve the blocks first: a full disk fails here, before any byte is copied.
  int rc = total > 0 && ::fallocate(fd, 0, 0, static_cast<off_t>(total)) != 0 ? errno : 0;
  auto fail = [&](const std::string& what, int err) -> Status {
    ::close(fd);
    ::unlink(path.c_str());
    return Status::IOError("cannot spill to ", dir_, ": ", what, ": ", std::strerror(err));
  };
  if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) return fail("reserving " + path, rc);
  for (const auto& b : blobs) {
    offset = AlignUp(offset);
    Hasher hash;
    for (uint64_t done = 0; done < b.size;) {
      const uint64_t n = std::min(kChunk, b.size - done);
      if (!WriteAll(fd, b.data + done, n, offset + done)) return fail("writing " + path, errno);
      hash.Update(b.data + done, n);
      done += n;
    }
    extents.push_back(Extent{file, offset, b.size, hash.Digest()});
    offset += b.size;
  }
  if (::fdatasync(fd) != 0) return fail("flushing " + path, errno);
  // The bytes are on disk: they need not stay in the page cache as well.
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  live_[file] = extents.size();
  if (extents.empty()) {
    live_.erase(file);
    ::unlink(path.c_str());
  }
  return extents;
}

Status SpillFiles::Read(ObjectID id, const Extent& e, uint8_t* out) const {
  const std::string path = PathOf(e.file);
  auto fail = [&](const std::string& why) {
    return Status::IOError("cannot load blob ", ObjectIDToString(id), " back from ", path,
                           ": ", why);
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Errno());
  uint64_t got = 0;
  uint64_t hashed = 0;
  Hasher hash;
  while (got < e.size) {
    if (got == hashed) PopulatePages(out + got, std::min(kChunk, e.size - got), true);
    const uint64_t want = std::min(kChunk - (got - hashed), e.size - got);
    ssize_t n = ::pread(fd, out + got, want, static_cast<off_t>(e.offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = fail(Errno());
      ::close(fd);
      return st;
    }
    if (n == 0) {
      ::close(fd);
      return fail("the file is truncated (" + std::to_string(got) + " of " +
                  std::to_string(e.size) + " bytes there)");
    }
    got += static_cast<uint64_t>(n);
    if (got - hashed == kChunk || got == e.size) {
      hash.Update(out + hashed, got - hashed);
      hashed = got;
    }
  }
  // Its bytes are in memory now: the file's copy need not stay cached.
  (void)::posix_fadvise(fd, static_cast<off_t>(e.offset), static_cast<off_t>(e.size),
                        POSIX_FADV_DONTNEED);
  ::close(fd);
  if (hash.Digest() != e.checksum) {
    return fail("its bytes do not match their checksum (the file was corrupted)");
  }
  return Status::OK();
}

void SpillFiles::Drop(const Extent& e) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(e.file);
  if (it == live_.end()) return;
  const std::string path = PathOf(e.file);
  if (--it->second == 0) {
    live_.erase(it);
    ::unlink(path.c_str());
    return;
  }
  if (e.size == 0) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(e.offset), static_cast<off_t>(AlignUp(e.size)));
  ::close(fd);
}

uint64_t SpillFiles::DiskBytes() const {
  std::vector<uint64_t> files;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [file, count] : live_) files.push_back(file);
  }
  uint64_t bytes = 0;
  for (uint64_t f : files) {
    struct stat st;
    if (::stat(PathOf(f).c_str(), &st) == 0) bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return bytes;
}

}  // namespace vineyard
