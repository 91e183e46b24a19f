#pragma once
// Normalisation and channel dropout with PyTorch's layouts (torch.nn.functional's names).
#include <cstdint>

#include "autograd/autograd.h"
#include "ops/ops.h"

namespace tg {

class OpRegistry;

// ---- normalisation and dropout (ops/norm.cpp) ----

// F.batch_norm over every axis but the channel axis 1 of [N, C, …]. Training: the batch's mean
// and biased variance normalise, and running_mean/running_var (when defined) are updated in place
// without recording: running = (1 − momentum)·running + momentum·batch statistic, the variance
// unbiased (as PyTorch); an empty input leaves them unchanged. The gradient flows through the
// batch statistics. Evaluation: the running statistics (required) normalise, as constants.
// weight/bias/running statistics [C] of the input's dtype, or undefined. Training with one value
// per channel (N·L = 1) is PyTorch's error.
Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = {}, const Tensor& bias = {}, bool training = false,
                  double momentum = 0.1, double eps = 1e-5,
                  SourceLocation location = SourceLocation::current());
// F.group_norm: the C channels of [N, C, …] in num_groups groups, each normalised over its
// channels and positions per sample (biased variance); weight/bias [C] or undefined.
Tensor group_norm(const Tensor& input, std::int64_t num_groups, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5,
                  SourceLocation location = SourceLocation::current());
// F.instance_norm: each channel of each sample normalised over its positions; with
// use_input_stats false, the running statistics instead (they are updated as batch_norm's when
// use_input_stats is true and they are defined: each channel's update averaged over the batch, as
// PyTorch's repeat-then-mean; an empty input leaves them unchanged).
Tensor instance_norm(const Tensor& input, const Tensor& running_mean = {},
                     const Tensor& running_var = {}, const Tensor& weight = {},
                     const Tensor& bias = {}, bool use_input_stats = true, double momentum = 0.1,
                     double eps = 1e-5, SourceLocation location = SourceLocation::current());
// F.dropout2d as PyTorch 1.13: in training, zeroes whole channels of [N, C, …] with probability p
// (one draw of `generator` per sample and channel, sample-major) and scales the rest by
// 1/(1 − p); otherwise (and for p = 0 or an empty input) the input itself. p = 1 gives input · 0.
// As PyTorch 1.13, a 3-D input is [N, C, L] (channel-wise 1-D dropout, not an unbatched
// [C, H, W]); any rank ≥ 2 is taken, PyTorch warning outside 3 and 4. The mask comes from
// tapegrad's Generator, so it is not PyTorch's for the same seed.
Tensor dropout2d(const Tensor& input, double p, bool training, Generator& generator,
                 SourceLocation location = SourceLocation::current());

namespace detail {
void register_norm_ops(OpRegistry& registry);
}  // namespace detail

}  // namespace tg
