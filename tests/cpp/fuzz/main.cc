// vineyard_fuzz: the protocol fuzzer as a program (`make fuzz`). It starts a
// fresh vineyardd (or attaches to one with --socket), sends --messages mutated
// requests over IPC and TCP, and prints messages, time, crashes and the
// server's RSS. Exit status 0 only if the server survived every check.
//
//   vineyard_fuzz --messages=1000000 --seed=1
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "client/client.h"
#include "fuzz/engine.h"

#ifndef VINEYARDD_PATH
#error "VINEYARDD_PATH must name the vineyardd binary"
#endif

using vineyard::fuzz::FuzzOptions;

namespace {

bool Flag(const std::string& arg, const char* name, std::string* value) {
  std::string prefix = std::string("--") + name + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  *value = arg.substr(prefix.size());
  return true;
}

void Usage() {
  std::cerr << "usage: vineyard_fuzz [--messages=N] [--seed=N] [--batch=N] [--size=256Mi]\n"
               "                     [--vineyardd=PATH] [--rss_growth_mb=N]\n"
               "                     [--socket=PATH --rpc_port=N --pid=N  (attach instead)]\n";
}

std::string Tail(const std::string& path, size_t bytes) {
  std::ifstream in(path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace

int main(int argc, char** argv) {
  FuzzOptions o;
  o.messages = 1000000;
  std::string vineyardd = VINEYARDD_PATH, size = "256Mi", v;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (Flag(a, "messages", &v)) o.messages = std::stoull(v);
    else if (Flag(a, "seed", &v)) o.seed = std::stoull(v);
    else if (Flag(a, "batch", &v)) o.batch = std::stoull(v);
    else if (Flag(a, "size", &v)) size = v;
    else if (Flag(a, "vineyardd", &v)) vineyardd = v;
    else if (Flag(a, "rss_growth_mb", &v)) o.rss_growth_limit_kb = std::stoull(v) * 1024;
    else if (Flag(a, "socket", &v)) o.socket = v;
    else if (Flag(a, "rpc_port", &v)) o.rpc_port = std::stoi(v);
    else if (Flag(a, "pid", &v)) o.server_pid = std::stoi(v);
    else {
      Usage();
      return 2;
    }
  }

  pid_t child = -1;
  std::string log = "/tmp/vineyard-fuzz-" + std::to_string(getpid()) + ".log";
  if (o.socket.empty()) {
    o.socket = "/tmp/vineyard-fuzz-" + std::to_string(getpid()) + ".sock";
    child = fork();
    if (child == 0) {
      FILE* out = std::fopen(log.c_str(), "w");
      if (out != nullptr) {
        dup2(fileno(out), 1);
        dup2(fileno(out), 2);
      }
      std::string s = "--socket=" + o.socket, z = "--size=" + size;
      execl(vineyardd.c_str(), vineyardd.c_str(), s.c_str(), z.c_str(), "--meta=local", "--rpc",
            "--rpc_socket_port=0", static_cast<char*>(nullptr));
      _exit(127);
    }
    o.server_pid = child;
    std::shared_ptr<vineyard::Client> client;
    for (int i = 0; i < 500 && !client; ++i) {
      auto c = vineyard::Client::Connect(o.socket);
      if (c.ok()) client = *c;
      else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!client) {
      std::cerr << "vineyardd (" << vineyardd << ") did not start; its log:\n"
                << Tail(log, 4000);
      kill(child, SIGKILL);
      return 1;
    }
    const std::string& ep = client->rpc_endpoint();
    o.rpc_port = std::stoi(ep.substr(ep.rfind(':') + 1));
  }

  o.progress = [](const std::string& line) { std::cerr << line.substr(0, line.find('\n')) << "\n"; };
  std::cout << "fuzzing " << o.socket << " and 127.0.0.1:" << o.rpc_port << " with seed "
            << o.seed << ", " << o.messages << " messages" << std::endl;
  auto report = vineyard::fuzz::RunFuzz(o);
  std::cout << report.Summary() << std::endl;
  if (!report.ok()) {
    std::cout << "last frames sent (oldest first):\n";
    for (const auto& f : report.recent) std::cout << "  " << f << "\n";
  }
  int rc = report.ok() ? 0 : 1;
  if (child > 0) {
    kill(child, SIGTERM);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::cout << "vineyardd did not exit cleanly on SIGTERM: "
                << (WIFSIGNALED(status) ? std::string("killed by ") + strsignal(WTERMSIG(status))
                                        : "exit code " + std::to_string(WEXITSTATUS(status)))
                << "\n";
      rc = 1;
    }
    if (rc != 0) std::cout << "vineyardd's log (" << log << "), last lines:\n" << Tail(log, 4000);
    else unlink(log.c_str());
  }
  return rc;
}
