#include "autograd/shape.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ostream>

#include "autograd/error.h"

namespace tg {

Shape::Shape(std::span<const std::int64_t> dims) {
  if (dims.size() > kMaxRank) {
    fail("Shape: rank {} exceeds the maximum rank {}", dims.size(), kMaxRank);
  }
  for (std::int64_t dim : dims) push_back(dim);
}

void Shape::push_back(std::int64_t dim) {
  if (rank_ == kMaxRank) fail("Shape: rank exceeds the maximum rank {}", kMaxRank);
  if (dim < 0) fail("Shape: dimension {} is negative", dim);
  dims_[rank_++] = dim;
}

Shape Shape::without_axis(int axis) const {
  Shape out;
  for (int i = 0; i < rank_; ++i) {
    if (i != axis) out.push_back(dims_[i]);
  }
  return out;
}

Shape Shape::with_dim(int axis, std::int64_t dim) const {
  Shape out = *this;
  out.dims_[axis] = dim;
  return out;
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
  return Shape(std::span(dims.data(), std::size_t(rank)));
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

int normalize_axis(std::int64_t axis, int rank, const char* op) {
  if (axis < -rank || axis >= rank || rank == 0) {
    fail("{}: axis {} is out of range for a tensor of rank {}", op, axis, rank);
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
