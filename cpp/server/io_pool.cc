#include "server/io_pool.h"

#include <pthread.h>

#include <chrono>
#include <string>

#include "common/socket_io.h"

namespace vineyard {

namespace {

// Runs the loop's handlers; after the last one it keeps polling for `spin_us`
// before it blocks, so that the next request of a busy client finds the loop
// awake (a wake-up of a sleeping thread is the largest part of a small
// request's latency on many virtual machines). Spinning pays only when requests
// come back to back, and only while a core is free (CoresToSpare: with 1,000
// clients on 2 cores, polling raised their p99): after kWastedSpins windows in
// a row that saw nothing, the loop sleeps at once for its next kSkippedSleeps
// waits (a core spent spinning is taken from the clients and the rest of the
// machine).
void RunLoop(asio::io_context& io, int spin_us) {
  if (spin_us <= 0) {
    io.run();
    return;
  }
  constexpr int kWastedSpins = 3;
  constexpr int kSkippedSleeps = 512;
  using Clock = std::chrono::steady_clock;
  const auto spin = std::chrono::microseconds(spin_us);
  auto last = Clock::now();
  bool idle = false;  // polled and found nothing since the last handler ran
  int wasted = 0;     // spin windows in a row that ended with nothing to do
  int skip = 0;       // sleeps left to take without spinning first
  while (!io.stopped()) {
    if (io.poll() > 0) {
      if (idle) wasted = 0;  // work came while spinning: it paid
      idle = false;
      last = Clock::now();
      continue;
    }
    idle = true;
    if (skip == 0 && Clock::now() - last < spin && CoresToSpare()) continue;
    if (skip > 0) {
      --skip;
    } else if (++wasted >= kWastedSpins) {
      wasted = 0;
      skip = kSkippedSleeps;
    }
    io.run_one();  // sleeps until there is work
    idle = false;
    last = Clock::now();
  }
}

}  // namespace

IoPool::IoPool(int loops, int workers, int spin_us)
    : workers_(static_cast<size_t>(workers)), num_workers_(workers), spin_us_(spin_us) {
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
    loop->thread = std::thread([l, spin = spin_us_] {
      std::string name = "vy-loop-" + std::to_string(l->index);
      pthread_setname_np(pthread_self(), name.c_str());
      RunLoop(l->io, spin);
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
