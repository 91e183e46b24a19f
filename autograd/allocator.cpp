#include "autograd/allocator.h"

#include <algorithm>
#include <array>
#include <bit>
#include <new>
#include <vector>

#include "autograd/shape.h"

namespace tg::detail {
namespace {

constexpr std::align_val_t kAlignment{64};
constexpr std::size_t kMinBuffer = 64;
// Power-of-two buffer classes up to kMaxTensorBytes; a class keeps at most 16 MiB or 64 blocks,
// whichever is more blocks (a graph of thousands of small tensors reuses all of them), and a
// thread keeps at most kMaxCachedBytes in all.
constexpr std::size_t kClasses = std::bit_width(kMaxTensorBytes);
static_assert(std::has_single_bit(kMaxTensorBytes));
constexpr std::size_t kBytesPerClass = std::size_t(16) << 20;
constexpr std::size_t kMinBlocksPerClass = 64;
constexpr std::size_t kMaxCachedBytes = std::size_t(256) << 20;
// Small objects in 16-byte steps up to 512 bytes.
constexpr std::size_t kSmallStep = 16;
constexpr std::size_t kSmallClasses = 32;
constexpr std::size_t kSmallBlocksPerClass = 1 << 16;

std::size_t buffer_class(std::size_t bytes) {
  return std::size_t(std::bit_width(std::max(bytes, kMinBuffer) - 1));
}

struct Caches {
  std::array<std::vector<void*>, kClasses> buffers;
  std::array<std::vector<void*>, kSmallClasses> small;
  std::size_t cached_bytes = 0;

  ~Caches() {
    for (std::size_t c = 0; c < kClasses; ++c) {
      for (void* p : buffers[c]) ::operator delete(p, kAlignment);
    }
    for (auto& list : small) {
      for (void* p : list) ::operator delete(p);
    }
  }
};

// A trivially destructible flag outlives the caches, so a block freed during thread teardown,
// after the caches are gone, goes straight back to the system.
thread_local bool caches_alive = false;

struct CachesOwner {
  Caches caches;
  CachesOwner() { caches_alive = true; }
  ~CachesOwner() { caches_alive = false; }
};

Caches* caches() {
  thread_local CachesOwner owner;
  return caches_alive ? &owner.caches : nullptr;
}

}  // namespace

void* allocate_buffer(std::size_t bytes) {
  // Above the largest class there is no class to index, and the system must not be asked.
  if (bytes > kMaxTensorBytes) throw std::bad_alloc();
  const std::size_t c = buffer_class(bytes);
  if (Caches* cache = caches(); cache && !cache->buffers[c].empty()) {
    void* p = cache->buffers[c].back();
    cache->buffers[c].pop_back();
    cache->cached_bytes -= std::size_t(1) << c;
    return p;
  }
  return ::operator new(std::size_t(1) << c, kAlignment);
}

void release_buffer(void* data, std::size_t bytes) noexcept {
  const std::size_t c = buffer_class(bytes);
  const std::size_t size = std::size_t(1) << c;
  Caches* cache = caches_alive ? caches() : nullptr;
  if (cache && cache->buffers[c].size() < std::max(kMinBlocksPerClass, kBytesPerClass >> c) &&
      cache->cached_bytes + size <= kMaxCachedBytes) {
    try {
      cache->buffers[c].push_back(data);
      cache->cached_bytes += size;
      return;
    } catch (const std::bad_alloc&) {
    }
  }
  ::operator delete(data, kAlignment);
}

void* allocate_small(std::size_t bytes) {
  const std::size_t c = (bytes + kSmallStep - 1) / kSmallStep;
  if (c < kSmallClasses) {
    if (Caches* cache = caches(); cache && !cache->small[c].empty()) {
      void* p = cache->small[c].back();
      cache->small[c].pop_back();
      return p;
    }
    return ::operator new(c* kSmallStep);
  }
  return ::operator new(bytes);
}

void release_small(void* data, std::size_t bytes) noexcept {
  const std::size_t c = (bytes + kSmallStep - 1) / kSmallStep;
  Caches* cache = caches_alive ? caches() : nullptr;
  if (c < kSmallClasses && cache && cache->small[c].size() < kSmallBlocksPerClass) {
    try {
      cache->small[c].push_back(data);
      return;
    } catch (const std::bad_alloc&) {
    }
  }
  ::operator delete(data);
}

}  // namespace tg::detail
