// Statistics over an axis (or, without one, over every element).
//
//   amax, amin    y = maxₐ x, minₐ x        dx = g ⊙ [x = y] / #ties (split evenly among ties)
//   min           y = minₐ x                 composed: −max(−x), g to the first arg-min
//   var           y = Σₐ (x − x̄)² / (n − c)   composed: dx = 2 g (x − x̄) / (n − c)
//   std           y = √var                   composed (NaN gradient for a constant slice, as
//   PyTorch) prod          y = Πₐ x                   dx = g ⊙ Π_{j≠k} xⱼ  (exact with zeros in x)
//   cumsum        yₖ = Σ_{j≤k} xⱼ            dx = reverse cumsum of g
//   norm(p)       p = 1: Σ|x|       dx = g ⊙ sgn x
//                 p = 2: √Σx²       dx = g ⊙ x / y, 0 where y = 0 (as PyTorch; the second
//                                   derivative there is 0 too, where PyTorch's is NaN)
//                 p = ∞: max |x|    dx = g ⊙ sgn x, split among the ties of |x| (as PyTorch)
//
// prod and norm are one tape entry each, over an axis or over every element.
//
// A NaN in a slice makes amax and amin NaN with a NaN gradient for the whole slice, as in PyTorch.
#include <cmath>
#include <string>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"

namespace tg {
namespace {

struct AxisAttrs {
  int axis;
  bool keepdim;
};

Tensor amax_forward(ForwardContext& ctx, const AxisAttrs& a) {
  return max(ctx.input(0), a.axis, a.keepdim);
}
// [v = m] / #ties along the axis, for m the reduced value broadcast against v: a constant, so a
// rule using it is linear in g (amax is piecewise linear in x). A NaN maximum has no ties: 0/0.
Tensor tie_shares(const Tensor& v, const Tensor& m, int axis) {
  const Tensor ties =
      detail::map_binary(v.detach(), m.detach(), "amax", [](const auto& a, const auto& b) {
        using T = typename std::decay_t<decltype(a)>::Scalar;
        return (a == b).template cast<T>();
      });
  return ties / sum(ties, axis, true);
}

void amax_backward(BackwardContext& ctx, const AxisAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor y = detail::unsqueeze_reduced(ctx.output(), x.shape(), a.axis, a.keepdim);
  const Tensor g = detail::unsqueeze_reduced(ctx.grad_output(), x.shape(), a.axis, a.keepdim);
  ctx.set_grad(0, g * tie_shares(x, y, a.axis));
}
const Op<AxisAttrs> kAmax{"amax", "dx = g ⊙ [x = y] / #ties", amax_forward, amax_backward};

// Π over one axis; 1 over nothing.
Tensor product_over_axis(const Tensor& x, int axis, bool keepdim) {
  const AxisSplit s = split_at_axis(x.shape(), axis);
  const Shape out_shape =
      keepdim ? detail::keepdim_shape(x.shape(), axis) : x.shape().without_axis(axis);
  return dispatch_floating(x.dtype(), "prod", [&]<class T>() {
    Tensor out = ones(out_shape, x.dtype());
    if (x.numel() == 0) return out;
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (std::int64_t o = 0; o < s.outer; ++o) {
      Eigen::Map<detail::RowVector<T>>(po + o * s.inner, s.inner) =
          Eigen::Map<const detail::RowMatrix<T>>(px + o * s.dim * s.inner, s.dim, s.inner)
              .colwise()
              .prod();
    }
    return out;
  });
}

// Π_{j≠k} xⱼ for every k along the axis, from prefix and suffix products: no division, so exact
// when x holds zeros.
Tensor products_of_others(const Tensor& x, int axis) {
  const AxisSplit s = split_at_axis(x.shape(), axis);
  return dispatch_floating(x.dtype(), "prod", [&]<class T>() {
    Tensor out = empty(x.shape(), x.dtype());
    if (x.numel() == 0) return out;
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (std::int64_t o = 0; o < s.outer; ++o) {
      for (std::int64_t i = 0; i < s.inner; ++i) {
        const std::int64_t base = o * s.dim * s.inner + i;
        T before(1);
        for (std::int64_t k = 0; k < s.dim; ++k) {
          po[base + k * s.inner] = before;
          before *= px[base + k * s.inner];
        }
        T after(1);
        for (std::int64_t k = s.dim - 1; k >= 0; --k) {
          po[base + k * s.inner] *= after;
          after *= px[base + k * s.inner];
        }
      }
    }
    return out;
  });
}

// A reduction over one axis, or over every element (`all`: axis 0 of the flattened input, a
// scalar result). One tape entry either way.
struct ReduceAttrs {
  int axis;
  bool keepdim;
  bool all;
};

// The input as the reduction sees it, the gradient g and the output broadcast against that view,
// and a gradient of the view back in the input's shape.
Tensor view_of(const Tensor& x, const ReduceAttrs& a) {
  return a.all ? reshape(x, Shape{x.numel()}) : x;
}
Tensor spread(const Tensor& g, const Tensor& view, const ReduceAttrs& a) {
  return detail::unsqueeze_reduced(g, view.shape(), a.axis, a.keepdim);
}
Tensor back_to(const Tensor& dview, const Tensor& x, const ReduceAttrs& a) {
  return a.all ? reshape(dview, x.shape()) : dview;
}

Tensor prod_forward(ForwardContext& ctx, const ReduceAttrs& a) {
  return product_over_axis(view_of(ctx.input(0), a), a.axis, a.keepdim);
}
// Under create_graph, Π_{j≠k} xⱼ is the product over j of the matrix Xₖⱼ = xⱼ (j ≠ k), 1 (j = k),
// built with ops: differentiable again, also at zeros, at O(n²) memory per slice.
void prod_backward(BackwardContext& ctx, const ReduceAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor v = view_of(x, a);
  const Tensor g = spread(ctx.grad_output(), v, a);
  if (!ctx.create_graph() || x.numel() == 0) {
    return ctx.set_grad(0, back_to(g * products_of_others(v.detach(), a.axis), x, a));
  }
  const std::int64_t n = v.shape()[a.axis];
  std::vector<std::int64_t> eye_dims(std::size_t(v.rank() + 1), 1);
  eye_dims[std::size_t(a.axis)] = n;
  eye_dims[std::size_t(a.axis) + 1] = n;
  const Tensor identity = reshape(eye(n, n, x.dtype()), eye_dims);
  const Tensor others = prod(unsqueeze(v, a.axis) * (1.0 - identity) + identity, a.axis + 1);
  ctx.set_grad(0, back_to(g * others, x, a));
}
const Op<ReduceAttrs> kProd{"prod", "dx = g ⊙ Π_{j≠k} xⱼ", prod_forward, prod_backward};

struct CumsumAttrs {
  int axis;
  bool reverse;  // yₖ = Σ_{j≥k} xⱼ, the rule of the forward sum
};
Tensor cumsum_forward(ForwardContext& ctx, const CumsumAttrs& a) {
  const Tensor& x = ctx.input(0);
  const AxisSplit s = split_at_axis(x.shape(), a.axis);
  return dispatch_floating(x.dtype(), "cumsum", [&]<class T>() {
    Tensor out = empty(x.shape(), x.dtype());
    if (x.numel() == 0) return out;
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const std::int64_t step = a.reverse ? -s.inner : s.inner;
    for (std::int64_t o = 0; o < s.outer; ++o) {
      const std::int64_t first = o * s.dim * s.inner + (a.reverse ? (s.dim - 1) * s.inner : 0);
      Eigen::Map<detail::Vector<T>>(po + first, s.inner) =
          Eigen::Map<const detail::Vector<T>>(px + first, s.inner);
      for (std::int64_t k = 1, at = first + step; k < s.dim; ++k, at += step) {
        Eigen::Map<detail::Vector<T>>(po + at, s.inner) =
            Eigen::Map<const detail::Vector<T>>(po + at - step, s.inner) +
            Eigen::Map<const detail::Vector<T>>(px + at, s.inner);
      }
    }
    return out;
  });
}
void cumsum_backward(BackwardContext& ctx, const CumsumAttrs& a);
const Op<CumsumAttrs> kCumsum{"cumsum", "dx = reverse cumsum of g", cumsum_forward,
                              cumsum_backward};
void cumsum_backward(BackwardContext& ctx, const CumsumAttrs& a) {
  ctx.set_grad(0, kCumsum({a.axis, !a.reverse}, SourceLocation::current(), ctx.grad_output()));
}

struct NormAttrs {
  ReduceAttrs reduce;
  double p;  // 1, 2 or inf
};
Tensor norm_forward(ForwardContext& ctx, const NormAttrs& a) {
  const Tensor v = view_of(ctx.input(0), a.reduce);
  const int axis = a.reduce.axis;
  if (a.p == 1) return sum(abs(v), axis, a.reduce.keepdim);
  if (a.p == 2) return sqrt(sum(v * v, axis, a.reduce.keepdim));
  return max(abs(v), axis, a.reduce.keepdim);
}
// p = 1: g ⊙ sgn x. p = 2: g ⊙ x / y, 0 where y = 0 (PyTorch's choice of subgradient where x / y is
// 0/0). p = ∞: g ⊙ sgn x split among the entries with |x| = y. sgn and the masks are constants.
void norm_backward(BackwardContext& ctx, const NormAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor v = view_of(x, a.reduce);
  const Tensor g = spread(ctx.grad_output(), v, a.reduce);
  const Tensor y = spread(ctx.output(), v, a.reduce);
  if (a.p == 1) return ctx.set_grad(0, back_to(g * sign(v.detach()), x, a.reduce));
  if (a.p == INFINITY) {
    const Tensor share = tie_shares(abs(v.detach()), y, a.reduce.axis);
    return ctx.set_grad(0, back_to(g * sign(v.detach()) * share, x, a.reduce));
  }
  const Tensor zero = detail::mask_where(y.detach(), "norm", [](auto n) { return n == 0; });
  ctx.set_grad(0, back_to(g * v / (y + zero) * (1.0 - zero), x, a.reduce));
}
const Op<NormAttrs> kNorm{"norm", "dx = g ⊙ sgn x (p = 1), g ⊙ x / y (p = 2), g ⊙ sgn x at max |x|",
                          norm_forward, norm_backward};

void check_p(double p, const SourceLocation& location) {
  if (p != 1 && p != 2 && p != INFINITY) {
    detail::fail_at("norm", location, "p = {} is not supported: expected 1, 2 or inf", p);
  }
}

}  // namespace

namespace {

// An axis to take an extreme over: it has no identity, so an empty axis is an error (PyTorch's
// too).
int extreme_axis(const Tensor& x, std::int64_t axis, const char* op,
                 const SourceLocation& location) {
  const int a = detail::checked_axis(axis, x.rank(), op, location);
  if (x.shape()[a] == 0) {
    detail::fail_at(op, location, "cannot reduce over axis {} of size 0 (shape {})", a,
                    x.shape().str());
  }
  return a;
}

}  // namespace

Tensor amax(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "amax", location,
                                  [&](const Tensor& v) { return amax(v, 0, keepdim, location); });
  }
  const int a = extreme_axis(x, axis, "amax", location);
  // The forward is max's, whose errors would name max.
  return detail::composite("amax", location, [&] { return kAmax({a, keepdim}, location, x); });
}

Tensor amin(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "amin", location,
                                  [&](const Tensor& v) { return amin(v, 0, keepdim, location); });
  }
  const int a = extreme_axis(x, axis, "amin", location);
  return detail::composite("amin", location, [&] {
    return neg(amax(neg(x, location), a, keepdim, location), location);
  });
}

Tensor min(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "min", location,
                                  [&](const Tensor& v) { return min(v, 0, keepdim, location); });
  }
  const int a = extreme_axis(x, axis, "min", location);
  return detail::composite(
      "min", location, [&] { return neg(max(neg(x, location), a, keepdim, location), location); });
}

Tensor var(const Tensor& x, std::int64_t axis, double correction, bool keepdim,
           SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "var", location, [&](const Tensor& v) {
      return var(v, 0, correction, keepdim, location);
    });
  }
  const int a = detail::checked_axis(axis, x.rank(), "var", location);
  return detail::composite("var", location, [&] {
    const Tensor d = x - mean(x, a, true, location);
    // n − c below 0 counts as 0, as in PyTorch: the result is then inf or NaN.
    const double divisor = std::max(0.0, double(x.shape()[a]) - correction);
    return sum(d * d, a, keepdim, location) / divisor;
  });
}
Tensor var(const Tensor& x, SourceLocation location) {
  return detail::composite("var", location, [&] {
    return var(reshape(x, Shape{x.numel()}, location), 0, 1.0, false, location);
  });
}

// ‖x − x̄‖ / √(n − c): the 2-norm's gradient is 0 where the norm is, so a constant slice has
// gradient 0 (PyTorch masks its std gradient the same way), where √var would give 0/0.
Tensor std(const Tensor& x, std::int64_t axis, double correction, bool keepdim,
           SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "std", location, [&](const Tensor& v) {
      return std(v, 0, correction, keepdim, location);
    });
  }
  const int a = detail::checked_axis(axis, x.rank(), "std", location);
  const double divisor = std::max(0.0, double(x.shape()[a]) - correction);
  return detail::composite("std", location, [&] {
    return norm(x - mean(x, a, true, location), 2.0, a, keepdim, location) / std::sqrt(divisor);
  });
}
Tensor std(const Tensor& x, SourceLocation location) {
  const double divisor = std::max(0.0, double(x.numel()) - 1.0);
  return detail::composite("std", location, [&] {
    return norm(x - mean(x, location), 2.0, location) / std::sqrt(divisor);
  });
}

Tensor prod(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "prod", location,
                                  [&](const Tensor& v) { return prod(v, 0, keepdim, location); });
  }
  return kProd({detail::checked_axis(axis, x.rank(), "prod", location), keepdim, false}, location,
               x);
}
Tensor prod(const Tensor& x, SourceLocation location) {
  return kProd({0, false, true}, location, x);
}

Tensor cumsum(const Tensor& x, std::int64_t axis, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "cumsum", location,
                                  [&](const Tensor& v) { return cumsum(v, 0, location); });
  }
  return kCumsum({detail::checked_axis(axis, x.rank(), "cumsum", location), false}, location, x);
}

Tensor norm(const Tensor& x, double p, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "norm", location, [&](const Tensor& v) {
      return norm(v, p, 0, keepdim, location);
    });
  }
  const int a = detail::checked_axis(axis, x.rank(), "norm", location);
  check_p(p, location);
  // The forward is sum, abs and max's, whose errors would name them.
  return detail::composite("norm", location, [&] {
    return kNorm({{a, keepdim, false}, p}, location, x);
  });
}
Tensor norm(const Tensor& x, double p, SourceLocation location) {
  check_p(p, location);
  return detail::composite("norm", location, [&] {
    return kNorm({{0, false, true}, p}, location, x);
  });
}

namespace detail {

void register_statistics_ops(OpRegistry& registry) {
  const auto samples = [](DType dtype) {
    Generator gen(107);
    return std::vector<OpSample>{{"[5]", {sample({5}, dtype, gen)}},
                                 {"[3, 4]", {sample({3, 4}, dtype, gen)}},
                                 {"[2, 3, 2]", {sample({2, 3, 2}, dtype, gen)}}};
  };
  // No ties of the maximum: their gradient is a jump there, which finite differences of the
  // first derivative (gradgradcheck) cannot take. tests/ops/everyday_test.cpp and the reference
  // suite check ties.
  // Products through zeros: one zero in a slice, two, and none.
  const auto prod_samples = [=](DType dtype) {
    std::vector<OpSample> out = samples(dtype);
    out.push_back({"[3, 3] with one and two zeros",
                   {from_vector({1.5, 0, -2, 0, 0.5, 0, 2, -1, 0.5}, {3, 3}, dtype)}});
    out.push_back({"[0, 2] empty", {zeros({0, 2}, dtype)}});
    return out;
  };
  for (const std::int64_t axis : {0, -1}) {
    for (const bool keepdim : {false, true}) {
      const std::string suffix = fmt::format("(axis={}, keepdim={})", axis, keepdim);
      registry.add({"amax" + suffix,
                    [=](const auto& in) { return amax(in[0], axis, keepdim); },
                    samples,
                    {}});
      registry.add({"amin" + suffix,
                    [=](const auto& in) { return amin(in[0], axis, keepdim); },
                    samples,
                    {}});
      registry.add(
          {"min" + suffix, [=](const auto& in) { return min(in[0], axis, keepdim); }, samples, {}});
      registry.add({"prod" + suffix,
                    [=](const auto& in) { return prod(in[0], axis, keepdim); },
                    prod_samples,
                    {}});
    }
    const std::string suffix = fmt::format("(axis={})", axis);
    registry.add({"var" + suffix, [=](const auto& in) { return var(in[0], axis); }, samples, {}});
    registry.add({"std" + suffix, [=](const auto& in) { return std(in[0], axis); }, samples, {}});
    registry.add(
        {"cumsum" + suffix, [=](const auto& in) { return cumsum(in[0], axis); }, samples, {}});
    for (const double p : {1.0, 2.0, double(INFINITY)}) {
      registry.add({fmt::format("norm(p={}, axis={})", p, axis),
                    [=](const auto& in) { return norm(in[0], p, axis); },
                    samples,
                    {}});
    }
  }
  registry.add({"var(all)", [](const auto& in) { return var(in[0]); }, samples, {}});
  registry.add({"var(axis=0, correction=0, keepdim=true)",
                [](const auto& in) { return var(in[0], 0, 0.0, true); },
                samples,
                {}});
  registry.add({"std(all)", [](const auto& in) { return std(in[0]); }, samples, {}});
  registry.add({"prod(all)", [](const auto& in) { return prod(in[0]); }, prod_samples, {}});
  registry.add({"norm(p=2, all)",
                [](const auto& in) { return norm(in[0], 2.0); },
                [=](DType dtype) {
                  std::vector<OpSample> out = samples(dtype);
                  out.push_back({"[] scalar", {full({}, -1.5, dtype)}});
                  return out;
                },
                {}});
}

}  // namespace detail
}  // namespace tg
