#include "autograd/functional.h"

#include "autograd/gradcheck.h"
#include "ops/ops.h"

namespace tg {
namespace {

// A fresh leaf with x's value, so the caller's tensor and its grad() stay untouched.
Tensor leaf_copy(const Tensor& x) {
  return x.detach().requires_grad(true);
}

Tensor scalar_output(const UnaryFunction& f, const Tensor& x, const char* what) {
  Tensor y = f(x);
  if (y.numel() != 1) {
    fail("{}: the function must return a single element, got shape {}", what, y.shape().str());
  }
  return y;
}

void check_same_shape(const Tensor& x, const Tensor& v, const char* what) {
  if (!(x.shape() == v.shape()) || x.dtype() != v.dtype()) {
    fail("{}: the direction is {} {} but x is {} {}", what, dtype_name(v.dtype()), v.shape().str(),
         dtype_name(x.dtype()), x.shape().str());
  }
}

}  // namespace

Tensor hessian(const UnaryFunction& f, const Tensor& x) {
  const Function gradient = [f](const std::vector<Tensor>& in) {
    GradModeGuard grad_on(true);
    const Tensor y = scalar_output(f, in[0], "hessian");
    const Tensor g = grad(y, {in[0]}, Tensor(), {.create_graph = true})[0];
    return reshape(g, {g.numel()});
  };
  return jacobian(gradient, {x})[0];
}

Tensor hvp(const UnaryFunction& f, const Tensor& x, const Tensor& v) {
  check_same_shape(x, v, "hvp");
  Tape tape;
  GradModeGuard grad_on(true);
  const Tensor leaf = leaf_copy(x);
  const Tensor g = grad(scalar_output(f, leaf, "hvp"), {leaf}, Tensor(), {.create_graph = true})[0];
  return grad(sum(g * v), {leaf})[0];
}

Tensor jvp(const UnaryFunction& f, const Tensor& x, const Tensor& u) {
  check_same_shape(x, u, "jvp");
  Tape tape;
  GradModeGuard grad_on(true);
  const Tensor leaf = leaf_copy(x);
  const Tensor y = f(leaf);
  Tensor w = zeros_like(y).requires_grad(true);  // any value: wᵀJ is linear in w
  const Tensor w_j = grad(y, {leaf}, w, {.create_graph = true})[0];
  return grad(sum(w_j * u), {w})[0];
}

}  // namespace tg
