#include "common/lazy_free.h"

#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace vineyard {

namespace {

constexpr size_t kMaxPending = 8;

class Freer {
 public:
  // The freer of this process (a forked child gets a new one: the parent's
  // thread does not run there, and its mutex may have been held at the fork).
  static Freer& Get() {
    static std::mutex lock;
    static Freer* current = nullptr;
    std::lock_guard<std::mutex> guard(lock);
    if (current == nullptr || current->pid_ != getpid()) {
      current = new Freer();  // never destroyed: the thread may outlive static destructors
    }
    return *current;
  }

  // False when the thread is behind (or could not start): the caller frees.
  bool Push(std::unique_ptr<json>& doc) {
    std::unique_lock<std::mutex> guard(mu_);
    if (!started_) {
      started_ = true;
      try {
        std::thread([this] { Run(); }).detach();
        running_ = true;
      } catch (const std::exception&) {
        running_ = false;
      }
    }
    if (!running_ || pending_.size() >= kMaxPending) return false;
    pending_.push_back(std::move(doc));
    cv_.notify_one();
    return true;
  }

 private:
  Freer() : pid_(getpid()) {}

  void Run() {
    std::unique_lock<std::mutex> guard(mu_);
    while (true) {
      cv_.wait(guard, [this] { return !pending_.empty(); });
      std::unique_ptr<json> doc = std::move(pending_.front());
      pending_.pop_front();
      guard.unlock();
      doc.reset();
      guard.lock();
    }
  }

  const pid_t pid_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<json>> pending_;
  bool started_ = false;
  bool running_ = false;
};

}  // namespace

bool IsLargeDocument(const json& doc, size_t limit) {
  size_t seen = 0;
  std::vector<const json*> pending{&doc};
  while (!pending.empty()) {
    const json* n = pending.back();
    pending.pop_back();
    if (++seen > limit) return true;
    if (n->is_object() || n->is_array()) {
      if (n->size() > limit) return true;
      for (const auto& child : *n) pending.push_back(&child);
    }
  }
  return false;
}

void LazyFree(std::unique_ptr<json> doc) {
  if (doc == nullptr || !IsLargeDocument(*doc)) return;  // freed here
  (void)Freer::Get().Push(doc);                           // else freed here too
}

void LazyFree(json& doc) {
  if (!IsLargeDocument(doc)) {
    doc = nullptr;
    return;
  }
  LazyFree(std::make_unique<json>(std::move(doc)));
  doc = nullptr;
}

std::shared_ptr<json> MakeLazyFreed(json doc) {
  return std::shared_ptr<json>(new json(std::move(doc)),
                               [](json* p) { LazyFree(std::unique_ptr<json>(p)); });
}

}  // namespace vineyard
