#pragma once
// What the benchmark files share: the heap-allocation counter, peak memory, random matrices and
// the thread-count argument.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <cstdint>

#include "tapegrad.h"

namespace tg::bench {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowVector = Eigen::Matrix<float, 1, Eigen::Dynamic>;

// Every heap allocation of the process so far (common.cpp replaces malloc and friends).
std::uint64_t heap_allocations();
double peak_rss_mib();

Matrix random_matrix(std::int64_t rows, std::int64_t cols, Generator& gen, float scale = 1);
// A float32 tensor of m's shape and values.
Tensor as_tensor(const Matrix& m);

// The library's default thread count, read by main before any benchmark changes it.
extern int default_threads;
// Benchmarks with a thread argument (range 0): 0 stands for the default.
void use_threads(const benchmark::State& state);

// Times `step` after `warm_up` untimed calls (which fill the caches: the allocator's, the tape's)
// and reports the heap allocations per step and the process's peak resident memory.
template <class Step>
void time_steps(benchmark::State& state, Step step, int warm_up = 10) {
  for (int i = 0; i < warm_up; ++i) step();
  const std::uint64_t before = heap_allocations();
  for (auto _ : state) step();
  state.counters["allocs_per_step"] =
      double(heap_allocations() - before) / double(state.iterations());
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

}  // namespace tg::bench
