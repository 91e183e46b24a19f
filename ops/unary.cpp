// Elementwise unary functions.
//
//   exp      y = eˣ              dx = g ⊙ y
//   log      y = ln x            dx = g / x
//   sqrt     y = √x              dx = g / (2y)
//   abs      y = |x|             dx = g ⊙ sgn(x)             (sgn 0 at 0 and at NaN, as PyTorch)
//   tanh     y = tanh x          dx = g ⊙ (1 − y²)
//   sigmoid  y = 1/(1 + e⁻ˣ)     dx = g ⊙ y ⊙ (1 − y)
//   relu     y = max(x, 0)       dx = g ⊙ [not x ≤ 0]        (0 at 0, g at NaN, as PyTorch)
//   erf      y = erf x           dx = g ⊙ (2/√π) e^(−x²)
//   clamp    y = min(max(x, lo), hi)   dx = g ⊙ [lo ≤ x ≤ hi]   (hi everywhere if lo > hi)
//   sin      y = sin x           dx = g ⊙ cos x
//   cos      y = cos x           dx = −g ⊙ sin x
//   log1p    y = ln(1 + x)       dx = g / (1 + x)
//   softplus y = ln(1 + eˣ)      dx = g ⊙ sigmoid(x)
//   leaky_relu  y = x or s·x     dx = g ⊙ (1 if x > 0 else s)
//   pow      y = xᵖ              dx = g ⊙ p·xᵖ⁻¹             (0 everywhere for p = 0)
//   cast     y = x in dtype d    dx = g in x's dtype         (from int64 or bool too: no gradient)
//
// Every kernel is exact at the ends of its range (±inf, ±max, denormals, NaN, as std:: and
// PyTorch): exp, log and sqrt go through the corrected packet functions of ops/kernels.h.
#include <cmath>

#include "autograd/tape.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "ops/registrations.h"

namespace tg {
namespace {

template <class T>
using Scalar = typename std::decay_t<T>::Scalar;

Tensor exp_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "exp", [](const auto& x) { return detail::exp_array(x); });
}
void exp_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output() * ctx.output());
}
const Op<> kExp{"exp", "dx = g ⊙ y", exp_forward, exp_backward};

Tensor log_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "log", [](const auto& x) { return detail::log_array(x); });
}
void log_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output() / ctx.input(0));
}
const Op<> kLog{"log", "dx = g / x", log_forward, log_backward};

Tensor sqrt_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "sqrt",
                           [](const auto& x) { return detail::sqrt_array(x); });
}
void sqrt_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output() / ctx.output() * 0.5);
}
const Op<> kSqrt{"sqrt", "dx = g / (2y)", sqrt_forward, sqrt_backward};

Tensor abs_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "abs", [](const auto& x) { return x.abs(); });
}
void abs_backward(BackwardContext& ctx, const NoAttrs&) {
  // Eigen's sign(NaN) is NaN; PyTorch's sgn(NaN), the factor of its rule, is 0.
  const Tensor sign = detail::map_unary(ctx.input(0), "abs", [](const auto& x) {
    using T = Scalar<decltype(x)>;
    return x.unaryExpr([](T v) { return v > T(0) ? T(1) : v < T(0) ? T(-1) : T(0); });
  });
  ctx.set_grad(0, ctx.grad_output() * sign);
}
const Op<> kAbs{"abs", "dx = g ⊙ sign(x)", abs_forward, abs_backward};

Tensor tanh_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "tanh", [](const auto& x) { return x.tanh(); });
}
// First-order backward passes run one fused kernel; under create_graph the same formula is
// composed of ops so that it can be differentiated again.
void tanh_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& y = ctx.output();
  if (ctx.create_graph()) return ctx.set_grad(0, ctx.grad_output() * (1.0 - y * y));
  ctx.set_grad(0,
               detail::map_binary(ctx.grad_output(), y, "tanh", [](const auto& g, const auto& y) {
                 return g * (Scalar<decltype(y)>(1) - y.square());
               }));
}
const Op<> kTanh{"tanh", "dx = g ⊙ (1 − y²)", tanh_forward, tanh_backward};

Tensor sigmoid_forward(ForwardContext& ctx, const NoAttrs&) {
  // 1/(1 + e⁻ˣ) saturates cleanly at both ends: e⁻ˣ = inf gives 0, never NaN.
  return detail::map_unary(ctx.input(0), "sigmoid", [](const auto& x) {
    using T = Scalar<decltype(x)>;
    return T(1) / (T(1) + detail::exp_array(-x));
  });
}
void sigmoid_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& y = ctx.output();
  if (ctx.create_graph()) return ctx.set_grad(0, ctx.grad_output() * y * (1.0 - y));
  ctx.set_grad(
      0, detail::map_binary(ctx.grad_output(), y, "sigmoid", [](const auto& g, const auto& y) {
        return g * y * (Scalar<decltype(y)>(1) - y);
      }));
}
const Op<> kSigmoid{"sigmoid", "dx = g ⊙ y ⊙ (1 − y)", sigmoid_forward, sigmoid_backward};

Tensor relu_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "relu",
                           [](const auto& x) { return x.max(Scalar<decltype(x)>(0)); });
}
// As PyTorch's threshold_backward: g passes unless x ≤ 0, so a NaN input passes it on.
void relu_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& x = ctx.input(0);
  if (ctx.create_graph()) {
    const Tensor passes = detail::mask_where(x, "relu", [](auto v) { return !(v <= 0); });
    return ctx.set_grad(0, ctx.grad_output() * passes);
  }
  ctx.set_grad(0,
               detail::map_binary(ctx.grad_output(), x, "relu", [](const auto& g, const auto& x) {
                 using T = Scalar<decltype(x)>;
                 return (x <= T(0)).select(T(0), g);
               }));
}
const Op<> kRelu{"relu", "dx = g ⊙ [not x ≤ 0]", relu_forward, relu_backward};

Tensor erf_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "erf", [](const auto& x) {
    return x.unaryExpr([](auto v) { return decltype(v)(std::erf(v)); });
  });
}
void erf_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& x = ctx.input(0);
  ctx.set_grad(0, ctx.grad_output() * exp(-(x * x)) * (2.0 / std::sqrt(M_PI)));
}
const Op<> kErf{"erf", "dx = g ⊙ (2/√π) e^(−x²)", erf_forward, erf_backward};

struct ClampAttrs {
  double low;
  double high;
};
Tensor clamp_forward(ForwardContext& ctx, const ClampAttrs& a) {
  return detail::map_unary(ctx.input(0), "clamp", [&](const auto& x) {
    using T = Scalar<decltype(x)>;
    return x.max(T(a.low)).min(T(a.high));
  });
}
void clamp_backward(BackwardContext& ctx, const ClampAttrs& a) {
  const Tensor inside =
      detail::mask_where(ctx.input(0), "clamp", [&](auto v) { return v >= a.low && v <= a.high; });
  ctx.set_grad(0, ctx.grad_output() * inside);
}
const Op<ClampAttrs> kClamp{"clamp", "dx = g ⊙ [lo ≤ x ≤ hi]", clamp_forward, clamp_backward};

Tensor sin_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "sin", [](const auto& x) { return x.sin(); });
}
void sin_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output() * cos(ctx.input(0)));
}
const Op<> kSin{"sin", "dx = g ⊙ cos x", sin_forward, sin_backward};

Tensor cos_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "cos", [](const auto& x) { return x.cos(); });
}
void cos_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, -(ctx.grad_output() * sin(ctx.input(0))));
}
const Op<> kCos{"cos", "dx = −g ⊙ sin x", cos_forward, cos_backward};

Tensor log1p_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "log1p", [](const auto& x) { return x.log1p(); });
}
void log1p_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output() / (ctx.input(0) + 1.0));
}
const Op<> kLog1p{"log1p", "dx = g / (1 + x)", log1p_forward, log1p_backward};

Tensor softplus_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "softplus", [](const auto& x) {
    using T = Scalar<decltype(x)>;
    return x.max(T(0)) + detail::exp_array(-x.abs()).log1p();
  });
}
void softplus_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, ctx.grad_output() * sigmoid(ctx.input(0)));
}
const Op<> kSoftplus{"softplus", "dx = g ⊙ sigmoid(x)", softplus_forward, softplus_backward};

struct SlopeAttrs {
  double negative_slope;
};
Tensor leaky_relu_forward(ForwardContext& ctx, const SlopeAttrs& a) {
  return detail::map_unary(ctx.input(0), "leaky_relu", [&](const auto& x) {
    using T = Scalar<decltype(x)>;
    return (x > T(0)).select(x, x * T(a.negative_slope));
  });
}
void leaky_relu_backward(BackwardContext& ctx, const SlopeAttrs& a) {
  // The slope mask is piecewise constant in x: as a constant factor, the rule stays
  // differentiable in g.
  const Tensor slope = detail::map_unary(ctx.input(0), "leaky_relu", [&](const auto& x) {
    using T = Scalar<decltype(x)>;
    return x.unaryExpr([slope = T(a.negative_slope)](T v) { return v > T(0) ? T(1) : slope; });
  });
  ctx.set_grad(0, ctx.grad_output() * slope);
}
const Op<SlopeAttrs> kLeakyRelu{"leaky_relu", "dx = g ⊙ (1 if x > 0 else s)", leaky_relu_forward,
                                leaky_relu_backward};

struct PowAttrs {
  double exponent;
};
// As PyTorch, the exponents it special-cases are computed as products and roots (exact, and
// with PyTorch's signs at −0 and −inf: (−0)^0.5 = −0, (−0)⁻¹ = −inf); other exponents by std::pow.
// Eigen's packet pow gets the sign of odd powers of −inf and −0 wrong ((−inf)³ = +inf).
Tensor pow_forward(ForwardContext& ctx, const PowAttrs& a) {
  return detail::map_unary(ctx.input(0), "pow", [&](const auto& x) {
    using T = Scalar<decltype(x)>;
    using Result = detail::Vector<T>;
    const T p = T(a.exponent);
    if (a.exponent == 2) return Result(x.square());
    if (a.exponent == 3) return Result(x.cube());
    if (a.exponent == 0.5) return Result(detail::sqrt_array(x));
    if (a.exponent == -0.5) return Result(T(1) / detail::sqrt_array(x));
    if (a.exponent == -1) return Result(T(1) / x);
    if (a.exponent == -2) return Result(T(1) / x.square());
    return Result(x.unaryExpr([p](T v) { return std::pow(v, p); }));
  });
}
// x⁰ is constant: its gradient is 0 everywhere, also at x = 0 (and NaN), where 0·x⁻¹ would be NaN.
// Since x¹'s rule is built from x⁰ and x²'s from x¹, their higher derivatives at 0 are right too.
void pow_backward(BackwardContext& ctx, const PowAttrs& a) {
  const Tensor& x = ctx.input(0);
  if (a.exponent == 0.0) return ctx.set_grad(0, zeros(x.shape(), x.dtype()));
  ctx.set_grad(0, ctx.grad_output() * pow(x, a.exponent - 1.0) * a.exponent);
}
const Op<PowAttrs> kPow{"pow", "dx = g ⊙ p·xᵖ⁻¹", pow_forward, pow_backward};

struct CastAttrs {
  DType dtype;
};
Tensor cast_forward(ForwardContext& ctx, const CastAttrs& a) {
  const Tensor& x = ctx.input(0);
  return dispatch_all(x.dtype(), [&]<class From>() {
    return dispatch_floating(a.dtype, "cast", [&]<class To>() {
      Tensor out = empty(x.shape(), a.dtype);
      detail::flat<To>(out) = detail::flat<From>(x).template cast<To>();
      return out;
    });
  });
}
void cast_backward(BackwardContext& ctx, const CastAttrs&) {
  ctx.set_grad(0, cast(ctx.grad_output(), ctx.input(0).dtype()));
}
const Op<CastAttrs> kCast{"cast", "dx = g in x's dtype", cast_forward, cast_backward};

}  // namespace

Tensor exp(const Tensor& x, SourceLocation location) {
  return kExp({}, location, x);
}
Tensor log(const Tensor& x, SourceLocation location) {
  return kLog({}, location, x);
}
Tensor sqrt(const Tensor& x, SourceLocation location) {
  return kSqrt({}, location, x);
}
Tensor abs(const Tensor& x, SourceLocation location) {
  return kAbs({}, location, x);
}
Tensor tanh(const Tensor& x, SourceLocation location) {
  return kTanh({}, location, x);
}
Tensor sigmoid(const Tensor& x, SourceLocation location) {
  return kSigmoid({}, location, x);
}
Tensor relu(const Tensor& x, SourceLocation location) {
  return kRelu({}, location, x);
}
Tensor erf(const Tensor& x, SourceLocation location) {
  return kErf({}, location, x);
}

Tensor sin(const Tensor& x, SourceLocation location) {
  return kSin({}, location, x);
}
Tensor cos(const Tensor& x, SourceLocation location) {
  return kCos({}, location, x);
}
Tensor log1p(const Tensor& x, SourceLocation location) {
  return kLog1p({}, location, x);
}
Tensor softplus(const Tensor& x, SourceLocation location) {
  return kSoftplus({}, location, x);
}
Tensor leaky_relu(const Tensor& x, double negative_slope, SourceLocation location) {
  return kLeakyRelu({negative_slope}, location, x);
}

// lo > hi gives hi everywhere, as PyTorch documents. A NaN bound is refused (PyTorch would make
// every output NaN).
Tensor clamp(const Tensor& x, double low, double high, SourceLocation location) {
  if (std::isnan(low) || std::isnan(high)) {
    detail::fail_at("clamp", location, "expected bounds that are numbers, got low = {}, high = {}",
                    low, high);
  }
  return kClamp({low, high}, location, x);
}

Tensor pow(const Tensor& x, double exponent, SourceLocation location) {
  return kPow({exponent}, location, x);
}

Tensor cast(const Tensor& x, DType dtype, SourceLocation location) {
  if (!is_floating(dtype)) {
    detail::fail_at(
        "cast", location,
        "can only convert to float32 or float64, not {} (gradients need a floating dtype; "
        "x.to({}) converts values only)",
        dtype_name(dtype), dtype_name(dtype));
  }
  return kCast({dtype}, location, x);
}

Tensor Tensor::to(DType target) const {
  if (is_floating(dtype()) && is_floating(target)) return cast(*this, target);
  // Conversions to or from int64 and bool carry values only: labels, indices and masks have no
  // gradient. To bool, any non-zero value (NaN too) is true, as in PyTorch.
  if (dtype() == target) return copy();
  return from_vector(to_vector(), shape(), target);
}

namespace detail {

Tensor sample(const Shape& shape, DType dtype, Generator& generator, double low, double high) {
  return uniform(shape, generator, low, high, dtype);
}

Tensor sample_away_from_zero(const Shape& shape, DType dtype, Generator& generator) {
  std::vector<double> values(std::size_t(shape.numel()));
  for (double& v : values) {
    const double magnitude = 0.2 + 1.8 * generator.uniform();
    v = generator.uniform() < 0.5 ? -magnitude : magnitude;
  }
  return from_vector(values, shape, dtype);
}

void register_unary_ops(OpRegistry& registry) {
  // Random samples in [low, high), plus, where given, fixed values at the ends of the op's range
  // (saturation, tiny results, the special points where the op is still smooth).
  const auto samples = [](double low, double high, std::vector<double> extremes = {}) {
    return [low, high, extremes](DType dtype) {
      Generator gen(13);
      std::vector<OpSample> out{{"[6]", {sample({6}, dtype, gen, low, high)}},
                                {"[2, 3]", {sample({2, 3}, dtype, gen, low, high)}},
                                {"[] scalar", {sample({}, dtype, gen, low, high)}},
                                {"[0] empty", {sample({0}, dtype, gen, low, high)}}};
      if (!extremes.empty()) {
        out.push_back(
            {"extremes", {from_vector(extremes, {std::int64_t(extremes.size())}, dtype)}});
      }
      return out;
    };
  };
  const auto away_from_zero = [](DType dtype) {
    Generator gen(17);
    return std::vector<OpSample>{{"[6]", {sample_away_from_zero({6}, dtype, gen)}},
                                 {"[2, 3]", {sample_away_from_zero({2, 3}, dtype, gen)}}};
  };
  const auto reference = [](std::function<double(double)> derivative) {
    return [derivative](const std::vector<Tensor>& in) {
      return std::vector{elementwise_jacobian(in[0], derivative)};
    };
  };
  registry.add({"exp", [](const auto& in) { return exp(in[0]); }, samples(-2, 2, {-30, -12, 0, 9}),
                reference([](double x) { return std::exp(x); })});
  registry.add({"log", [](const auto& in) { return log(in[0]); }, samples(0.3, 3, {1e-3, 1, 1e4}),
                reference([](double x) { return 1.0 / x; })});
  registry.add({"sqrt", [](const auto& in) { return sqrt(in[0]); }, samples(0.3, 3, {1e-3, 1, 1e4}),
                reference([](double x) { return 0.5 / std::sqrt(x); })});
  registry.add({"abs", [](const auto& in) { return abs(in[0]); }, away_from_zero,
                reference([](double x) { return x > 0 ? 1.0 : -1.0; })});
  registry.add({"tanh", [](const auto& in) { return tanh(in[0]); },
                samples(-2, 2, {-6, 0, 1e-4, 6}),
                reference([](double x) { return 1.0 - std::tanh(x) * std::tanh(x); })});
  registry.add({"sigmoid", [](const auto& in) { return sigmoid(in[0]); },
                samples(-3, 3, {-12, 0, 12}), reference([](double x) {
                  const double s = 1.0 / (1.0 + std::exp(-x));
                  return s * (1.0 - s);
                })});
  registry.add({"erf", [](const auto& in) { return erf(in[0]); }, samples(-2, 2, {-3.5, 0, 3.5}),
                reference([](double x) { return 2.0 / std::sqrt(M_PI) * std::exp(-x * x); })});
  registry.add({"relu", [](const auto& in) { return relu(in[0]); }, away_from_zero,
                reference([](double x) { return x > 0 ? 1.0 : 0.0; })});
  registry.add({"leaky_relu", [](const auto& in) { return leaky_relu(in[0], 0.1); }, away_from_zero,
                reference([](double x) { return x > 0 ? 1.0 : 0.1; })});
  registry.add({"sin", [](const auto& in) { return sin(in[0]); }, samples(-3, 3, {-100, 0, 50}),
                reference([](double x) { return std::cos(x); })});
  registry.add({"cos", [](const auto& in) { return cos(in[0]); }, samples(-3, 3, {-100, 0, 50}),
                reference([](double x) { return -std::sin(x); })});
  registry.add({"log1p", [](const auto& in) { return log1p(in[0]); },
                samples(-0.7, 3, {-0.9, 1e-6, 0, 1e3}),
                reference([](double x) { return 1.0 / (1.0 + x); })});
  registry.add({"softplus", [](const auto& in) { return softplus(in[0]); },
                samples(-4, 4, {-30, -10, 0, 10, 30}),
                reference([](double x) { return 1.0 / (1.0 + std::exp(-x)); })});
  // Samples in [-2, 2) with |x| >= 0.2 keep clear of the bounds ±1.1 only by chance, so the
  // clamp samples are drawn away from the bounds explicitly.
  registry.add({"clamp", [](const auto& in) { return clamp(in[0], -1.0, 1.0); },
                [](DType dtype) {
                  return std::vector<OpSample>{
                      {"[6] inside and outside the bounds",
                       {from_vector({-1.7, -0.6, -0.1, 0.4, 0.8, 1.5}, {6}, dtype)}}};
                },
                reference([](double x) { return x >= -1.0 && x <= 1.0 ? 1.0 : 0.0; })});
  registry.add({"pow", [](const auto& in) { return pow(in[0], 2.5); }, samples(0.3, 3),
                reference([](double x) { return 2.5 * std::pow(x, 1.5); })});
  // Through 0, where xᵖ with a small integer p is smooth and every order of its derivative is
  // defined (x⁰'s gradient 0, not 0·x⁻¹ = NaN).
  registry.add({"pow_integer", [](const auto& in) { return pow(in[0], 3.0); },
                samples(-2, 2, {-1.5, 0, 2}), reference([](double x) { return 3.0 * x * x; })});
  for (const double p : {0.0, 1.0, 2.0}) {
    registry.add({fmt::format("pow(x, {})", p), [p](const auto& in) { return pow(in[0], p); },
                  samples(-2, 2, {-1.5, 0, 2}),
                  reference([p](double x) { return p == 0 ? 0.0 : p * std::pow(x, p - 1); })});
  }
  registry.add({"cast", [](const auto& in) { return cast(in[0], f64); }, samples(-2, 2),
                reference([](double) { return 1.0; })});
}

}  // namespace detail
}  // namespace tg
