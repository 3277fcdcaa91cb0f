#include "llm/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace vineyard::llm {

namespace fs = std::filesystem;

namespace {
Status WriteAll(int fd, const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("write: ", strerror(errno));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

bool ReadAll(int fd, uint8_t* data, size_t n, off_t offset) {
  while (n > 0) {
    ssize_t r = ::pread(fd, data, n, offset);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    data += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
  return true;
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
    std::vector<uint8_t> head(header);
    ok = ok && ReadAll(fd, head.data(), header, 0) &&
         HeaderMatches(head.data(), header + payload, shape_, spec);
    std::shared_ptr<uint8_t[]> buffer;
    if (ok) {
      buffer.reset(new (std::nothrow) uint8_t[payload > 0 ? payload : 1]);
      ok = buffer != nullptr && ReadAll(fd, buffer.get(), payload, static_cast<off_t>(header));
    }
    if (ok) {
      BlockHeader h;
      std::memcpy(&h, head.data(), sizeof(h));
      ok = h.payload_checksum == Checksum(buffer.get(), payload);
    }
    if (ok) {
      // The hit keeps the chunk alive for another ttl.
      (void)futimens(fd, nullptr);
    }
    ::close(fd);
    if (!ok) {
      // Truncated, corrupted, or another shape under this name: never returned.
      ::unlink(path.c_str());
      break;
    }
    views.push_back(BlockView{buffer.get(), n, buffer});
  }
  return views;
}

Status FileStore::Write(const BlockSpec& spec, const std::function<void(uint8_t*)>& fill) {
  std::string path = PathOf(spec.key);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return Status::OK();
  uint32_t n = static_cast<uint32_t>(spec.tokens.size());
  size_t header = HeaderBytes(n);
  size_t payload = shape_.PayloadBytes(n);
  std::unique_ptr<uint8_t[]> buffer(new (std::nothrow) uint8_t[header + payload]);
  if (!buffer) return Status::NotEnoughMemory("no memory for a chunk of ", header + payload);
  fill(buffer.get() + header);
  WriteHeader(buffer.get(), shape_, spec, Checksum(buffer.get() + header, payload));

  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return Status::IOError("cannot create ", fs::path(path).parent_path(), ": ", ec.message());
  fs::create_directories(fs::path(options_.root) / ".tmp", ec);
  std::string tmp = options_.root + "/.tmp/" + spec.key.Hex() + "." + std::to_string(getpid()) +
                    "." + std::to_string(tmp_counter_++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot create ", tmp, ": ", strerror(errno));
  Status st_write = WriteAll(fd, buffer.get(), header + payload);
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
  return Write(spec, [&](uint8_t* dst) { std::memcpy(dst, payload, n); });
}

Result<size_t> FileStore::Put(const std::vector<BlockSpec>& blocks, const Filler& fill) {
  size_t stored = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    VY_RETURN_NOT_OK(Write(blocks[i], [&](uint8_t* dst) { fill(i, dst); }));
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
