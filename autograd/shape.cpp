#include "autograd/shape.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <ostream>

#include "autograd/error.h"

namespace tg {

namespace {

// The Shape invariant, the one place where a product of dims is checked.
void check_dims(std::span<const std::int64_t> dims, const char* op) {
  if (dims.size() > std::size_t(Shape::kMaxRank)) {
    fail("{}: rank {} of [{}] exceeds the maximum rank {}", op, dims.size(), fmt::join(dims, ", "),
         Shape::kMaxRank);
  }
  std::int64_t product = 1;
  for (std::int64_t dim : dims) {
    if (dim < 0) fail("{}: dimension {} of [{}] is negative", op, dim, fmt::join(dims, ", "));
    if (dim != 0 && __builtin_mul_overflow(product, dim, &product)) {
      fail("{}: shape [{}] is too large: the product of its non-zero dimensions exceeds 2^63 - 1",
           op, fmt::join(dims, ", "));
    }
  }
}

}  // namespace

Shape::Shape(std::span<const std::int64_t> dims, const char* op) {
  check_dims(dims, op);
  std::copy(dims.begin(), dims.end(), dims_.begin());
  rank_ = int(dims.size());
}

void Shape::push_back(std::int64_t dim, const char* op) {
  std::array<std::int64_t, kMaxRank + 1> grown{};
  std::copy(begin(), end(), grown.begin());
  grown[std::size_t(rank_)] = dim;
  *this = Shape(std::span(grown.data(), std::size_t(rank_ + 1)), op);
}

// Dropping a dim keeps the invariant, so this needs no check.
Shape Shape::without_axis(int axis) const {
  Shape out;
  for (int i = 0; i < rank_; ++i) {
    if (i != axis) out.dims_[out.rank_++] = dims_[i];
  }
  return out;
}

Shape Shape::with_dim(int axis, std::int64_t dim, const char* op) const {
  std::array<std::int64_t, kMaxRank> dims = dims_;
  dims[std::size_t(axis)] = dim;
  return Shape(std::span(dims.data(), std::size_t(rank_)), op);
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != other.dims_[i]) return false;
  }
  return true;
}

std::string Shape::str() const {
  return fmt::format("[{}]", fmt::join(dims(), ", "));
}

std::ostream& operator<<(std::ostream& out, const Shape& shape) {
  return out << shape.str();
}

std::size_t tensor_bytes(const Shape& shape, std::size_t element_size, const char* what) {
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(std::size_t(shape.numel()), element_size, &bytes) ||
      bytes > kMaxTensorBytes) {
    throw TensorTooLarge(
        fmt::format("a tensor of shape {} ({} elements of {}) exceeds the {} bytes "
                    "(1 TiB) one tensor may hold",
                    shape.str(), shape.numel(), what, kMaxTensorBytes));
  }
  return bytes;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int rank = std::max(a.rank(), b.rank());
  std::array<std::int64_t, Shape::kMaxRank> dims{};
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i;
    const int ib = b.rank() - rank + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1;
    const std::int64_t db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      fail("{}: shapes {} and {} do not broadcast (dimension {} from the right: {} vs {})", op,
           a.str(), b.str(), rank - i, da, db);
    }
    dims[i] = da == 1 ? db : da;
  }
  return Shape(std::span(dims.data(), std::size_t(rank)), op);
}

bool broadcastable_to(const Shape& from, const Shape& to) {
  if (from.rank() > to.rank()) return false;
  const int offset = to.rank() - from.rank();
  for (int i = 0; i < from.rank(); ++i) {
    if (from[i] != 1 && from[i] != to[offset + i]) return false;
  }
  return true;
}

std::vector<std::int64_t> unravel_index(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(std::size_t(shape.rank()));
  for (int d = shape.rank() - 1; d >= 0; --d) {
    const std::int64_t dim = std::max<std::int64_t>(shape[d], 1);
    index[std::size_t(d)] = flat % dim;
    flat /= dim;
  }
  return index;
}

int normalize_axis(std::int64_t axis, int rank, const char* op,
                   const std::source_location& location) {
  if (axis < -rank || axis >= rank || rank == 0) {
    detail::fail_at(op, location, "axis {} is out of range for a tensor of rank {}", axis, rank);
  }
  return int(axis < 0 ? axis + rank : axis);
}

AxisSplit split_at_axis(const Shape& shape, int axis) {
  AxisSplit split{1, shape[axis], 1};
  for (int i = 0; i < axis; ++i) split.outer *= shape[i];
  for (int i = axis + 1; i < shape.rank(); ++i) split.inner *= shape[i];
  return split;
}

}  // namespace tg
