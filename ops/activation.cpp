// Elementwise activations and small functions, as PyTorch defines them.
//
//   sign      y = sgn x (0 at ±0 and, as PyTorch 1.13, at NaN)   dx = 0
//   rsqrt     y = x^(−1/2)                 composed: pow(x, −0.5), dx = −g/2 ⊙ x^(−3/2)
//   square    y = x²                       composed: pow(x, 2), dx = 2g ⊙ x
//   silu      y = x ⊙ sigmoid(x)           composed
//   gelu      y = x/2 ⊙ (1 + erf(x/√2)), or with tanh: x/2 ⊙ (1 + tanh(√(2/π)(x + 0.044715x³)))
//             = x ⊙ sigmoid(2√(2/π)(x + 0.044715x³))        one op, fused rule (see gelu_forward)
//   hardtanh  y = min(max(x, lo), hi)      dx = g ⊙ [lo < x < hi]   (0 at the bounds, as PyTorch)
//   elu       y = x or α(eˣ − 1)           dx = g ⊙ (1 if x > 0 else αeˣ)
#include <cmath>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"

namespace tg {
namespace {

template <class T>
using Scalar = typename std::decay_t<T>::Scalar;

Tensor sign_forward(ForwardContext& ctx, const NoAttrs&) {
  return detail::map_unary(ctx.input(0), "sign", [](const auto& x) {
    using T = Scalar<decltype(x)>;
    return x.unaryExpr([](T v) { return v > T(0) ? T(1) : v < T(0) ? T(-1) : T(0); });
  });
}
void sign_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, zeros_like(ctx.input(0)));
}
const Op<> kSign{"sign", "dx = 0", sign_forward, sign_backward};

struct BoundsAttrs {
  double low;
  double high;
};
// clamp's values; only the rule differs at the bounds.
Tensor hardtanh_forward(ForwardContext& ctx, const BoundsAttrs& a) {
  return clamp(ctx.input(0), a.low, a.high);
}
// PyTorch's hardtanh_backward: g passes unless x ≤ lo or x ≥ hi (so a NaN passes it on).
void hardtanh_backward(BackwardContext& ctx, const BoundsAttrs& a) {
  const Tensor inside = detail::mask_where(ctx.input(0), "hardtanh",
                                           [&](auto v) { return !(v <= a.low || v >= a.high); });
  ctx.set_grad(0, ctx.grad_output() * inside);
}
const Op<BoundsAttrs> kHardtanh{"hardtanh", "dx = g ⊙ [lo < x < hi]", hardtanh_forward,
                                hardtanh_backward};

struct AlphaAttrs {
  double alpha;
};
Tensor elu_forward(ForwardContext& ctx, const AlphaAttrs& a) {
  return detail::map_unary(ctx.input(0), "elu", [&](const auto& x) {
    using T = Scalar<decltype(x)>;
    return (x > T(0)).select(x, x.unaryExpr([](T v) { return std::expm1(v); }) * T(a.alpha));
  });
}
// αeˣ is taken as α·exp(hardtanh(x, −∞, 0)) where x ≤ 0 (a constant mask): differentiable again,
// finite for x = +inf, and with PyTorch's second derivative 0 at x = 0 (hardtanh's gradient is 0
// at its bound) beside the first derivative α there.
void elu_backward(BackwardContext& ctx, const AlphaAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor negative = detail::mask_where(x, "elu", [](auto v) { return !(v > 0); });
  const Tensor slope = exp(hardtanh(x, -INFINITY, 0.0)) * a.alpha;
  ctx.set_grad(0, ctx.grad_output() * (1.0 - negative + negative * slope));
}
const Op<AlphaAttrs> kElu{"elu", "dx = g ⊙ (1 if x > 0 else αeˣ)", elu_forward, elu_backward};

// gelu as one op: y = x/2·(1 + erf(x/√2)), or x·sigmoid(z) with z = √(8/π)(x + 0.044715x³),
// in the composition's order of operations; the fused rule dx = g ⊙ gelu'(x) with
//   gelu'(x) = (1 + erf(x/√2))/2 + x·e^(−x²/2)/√(2π),   or   s + x·s(1 − s)·√(8/π)(1 +
//   3·0.044715x²)
// (s = sigmoid(z)); s or erf(x/√2) saved by the forward. Under create_graph the same derivative
// written with tapegrad's ops.
//
// Measured ([768, 512] float32, forward + backward through tg::grad, one thread, loaded 2-core
// machine): erf form 6.0-6.5 ms against the composition's 7.1-9.5 ms (erf is the cost, computed
// once); tanh form 3.8-4.1 ms against 3.6-3.9 ms (no gain: the composition is already a few
// vectorised passes).
constexpr double kGeluCubic = 0.044715;
const double kGeluScale = std::sqrt(8.0 / M_PI);

struct GeluAttrs {
  GeluApproximate approximate;
};

// The part the derivative reuses, written into p: s = sigmoid(z) (tanh form) or erf(x/√2). In
// place, with no temporary: a [768, 512] temporary came from the kernel's fresh pages every step
// (4 % of a GPT training step was clearing them).
template <class T>
void gelu_part(const Eigen::Map<const detail::Vector<T>>& x, bool tanh_form,
               Eigen::Map<detail::Vector<T>>& p) {
  if (tanh_form) {
    p = (x + x * x * x * T(kGeluCubic)) * T(kGeluScale);
    p = T(1) / (T(1) + detail::exp_array(-p));
  } else {
    p = (x * T(M_SQRT1_2)).unaryExpr([](T v) { return T(std::erf(v)); });
  }
}

Tensor gelu_forward(ForwardContext& ctx, const GeluAttrs& a) {
  const Tensor& x = ctx.input(0);
  const bool tanh_form = a.approximate == GeluApproximate::tanh;
  return dispatch_floating(x.dtype(), "gelu", [&]<class T>() {
    Tensor y = empty(x.shape(), x.dtype());
    Tensor part = empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    T* pp = part.data<T>();
    detail::for_each_chunk(x.numel(), [&](std::int64_t, std::int64_t begin, std::int64_t count) {
      const Eigen::Map<const detail::Vector<T>> xs(px + begin, count);
      Eigen::Map<detail::Vector<T>> p(pp + begin, count), ys(py + begin, count);
      gelu_part(xs, tanh_form, p);
      if (tanh_form) {
        ys = xs * p;
      } else {
        ys = (xs * T(0.5)) * (p + T(1));
      }
    });
    ctx.save(part, Residual::constant);
    return y;
  });
}

void gelu_backward(BackwardContext& ctx, const GeluAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& g = ctx.grad_output();
  const bool tanh_form = a.approximate == GeluApproximate::tanh;
  if (ctx.create_graph()) {
    Tensor d;
    if (tanh_form) {
      const Tensor s = sigmoid((x + pow(x, 3.0) * kGeluCubic) * kGeluScale);
      d = s + x * s * (1.0 - s) * kGeluScale * (x * x * (3 * kGeluCubic) + 1.0);
    } else {
      d = (erf(x * M_SQRT1_2) + 1.0) * 0.5 + x * exp(x * x * -0.5) * (1 / std::sqrt(2 * M_PI));
    }
    ctx.set_grad(0, g * d);
    return;
  }
  dispatch_floating(x.dtype(), "gelu", [&]<class T>() {
    Tensor dx = empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    const T* pg = g.data<T>();
    const T* pp = ctx.saved(0).data<T>();
    T* pd = dx.data<T>();
    detail::for_each_chunk(x.numel(), [&](std::int64_t, std::int64_t begin, std::int64_t count) {
      const Eigen::Map<const detail::Vector<T>> xs(px + begin, count), gs(pg + begin, count),
          p(pp + begin, count);
      Eigen::Map<detail::Vector<T>> out(pd + begin, count);
      if (tanh_form) {
        out = gs * (p + xs * p * (T(1) - p) * T(kGeluScale) * (xs * xs * T(3 * kGeluCubic) + T(1)));
      } else {
        out = gs * ((p + T(1)) * T(0.5) +
                    xs * detail::exp_array(xs * xs * T(-0.5)) * T(1 / std::sqrt(2 * M_PI)));
      }
    });
    ctx.set_grad(0, dx);
    return 0;
  });
}

const Op<GeluAttrs> kGelu{"gelu", "dx = g ⊙ gelu'(x)", gelu_forward, gelu_backward};

}  // namespace

Tensor sign(const Tensor& x, SourceLocation location) {
  return kSign({}, location, x);
}

Tensor rsqrt(const Tensor& x, SourceLocation location) {
  return detail::composite("rsqrt", location, [&] { return pow(x, -0.5, location); });
}

Tensor square(const Tensor& x, SourceLocation location) {
  return detail::composite("square", location, [&] { return pow(x, 2.0, location); });
}

Tensor silu(const Tensor& x, SourceLocation location) {
  return detail::composite("silu", location,
                           [&] { return mul(x, sigmoid(x, location), location); });
}

Tensor gelu(const Tensor& x, GeluApproximate approximate, SourceLocation location) {
  return kGelu({approximate}, location, x);
}

Tensor hardtanh(const Tensor& x, double low, double high, SourceLocation location) {
  if (!(low <= high)) {
    detail::fail_at("hardtanh", location, "expected low <= high, got low = {}, high = {}", low,
                    high);
  }
  // The forward is clamp's, whose errors would name clamp.
  return detail::composite("hardtanh", location, [&] {
    return kHardtanh({low, high}, location, x);
  });
}

Tensor elu(const Tensor& x, double alpha, SourceLocation location) {
  return kElu({alpha}, location, x);
}

namespace detail {

void register_activation_ops(OpRegistry& registry) {
  const auto samples = [](double low, double high) {
    return [low, high](DType dtype) {
      Generator gen(109);
      return std::vector<OpSample>{{"[6]", {sample({6}, dtype, gen, low, high)}},
                                   {"[2, 3]", {sample({2, 3}, dtype, gen, low, high)}},
                                   {"[] scalar", {sample({}, dtype, gen, low, high)}},
                                   {"[0] empty", {sample({0}, dtype, gen, low, high)}}};
    };
  };
  const auto away_from_zero = [](DType dtype) {
    Generator gen(113);
    return std::vector<OpSample>{{"[6]", {sample_away_from_zero({6}, dtype, gen)}},
                                 {"[2, 3]", {sample_away_from_zero({2, 3}, dtype, gen)}}};
  };
  const auto reference = [](std::function<double(double)> derivative) {
    return [derivative](const std::vector<Tensor>& in) {
      return std::vector{elementwise_jacobian(in[0], derivative)};
    };
  };
  const auto sigmoid_of = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  registry.add({"sign", [](const auto& in) { return sign(in[0]); }, away_from_zero,
                reference([](double) { return 0.0; })});
  registry.add({"rsqrt", [](const auto& in) { return rsqrt(in[0]); }, samples(0.3, 3),
                reference([](double x) { return -0.5 * std::pow(x, -1.5); })});
  registry.add({"square", [](const auto& in) { return square(in[0]); }, samples(-2, 2),
                reference([](double x) { return 2 * x; })});
  registry.add(
      {"silu", [](const auto& in) { return silu(in[0]); }, samples(-4, 4), reference([=](double x) {
         const double s = sigmoid_of(x);
         return s * (1 + x * (1 - s));
       })});
  registry.add(
      {"gelu", [](const auto& in) { return gelu(in[0]); }, samples(-3, 3), reference([](double x) {
         return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) +
                x * std::exp(-x * x / 2) / std::sqrt(2 * M_PI);
       })});
  registry.add({"gelu(tanh)", [](const auto& in) { return gelu(in[0], GeluApproximate::tanh); },
                samples(-3, 3), reference([](double x) {
                  const double k = std::sqrt(2.0 / M_PI);
                  const double t = std::tanh(k * (x + 0.044715 * x * x * x));
                  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
                })});
  // Samples at least 0.2 from the bounds ±1 and from 0, where finite differences straddle a kink.
  registry.add({"hardtanh", [](const auto& in) { return hardtanh(in[0]); },
                [](DType dtype) {
                  return std::vector<OpSample>{
                      {"[6] inside and outside the bounds",
                       {from_vector({-1.7, -0.6, -0.3, 0.4, 0.8, 1.5}, {6}, dtype)}}};
                },
                reference([](double x) { return x > -1 && x < 1 ? 1.0 : 0.0; })});
  registry.add({"elu", [](const auto& in) { return elu(in[0], 1.5); }, away_from_zero,
                reference([](double x) { return x > 0 ? 1.0 : 1.5 * std::exp(x); })});
}

}  // namespace detail
}  // namespace tg
