#pragma once
// Pooling with PyTorch's layouts and options (torch.nn.functional's names); see ops/conv.h.
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "ops/conv.h"

namespace tg {

// ---- pooling (ops/pool.cpp) ----

// F.max_pool1d / F.max_pool2d on [N, C, L] / [N, C, H, W] (N may be 0; C, H, W may not, as
// PyTorch): padding is −inf, at most half the kernel; the stride defaults to the kernel size; with
// ceil_mode the last window may start in the padding's right half, as PyTorch. The gradient goes
// to the first arg-max of each window in row-major order, or to its last NaN if it holds any (a
// NaN replaces every earlier entry, as in PyTorch's kernel); overlapping windows add. A window
// lying wholly in the padding (possible with dilation) is an error: PyTorch returns −inf there
// with an index outside the input.
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
// axis of length n covers [⌊i·n/out⌋, ⌈(i + 1)·n/out⌉). An output size may be 0 (an empty
// output), as PyTorch.
Tensor adaptive_avg_pool2d(const Tensor& input, Size2 output_size,
                           SourceLocation location = SourceLocation::current());
Tensor adaptive_max_pool2d(const Tensor& input, Size2 output_size,
                           SourceLocation location = SourceLocation::current());

namespace detail {
void register_pool_ops(OpRegistry& registry);

// The linear ops of this family (avg_pool2d, adaptive_avg_pool2d, pad, interpolate) are one
// sparse map applied to every plane: y[p, o] = Σ_{k ∈ [offsets[o], offsets[o + 1])} weights[k] ·
// x[p, sources[k]] for x viewed as [P, in_plane]; its rule is the transposed map (another op,
// whose rule is the map again, so every order of derivative works).
struct PlaneMap {
  std::vector<std::int64_t> offsets;  // out_plane + 1 entries, from 0
  std::vector<std::int64_t> sources;  // in [0, in_plane)
  std::vector<double> weights;
};
enum class PlaneMapOp { avg_pool2d, adaptive_avg_pool2d, pad, interpolate };
// x viewed as [planes, in_plane] mapped to [planes, out_plane] viewed as out_shape.
Tensor apply_plane_map(PlaneMapOp op, const Tensor& x, std::int64_t planes, std::int64_t in_plane,
                       const PlaneMap& map, const Shape& out_shape, const SourceLocation& location);
// For registrations: the [out, in] float64 Jacobian of a linear map given as a naive function of
// the flat input (applied to each basis vector), and values without ties (spaced 4/n apart).
Tensor linear_jacobian(const Tensor& x,
                       const std::function<std::vector<double>(const std::vector<double>&)>& f);
Tensor distinct_sample(const Shape& shape, DType dtype, Generator& gen);
// Shape(dims) of an output of `dtype`: an error of `op` at the caller's line when its size
// overflows or passes the 1 TiB a tensor may hold, checked before any per-output table is built.
Shape checked_shape(const std::vector<std::int64_t>& dims, DType dtype, const char* op,
                    const SourceLocation& location);
}  // namespace detail

}  // namespace tg
