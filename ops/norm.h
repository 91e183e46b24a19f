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
// unbiased (as PyTorch). Evaluation: the running statistics normalise. weight/bias [C] or
// undefined.
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
// use_input_stats is true and they are defined).
Tensor instance_norm(const Tensor& input, const Tensor& running_mean = {},
                     const Tensor& running_var = {}, const Tensor& weight = {},
                     const Tensor& bias = {}, bool use_input_stats = true, double momentum = 0.1,
                     double eps = 1e-5, SourceLocation location = SourceLocation::current());
// F.dropout2d: in training, zeroes whole channels of [N, C, H, W] (or [C, H, W]) with
// probability p and scales the rest by 1/(1 − p); otherwise the identity.
Tensor dropout2d(const Tensor& input, double p, bool training, Generator& generator,
                 SourceLocation location = SourceLocation::current());

namespace detail {
void register_norm_ops(OpRegistry& registry);
}  // namespace detail

}  // namespace tg
