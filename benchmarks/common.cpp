#include "benchmarks/common.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>

// Every heap allocation of the process is counted, to report allocations per training step:
// glibc lets a program replace malloc and friends, and operator new and Eigen both end there.
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
}

namespace {
std::atomic<std::uint64_t> allocations{0};
}  // namespace

extern "C" {
void* malloc(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  *out = __libc_memalign(alignment, size);
  return *out ? 0 : 12;  // ENOMEM
}
}

namespace tg::bench {

int default_threads = 1;

std::uint64_t heap_allocations() {
  return allocations.load();
}

double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

Matrix random_matrix(std::int64_t rows, std::int64_t cols, Generator& gen, float scale) {
  Matrix m(rows, cols);
  for (std::int64_t i = 0; i < m.size(); ++i) m.data()[i] = float(gen.normal()) * scale;
  return m;
}

Tensor as_tensor(const Matrix& m) {
  Tensor t = empty({m.rows(), m.cols()}, f32);
  std::copy(m.data(), m.data() + m.size(), t.data<float>());
  return t;
}

void use_threads(const benchmark::State& state) {
  set_num_threads(state.range(0) == 0 ? default_threads : int(state.range(0)));
}

}  // namespace tg::bench
