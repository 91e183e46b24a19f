#pragma once
// Second-order tools built on create_graph: Hessians, Hessian-vector products, and
// Jacobian-vector products by the double-VJP trick. x must be a floating tensor, a direction
// v or u must match its shape and dtype, and f must return a floating tensor (a single element
// for hessian and hvp); otherwise a tg::Error names the function. Where f does not depend on x
// (or its gradient does not), the result is zeros, as in PyTorch's torch.autograd.functional.
#include "autograd/tape.h"

namespace tg {

using UnaryFunction = std::function<Tensor(const Tensor& x)>;

// The Hessian of a scalar function, as an [n, n] matrix for n = x.numel(): one backward through
// the gradient per element of x, so for small x.
Tensor hessian(const UnaryFunction& f, const Tensor& x);

// H·v for a scalar function, by double backward: ∇ₓ⟨∇ₓf, v⟩. Costs two backward passes for any
// size of x.
Tensor hvp(const UnaryFunction& f, const Tensor& x, const Tensor& v);

// J·u, the forward-mode derivative along u, by the double-VJP trick: w ↦ wᵀJ is linear in w, so
// J·u = ∇_w ⟨wᵀJ, u⟩. Needs backward rules that are differentiable.
Tensor jvp(const UnaryFunction& f, const Tensor& x, const Tensor& u);

}  // namespace tg
