#pragma once
// Convolutional-network ops with PyTorch's layouts and options (torch.nn.functional's names):
// channels first (N, C, L) and (N, C, H, W); a batch dimension is required. Each records the
// caller's source location, and argument errors name the op, the shapes and the caller's
// file:line. Both floating dtypes.
//
// The lowering (ops/conv.cpp): unfold (im2col) and fold (col2im) are differentiable ops, each the
// other's adjoint, and a convolution is one GEMM on the unfolded input, so its rule is GEMMs plus
// a fold, written with tapegrad's own ops (second order works).
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "autograd/autograd.h"
#include "ops/ops.h"

namespace tg {

class OpRegistry;

// One size per spatial dimension (height, width), or one number for both: PyTorch's
// `int or tuple` arguments. Size2{2} and 2 mean {2, 2}; Size2{3, 1} is height 3, width 1.
struct Size2 {
  Size2(std::int64_t both) : h(both), w(both) {}  // NOLINT: implicit, as PyTorch's int
  Size2(std::int64_t height, std::int64_t width) : h(height), w(width) {}
  std::int64_t h;
  std::int64_t w;
};

// PyTorch's padding="same" (the output as long as the input; stride 1 only, and where the total
// padding is odd the extra one goes at the end) and padding="valid" (none).
enum class ConvPadding { same, valid };

// A convolution's padding: amounts per side (the same before and after), or a ConvPadding.
struct Padding1d {
  Padding1d(std::int64_t amount) : amount(amount) {}  // NOLINT: implicit, as PyTorch's int
  Padding1d(ConvPadding mode) : mode(mode) {}         // NOLINT
  std::int64_t amount = 0;
  std::optional<ConvPadding> mode;
};
struct Padding2d {
  Padding2d(std::int64_t both) : amount(both) {}  // NOLINT: implicit, as PyTorch's int
  Padding2d(std::int64_t height, std::int64_t width) : amount(height, width) {}
  Padding2d(ConvPadding mode) : amount(0), mode(mode) {}  // NOLINT
  Size2 amount;
  std::optional<ConvPadding> mode;
};

// ---- convolutions (ops/conv.cpp) ----

// F.unfold: the sliding kernel_size blocks of a [N, C, H, W] input as columns,
// [N, C·kh·kw, L] with L the number of block positions (row-major over the output grid).
struct UnfoldOptions {
  Size2 dilation = 1;
  Size2 padding = 0;
  Size2 stride = 1;
};
Tensor unfold(const Tensor& input, Size2 kernel_size, const UnfoldOptions& options = {},
              SourceLocation location = SourceLocation::current());
// F.fold, unfold's adjoint: sums [N, C·kh·kw, L] columns back into [N, C, output_size]
// (overlapping blocks add).
Tensor fold(const Tensor& input, Size2 output_size, Size2 kernel_size,
            const UnfoldOptions& options = {}, SourceLocation location = SourceLocation::current());

// F.conv1d / F.conv2d: input [N, C_in, L] / [N, C_in, H, W], weight [C_out, C_in/groups, k…],
// bias [C_out] or undefined. groups = C_in = C_out is a depthwise convolution.
struct Conv1dOptions {
  std::int64_t stride = 1;
  Padding1d padding = 0;
  std::int64_t dilation = 1;
  std::int64_t groups = 1;
};
Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias = {},
              const Conv1dOptions& options = {},
              SourceLocation location = SourceLocation::current());
struct Conv2dOptions {
  Size2 stride = 1;
  Padding2d padding = 0;
  Size2 dilation = 1;
  std::int64_t groups = 1;
};
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = {},
              const Conv2dOptions& options = {},
              SourceLocation location = SourceLocation::current());
// F.conv_transpose2d, conv2d's adjoint with respect to its input: input [N, C_in, H, W], weight
// [C_in, C_out/groups, kh, kw] (PyTorch's layout), bias [C_out]. The output is
// (H − 1)·stride − 2·padding + dilation·(kh − 1) + output_padding + 1 high (likewise wide).
struct ConvTranspose2dOptions {
  Size2 stride = 1;
  Size2 padding = 0;
  Size2 output_padding = 0;
  std::int64_t groups = 1;
  Size2 dilation = 1;
};
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias = {},
                        const ConvTranspose2dOptions& options = {},
                        SourceLocation location = SourceLocation::current());

namespace detail {
void register_conv_ops(OpRegistry& registry);
}  // namespace detail

}  // namespace tg
