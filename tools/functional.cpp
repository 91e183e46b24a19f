#include "tools/functional.h"

#include "ops/ops.h"
#include "tools/gradcheck.h"

namespace tg {
namespace {

void check_point(const Tensor& x, const char* what) {
  if (!x.defined()) fail("{}: x is undefined", what);
  if (!is_floating(x.dtype()))
    fail("{}: x must be a floating tensor, got {}", what, dtype_name(x.dtype()));
}

// A fresh leaf with x's value, so the caller's tensor and its grad() stay untouched.
Tensor leaf_copy(const Tensor& x) {
  return x.detach().requires_grad(true);
}

Tensor floating_output(const UnaryFunction& f, const Tensor& x, const char* what) {
  Tensor y = f(x);
  if (!y.defined() || !is_floating(y.dtype())) {
    fail("{}: the function must return a floating tensor, got {}", what,
         y.defined() ? dtype_name(y.dtype()) : "an undefined one");
  }
  return y;
}

Tensor scalar_output(const UnaryFunction& f, const Tensor& x, const char* what) {
  Tensor y = floating_output(f, x, what);
  if (y.numel() != 1) {
    fail("{}: the function must return a single element, got shape {}", what, y.shape().str());
  }
  return y;
}

void check_direction(const Tensor& x, const Tensor& v, const char* what) {
  check_point(x, what);
  if (!v.defined()) fail("{}: the direction is undefined", what);
  if (!(x.shape() == v.shape()) || x.dtype() != v.dtype()) {
    fail("{}: the direction is {} {} but x is {} {}", what, dtype_name(v.dtype()), v.shape().str(),
         dtype_name(x.dtype()), x.shape().str());
  }
}

// d y / d wrt for the cotangent, recorded: zeros when y does not depend on wrt at all (a
// constant function, or the gradient of a linear one), as PyTorch's functional API.
Tensor recorded_grad(const Tensor& y, const Tensor& wrt, const Tensor& cotangent) {
  if (!y.requires_grad()) return zeros_like(wrt);
  return grad(y, {wrt}, cotangent, {.create_graph = true})[0];
}

}  // namespace

Tensor hessian(const UnaryFunction& f, const Tensor& x) {
  check_point(x, "hessian");
  const TensorFunction gradient = [f](const std::vector<Tensor>& in) {
    GradModeGuard grad_on(true);
    const Tensor g = recorded_grad(scalar_output(f, in[0], "hessian"), in[0], Tensor());
    return reshape(g, {g.numel()});
  };
  return jacobian(gradient, {x})[0];
}

Tensor hvp(const UnaryFunction& f, const Tensor& x, const Tensor& v) {
  check_direction(x, v, "hvp");
  Tape tape;
  GradModeGuard grad_on(true);
  const Tensor leaf = leaf_copy(x);
  const Tensor gv = sum(recorded_grad(scalar_output(f, leaf, "hvp"), leaf, Tensor()) * v);
  return gv.requires_grad() ? grad(gv, {leaf})[0] : zeros_like(x);
}

Tensor jvp(const UnaryFunction& f, const Tensor& x, const Tensor& u) {
  check_direction(x, u, "jvp");
  Tape tape;
  GradModeGuard grad_on(true);
  const Tensor leaf = leaf_copy(x);
  const Tensor y = floating_output(f, leaf, "jvp");
  if (!y.requires_grad()) return zeros_like(y);  // f does not depend on x
  Tensor w = zeros_like(y).requires_grad(true);  // any value: wᵀJ is linear in w
  const Tensor ju = sum(recorded_grad(y, leaf, w) * u);
  return ju.requires_grad() ? grad(ju, {w})[0] : zeros_like(y);
}

}  // namespace tg
