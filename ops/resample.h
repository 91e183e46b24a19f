#pragma once
// Padding and resampling with PyTorch's layouts and options (torch.nn.functional's names).
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "ops/conv.h"

namespace tg {

// ---- padding and resampling (ops/resample.cpp) ----

// F.pad: `pads` holds (before, after) pairs from the last dimension backwards, as PyTorch
// ({left, right, top, bottom} pads W then H). constant pads with `value` (negative amounts crop);
// reflect mirrors without repeating the edge (each amount < that size); replicate repeats it.
// reflect and replicate pad the last dimension of a 2-D or 3-D input (2 amounts) or the last two
// of a 3-D or 4-D input (4 amounts), every dimension but a batch non-empty, and take no value, as
// PyTorch; their amounts may be negative (cropping) while the output stays non-empty.
enum class PadMode { constant, reflect, replicate };
Tensor pad(const Tensor& input, const std::vector<std::int64_t>& pads,
           PadMode mode = PadMode::constant, double value = 0.0,
           SourceLocation location = SourceLocation::current());

// F.interpolate on [N, C, H, W] to `size`, or scaled by `scale_factor` (output ⌊n·s⌋, with the
// given factor used in the coordinate map, as PyTorch's default). nearest: source index
// ⌊i·in/out⌋; bilinear: half-pixel centres, or with align_corners the corners aligned.
enum class InterpolateMode { nearest, bilinear };
struct InterpolateOptions {
  std::optional<Size2> size;
  std::optional<std::array<double, 2>> scale_factor;
  InterpolateMode mode = InterpolateMode::nearest;
  bool align_corners = false;  // bilinear only, as PyTorch
};
Tensor interpolate(const Tensor& input, const InterpolateOptions& options,
                   SourceLocation location = SourceLocation::current());

namespace detail {
void register_resample_ops(OpRegistry& registry);
}  // namespace detail

}  // namespace tg
