#pragma once
// Intra-op parallelism: row kernels split their rows across threads (OpenMP) when a tensor is
// large enough to pay for it. Each row is computed by one thread, so results do not depend on the
// number of threads.
#include <cstdint>

namespace tg {

// Threads for intra-op parallelism (default: OpenMP's, usually the number of cores).
void set_num_threads(int threads);
int num_threads();

namespace detail {

// Below this many elements a kernel runs on one thread: starting threads costs more.
inline constexpr std::int64_t kParallelElements = 1 << 16;

// Calls body(i) for i in [0, count); in parallel when work (elements touched) is large.
template <class Body>
void parallel_for(std::int64_t count, std::int64_t work, Body body) {
  // Decided before the pragma: even a parallel region that runs on one thread costs
  // microseconds, more than a small op.
  if (work < kParallelElements || count <= 1) {
    for (std::int64_t i = 0; i < count; ++i) body(i);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (std::int64_t i = 0; i < count; ++i) body(i);
}

}  // namespace detail
}  // namespace tg
