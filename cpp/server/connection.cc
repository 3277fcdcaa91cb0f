#include "server/connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "common/socket_io.h"
#include "common/tls.h"
#include "server/dispatcher.h"
#include "server/io_pool.h"
#include "server/stream_store.h"
#include "server/parked_requests.h"

namespace vineyard {

namespace {

// Before register_request only a register (or exit) is served: a frame larger
// than this is refused, so an unauthenticated peer cannot make the server hold
// much memory.
constexpr uint64_t kMaxFrameBeforeRegister = 64 * 1024;
// A frame is read into a buffer that starts this large and doubles as bytes arrive.
constexpr size_t kInitialBodyBuffer = 64 * 1024;
// Frames larger than this are parsed and handled on a worker, not on the loop.
constexpr size_t kLargeFrame = 1 << 20;

std::string FrameOf(const json& body) {
  return EncodeFrame(body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// The frame of a reply, or empty when it has no body.
std::string FrameOf(const Reply& reply) {
  if (!reply.body_text.empty()) return EncodeFrame(reply.body_text);
  return reply.body.is_null() ? std::string() : FrameOf(reply.body);
}

}  // namespace

Connection::Connection(ServerContext* ctx, EventLoop* loop, int fd, bool is_ipc, uint64_t serial)
    : ctx_(ctx),
      loop_(loop),
      fd_(fd),
      sd_(loop->io),
      is_ipc_(is_ipc),
      serial_(serial),
      accepted_(Clock::now()),
      last_progress_(accepted_) {
  (void)SetNonBlocking(fd_);
  sd_.assign(fd_);
  if (!is_ipc_ && ctx_->tls) {
    // The handshake runs inside the first reads and writes (tls.h).
    auto tls = TlsStream::Accept(ctx_->tls, fd_);
    if (tls.ok()) {
      stream_ = std::move(tls).value();
    } else {
      spdlog::warn("{}: TLS setup failed: {}", peer(), tls.status().ToString());
    }
  }
  if (!stream_) stream_ = std::make_unique<PlainStream>(fd_);
  (is_ipc_ ? ctx_->ipc_connections : ctx_->rpc_connections) += 1;
}

Connection::~Connection() {
  asio::error_code ec;
  sd_.close(ec);  // closes fd_
}

std::string Connection::peer() const {
  return (is_ipc_ ? "ipc#" : "rpc#") + std::to_string(serial_);
}

int Connection::io_timeout_ms() const { return ctx_->limits.io_timeout_s * 1000; }

void Connection::Start() { ReadSome(); }

void Connection::Shutdown() {
  auto self = shared_from_this();
  // A worker blocked on this socket returns at once; the loop then closes it.
  ::shutdown(fd_, SHUT_RDWR);
  asio::post(loop_->io, [self] {
    if (!self->on_worker_) self->Close("");
  });
}

void Connection::Resume() {
  auto self = shared_from_this();
  asio::post(loop_->io, [self] { self->Retry(); });
}

void Connection::WaitFor(short events, void (Connection::*next)()) {
  auto self = shared_from_this();
  auto type = (events & POLLOUT) ? asio::posix::stream_descriptor::wait_write
                                 : asio::posix::stream_descriptor::wait_read;
  sd_.async_wait(type, [self, next](const asio::error_code& ec) {
    if (ec || self->closed_) return;
    (self.get()->*next)();
  });
}

void Connection::ReadSome() {
  if (closed_) return;
  phase_ = header_got_ > 0 ? Phase::kReading : Phase::kIdle;
  std::vector<char>& buf = loop_->input;
  while (true) {
    const char* data;
    size_t n;
    std::string leftover;
    if (!pending_.empty()) {
      leftover.swap(pending_);  // bytes read past the previous frame
      data = leftover.data();
      n = leftover.size();
    } else {
      ssize_t got = stream_->Read(buf.data(), buf.size());
      if (got == ByteStream::kWouldBlock) {
        drained_ = true;
        WaitFor(stream_->WaitEvents(), &Connection::ReadSome);
        return;
      }
      if (got == 0) {
        if (header_got_ > 0) {
          spdlog::warn("{}: closing the connection: closed in the middle of a message", peer());
        }
        Close("");
        return;
      }
      if (got < 0) {
        Close("receive failed: " + StreamError());
        return;
      }
      // A short read of a plain socket took everything there was: the next
      // bytes raise a new readiness edge, so the loop may wait without asking.
      drained_ = static_cast<size_t>(got) < buf.size() && stream_->Pending() == 0 &&
                 stream_->Kind() == std::string_view("plain");
      data = buf.data();
      n = static_cast<size_t>(got);
      last_progress_ = Clock::now();
    }
    while (n > 0) {
      if (header_got_ < sizeof(header_)) {
        size_t take = std::min(sizeof(header_) - header_got_, n);
        memcpy(header_ + header_got_, data, take);
        header_got_ += take;
        data += take;
        n -= take;
        phase_ = Phase::kReading;
        if (header_got_ < sizeof(header_)) break;
        memcpy(&body_len_, header_, sizeof(body_len_));
        uint64_t limit = registered_ ? kMaxFrameSize : kMaxFrameBeforeRegister;
        if (body_len_ > limit) {
          Status st = Status::IOError(
              "message of ", body_len_, " bytes exceeds the limit of ", limit, " bytes",
              registered_ ? "" : " before register_request");
          spdlog::warn("{}: closing the connection: {}", peer(), st.ToString());
          Reply r;
          r.body = WriteErrorReply(st);
          r.close_after = true;
          Respond(std::move(r));
          return;
        }
        // The buffer grows with the bytes that arrive, not with the length announced.
        body_.clear();
        body_.reserve(std::min<uint64_t>(body_len_, kInitialBodyBuffer));
      }
      size_t take = std::min<uint64_t>(body_len_ - body_.size(), n);
      body_.append(data, take);
      data += take;
      n -= take;
      if (body_.size() == body_len_) {
        header_got_ = 0;
        if (n > 0) pending_.assign(data, n);  // the start of the next frame
        std::string frame = std::move(body_);
        body_ = std::string();
        OnFrame(std::move(frame));
        return;
      }
    }
    if (drained_) {
      WaitFor(POLLIN, &Connection::ReadSome);
      return;
    }
  }
}

std::string Connection::StreamError() const {
  if (auto* tls = dynamic_cast<const TlsStream*>(stream_.get())) {
    if (!tls->error().ok()) return tls->error().message();
  }
  return strerror(errno);
}

void Connection::OnFrame(std::string frame) {
  phase_ = Phase::kHandling;
  if (frame.size() > kLargeFrame) {
    RunOnWorker(std::move(frame));
    return;
  }
  auto parsed = ParseMessage(frame);
  if (parsed.ok()) {
    const Dispatcher::Entry* entry = Dispatcher::Get().Find(*parsed);
    bool slow = entry != nullptr && (entry->flags & kSlow);
    if (entry != nullptr && !slow && ctx_->backend->remote()) {
      auto sync = parsed->find("sync_remote");
      slow = (entry->flags & kWritesThrough) ||
             ((entry->flags & kMaySync) && sync != parsed->end() && sync->is_boolean() &&
              sync->get<bool>());
    }
    if (slow) {
      RunOnWorker(std::move(frame));
      return;
    }
    RunFast(*parsed);
    return;
  }
  Reply r;
  r.body = WriteErrorReply(parsed.status());
  Respond(std::move(r));
}

Reply Connection::Handle(const std::string& frame, json* parsed) {
  Reply reply;
  Status st;
  json request;
  if (parsed == nullptr) {
    auto p = ParseMessage(frame);
    if (!p.ok()) {
      reply.body = WriteErrorReply(p.status());
      return reply;
    }
    request = std::move(p).value();
    parsed = &request;
  }
  try {
    st = Dispatcher::Get().Dispatch(*this, *parsed, &reply);
  } catch (const std::exception& e) {
    // nlohmann::json throws on some malformed input; never let it end the server.
    st = Status::Invalid("malformed request: ", e.what());
  }
  if (!st.ok()) {
    bool close_after = reply.close_after;  // e.g. a failed login or a broken transfer
    reply = Reply{};
    reply.body = WriteErrorReply(st);
    reply.close_after = close_after;
  }
  return reply;
}

void Connection::RunFast(json& request) {
  Reply reply = Handle(std::string(), &request);
  if (reply.to_worker) {
    // A large reply is built on a worker: the loop's other clients keep being served.
    RunOnWorker(request.dump(-1, ' ', false, json::error_handler_t::replace));
    return;
  }
  if (reply.defer) {
    Park(reply.park_as.is_null() ? request : std::move(reply.park_as));
    return;
  }
  Respond(std::move(reply));
}

void Connection::Park(json request) {
  // Retried on every metadata change; one retry now closes the race with a
  // change that happened between the handler's look and the park.
  parked_request_ = std::move(request);
  parked_ = true;
  ctx_->parked->Park(shared_from_this());
  ++ctx_->deferred_requests;
  Resume();
  // Watch the socket: a client that hangs up while parked is closed.
  WaitFor(POLLIN, &Connection::AfterReply);
}

void Connection::Retry() {
  if (closed_ || !parked_) return;
  Reply reply = Handle(std::string(), &parked_request_);
  if (reply.defer) {
    if (!reply.park_as.is_null()) parked_request_ = std::move(reply.park_as);
    return;
  }
  parked_ = false;
  parked_request_ = json();
  ctx_->parked->Unpark(this);
  --ctx_->deferred_requests;
  sd_.cancel();  // the hang-up watch
  Respond(std::move(reply));
}

void Connection::RunOnWorker(std::string frame) {
  on_worker_ = true;
  drained_ = false;  // the worker reads and writes the socket itself
  if (!pending_.empty()) {
    // Bytes a client sent past this request belong to what the handler reads.
    stream_ = std::make_unique<PrefixedStream>(std::move(pending_), std::move(stream_));
    pending_.clear();
  }
  auto self = shared_from_this();
  ctx_->pool->Post([self, frame = std::move(frame)] {
    auto parsed = ParseMessage(frame);
    Reply reply;
    if (parsed.ok()) {
      reply = self->Handle(std::string(), &*parsed);
    } else {
      reply.body = WriteErrorReply(parsed.status());
    }
    if (reply.defer) {
      json request = reply.park_as.is_null() ? std::move(parsed).value() : std::move(reply.park_as);
      asio::post(self->loop_->io, [self, request = std::move(request)]() mutable {
        self->on_worker_ = false;
        self->Park(std::move(request));
      });
      return;
    }
    bool close_after = reply.close_after;
    Status st = self->WriteReplyBlocking(reply);
    if (!st.ok()) close_after = true;
    asio::post(self->loop_->io, [self, close_after] {
      self->on_worker_ = false;
      if (close_after || self->ctx_->stopping) {
        self->Close("");
      } else {
        self->ReadSome();
      }
    });
  });
}

Status Connection::WriteReplyBlocking(const Reply& reply) {
  std::string frame = FrameOf(reply);
  if (!frame.empty()) {
    VY_RETURN_NOT_OK(WriteAll(*stream_, frame.data(), frame.size(), io_timeout_ms()));
  }
  for (int fd : reply.fds) VY_RETURN_NOT_OK(SendFd(fd_, fd, io_timeout_ms()));
  return Status::OK();
}

Status Connection::SendInterim(const json& body) {
  Reply r;
  r.body = body;
  return WriteReplyBlocking(r);
}

void Connection::Respond(Reply reply) {
  if (closed_) return;
  out_ = FrameOf(reply);
  out_off_ = 0;
  out_fds_ = std::move(reply.fds);
  out_fds_sent_ = 0;
  close_after_ = reply.close_after;
  phase_ = Phase::kWriting;
  last_progress_ = Clock::now();
  Flush();
}

void Connection::Flush() {
  if (closed_) return;
  while (out_off_ < out_.size()) {
    ssize_t n = stream_->Write(out_.data() + out_off_, out_.size() - out_off_);
    if (n == ByteStream::kWouldBlock) {
      WaitFor(stream_->WaitEvents(), &Connection::Flush);
      return;
    }
    if (n < 0) {
      Close("send failed: " + StreamError());
      return;
    }
    out_off_ += static_cast<size_t>(n);
    last_progress_ = Clock::now();
  }
  while (out_fds_sent_ < out_fds_.size()) {
    auto sent = TrySendFd(fd_, out_fds_[out_fds_sent_]);
    if (!sent.ok()) {
      Close(sent.status().message());
      return;
    }
    if (!*sent) {
      WaitFor(POLLOUT, &Connection::Flush);
      return;
    }
    ++out_fds_sent_;
    last_progress_ = Clock::now();
  }
  out_.clear();
  out_fds_.clear();
  AfterReply();
}

void Connection::AfterReply() {
  if (closed_) return;
  if (parked_) {
    // The hang-up watch fired: EOF (or an error) ends the session; bytes of a
    // pipelined request stay queued until the parked one is answered.
    char probe;
    ssize_t n = ::recv(fd_, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      Close("");
    } else if (n < 0) {
      WaitFor(POLLIN, &Connection::AfterReply);
    }
    return;
  }
  if (close_after_ || ctx_->stopping) {
    Close("");
    return;
  }
  if (drained_ && pending_.empty()) {
    // Nothing was left unread: wait for the next request without a recv that
    // would only say EAGAIN.
    phase_ = Phase::kIdle;
    WaitFor(POLLIN, &Connection::ReadSome);
    return;
  }
  ReadSome();
}

void Connection::CheckTimeouts(Clock::time_point now) {
  if (closed_ || on_worker_ || parked_) return;
  const Limits& l = ctx_->limits;
  auto since = [&](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(now - t).count();
  };
  if (!registered_ && l.handshake_timeout_s > 0 && since(accepted_) >= l.handshake_timeout_s) {
    spdlog::info("{}: closing: no register_request within {} s (--handshake_timeout)", peer(),
                 l.handshake_timeout_s);
    Close("");
    return;
  }
  bool mid = phase_ == Phase::kReading || phase_ == Phase::kWriting;
  if (mid && l.io_timeout_s > 0 && since(last_progress_) >= l.io_timeout_s) {
    spdlog::info("{}: closing: no progress for {} s in the middle of a message (--io_timeout)",
                 peer(), l.io_timeout_s);
    Close("");
    return;
  }
  if (phase_ == Phase::kIdle && registered_ && l.idle_timeout_s > 0 &&
      since(last_progress_) >= l.idle_timeout_s) {
    spdlog::info("{}: closing: idle for {} s (--idle_timeout)", peer(), l.idle_timeout_s);
    Close("");
  }
}

void Connection::Close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  if (!why.empty()) spdlog::warn("{}: closing the connection: {}", peer(), why);
  if (parked_) {
    parked_ = false;
    ctx_->parked->Unpark(this);
    --ctx_->deferred_requests;
  }
  asio::error_code ec;
  sd_.cancel(ec);
  Teardown();
  // The last reference may be this erase: nothing of `this` is used after it.
  loop_->connections.erase(shared_from_this());
}

int Connection::PassFd(int store_fd, Reply* reply) {
  if (store_fd < 0 || !is_ipc_ || !fds_sent_.insert(store_fd).second) return -1;
  reply->fds.push_back(store_fd);
  return store_fd;
}

Status Connection::Seal(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  VY_RETURN_NOT_OK(ctx_->store->Seal(id, serial_));
  AddRef(id);
  return Status::OK();
}

Status Connection::Unseal(ObjectID id) {
  if (IsEmptyBlob(id)) return Status::OK();
  auto it = refs_.find(id);
  if (it == refs_.end()) {
    return Status::Invalid("cannot unseal blob ", ObjectIDToString(id), ": not sealed here");
  }
  VY_RETURN_NOT_OK(ctx_->store->Unseal(id, serial_));
  if (--it->second == 0) refs_.erase(it);
  return Status::OK();
}

Status Connection::Abort(ObjectID id) { return ctx_->store->Abort(id, serial_); }

Result<std::vector<Payload>> Connection::GetPayloads(const std::vector<ObjectID>& ids,
                                                     bool unsafe, Reply* reply,
                                                     std::vector<int>* fds) {
  std::vector<Payload> payloads;
  for (ObjectID id : ids) {
    auto p = ctx_->store->Get(id, unsafe, serial_);
    if (!p.ok()) {
      for (const auto& got : payloads) ctx_->store->Release(got.object_id);
      return p.status();
    }
    payloads.push_back(*p);
  }
  for (auto& p : payloads) {
    if (!IsEmptyBlob(p.object_id)) AddRef(p.object_id);
    // Our client maps what it reads read-only: give it an fd that cannot map
    // the store writable. Published clients keep the read-write fd.
    if (pins_references_ && p.is_sealed && p.store_fd >= 0) {
      p.store_fd = ctx_->store->read_only_fd();
    }
    int fd = PassFd(p.store_fd, reply);
    if (fd >= 0) fds->push_back(fd);
  }
  return payloads;
}

void Connection::AddRef(ObjectID id) {
  if (pins_references_) {
    ++refs_[id];
  } else {
    ctx_->store->Release(id);
    // It may map the blob still: not spilled under it until it disconnects.
    if (is_ipc_ && held_.insert(id).second) ctx_->store->Hold(id);
  }
}

void Connection::Release(ObjectID id) {
  auto it = refs_.find(id);
  if (it == refs_.end()) return;
  ctx_->store->Release(id);
  if (--it->second == 0) refs_.erase(it);
}

void Connection::Teardown() {
  // The peer sees the end now, not when the server reaps this session.
  ::shutdown(fd_, SHUT_RDWR);
  // Its unsealed blobs, and its sealed ones no object adopted, die with their
  // creator (first, so that the references released next free them); every
  // reference goes back.
  const size_t owned = ctx_->store->ReleaseOwner(serial_);
  if (ctx_->streams != nullptr) ctx_->streams->OnClose(serial_);  // fails what it wrote
  for (const auto& [id, count] : refs_) {
    for (int64_t i = 0; i < count; ++i) ctx_->store->Release(id);
  }
  if (owned > 0 || !refs_.empty()) {
    spdlog::debug("{}: removed {} blobs it owned and released {} references", peer(), owned,
                  refs_.size());
  }
  refs_.clear();
  for (ObjectID id : held_) ctx_->store->Unhold(id);
  held_.clear();
  (is_ipc_ ? ctx_->ipc_connections : ctx_->rpc_connections) -= 1;
}

}  // namespace vineyard
