#include "server/stream_store.h"

#include <string>
#include <unordered_set>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/bulk_store.h"
#include "server/connection.h"
#include "server/meta_service.h"

namespace vineyard {

StreamStore::StreamStore(BulkStore* store, MetaService* meta, uint64_t bound)
    : store_(store), meta_(meta), bound_(bound) {}

Result<StreamStore::Stream*> StreamStore::FindLocked(ObjectID id, const char* what) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return Status::ObjectNotExists("cannot ", what, ": ", ObjectIDToString(id),
                                   " is not a stream (create_stream it first)");
  }
  return &it->second;
}

Status StreamStore::Create(ObjectID id) {
  if (IsBlob(id)) {
    return Status::Invalid("a stream must be an object with metadata, not the blob ",
                           ObjectIDToString(id));
  }
  if (!meta_->Exists(id)) {
    return Status::ObjectNotExists("cannot create a stream over ", ObjectIDToString(id),
                                   ": no such object (create its metadata first)");
  }
  std::lock_guard<std::mutex> guard(mu_);
  if (!streams_.emplace(id, Stream{}).second) {
    return Status::ObjectExists("the stream ", ObjectIDToString(id), " already exists");
  }
  return Status::OK();
}

Status StreamStore::Open(ObjectID id, int64_t mode, Connection& conn) {
  std::lock_guard<std::mutex> guard(mu_);
  VY_ASSIGN_OR_RETURN(Stream * s, FindLocked(id, "open the stream"));
  uint64_t& side = mode == kStreamRead ? s->reader : s->writer;
  if (side != 0 && side != conn.serial()) {
    return Status::StreamOpened("the stream ", ObjectIDToString(id), " is already open for ",
                                mode == kStreamRead ? "reading" : "writing",
                                " by another client (one reader and one writer at a time)");
  }
  side = conn.serial();
  return Status::OK();
}

bool StreamStore::AllocatableLocked(const Stream& s, uint64_t size) const {
  return s.in_flight == 0 || in_flight_ + size <= bound_;
}

Status StreamStore::QueueWritingLocked(Stream& s) {
  if (!s.writing) return Status::OK();
  Chunk c = *s.writing;
  s.writing.reset();
  if (!IsEmptyBlob(c.id)) {
    // Sealed by the server for its writer: the stream owns it from now on.
    Status st = store_->Seal(c.id, s.writer);
    if (st.ok()) {
      store_->Release(c.id);  // the reference Seal gave the sealer
      st = store_->Adopt(c.id);
    }
    if (!st.ok()) {
      s.in_flight -= c.bytes;
      in_flight_ -= c.bytes;
      return st;
    }
  }
  s.ready.push_back(c);
  return Status::OK();
}

void StreamStore::FreeLocked(Stream& s, const Chunk& c) {
  s.in_flight -= c.bytes;
  in_flight_ -= c.bytes;
  if (IsEmptyBlob(c.id)) return;
  Status st;
  if (c.made) {
    st = store_->Delete(c.id);  // a chunk made by get_next_stream_chunk
  } else {
    // A pushed object (as vineyard: deep, not forced); others may still use it.
    DeleteRequest del;
    del.ids = {c.id};
    del.deep = true;
    std::vector<ObjectID> blobs;
    st = meta_->Delete(del, &blobs);
  }
  if (!st.ok() && !st.IsObjectNotExists()) {
    spdlog::warn("stream chunk {} not freed: {}", ObjectIDToString(c.id), st.ToString());
  }
}

void StreamStore::TakeWaiters(Stream& s, Wakes* wakes) {
  for (auto* w : {&s.waiting_reader, &s.waiting_writer}) {
    if (auto conn = w->lock()) wakes->push_back(std::move(conn));
    w->reset();
  }
}

void StreamStore::WakeAll(const Wakes& wakes) {
  for (const auto& conn : wakes) conn->Resume();
}

Result<std::optional<Payload>> StreamStore::GetNext(ObjectID id, uint64_t size,
                                                    Connection& conn) {
  if (size > store_->limit()) {  // could never fit: no point waiting for the reader
    return Status::NotEnoughMemory("a stream chunk of ", size, " bytes is larger than the "
                                   "whole store (", store_->limit(), " bytes, --size)");
  }
  Wakes wakes;
  Result<std::optional<Payload>> result = std::optional<Payload>();
  {
    std::lock_guard<std::mutex> guard(mu_);
    VY_ASSIGN_OR_RETURN(Stream * s, FindLocked(id, "write to the stream"));
    if (s->writer != 0 && s->writer != conn.serial()) {
      return Status::StreamOpened("the stream ", ObjectIDToString(id),
                                  " is open for writing by another client");
    }
    s->writer = conn.serial();
    auto waiting = s->waiting_writer.lock();
    const bool retry = waiting && waiting.get() == &conn;
    if (!retry) {
      if (waiting) {
        return Status::InvalidStreamState("a chunk of ", ObjectIDToString(id),
                                          " is already being waited for");
      }
      if (s->failed) {
        return Status::StreamFailed("the stream ", ObjectIDToString(id),
                                    " has failed (stopped as failed, or dropped)");
      }
      if (s->drained) {
        return Status::InvalidStreamState("the stream ", ObjectIDToString(id),
                                          " is stopped: no more chunks can be written");
      }
      VY_RETURN_NOT_OK(QueueWritingLocked(*s));
      if (!s->ready.empty()) TakeWaiters(*s, &wakes);
    } else if (s->failed) {
      s->waiting_writer.reset();
      return Status::StreamFailed("the stream ", ObjectIDToString(id),
                                  " failed while the writer waited (dropped)");
    }
    s->waiting_writer.reset();
    auto p = AllocatableLocked(*s, size) ? store_->Create(size, conn.serial())
                                         : Result<Payload>(Status::NotEnoughMemory("bound"));
    if (p.ok()) {
      s->writing = Chunk{p->object_id, size, true};
      s->in_flight += size;
      in_flight_ += size;
      result = std::optional<Payload>(*p);
    } else if (p.status().IsNotEnoughMemory() && s->in_flight > 0) {
      // The reader will free memory: wait for it rather than fail.
      s->waiting_writer = conn.weak_from_this();
      s->waiting_size = size;
    } else {
      result = p.status();
    }
  }
  WakeAll(wakes);
  return result;
}

uint64_t StreamStore::ChunkBytes(ObjectID chunk) {
  if (IsBlob(chunk)) {
    auto size = store_->Size(chunk);
    return size.ok() ? *size : 0;
  }
  auto trees = meta_->Get({chunk});
  if (!trees.ok()) return 0;
  uint64_t bytes = 0;
  std::unordered_set<std::string> seen;
  std::vector<const json*> pending;
  for (const auto& [key, tree] : trees->items()) pending.push_back(&tree);
  while (!pending.empty()) {
    const json* node = pending.back();
    pending.pop_back();
    auto type = node->find(meta_key::kTypename);
    if (type != node->end() && type->is_string() && *type == kBlobTypename) {
      auto id = node->find(meta_key::kId);
      auto n = node->find(meta_key::kNBytes);
      if (id != node->end() && id->is_string() && n != node->end() &&
          n->is_number_unsigned() && seen.insert(id->get<std::string>()).second) {
        bytes += n->get<uint64_t>();
      }
      continue;
    }
    for (const auto& [key, value] : node->items()) {
      if (value.is_object()) pending.push_back(&value);
    }
  }
  return bytes;
}

Result<bool> StreamStore::Push(ObjectID id, ObjectID chunk, Connection& conn) {
  // Before the stream's lock: expanding the chunk's tree under it would keep
  // the stream's other side waiting.
  const uint64_t bytes = ChunkBytes(chunk);
  Wakes wakes;
  bool queued = false;
  {
    std::lock_guard<std::mutex> guard(mu_);
    VY_ASSIGN_OR_RETURN(Stream * s, FindLocked(id, "push to the stream"));
    if (s->writer != 0 && s->writer != conn.serial()) {
      return Status::StreamOpened("the stream ", ObjectIDToString(id),
                                  " is open for writing by another client");
    }
    auto waiting = s->waiting_writer.lock();
    if (waiting && waiting.get() != &conn) {
      return Status::InvalidStreamState("a chunk of ", ObjectIDToString(id),
                                        " is already being waited for");
    }
    s->waiting_writer.reset();
    if (s->failed) return Status::StreamFailed("the stream ", ObjectIDToString(id), " has failed");
    if (s->drained) {
      return Status::InvalidStreamState("the stream ", ObjectIDToString(id),
                                        " is stopped: no more chunks can be pushed");
    }
    if (!meta_->Exists(chunk) && !(IsBlob(chunk) && store_->IsSealed(chunk))) {
      return Status::ObjectNotExists("cannot push ", ObjectIDToString(chunk),
                                     ": no such object (or an unsealed blob)");
    }
    s->writer = conn.serial();
    VY_RETURN_NOT_OK(QueueWritingLocked(*s));
    if (AllocatableLocked(*s, bytes)) {
      s->ready.push_back(Chunk{chunk, bytes, false});
      s->in_flight += bytes;
      in_flight_ += bytes;
      queued = true;
    } else {
      // The reader will free a chunk: wait for it rather than fill the memory.
      s->waiting_writer = conn.weak_from_this();
      s->waiting_size = bytes;
    }
    if (!s->ready.empty()) {
      if (auto r = s->waiting_reader.lock()) wakes.push_back(std::move(r));
      s->waiting_reader.reset();
    }
  }
  WakeAll(wakes);
  return queued;
}

Result<std::optional<ObjectID>> StreamStore::Pull(ObjectID id, Connection& conn) {
  Wakes wakes;
  Result<std::optional<ObjectID>> result = std::optional<ObjectID>();
  {
    std::lock_guard<std::mutex> guard(mu_);
    VY_ASSIGN_OR_RETURN(Stream * s, FindLocked(id, "read from the stream"));
    if (s->failed && s->ready.empty() && s->reader != conn.serial()) {
      // Nothing is left for anyone: say so, even while the last reader's
      // session is still being closed.
      return Status::StreamFailed("the stream ", ObjectIDToString(id),
                                  " failed (its writer failed, left, or it was dropped)");
    }
    if (s->reader != 0 && s->reader != conn.serial()) {
      return Status::StreamOpened("the stream ", ObjectIDToString(id),
                                  " is open for reading by another client");
    }
    s->reader = conn.serial();
    auto waiting = s->waiting_reader.lock();
    if (waiting && waiting.get() != &conn) {
      return Status::InvalidStreamState("a chunk of ", ObjectIDToString(id),
                                        " is already being waited for");
    }
    s->waiting_reader.reset();
    if (s->reading) {
      FreeLocked(*s, *s->reading);
      s->reading.reset();
      if (auto w = s->waiting_writer.lock()) wakes.push_back(std::move(w));
      s->waiting_writer.reset();
    }
    if (!s->ready.empty()) {
      s->reading = s->ready.front();
      s->ready.pop_front();
      result = std::optional<ObjectID>(s->reading->id);
    } else if (s->failed) {
      result = Status::StreamFailed("the stream ", ObjectIDToString(id),
                                    " failed (its writer failed, left, or it was dropped)");
    } else if (s->drained) {
      result = Status::StreamDrained("the stream ", ObjectIDToString(id),
                                     " is drained: no more chunks");
    } else {
      s->waiting_reader = conn.weak_from_this();
    }
  }
  WakeAll(wakes);
  return result;
}

Status StreamStore::Stop(ObjectID id, bool failed) {
  Wakes wakes;
  {
    std::lock_guard<std::mutex> guard(mu_);
    VY_ASSIGN_OR_RETURN(Stream * s, FindLocked(id, "stop the stream"));
    if (s->drained || s->failed) {
      return Status::InvalidStreamState("the stream ", ObjectIDToString(id),
                                        " is already stopped");
    }
    if (s->waiting_writer.lock()) {
      return Status::InvalidStreamState("the writer of ", ObjectIDToString(id),
                                        " is still waiting for a chunk");
    }
    Status st = QueueWritingLocked(*s);
    (failed ? s->failed : s->drained) = true;
    TakeWaiters(*s, &wakes);
    if (!st.ok()) spdlog::warn("stream {}: last chunk lost: {}", ObjectIDToString(id),
                               st.ToString());
  }
  WakeAll(wakes);
  return Status::OK();
}

Status StreamStore::Drop(ObjectID id) {
  Wakes wakes;
  {
    std::lock_guard<std::mutex> guard(mu_);
    VY_ASSIGN_OR_RETURN(Stream * s, FindLocked(id, "drop the stream"));
    s->failed = true;
    for (const auto& c : s->ready) FreeLocked(*s, c);
    s->ready.clear();
    if (s->writing) {
      // The writer's unsealed blob: dropped for it (its next request fails).
      (void)store_->Abort(s->writing->id, s->writer);
      s->in_flight -= s->writing->bytes;
      in_flight_ -= s->writing->bytes;
      s->writing.reset();
    }
    TakeWaiters(*s, &wakes);
  }
  WakeAll(wakes);
  return Status::OK();
}

void StreamStore::Forget(const std::vector<ObjectID>& ids) {
  Wakes wakes;
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (ObjectID id : ids) {
      auto it = streams_.find(id);
      if (it == streams_.end()) continue;
      Stream& s = it->second;
      for (const auto& c : s.ready) FreeLocked(s, c);
      if (s.reading) FreeLocked(s, *s.reading);
      if (s.writing) {
        (void)store_->Abort(s.writing->id, s.writer);
        FreeLocked(s, Chunk{kEmptyBlobID, s.writing->bytes, true});
      }
      TakeWaiters(s, &wakes);
      streams_.erase(it);
    }
  }
  WakeAll(wakes);
}

void StreamStore::ForgetAll() {
  std::vector<ObjectID> ids;
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (const auto& entry : streams_) ids.push_back(entry.first);
  }
  Forget(ids);
}

void StreamStore::OnClose(uint64_t serial) {
  Wakes wakes;
  {
    std::lock_guard<std::mutex> guard(mu_);
    for (auto& [id, s] : streams_) {
      if (s.writer == serial) {
        s.writer = 0;
        s.waiting_writer.reset();
        if (s.writing) {
          // Its unsealed blob went with it (BulkStore::ReleaseOwner).
          s.in_flight -= s.writing->bytes;
          in_flight_ -= s.writing->bytes;
          s.writing.reset();
        }
        if (!s.drained && !s.failed) {
          s.failed = true;
          spdlog::info("stream {} failed: its writer disconnected", ObjectIDToString(id));
        }
        TakeWaiters(s, &wakes);
      }
      if (s.reader == serial) {
        s.reader = 0;
        s.waiting_reader.reset();
        if (s.reading) {  // it was handed out: the next reader goes on from the next
          FreeLocked(s, *s.reading);
          s.reading.reset();
        }
        TakeWaiters(s, &wakes);
      }
    }
  }
  WakeAll(wakes);
}

StreamStore::Stats StreamStore::stats() const {
  std::lock_guard<std::mutex> guard(mu_);
  Stats st;
  st.streams = streams_.size();
  st.bytes_in_flight = in_flight_;
  for (const auto& [id, s] : streams_) {
    st.waiting += !s.waiting_reader.expired() + !s.waiting_writer.expired();
  }
  return st;
}

}  // namespace vineyard
