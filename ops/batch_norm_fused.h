#pragma once
// Training-mode batch normalisation as one recorded op with fused kernels
// (ops/batch_norm_fused.cpp), for tg::batch_norm's training branch; the public entry point stays
// tg::batch_norm (ops/norm.h).
#include "autograd/tensor.h"

namespace tg::detail {

// Training-mode batch normalisation of x3 [N, C, L] over axes 0 and 2, as one recorded op
// ("batch_norm"): y = (x − μ_c)·(σ²_c + eps)^(−1/2)·w_c + b_c, σ² the biased variance. weight and
// bias [C] may be undefined (then 1 and 0, and no gradient for them). Also returns, unrecorded, the
// per-channel mean and Σ(x − μ)² [C] (for the running statistics).
//
// The statistics accumulate in double (float32 inputs too, as PyTorch's CPU kernel). An empty
// input gives an empty y, a NaN mean and zero squares (the composition's mean and sum over no
// elements); N·L = 1 gives y = b (zero variance): the caller refuses it in training, as PyTorch.
struct BatchNormTraining {
  Tensor y;
  Tensor mean;
  Tensor squares;
};
BatchNormTraining batch_norm_training(const Tensor& x3, const Tensor& weight, const Tensor& bias,
                                      double eps, SourceLocation location);

}  // namespace tg::detail
