#include "ops/kernels.h"

#include <string>

#include "ops/ops.h"

namespace tg::detail {

namespace {

// What is wrong with a and b as the two floating operands of one op, or "".
std::string same_floating_problem(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) {
    return fmt::format("dtype mismatch: {} {} and {} {} (convert one with .to())",
                       dtype_name(a.dtype()), a.shape().str(), dtype_name(b.dtype()),
                       b.shape().str());
  }
  if (!is_floating(a.dtype())) {
    return fmt::format("expected floating tensors (float32 or float64), got {}",
                       dtype_name(a.dtype()));
  }
  return {};
}

}  // namespace

void check_same_floating(const Tensor& a, const Tensor& b, const char* op) {
  if (const std::string problem = same_floating_problem(a, b); !problem.empty()) {
    fail("{}: {}", op, problem);
  }
}

void check_same_floating(const Tensor& a, const Tensor& b, const char* op,
                         const SourceLocation& location) {
  if (const std::string problem = same_floating_problem(a, b); !problem.empty()) {
    fail_at(op, location, "{}", problem);
  }
}

namespace {

// Strides of `in` seen through the broadcast to `out`: 0 along the dimensions it repeats.
std::array<std::int64_t, Shape::kMaxRank> broadcast_strides(const Shape& in, const Shape& out) {
  std::array<std::int64_t, Shape::kMaxRank> strides{};
  const int offset = out.rank() - in.rank();
  std::int64_t stride = 1;
  for (int d = out.rank() - 1; d >= 0; --d) {
    const int di = d - offset;
    if (di < 0) continue;
    strides[d] = (in[di] == 1 && out[d] != 1) ? 0 : stride;
    stride *= in[di];
  }
  return strides;
}

}  // namespace

BroadcastRows::BroadcastRows(const Shape& out, const Shape& a, const Shape& b) : out_(out) {
  if (out.rank() == 0) return;
  const auto a_strides = broadcast_strides(a, out);
  const auto b_strides = broadcast_strides(b, out);
  outer_rank_ = out.rank() - 1;
  length_ = out[outer_rank_];
  a_inner_ = length_ == 1 ? 1 : a_strides[outer_rank_];
  b_inner_ = length_ == 1 ? 1 : b_strides[outer_rank_];
  for (int d = 0; d < outer_rank_; ++d) {
    rows_ *= out[d];
    a_strides_[d] = a_strides[d];
    b_strides_[d] = b_strides[d];
  }
}

Shape keepdim_shape(const Shape& shape, int axis) {
  return shape.with_dim(axis, 1);
}

Tensor unsqueeze_reduced(const Tensor& grad, const Shape& input_shape, int axis, bool keepdim) {
  return keepdim ? grad : reshape(grad, keepdim_shape(input_shape, axis));
}

}  // namespace tg::detail
