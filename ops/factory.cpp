// Factories beyond autograd/factories.h, as PyTorch names them: identity matrices, evenly spaced
// values, seeded uniform draws, random integers and permutations, and the *_like forms. None is
// recorded (a new tensor is a constant until requires_grad(true)).
#include <algorithm>
#include <numeric>

#include "ops/everyday.h"

namespace tg {
namespace {

// A uniform integer in [0, range), by rejection: no modulo bias for any range.
std::uint64_t uniform_below(std::uint64_t range, Generator& generator) {
  const std::uint64_t limit =
      std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % range;
  std::uint64_t draw = generator.next();
  while (draw >= limit) draw = generator.next();
  return draw % range;
}

}  // namespace

Tensor eye(std::int64_t n, std::int64_t m, DType dtype, SourceLocation location) {
  if (n < 0 || m < 0) {
    detail::fail_at("eye", location, "expected non-negative sizes, got {} x {}", n, m);
  }
  const Shape shape({n, m});
  std::vector<double> values(std::size_t(shape.numel()));
  for (std::int64_t i = 0; i < std::min(n, m); ++i) values[std::size_t(i * m + i)] = 1;
  return from_vector(values, shape, dtype);
}

Tensor eye(std::int64_t n, DType dtype, SourceLocation location) {
  return eye(n, n, dtype, location);
}

// PyTorch's kernel: the first half counts up from start, the second half down from end, so both
// ends are exact and the values are symmetric (one step is start itself).
Tensor linspace(double start, double end, std::int64_t steps, DType dtype,
                SourceLocation location) {
  if (steps < 0) detail::fail_at("linspace", location, "steps must be >= 0, got {}", steps);
  if (!is_floating(dtype)) {
    detail::fail_at("linspace", location, "expected float32 or float64, got {}", dtype_name(dtype));
  }
  return dispatch_floating(dtype, "linspace", [&]<class T>() {
    Tensor out = empty({steps}, dtype);
    T* po = out.data<T>();
    const T first = T(start), last = T(end);
    const T step = steps > 1 ? (last - first) / T(steps - 1) : T(0);
    const std::int64_t halfway = std::max<std::int64_t>(steps / 2, 1);
    for (std::int64_t i = 0; i < steps; ++i) {
      po[i] = i < halfway ? first + step * T(i) : last - step * T(steps - i - 1);
    }
    return out;
  });
}

Tensor rand(const Shape& shape, Generator& generator, DType dtype) {
  return uniform(shape, generator, 0.0, 1.0, dtype);
}

Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& generator,
               DType dtype, SourceLocation location) {
  if (low >= high) {
    detail::fail_at("randint", location, "expected low < high, got [{}, {})", low, high);
  }
  const std::uint64_t range = std::uint64_t(high) - std::uint64_t(low);
  std::vector<std::int64_t> values(std::size_t(shape.numel()));
  for (std::int64_t& v : values)
    v = std::int64_t(std::uint64_t(low) + uniform_below(range, generator));
  if (dtype == i64) return int64_tensor(values, shape);
  return from_vector(std::vector<double>(values.begin(), values.end()), shape, dtype);
}

Tensor randperm(std::int64_t n, Generator& generator, SourceLocation location) {
  if (n < 0) detail::fail_at("randperm", location, "n must be >= 0, got {}", n);
  std::vector<std::int64_t> values(static_cast<std::size_t>(n));
  std::iota(values.begin(), values.end(), 0);
  // Fisher–Yates: every permutation equally likely.
  for (std::int64_t i = n - 1; i > 0; --i) {
    std::swap(values[std::size_t(i)], values[uniform_below(std::uint64_t(i) + 1, generator)]);
  }
  return int64_tensor(values);
}

Tensor full_like(const Tensor& like, double value) {
  return full(like.shape(), value, like.dtype());
}
Tensor rand_like(const Tensor& like, Generator& generator) {
  return rand(like.shape(), generator, like.dtype());
}
Tensor randn_like(const Tensor& like, Generator& generator) {
  return randn(like.shape(), generator, like.dtype());
}
Tensor randint_like(const Tensor& like, std::int64_t low, std::int64_t high, Generator& generator,
                    SourceLocation location) {
  return randint(low, high, like.shape(), generator, like.dtype(), location);
}

}  // namespace tg
