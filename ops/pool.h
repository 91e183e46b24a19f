#pragma once
// Pooling with PyTorch's layouts and options (torch.nn.functional's names); see ops/conv.h.
#include <cstdint>
#include <optional>

#include "ops/conv.h"

namespace tg {

// ---- pooling (ops/pool.cpp) ----

// F.max_pool1d / F.max_pool2d on [N, C, L] / [N, C, H, W]: padding is −inf, at most half the
// kernel; the stride defaults to the kernel size; with ceil_mode the last window may start in the
// padding's right half, as PyTorch. The gradient goes to the first arg-max of each window (the
// first NaN, if any), as PyTorch.
struct MaxPool1dOptions {
  std::optional<std::int64_t> stride;  // default: the kernel size
  std::int64_t padding = 0;
  std::int64_t dilation = 1;
  bool ceil_mode = false;
};
Tensor max_pool1d(const Tensor& input, std::int64_t kernel_size,
                  const MaxPool1dOptions& options = {},
                  SourceLocation location = SourceLocation::current());
struct MaxPool2dOptions {
  std::optional<Size2> stride;  // default: the kernel size
  Size2 padding = 0;
  Size2 dilation = 1;
  bool ceil_mode = false;
};
Tensor max_pool2d(const Tensor& input, Size2 kernel_size, const MaxPool2dOptions& options = {},
                  SourceLocation location = SourceLocation::current());
// F.avg_pool2d: with count_include_pad the zeros of the padding count in each window's size,
// and divisor_override, when given, replaces that size.
struct AvgPool2dOptions {
  std::optional<Size2> stride;  // default: the kernel size
  Size2 padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::optional<std::int64_t> divisor_override;
};
Tensor avg_pool2d(const Tensor& input, Size2 kernel_size, const AvgPool2dOptions& options = {},
                  SourceLocation location = SourceLocation::current());
// F.adaptive_avg_pool2d / F.adaptive_max_pool2d: output [N, C, output_size]; window i along an
// axis of length n covers [⌊i·n/out⌋, ⌈(i + 1)·n/out⌉).
Tensor adaptive_avg_pool2d(const Tensor& input, Size2 output_size,
                           SourceLocation location = SourceLocation::current());
Tensor adaptive_max_pool2d(const Tensor& input, Size2 output_size,
                           SourceLocation location = SourceLocation::current());

namespace detail {
void register_pool_ops(OpRegistry& registry);
}  // namespace detail

}  // namespace tg
