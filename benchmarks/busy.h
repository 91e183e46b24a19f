#pragma once
// Keeps cores busy while a benchmark runs, to time it on a machine shared with other work (a
// build, another training run): `tapegrad_bench --busy=N` starts N processes that spin until the
// benchmark exits.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

namespace tg::bench {

class BusyCores {
 public:
  explicit BusyCores(int cores) {
    const pid_t parent = getpid();
    for (int i = 0; i < cores; ++i) {
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("BusyCores: fork failed");
      if (pid == 0) spin(parent);
      children_.push_back(pid);
    }
    // Spinning before the first timing, not while it starts.
    if (cores > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ~BusyCores() {
    for (const pid_t pid : children_) kill(pid, SIGKILL);
    for (const pid_t pid : children_) waitpid(pid, nullptr, 0);
  }
  BusyCores(const BusyCores&) = delete;
  BusyCores& operator=(const BusyCores&) = delete;

 private:
  [[noreturn]] static void spin(pid_t parent) {
    // A session of its own: with autogroup scheduling the spinner competes with the benchmark as
    // another user's program would, not as one more of its threads.
    setsid();
    // A benchmark that dies (or is killed) takes its spinners with it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    volatile unsigned long turns = 0;
    for (;;) turns = turns + 1;
  }

  std::vector<pid_t> children_;
};

}  // namespace tg::bench
