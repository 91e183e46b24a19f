#pragma once
// Intra-op parallelism: a kernel splits its rows (or chunks) across a small pool of our own
// threads when its work is above a threshold measured for it. Each index is computed by one
// thread, so results do not depend on the number of threads.
//
// Why not OpenMP: libgomp's threads spin for about a millisecond after every parallel region,
// so on a machine whose cores are taken by other work each small kernel waited for a spinning
// thread to be descheduled (2-thread runs were up to 200× slower). The pool's threads block as
// soon as they find nothing to do, and the calling thread never waits for a thread that has
// not started: it takes every block no other thread has claimed. Nor does a job wake more
// threads than the machine has free cores.
#include <cstdint>

namespace tg {

// Threads for intra-op parallelism, the caller included. Default: the CPUs this process may run
// on (sched_getaffinity), or OMP_NUM_THREADS when set, as PyTorch does.
void set_num_threads(int threads);
int num_threads();

namespace detail {

// Below this many elements touched an elementwise or row kernel runs on the calling thread
// (measured with `tapegrad_bench --benchmark_filter=Threshold`: at 2^16 floats, 2 threads were
// slower than 1 for add and no faster for exp; the README's performance section has the table).
inline constexpr std::int64_t kParallelElements = 1 << 16;

// On by default: a job uses no more threads than the machine has free cores (parallel.cpp says
// how they are counted). Tests turn it off to see the threads they asked for on a busy machine.
void set_adapt_to_load(bool adapt);

// Runs call(context, begin, end) over contiguous blocks covering [0, count) on the pool and the
// calling thread; rethrows the first exception a block threw once every block has finished.
void run_blocks(std::int64_t count, void (*call)(void*, std::int64_t, std::int64_t), void* context);

// Calls body(i) for i in [0, count); in parallel when work (in the kernel's unit: elements for
// elementwise and row kernels) reaches threshold. A call from inside a parallel body, or while
// another thread's call holds the pool, runs on the calling thread: nesting never deadlocks and
// never waits.
template <class Body>
void parallel_for(std::int64_t count, std::int64_t work, Body body,
                  std::int64_t threshold = kParallelElements) {
  // Decided inline: a small op must not pay for a call that hands it to the pool.
  if (work < threshold || count <= 1 || num_threads() == 1) {
    for (std::int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  run_blocks(
      count,
      [](void* context, std::int64_t begin, std::int64_t end) {
        Body& f = *static_cast<Body*>(context);
        for (std::int64_t i = begin; i < end; ++i) f(i);
      },
      &body);
}

}  // namespace detail
}  // namespace tg
