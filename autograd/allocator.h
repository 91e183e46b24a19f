#pragma once
// Memory for tensors: per-thread caches of freed blocks, so a steady training loop stops calling
// malloc (and, for large tensors, mmap and the page faults of fresh pages) after its first steps.
// A block freed on another thread joins that thread's cache. Caches are bounded; memory above
// the bound goes back to the system.
#include <cstddef>

namespace tg::detail {

// 64-byte aligned, so Eigen can use aligned vector loads. Throws std::bad_alloc above
// kMaxTensorBytes (autograd/shape.h).
void* allocate_buffer(std::size_t bytes);
void release_buffer(void* data, std::size_t bytes) noexcept;

void* allocate_small(std::size_t bytes);
void release_small(void* data, std::size_t bytes) noexcept;

// An allocator for std::allocate_shared: the tensor handle's control block and object come from
// the small-object cache.
template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(allocate_small(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { release_small(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const PoolAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace tg::detail
