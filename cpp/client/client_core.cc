#include "client/client_core.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/socket_io.h"

namespace vineyard {

// $VINEYARD_SPIN_US, else 30: how long an IPC client polls for a reply before
// it sleeps in recv() (0: never).
int ClientCore::SpinUs() {
  constexpr int kDefault = 30;
  const char* v = std::getenv("VINEYARD_SPIN_US");
  if (v == nullptr || *v == '\0') return kDefault;
  char* end = nullptr;
  long us = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || us < 0) return kDefault;
  return static_cast<int>(std::min<long>(us, 100000));
}

namespace {

// Polls `fd` until it is readable or `us` microseconds passed. A reply that
// comes within that time finds this thread running: no wake-up, which costs
// 10-40 us on many virtual machines. No sched_yield: on a busy machine it
// delays the server's thread (a small request's p99 from 0.15 to 2 ms).
void SpinUntilReadable(int fd, int us) {
  if (!CoresToSpare()) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  struct pollfd p = {fd, POLLIN, 0};
  do {
    if (::poll(&p, 1, 0) != 0) return;
  } while (std::chrono::steady_clock::now() < deadline);
}

}  // namespace

ClientCore::~ClientCore() {
  (void)Disconnect();
  for (const auto& [server_fd, fd] : received_fds_) ::close(fd);
}

Result<std::shared_ptr<ClientCore>> ClientCore::Connect(const std::string& socket,
                                                      const Login& login) {
  std::shared_ptr<ClientCore> core(new ClientCore());
  core->endpoint_ = socket;
  VY_ASSIGN_OR_RETURN(core->fd_, ConnectUnixSocket(socket));
  core->stream_ = std::make_unique<PlainStream>(core->fd_);
  return Register(std::move(core), login);
}

Result<std::shared_ptr<ClientCore>> ClientCore::ConnectTcp(const std::string& host, int port,
                                                         const Login& login,
                                                         std::shared_ptr<TlsContext> tls) {
  std::shared_ptr<ClientCore> core(new ClientCore());
  core->endpoint_ = host + ":" + std::to_string(port);
  core->is_ipc_ = false;
  VY_ASSIGN_OR_RETURN(core->fd_, ConnectTcpSocket(host, port));
  if (!tls) {
    core->stream_ = std::make_unique<PlainStream>(core->fd_);
    return Register(std::move(core), login);
  }
  VY_ASSIGN_OR_RETURN(auto secure, TlsStream::Connect(std::move(tls), core->fd_, host));
  Status st = CompleteHandshake(*secure, 30000);
  if (!st.ok()) {
    return Status::ConnectionFailed("TLS with vineyardd at '", core->endpoint_,
                                    "' failed: ", st.message());
  }
  core->stream_ = std::move(secure);
  return Register(std::move(core), login);
}

Result<std::shared_ptr<ClientCore>> ClientCore::Register(std::shared_ptr<ClientCore> core,
                                                       const Login& login) {
  RegisterRequest r;
  r.version = kProtocolVersion;
  r.username = login.username;
  r.password = login.password;
  r.releases_references = true;  // Blob and BlobWriter give their references back
  auto reply = core->Request(WriteRegisterRequest(r));
  if (!reply.ok()) {
    return Status::ConnectionFailed("vineyardd at '", core->endpoint_,
                                    "' refused the session: ", reply.status().message());
  }
  VY_ASSIGN_OR_RETURN(core->info_, ReadRegisterReply(*reply));
  return core;
}

Status ClientCore::Broken(const std::string& what, const Status& cause) {
  stream_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return Status::ConnectionError("lost the connection to vineyardd at '", endpoint_, "'", what,
                                 ": ", cause.message());
}

Status ClientCore::SendAndReceive(const json& request, json* reply,
                                  std::string_view attachment) {
  if (fd_ < 0 || !stream_) {
    return Status::ConnectionError("the client is disconnected from vineyardd at '", endpoint_,
                                   "': connect again");
  }
  std::string frame;
  Status st = WriteFrame(*stream_, FrameText(request, attachment), 0);
  if (st.ok() && is_ipc_ && spin_us_ > 0) SpinUntilReadable(fd_, spin_us_);
  if (st.ok()) st = ReadFrame(*stream_, &frame, kMaxFrameSize, 0);
  if (!st.ok()) return Broken("", st);
  VY_ASSIGN_OR_RETURN(*reply, ParseMessage(frame));
  return Status::OK();
}

Result<json> ClientCore::RequestStreaming(
    const json& request, const std::function<Status(ByteStream& s, const json& reply)>& stream,
    bool final_reply) {
  std::lock_guard<std::mutex> lock(mu_);
  json reply;
  VY_RETURN_NOT_OK(SendAndReceive(request, &reply));
  VY_RETURN_NOT_OK(CheckReply(reply));
  Status st = stream(*stream_, reply);
  if (!st.ok()) return Broken(" during a transfer", st);
  if (!final_reply) return reply;
  std::string frame;
  st = ReadFrame(*stream_, &frame, kMaxFrameSize, 0);
  if (!st.ok()) return Broken(" after a transfer", st);
  VY_ASSIGN_OR_RETURN(reply, ParseMessage(frame));
  VY_RETURN_NOT_OK(CheckReply(reply));
  return reply;
}

Result<json> ClientCore::Request(const json& request) {
  std::lock_guard<std::mutex> lock(mu_);
  json reply;
  VY_RETURN_NOT_OK(SendAndReceive(request, &reply));
  VY_RETURN_NOT_OK(CheckReply(reply));
  return reply;
}

Result<json> ClientCore::Request(const json& request, std::string_view attachment) {
  std::lock_guard<std::mutex> lock(mu_);
  json reply;
  VY_RETURN_NOT_OK(SendAndReceive(request, &reply, attachment));
  VY_RETURN_NOT_OK(CheckReply(reply));
  return reply;
}

Result<json> ClientCore::RequestWithFds(const json& request, const char* fds_key) {
  std::lock_guard<std::mutex> lock(mu_);
  json reply;
  VY_RETURN_NOT_OK(SendAndReceive(request, &reply));
  VY_RETURN_NOT_OK(CheckReply(reply));
  // The server follows the reply with each new fd it lists, in order.
  std::vector<int> fds;
  auto it = reply.find(fds_key);
  if (it != reply.end() && it->is_array()) {
    fds = it->get<std::vector<int>>();
  } else if (it != reply.end() && it->is_number_integer()) {
    fds.push_back(it->get<int>());
  }
  for (int server_fd : fds) {
    if (server_fd < 0) continue;
    auto fd = RecvFd(fd_);
    if (!fd.ok()) return Broken(" while receiving memory", fd.status());
    auto old = received_fds_.find(server_fd);
    if (old != received_fds_.end()) ::close(old->second);
    received_fds_[server_fd] = *fd;
    same_file_[server_fd] = server_fd;
    struct stat mine;
    if (::fstat(*fd, &mine) == 0) {
      for (const auto& [other_server_fd, other_fd] : received_fds_) {
        struct stat other;
        if (other_server_fd != server_fd && ::fstat(other_fd, &other) == 0 &&
            other.st_dev == mine.st_dev && other.st_ino == mine.st_ino) {
          same_file_[server_fd] = same_file_[other_server_fd];
          break;
        }
      }
    }
  }
  return reply;
}

Result<std::shared_ptr<Mapping>> ClientCore::MapRegion(int store_fd, size_t map_size,
                                                       bool writable) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!writable) {  // any fd of the same file serves reads: one read-only mapping
    auto same = same_file_.find(store_fd);
    if (same != same_file_.end()) store_fd = same->second;
  }
  auto key = std::make_pair(store_fd, writable);
  auto it = mappings_.find(key);
  if (it != mappings_.end() && it->second->size >= map_size) return it->second;
  auto fd = received_fds_.find(store_fd);
  if (fd == received_fds_.end()) {
    return Status::IOError("the server referenced memory region ", store_fd,
                           " that this client never received");
  }
  int prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ;
  void* addr = mmap(nullptr, map_size, prot, MAP_SHARED, fd->second, 0);
  if (addr == MAP_FAILED) {
    return Status::IOError("cannot map ", map_size, " bytes of shared memory: ",
                           strerror(errno));
  }
  auto m = std::make_shared<Mapping>(static_cast<uint8_t*>(addr), map_size);
  mappings_[key] = m;
  return m;
}

Result<std::shared_ptr<Blob>> ClientCore::MakeBlob(const Payload& p) {
  // A blob shrunk to 0 bytes is still a blob of its own (with a reference to give back).
  if (IsEmptyBlob(p.object_id) || p.store_fd < 0) return Blob::MakeEmpty();
  VY_ASSIGN_OR_RETURN(auto m, MapRegion(p.store_fd, p.map_size, false));
  if (p.data_offset < 0 || p.data_offset + p.data_size > m->size) {
    return Status::IOError("blob ", ObjectIDToString(p.object_id), " lies outside its region");
  }
  return std::make_shared<Blob>(p.object_id, p.data_size, m->base + p.data_offset, m,
                                weak_from_this());
}

Result<std::unique_ptr<BlobWriter>> ClientCore::MakeWriter(const Payload& p) {
  if (IsEmptyBlob(p.object_id) || p.store_fd < 0) {
    static uint8_t nothing[1];
    return std::make_unique<BlobWriter>(p, nothing, nullptr, shared_from_this());
  }
  VY_ASSIGN_OR_RETURN(auto m, MapRegion(p.store_fd, p.map_size, true));
  if (p.data_offset < 0 || p.data_offset + p.data_size > m->size) {
    return Status::IOError("blob ", ObjectIDToString(p.object_id), " lies outside its region");
  }
  return std::make_unique<BlobWriter>(p, m->base + p.data_offset, m, shared_from_this());
}

void ClientCore::QueueRelease(ObjectID id) {
  std::lock_guard<std::mutex> lock(release_mu_);
  releases_.push_back(id);
}

bool ClientCore::HasReleases() {
  std::lock_guard<std::mutex> lock(release_mu_);
  return !releases_.empty();
}

std::vector<ObjectID> ClientCore::TakeReleases() {
  std::lock_guard<std::mutex> lock(release_mu_);
  return std::move(releases_);
}

Status ClientCore::FlushReleases() {
  std::vector<ObjectID> ids = TakeReleases();
  if (ids.empty() || !connected()) return Status::OK();
  VyGetRequest r;  // an empty get carries the releases in one round trip
  r.release = std::move(ids);
  return Request(WriteVyGetRequest(r)).status();
}

Status ClientCore::Disconnect() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return Status::OK();
  if (stream_) (void)WriteFrame(*stream_, WriteExitRequest().dump(), 1000);
  stream_.reset();
  ::close(fd_);
  fd_ = -1;
  return Status::OK();
}

bool ClientCore::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fd_ >= 0;
}

}  // namespace vineyard
