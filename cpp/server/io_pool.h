// IoPool: the threads that run vineyardd — event loops that own the sockets,
// and a fixed pool of workers for slow requests.
//
// Each loop is an asio::io_context (epoll) run by one thread. A connection is
// bound to one loop for its whole life: its reads, fast requests, reply writes
// and teardown all run there, so one client's requests never run concurrently
// and its state needs no lock. Requests that may take long (a password hash,
// blob bytes on the socket, a large frame) go to the workers; the connection
// is handed over and handed back (see Connection). Nothing blocks a loop.
//
// Every loop also runs a sweep once a second (Redis's clientsCron): the
// connections' timeouts are checked there, not with a timer per connection.
//
// Thread-safety: Loop(i)/NextLoop() and Post() are thread-safe; Start/Stop/Join
// are called by the server's main thread.
#pragma once

#include <asio.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_set>
#include <vector>

namespace vineyard {

class Connection;

/// One event loop: its io_context, its thread and the connections bound to it.
struct EventLoop {
  explicit EventLoop(int index) : index(index), io(1), sweep(io) {}
  const int index;
  asio::io_context io;  // run by one thread (concurrency hint 1)
  std::thread thread;
  asio::steady_timer sweep;
  /// The connections bound to this loop; touched only on this loop's thread.
  std::unordered_set<std::shared_ptr<Connection>> connections;
  /// Where this loop's connections read into (one recv takes a small frame
  /// whole); the bytes are copied out before the next read.
  std::vector<char> input = std::vector<char>(64 * 1024);
};

class IoPool {
 public:
  /// `spin_us`: how long a loop polls after its last event before it sleeps.
  IoPool(int loops, int workers, int spin_us = 0);
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  /// Starts the loop threads; `sweep` runs on each loop once a second.
  void Start(std::function<void(EventLoop&)> sweep);
  /// The loop for the next connection (round robin).
  EventLoop& NextLoop();
  std::vector<std::unique_ptr<EventLoop>>& loops() { return loops_; }
  /// Runs `task` on a worker thread.
  void Post(std::function<void()> task);
  /// Waits for the workers to finish what they were given (after Stop of intake).
  void JoinWorkers();
  /// Stops every loop and joins its thread.
  void StopLoops();

  int num_workers() const { return num_workers_; }

 private:
  void ArmSweep(EventLoop& loop);

  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  asio::thread_pool workers_;
  const int num_workers_;
  std::function<void(EventLoop&)> sweep_;
  const int spin_us_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace vineyard
