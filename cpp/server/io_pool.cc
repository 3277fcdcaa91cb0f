#include "server/io_pool.h"

#include <pthread.h>

#include <string>

namespace vineyard {

IoPool::IoPool(int loops, int workers)
    : workers_(static_cast<size_t>(workers)), num_workers_(workers) {
  for (int i = 0; i < loops; ++i) loops_.push_back(std::make_unique<EventLoop>(i));
}

IoPool::~IoPool() {
  StopLoops();
  workers_.join();
}

void IoPool::Start(std::function<void(EventLoop&)> sweep) {
  sweep_ = std::move(sweep);
  for (auto& loop : loops_) {
    guards_.push_back(asio::make_work_guard(loop->io));
    ArmSweep(*loop);
    EventLoop* l = loop.get();
    loop->thread = std::thread([l] {
      std::string name = "vy-loop-" + std::to_string(l->index);
      pthread_setname_np(pthread_self(), name.c_str());
      l->io.run();
    });
  }
}

void IoPool::ArmSweep(EventLoop& loop) {
  loop.sweep.expires_after(std::chrono::seconds(1));
  loop.sweep.async_wait([this, &loop](const asio::error_code& ec) {
    if (ec) return;
    if (sweep_) sweep_(loop);
    ArmSweep(loop);
  });
}

EventLoop& IoPool::NextLoop() { return *loops_[next_++ % loops_.size()]; }

void IoPool::Post(std::function<void()> task) { asio::post(workers_, std::move(task)); }

void IoPool::JoinWorkers() { workers_.join(); }

void IoPool::StopLoops() {
  for (auto& loop : loops_) {
    asio::post(loop->io, [l = loop.get()] { l->sweep.cancel(); });
  }
  guards_.clear();
  for (auto& loop : loops_) {
    loop->io.stop();
    if (loop->thread.joinable()) loop->thread.join();
  }
}

}  // namespace vineyard
