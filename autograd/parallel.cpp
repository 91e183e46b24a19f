#include "autograd/parallel.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "autograd/error.h"

#ifdef TAPEGRAD_OPENBLAS
extern "C" void openblas_set_num_threads(int threads);
#endif

namespace tg {
namespace {

// Blocks per thread: more blocks than threads, so that when another process holds a core the
// threads that do run take over the blocks of the one that does not.
constexpr std::int64_t kBlocksPerThread = 4;

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int threads = std::atoi(env);
    if (threads >= 1) return threads;
  }
  cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) return std::max(1, CPU_COUNT(&cpus));
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

std::atomic<int> requested_threads{default_threads()};
std::atomic<bool> adapt_to_load{true};

// True on the pool's threads, and on a caller while its blocks run: a parallel_for from there
// runs serially instead of waiting for threads that are all busy with the enclosing one.
thread_local bool inside_parallel = false;

class InsideParallel {
 public:
  InsideParallel() { inside_parallel = true; }
  ~InsideParallel() { inside_parallel = false; }
  InsideParallel(const InsideParallel&) = delete;
  InsideParallel& operator=(const InsideParallel&) = delete;
};

struct Job {
  // [0, count) in about `wanted` blocks of consecutive indices.
  Job(std::int64_t n, std::int64_t wanted, void (*function)(void*, std::int64_t, std::int64_t),
      void* data)
      : call(function),
        context(data),
        count(n),
        block_size((n + wanted - 1) / wanted),
        blocks((n + block_size - 1) / block_size) {}

  void (*const call)(void*, std::int64_t, std::int64_t);
  void* const context;
  const std::int64_t count;
  const std::int64_t block_size;
  const std::int64_t blocks;
  std::atomic<std::int64_t> next{0};
  std::atomic<int> seats{0};  // pool threads that may still join
  std::mutex error_mutex;
  std::exception_ptr error;

  // Claims blocks until none is left (any thread may take any block); returns how many it ran.
  std::int64_t run() {
    std::int64_t ran = 0;
    for (std::int64_t b = next.fetch_add(1, std::memory_order_relaxed); b < blocks;
         b = next.fetch_add(1, std::memory_order_relaxed)) {
      const std::int64_t begin = b * block_size;
      ++ran;
      try {
        call(context, begin, std::min(count, begin + block_size));
      } catch (...) {
        const std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(blocks, std::memory_order_relaxed);  // the result is lost: stop early
      }
    }
    return ran;
  }
};

using Clock = std::chrono::steady_clock;

// Cores that other processes leave free, from the number of runnable tasks on the machine (the
// fourth field of /proc/loadavg, "running/total", which counts the caller itself), read at most
// every 2 ms. A pool thread woken onto a core another process is using runs a fraction of the
// time and holds up the caller with it, so a job uses no more threads than there are free cores.
class FreeCores {
 public:
  FreeCores()
      : fd_(open("/proc/loadavg", O_RDONLY | O_CLOEXEC)),
        cores_(std::max(1, int(sysconf(_SC_NPROCESSORS_ONLN)))) {}
  ~FreeCores() {
    if (fd_ >= 0) close(fd_);
  }
  FreeCores(const FreeCores&) = delete;
  FreeCores& operator=(const FreeCores&) = delete;

  int at(Clock::time_point now) {
    Clock::rep next = next_sample_.load(std::memory_order_relaxed);
    if (fd_ >= 0 && now.time_since_epoch().count() >= next &&
        next_sample_.compare_exchange_strong(next, (now + kInterval).time_since_epoch().count(),
                                             std::memory_order_relaxed)) {
      free_.store(sample(), std::memory_order_relaxed);
    }
    return free_.load(std::memory_order_relaxed);
  }

 private:
  static constexpr Clock::duration kInterval = std::chrono::milliseconds(2);

  int sample() const {
    char text[128];
    const ssize_t size = pread(fd_, text, sizeof text - 1, 0);
    if (size <= 0) return cores_;
    text[size] = '\0';
    const char* field = text;
    for (int spaces = 0; spaces < 3 && field; ++spaces) {
      field = std::strchr(field, ' ');
      if (field) ++field;
    }
    if (!field) return cores_;
    const int others = std::atoi(field) - 1;
    return std::max(1, cores_ - others);
  }

  const int fd_;
  const int cores_;
  std::atomic<Clock::rep> next_sample_{0};
  std::atomic<int> free_{cores_};
};

// When another process holds a core, a pool thread that claimed a block may be descheduled for a
// whole time slice (milliseconds) while the caller waits for it. A job that took longer than
// its caller would have taken alone sends the next jobs to the caller alone for a while: 10 ms,
// doubling while jobs keep losing, up to a second, so that on a busy machine the pool costs a
// late block now and then, and on a machine that became idle it is back within the period.
class Backoff {
 public:
  bool serial(Clock::time_point now) const {
    return now.time_since_epoch().count() < serial_until_.load(std::memory_order_relaxed);
  }
  void record(bool lost, Clock::time_point now) {
    if (!lost) {
      period_.store(kFirstPeriod, std::memory_order_relaxed);
      return;
    }
    const Clock::rep period = period_.load(std::memory_order_relaxed);
    serial_until_.store(now.time_since_epoch().count() + period, std::memory_order_relaxed);
    period_.store(std::min(2 * period, kLongestPeriod), std::memory_order_relaxed);
  }
  // A new thread count starts afresh.
  void reset() {
    serial_until_.store(0, std::memory_order_relaxed);
    period_.store(kFirstPeriod, std::memory_order_relaxed);
  }

 private:
  static constexpr Clock::rep kFirstPeriod = Clock::duration(std::chrono::milliseconds(10)).count();
  static constexpr Clock::rep kLongestPeriod = Clock::duration(std::chrono::seconds(1)).count();
  std::atomic<Clock::rep> serial_until_{0};
  std::atomic<Clock::rep> period_{kFirstPeriod};
};

// Workers sleep on a futex (std::atomic::wait) until the generation changes. A worker that
// wakes joins the current job, if there still is one, by counting itself in users_ before it
// reads job_; the caller clears job_ and then waits for users_ to drop to zero, so a job on the
// caller's stack is never touched after the caller returns.
class Pool {
 public:
  ~Pool() { resize(0); }

  // Serialises jobs: a second caller finds it locked and runs its loop itself.
  std::mutex& run_mutex() { return run_mutex_; }

  Backoff& backoff() { return backoff_; }
  FreeCores& free_cores() { return free_cores_; }

  // Needs run_mutex().
  // Runs job on the caller and up to threads - 1 of the pool's pool_size - 1 threads.
  void run(Job& job, int threads, int pool_size, Clock::time_point start) {
    if (int(workers_.size()) != pool_size - 1) resize(pool_size - 1);
    job.seats.store(threads - 1, std::memory_order_relaxed);
    job_.store(&job);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    std::int64_t mine = 0;
    {
      const InsideParallel inside;
      mine = job.run();
    }
    const Clock::time_point own_done = Clock::now();
    job_.store(nullptr);
    for (int users = users_.load(); users != 0; users = users_.load()) users_.wait(users);
    // The caller's blocks, scaled to all of them: about what the caller alone would have taken.
    // A job the caller ran entirely (no thread woke in time) cost only the wake-up: no lesson.
    if (mine > 0 && mine < job.blocks) {
      const Clock::time_point end = Clock::now();
      backoff_.record((end - start) * mine > (own_done - start) * job.blocks, end);
    }
  }

 private:
  void resize(int workers) {
    stop_.store(true);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::thread& worker : workers_) worker.join();
    workers_.clear();
    stop_.store(false);
    for (int i = 0; i < workers; ++i) {
      workers_.emplace_back([this, seen = generation_.load()] { work(seen); });
    }
  }

  void work(std::uint32_t seen) {
    inside_parallel = true;
    for (;;) {
      generation_.wait(seen, std::memory_order_acquire);
      seen = generation_.load(std::memory_order_acquire);
      if (stop_.load()) return;
      users_.fetch_add(1);
      Job* job = job_.load();
      if (job && job->seats.fetch_sub(1, std::memory_order_relaxed) > 0) job->run();
      if (users_.fetch_sub(1) == 1) users_.notify_one();
    }
  }

  std::mutex run_mutex_;
  std::vector<std::thread> workers_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<std::uint32_t> generation_{0};
  std::atomic<int> users_{0};
  std::atomic<bool> stop_{false};
  Backoff backoff_;
  FreeCores free_cores_;
};

Pool& pool() {
  static Pool instance;
  return instance;
}

}  // namespace

void set_num_threads(int threads) {
  if (threads < 1) fail("set_num_threads: expected at least one thread, got {}", threads);
  requested_threads.store(threads, std::memory_order_relaxed);
  pool().backoff().reset();
#ifdef TAPEGRAD_OPENBLAS
  openblas_set_num_threads(threads);
#endif
}

int num_threads() {
  return requested_threads.load(std::memory_order_relaxed);
}

namespace detail {

void set_adapt_to_load(bool adapt) {
  adapt_to_load.store(adapt, std::memory_order_relaxed);
}

void run_blocks(std::int64_t count, void (*call)(void*, std::int64_t, std::int64_t),
                void* context) {
  const int pool_size = num_threads();
  if (pool_size == 1 || inside_parallel) {
    call(context, 0, count);
    return;
  }
  Pool& p = pool();
  const Clock::time_point now = Clock::now();
  const int threads = adapt_to_load.load(std::memory_order_relaxed)
                          ? std::min(pool_size, p.free_cores().at(now))
                          : pool_size;
  std::unique_lock lock(p.run_mutex(), std::defer_lock);
  if (threads == 1 || p.backoff().serial(now) || !lock.try_lock()) {
    call(context, 0, count);
    return;
  }
  Job job(count, std::min(count, kBlocksPerThread * threads), call, context);
  p.run(job, threads, pool_size, now);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace detail
}  // namespace tg
