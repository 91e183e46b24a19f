#include "nn/norm.h"

#include <fmt/format.h>

#include <utility>

#include "ops/norm.h"

namespace tg::nn {

// ---- BatchNorm1d, BatchNorm2d ----

BatchNormBase::BatchNormBase(const char* name, std::int64_t num_features, double eps,
                             std::optional<double> momentum, bool affine, bool track_running_stats,
                             DType dtype)
    : name_(name), num_features_(num_features), eps_(eps), momentum_(momentum) {
  if (num_features <= 0) fail("{}: expected num_features > 0, got {}", name, num_features);
  if (!(eps >= 0)) fail("{}: expected eps >= 0, got {}", name, eps);
  if (momentum && !(*momentum >= 0 && *momentum <= 1)) {
    fail("{}: expected 0 <= momentum <= 1, got {}", name, *momentum);
  }
  if (affine) {
    register_parameter("weight", weight, ones({num_features}, dtype));
    register_parameter("bias", bias, zeros({num_features}, dtype));
  }
  if (track_running_stats) {
    register_buffer("running_mean", running_mean, zeros({num_features}, dtype));
    register_buffer("running_var", running_var, ones({num_features}, dtype));
    register_buffer("num_batches_tracked", num_batches_tracked, zeros({}, i64));
  }
}

Tensor BatchNormBase::forward(const Tensor& input) {
  check_input_rank(input);
  const bool tracking = running_mean.defined();
  const bool update = is_training() && tracking;
  double factor = momentum_.value_or(0.0);
  if (update && !momentum_) {
    // PyTorch's cumulative moving average: 1/num_batches_tracked after this batch is counted.
    factor = 1.0 / double(std::as_const(num_batches_tracked).data<std::int64_t>()[0] + 1);
  }
  // The batch's statistics in training, and always without running statistics.
  const bool batch_statistics = is_training() || !tracking;
  // (Without track_running_stats the buffers are undefined: nothing to update.)
  const Tensor y =
      batch_norm(input, running_mean, running_var, weight, bias, batch_statistics, factor, eps_);
  // Counted after a successful forward (PyTorch counts before calling batch_norm).
  if (update) ++num_batches_tracked.data<std::int64_t>()[0];
  return y;
}

std::string BatchNormBase::describe() const {
  return fmt::format("{}({}, eps={}, momentum={}, affine={}, track_running_stats={})", name_,
                     num_features_, eps_, momentum_ ? fmt::format("{}", *momentum_) : "None",
                     weight.defined() ? "True" : "False",
                     running_mean.defined() ? "True" : "False");
}

BatchNorm1d::BatchNorm1d(std::int64_t num_features, double eps, std::optional<double> momentum,
                         bool affine, bool track_running_stats, DType dtype)
    : BatchNormBase("BatchNorm1d", num_features, eps, momentum, affine, track_running_stats,
                    dtype) {}

void BatchNorm1d::check_input_rank(const Tensor& input) const {
  if (!input.defined() || (input.rank() != 2 && input.rank() != 3)) {
    fail("BatchNorm1d: expected 2D or 3D input (got {}D input)",
         input.defined() ? input.rank() : 0);
  }
}

BatchNorm2d::BatchNorm2d(std::int64_t num_features, double eps, std::optional<double> momentum,
                         bool affine, bool track_running_stats, DType dtype)
    : BatchNormBase("BatchNorm2d", num_features, eps, momentum, affine, track_running_stats,
                    dtype) {}

void BatchNorm2d::check_input_rank(const Tensor& input) const {
  if (!input.defined() || input.rank() != 4) {
    fail("BatchNorm2d: expected 4D input (got {}D input)", input.defined() ? input.rank() : 0);
  }
}

// ---- GroupNorm ----

GroupNorm::GroupNorm(std::int64_t num_groups, std::int64_t num_channels, double eps, bool affine,
                     DType dtype)
    : num_groups_(num_groups), num_channels_(num_channels), eps_(eps) {
  if (num_groups <= 0 || num_channels <= 0 || num_channels % num_groups != 0) {
    fail(
        "GroupNorm: num_channels must be divisible by num_groups (got num_groups = {}, "
        "num_channels = {})",
        num_groups, num_channels);
  }
  if (!(eps >= 0)) fail("GroupNorm: expected eps >= 0, got {}", eps);
  if (affine) {
    register_parameter("weight", weight, ones({num_channels}, dtype));
    register_parameter("bias", bias, zeros({num_channels}, dtype));
  }
}

Tensor GroupNorm::forward(const Tensor& input) {
  return group_norm(input, num_groups_, weight, bias, eps_);
}

std::string GroupNorm::describe() const {
  return fmt::format("GroupNorm({}, {}, eps={}, affine={})", num_groups_, num_channels_, eps_,
                     weight.defined() ? "True" : "False");
}

// ---- Dropout2d ----

Dropout2d::Dropout2d(double p, std::uint64_t seed) : p_(p), generator_(seed) {
  if (!(p >= 0.0 && p <= 1.0)) {
    fail("Dropout2d: dropout probability has to be between 0 and 1, but got {}", p);
  }
}

Tensor Dropout2d::forward(const Tensor& input) {
  return dropout2d(input, p_, is_training(), generator_);
}

std::string Dropout2d::describe() const {
  return fmt::format("Dropout2d(p={}, inplace=False)", p_);
}

}  // namespace tg::nn
