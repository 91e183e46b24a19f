// Binary arithmetic with NumPy broadcasting, its scalar forms, and negation.
//
//   add  y = a + b      da = g          db = g
//   sub  y = a − b      da = g          db = −g
//   mul  y = a ⊙ b      da = g ⊙ b      db = g ⊙ a
//   div  y = a / b      da = g / b      db = −g ⊙ y / b
//   add_scalar  y = a + c    da = g;    mul_scalar  y = c·a    da = c·g;    neg  y = −a   da = −g
//   maximum  y = max(a, b)   da = g ⊙ (½ if a = b else [not a < b])   db likewise
//   minimum  y = min(a, b)   da = g ⊙ (½ if a = b else [not a > b])   db likewise
//            (as PyTorch: a NaN operand makes y NaN and both sides get g)
//
// Rules return gradients in the broadcast output shape; the engine sums them back to each input.
#include <cmath>

#include "autograd/tape.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "ops/registrations.h"

namespace tg {
namespace {

struct Scalar {
  double value;
};

Tensor add_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_binary(ctx.input(0), ctx.input(1), "add",
                            [](const auto& a, const auto& b) { return a + b; });
}
void add_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output());
  ctx.set_grad(1, ctx.grad_output());
}
const Op<> kAdd{"add", "da = g, db = g", add_forward, add_backward};

Tensor sub_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_binary(ctx.input(0), ctx.input(1), "sub",
                            [](const auto& a, const auto& b) { return a - b; });
}
void sub_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output());
  if (ctx.needs_grad(1)) ctx.set_grad(1, -ctx.grad_output());
}
const Op<> kSub{"sub", "da = g, db = −g", sub_forward, sub_backward};

Tensor mul_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_binary(ctx.input(0), ctx.input(1), "mul",
                            [](const auto& a, const auto& b) { return a * b; });
}
void mul_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& g = ctx.grad_output();
  if (ctx.needs_grad(0)) ctx.set_grad(0, g * ctx.input(1));
  if (ctx.needs_grad(1)) ctx.set_grad(1, g * ctx.input(0));
}
const Op<> kMul{"mul", "da = g ⊙ b, db = g ⊙ a", mul_forward, mul_backward};

Tensor div_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_binary(ctx.input(0), ctx.input(1), "div",
                            [](const auto& a, const auto& b) { return a / b; });
}
void div_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& g = ctx.grad_output();
  const Tensor& b = ctx.input(1);
  if (ctx.needs_grad(0)) ctx.set_grad(0, g / b);
  if (ctx.needs_grad(1)) ctx.set_grad(1, -(g * ctx.output() / b));
}
const Op<> kDiv{"div", "da = g / b, db = −g ⊙ y / b", div_forward, div_backward};

Tensor add_scalar_forward(ForwardContext& ctx, const Scalar& c) {
  return detail::map_unary(ctx.input(0), "add_scalar", [&](const auto& a) {
    return a + typename std::decay_t<decltype(a)>::Scalar(c.value);
  });
}
void add_scalar_backward(BackwardContext& ctx, const Scalar&) {
  ctx.set_grad(0, ctx.grad_output());
}
const Op<Scalar> kAddScalar{"add_scalar", "da = g", add_scalar_forward, add_scalar_backward};

Tensor mul_scalar_forward(ForwardContext& ctx, const Scalar& c) {
  return detail::map_unary(ctx.input(0), "mul_scalar", [&](const auto& a) {
    return a * typename std::decay_t<decltype(a)>::Scalar(c.value);
  });
}
void mul_scalar_backward(BackwardContext& ctx, const Scalar& c) {
  ctx.set_grad(0, ctx.grad_output() * c.value);
}
const Op<Scalar> kMulScalar{"mul_scalar", "da = c·g", mul_scalar_forward, mul_scalar_backward};

Tensor neg_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "neg", [](const auto& a) { return -a; });
}
void neg_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, -ctx.grad_output());
}
const Op<> kNeg{"neg", "da = −g", neg_forward, neg_backward};

// The share of the gradient that goes to `mine` in maximum (larger = true) or minimum: ½ at a tie,
// 0 where the other side wins, 1 elsewhere, so a NaN on either side sends g to both, as PyTorch's
// where(a == b, g/2, g).masked_fill(a < b, 0). Piecewise constant, so a constant factor of the
// rule, which keeps the rule differentiable in g.
Tensor selected_share(const Tensor& mine, const Tensor& other, bool larger, const char* op) {
  return detail::map_binary(mine, other, op, [&](const auto& x, const auto& y) {
    using T = typename std::decay_t<decltype(x)>::Scalar;
    return x.binaryExpr(y, [larger](T m, T o) {
      if (m == o) return T(0.5);
      return (larger ? m < o : m > o) ? T(0) : T(1);
    });
  });
}

struct Extremum {
  bool larger;
};
Tensor extremum_forward(ForwardContext& ctx, const Extremum& e) {
  return detail::map_binary(ctx.input(0), ctx.input(1), e.larger ? "maximum" : "minimum",
                            [&](const auto& x, const auto& y) {
                              using T = typename std::decay_t<decltype(x)>::Scalar;
                              // NaN wins either way, as in PyTorch: a comparison alone would drop
                              // it.
                              return x.binaryExpr(y, [larger = e.larger](T u, T v) {
                                if (std::isnan(u) || std::isnan(v)) return u + v;
                                return (larger ? u >= v : u <= v) ? u : v;
                              });
                            });
}
void extremum_backward(BackwardContext& ctx, const Extremum& e) {
  const char* op = e.larger ? "maximum" : "minimum";
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (ctx.needs_grad(0)) ctx.set_grad(0, ctx.grad_output() * selected_share(a, b, e.larger, op));
  if (ctx.needs_grad(1)) ctx.set_grad(1, ctx.grad_output() * selected_share(b, a, e.larger, op));
}
const Op<Extremum> kMaximum{"maximum", "da = g ⊙ (½ if a = b else [not a < b]), db likewise",
                            extremum_forward, extremum_backward};
const Op<Extremum> kMinimum{"minimum", "da = g ⊙ (½ if a = b else [not a > b]), db likewise",
                            extremum_forward, extremum_backward};

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b, SourceLocation location) {
  return kMaximum({true}, location, a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b, SourceLocation location) {
  return kMinimum({false}, location, a, b);
}

Tensor add(const Tensor& a, const Tensor& b, SourceLocation location) {
  return kAdd({}, location, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b, SourceLocation location) {
  return kSub({}, location, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b, SourceLocation location) {
  return kMul({}, location, a, b);
}
Tensor div(const Tensor& a, const Tensor& b, SourceLocation location) {
  return kDiv({}, location, a, b);
}
Tensor add(const Tensor& a, double b, SourceLocation location) {
  return kAddScalar({b}, location, a);
}
Tensor mul(const Tensor& a, double b, SourceLocation location) {
  return kMulScalar({b}, location, a);
}
Tensor neg(const Tensor& x, SourceLocation location) {
  return kNeg({}, location, x);
}

namespace detail {

void register_elementwise_ops(OpRegistry& registry) {
  // Shapes that exercise same-shape, scalar, trailing, leading and two-sided broadcasting.
  const auto binary_samples = [](bool positive_b) {
    return [positive_b](DType dtype) {
      Generator gen(7);
      const std::vector<std::pair<Shape, Shape>> shapes = {
          {{3}, {3}},       {{2, 3}, {2, 3}},    {{2, 3}, {}}, {{2, 3}, {3}},
          {{4, 1}, {1, 3}}, {{2, 1, 3}, {4, 1}}, {{1}, {2, 2}}};
      std::vector<OpSample> samples;
      for (const auto& [sa, sb] : shapes) {
        Tensor b = positive_b ? sample(sb, dtype, gen, 0.5, 2.0) : sample(sb, dtype, gen);
        samples.push_back({sa.str() + " with " + sb.str(), {sample(sa, dtype, gen), b}});
      }
      return samples;
    };
  };
  const auto same_shape_jacobians = [](auto da, auto db) {
    return [da, db](const std::vector<Tensor>& in) -> std::vector<Tensor> {
      if (!(in[0].shape() == in[1].shape())) return {Tensor(), Tensor()};
      const std::vector<double> a = in[0].to_vector();
      const std::vector<double> b = in[1].to_vector();
      std::vector<double> grad_a(a.size());
      std::vector<double> grad_b(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) {
        grad_a[i] = da(a[i], b[i]);
        grad_b[i] = db(a[i], b[i]);
      }
      return {diagonal_jacobian(grad_a), diagonal_jacobian(grad_b)};
    };
  };
  registry.add({"add", [](const auto& in) { return add(in[0], in[1]); }, binary_samples(false),
                same_shape_jacobians([](double, double) { return 1.0; },
                                     [](double, double) { return 1.0; })});
  registry.add({"sub", [](const auto& in) { return sub(in[0], in[1]); }, binary_samples(false),
                same_shape_jacobians([](double, double) { return 1.0; },
                                     [](double, double) { return -1.0; })});
  registry.add({"mul", [](const auto& in) { return mul(in[0], in[1]); }, binary_samples(false),
                same_shape_jacobians([](double, double b) { return b; },
                                     [](double a, double) { return a; })});
  registry.add({"div", [](const auto& in) { return div(in[0], in[1]); }, binary_samples(true),
                same_shape_jacobians([](double, double b) { return 1.0 / b; },
                                     [](double a, double b) { return -a / (b * b); })});
  registry.add({"maximum", [](const auto& in) { return maximum(in[0], in[1]); },
                binary_samples(false),
                same_shape_jacobians([](double a, double b) { return a > b ? 1.0 : 0.0; },
                                     [](double a, double b) { return b > a ? 1.0 : 0.0; })});
  registry.add({"minimum", [](const auto& in) { return minimum(in[0], in[1]); },
                binary_samples(false),
                same_shape_jacobians([](double a, double b) { return a < b ? 1.0 : 0.0; },
                                     [](double a, double b) { return b < a ? 1.0 : 0.0; })});

  const auto unary_samples = [](DType dtype) {
    Generator gen(11);
    return std::vector<OpSample>{{"[5]", {sample({5}, dtype, gen)}},
                                 {"[2, 3]", {sample({2, 3}, dtype, gen)}},
                                 {"[] scalar", {sample({}, dtype, gen)}}};
  };
  registry.add({"add_scalar", [](const auto& in) { return in[0] + 1.5; }, unary_samples,
                [](const auto& in) {
                  return std::vector{elementwise_jacobian(in[0], [](double) { return 1.0; })};
                }});
  registry.add({"mul_scalar", [](const auto& in) { return in[0] * -2.5; }, unary_samples,
                [](const auto& in) {
                  return std::vector{elementwise_jacobian(in[0], [](double) { return -2.5; })};
                }});
  registry.add({"neg", [](const auto& in) { return -in[0]; }, unary_samples,
                [](const auto& in) {
                  return std::vector{elementwise_jacobian(in[0], [](double) { return -1.0; })};
                }});
}

}  // namespace detail
}  // namespace tg
