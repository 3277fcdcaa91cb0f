#include "llm/file_store.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <algorithm>
#include <filesystem>

namespace vineyard::llm {

namespace fs = std::filesystem;

namespace {
// Writes the pieces in order (writev, IOV_MAX pieces at a time).
Status WriteAll(int fd, const std::vector<Piece>& pieces) {
  std::vector<iovec> iov;
  for (const Piece& p : pieces) {
    if (p.size > 0) iov.push_back({const_cast<uint8_t*>(p.data), p.size});
  }
  size_t at = 0;
  while (at < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - at, IOV_MAX));
    ssize_t w = ::writev(fd, iov.data() + at, count);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("write: ", strerror(errno));
    }
    size_t left = static_cast<size_t>(w);
    while (at < iov.size() && left >= iov[at].iov_len) left -= iov[at++].iov_len;
    if (left > 0) {
      iov[at].iov_base = static_cast<uint8_t*>(iov[at].iov_base) + left;
      iov[at].iov_len -= left;
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<FileStore>> FileStore::Make(const Shape& shape,
                                                   FileStoreOptions options) {
  if (options.root.empty()) return Status::Invalid("the file cache needs a root directory");
  if (options.hash_chunk_size > 15) {
    return Status::Invalid("hash_chunk_size must be at most 15, not ", options.hash_chunk_size);
  }
  std::error_code ec;
  fs::create_directories(fs::path(options.root) / ".tmp", ec);
  if (ec) {
    return Status::IOError("cannot create the cache directory ", options.root, ": ",
                           ec.message());
  }
  std::unique_ptr<FileStore> store(new FileStore(shape, std::move(options)));
  if (store->options_.gc_interval > 0) {
    store->gc_thread_ = std::thread([s = store.get()] { s->GcLoop(); });
  }
  return store;
}

FileStore::FileStore(const Shape& shape, FileStoreOptions options)
    : shape_(shape), options_(std::move(options)) {}

FileStore::~FileStore() {
  {
    std::lock_guard<std::mutex> lock(gc_mu_);
    stopping_ = true;
  }
  gc_cv_.notify_all();
  if (gc_thread_.joinable()) gc_thread_.join();
}

std::string FileStore::PathOf(const BlockKey& key) const {
  std::string hex = key.Hex();
  std::string path = options_.root;
  for (uint32_t level = 0; level < options_.hash_chunk_size; ++level) {
    path += '/';
    path += hex.substr(2 * level, 2);
  }
  path += '/';
  path += hex;
  path += ".kv";
  return path;
}

Result<size_t> FileStore::Has(const std::vector<BlockSpec>& blocks) {
  size_t n = 0;
  for (const auto& b : blocks) {
    struct stat st {};
    if (::stat(PathOf(b.key).c_str(), &st) != 0) break;
    n++;
  }
  return n;
}

namespace {
// A chunk file mapped read-only; unmapped with the last view of it. Chunk
// files are replaced by rename and removed by unlink, never changed in place,
// so a mapping keeps the bytes it verified.
struct FileMapping {
  void* addr = MAP_FAILED;
  size_t size = 0;
  ~FileMapping() {
    if (addr != MAP_FAILED) munmap(addr, size);
  }
};
}  // namespace

Result<std::vector<BlockView>> FileStore::Get(const std::vector<BlockSpec>& blocks) {
  std::vector<BlockView> views;
  for (const auto& spec : blocks) {
    std::string path = PathOf(spec.key);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    uint32_t n = static_cast<uint32_t>(spec.tokens.size());
    size_t header = HeaderBytes(n);
    size_t payload = shape_.PayloadBytes(n);
    struct stat st {};
    bool ok = fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == header + payload;
    auto mapping = std::make_shared<FileMapping>();
    if (ok) {
      mapping->size = header + payload;
      mapping->addr = mmap(nullptr, mapping->size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
      ok = mapping->addr != MAP_FAILED;
    }
    const auto* bytes = static_cast<const uint8_t*>(mapping->addr);
    if (ok) {
      BlockHeader h;
      std::memcpy(&h, bytes, sizeof(h));
      ok = HeaderMatches(bytes, mapping->size, shape_, spec) &&
           h.payload_checksum == Checksum(bytes + header, payload);
    }
    if (ok) (void)futimens(fd, nullptr);  // the hit keeps the chunk for another ttl
    ::close(fd);
    if (!ok) {
      // Truncated, corrupted, or another shape under this name: never returned.
      ::unlink(path.c_str());
      break;
    }
    views.push_back(BlockView{bytes + header, n, std::shared_ptr<const void>(mapping, bytes)});
  }
  return views;
}

Status FileStore::Write(const BlockSpec& spec, const std::vector<Piece>& pieces) {
  std::string path = PathOf(spec.key);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return Status::OK();
  uint32_t n = static_cast<uint32_t>(spec.tokens.size());
  size_t header = HeaderBytes(n);
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  for (const Piece& p : pieces) XXH3_64bits_update(&state, p.data, p.size);
  std::vector<uint8_t> head(header);
  WriteHeader(head.data(), shape_, spec, XXH3_64bits_digest(&state));

  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return Status::IOError("cannot create ", fs::path(path).parent_path(), ": ", ec.message());
  fs::create_directories(fs::path(options_.root) / ".tmp", ec);
  std::string tmp = options_.root + "/.tmp/" + spec.key.Hex() + "." + std::to_string(getpid()) +
                    "." + std::to_string(tmp_counter_++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot create ", tmp, ": ", strerror(errno));
  std::vector<Piece> all;
  all.reserve(pieces.size() + 1);
  all.push_back({head.data(), head.size()});
  all.insert(all.end(), pieces.begin(), pieces.end());
  Status st_write = WriteAll(fd, all);
  ::close(fd);
  if (!st_write.ok() || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    if (!st_write.ok()) return st_write;
    return Status::IOError("cannot rename ", tmp, " to ", path, ": ", strerror(err));
  }
  return Status::OK();
}

Status FileStore::PutPayload(const BlockSpec& spec, const uint8_t* payload) {
  size_t n = shape_.PayloadBytes(static_cast<uint32_t>(spec.tokens.size()));
  return Write(spec, {Piece{payload, n}});
}

Result<size_t> FileStore::Put(const std::vector<BlockSpec>& blocks, const Gather& gather) {
  size_t stored = 0;
  std::vector<Piece> pieces;
  for (size_t i = 0; i < blocks.size(); ++i) {
    pieces.clear();
    gather(i, &pieces);
    VY_RETURN_NOT_OK(Write(blocks[i], pieces));
    stored++;
  }
  return stored;
}

size_t FileStore::CollectGarbage() {
  size_t removed = 0;
  auto now = fs::file_time_type::clock::now();
  auto ttl = std::chrono::seconds(options_.ttl);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(options_.root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    auto mtime = it->last_write_time(ec);
    if (ec) continue;
    if (now - mtime < ttl) continue;
    const std::string name = it->path().filename().string();
    bool chunk = name.size() == 35 && name.ends_with(".kv");
    bool tmp = it->path().parent_path().filename() == ".tmp";
    if (!chunk && !tmp) continue;
    if (fs::remove(it->path(), ec)) removed++;
  }
  return removed;
}

void FileStore::GcLoop() {
  std::unique_lock<std::mutex> lock(gc_mu_);
  while (!stopping_) {
    gc_cv_.wait_for(lock, std::chrono::seconds(options_.gc_interval), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    CollectGarbage();
    lock.lock();
  }
}

}  // namespace vineyard::llm
