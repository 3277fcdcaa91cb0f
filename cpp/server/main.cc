// vineyardd: parse flags, start the server, stop cleanly on SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <thread>

#include <gflags/gflags.h>
#include <spdlog/spdlog.h>

#include "server/logging.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // Signals are taken by one thread (below); the rest never see them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto options = vineyard::ParseServerOptions(&argc, &argv);
  if (!options.ok()) {
    fprintf(stderr, "vineyardd: %s\n", options.status().message().c_str());
    return 2;
  }
  vineyard::ConfigureLogging(options->log_level, options->log_format);

  vineyard::Server server(std::move(options).value());
  vineyard::Status st = server.Start();
  if (!st.ok()) {
    fprintf(stderr, "vineyardd: %s\n", st.message().c_str());
    return 1;
  }
  std::thread signal_thread([&server, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.Stop();
  });
  server.Run();
  // Run() also returns on a fatal loop error; wake the signal thread so it can end.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  gflags::ShutDownCommandLineFlags();
  return 0;
}
