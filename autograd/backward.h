#pragma once
// The backward pass: one reverse loop over a tape's entries, each entry's rule applied to its
// output's accumulated gradient (autograd/backward.cpp).
#include <span>
#include <vector>

#include "autograd/tensor.h"

namespace tg {

// Gradients of y with respect to each of `wrt` (leaves or intermediate tensors), without touching
// any grad(); a tensor y does not depend on gets zeros.
std::vector<Tensor> grad(const Tensor& y, const std::vector<Tensor>& wrt, const Tensor& seed = {},
                         BackwardOptions options = {});

// The one backward pass behind Tensor::backward (empty wrt: accumulate into leaves' grad()) and
// tg::grad (non-empty wrt: return those gradients).
std::vector<Tensor> run_backward(const Tensor& y, const Tensor& seed, BackwardOptions options,
                                 std::span<const Tensor> wrt);

}  // namespace tg
