// A memory budget for fuzz_ops: operator new throws std::bad_alloc once the live heap would pass
// 1 GiB, as a machine without more memory would. The fuzzer draws huge dimensions, so an op may
// rightly ask for gigabytes; with this, the request is an expected outcome the harness catches,
// not an out-of-memory report from libFuzzer (which stops at any single allocation over
// -malloc_limit_mb or a process over -rss_limit_mb). Buffers come from malloc, so ASan still
// watches them.
#include <malloc.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {

// 1 GiB: tapegrad keeps up to 256 MiB of freed buffers cached per thread, and libFuzzer itself
// allocates through this operator new, so a small budget filled up and failed libFuzzer.
constexpr std::size_t kBudget = std::size_t(1) << 30;
std::atomic<std::size_t> live_bytes{0};

void* allocate(std::size_t size, std::size_t alignment) noexcept {
  const std::size_t live = live_bytes.load(std::memory_order_relaxed);
  if (live > kBudget || size > kBudget - live) return nullptr;
  const std::size_t bytes = size == 0 ? 1 : size;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(bytes)
                : std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
  if (p) live_bytes.fetch_add(malloc_usable_size(p), std::memory_order_relaxed);
  return p;
}

void* allocate_or_throw(std::size_t size, std::size_t alignment) {
  void* p = allocate(size, alignment);
  if (!p) throw std::bad_alloc();
  return p;
}

void release(void* p) noexcept {
  if (!p) return;
  live_bytes.fetch_sub(malloc_usable_size(p), std::memory_order_relaxed);
  std::free(p);
}

constexpr std::size_t kPlain = alignof(std::max_align_t);

}  // namespace

void* operator new(std::size_t size) {
  return allocate_or_throw(size, kPlain);
}
void* operator new[](std::size_t size) {
  return allocate_or_throw(size, kPlain);
}
void* operator new(std::size_t size, std::align_val_t a) {
  return allocate_or_throw(size, std::size_t(a));
}
void* operator new[](std::size_t size, std::align_val_t a) {
  return allocate_or_throw(size, std::size_t(a));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return allocate(size, kPlain);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return allocate(size, kPlain);
}
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, std::size_t(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(size, std::size_t(a));
}
void operator delete(void* p) noexcept {
  release(p);
}
void operator delete[](void* p) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  release(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}
