// The softmax family along one axis, all shifted by the maximum m so no exp overflows: accurate to
// a few ulps for inputs of any finite magnitude.
//
//   softmax      s = exp(x − m) / Σ exp(x − m)       dx = s ⊙ (g − ⟨g, s⟩)
//   log_softmax  y = (x − m) − log Σ exp(x − m)      dx = g − exp(y) ⊙ Σ g
//   logsumexp    y = m + log Σ exp(x − m)            dx = g ⊙ softmax(x)
//
// The shift is subtracted before anything else: x − (m + log Σ) loses the shift to rounding once
// |m| is large (float32 logits [1e4, 1e4] gave −0.69336 for −0.693147), and logsumexp's textbook
// gradient exp(x − y) does too (y = m + log Σ rounds to m: [1, 1] instead of [½, ½] at 1e30).
//
// −inf entries (masks) get probability exactly 0 and, in softmax and logsumexp, gradient exactly 0.
// A row with no finite maximum behaves as in PyTorch: softmax and log_softmax of a row that is all
// −inf or holds a +inf are NaN; logsumexp is −inf for an all −inf row and +inf with a +inf entry
// (its shift is the maximum only where finite), its gradient NaN there, except 0 at the finite
// entries of a row with a +inf.
//
// The softmax Jacobian is diag(s) − s sᵀ: its diagonal s(1 − s) alone is not the derivative
// (every output depends on every input), and the backward rule above is that full Jacobian
// applied to g in O(n) without forming it. The registered reference Jacobian is the explicit
// matrix, so the registry tests hold the rule against it.
#include <cmath>

#include "autograd/parallel.h"
#include "autograd/tape.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "ops/registrations.h"

namespace tg {
namespace {

using detail::RowMatrix;
using detail::RowVector;
using detail::Vector;

// logsumexp_gradient is softmax shifted as logsumexp is: the first-order gradient of logsumexp.
enum class Normalizer { softmax, log_softmax, logsumexp, logsumexp_gradient };

struct AxisAttrs {
  int axis;
  bool keepdim;
};

// The shift of a slice with maximum m. logsumexp shifts by m only where it is finite: by 0 an
// all −inf slice sums to 0 (log: −inf) and a +inf entry sums to +inf, PyTorch's values. softmax and
// log_softmax shift by m itself, which makes such a slice NaN, as in PyTorch.
template <class T>
T shift_of(T m, Normalizer kind) {
  const bool finite_only = kind == Normalizer::logsumexp || kind == Normalizer::logsumexp_gradient;
  return finite_only && !std::isfinite(m) ? T(0) : m;
}

template <class T>
void normalize_vector(const T* x, T* out, std::int64_t n, Normalizer kind) {
  const Eigen::Map<const Vector<T>> v(x, n);
  const T m = shift_of(v.maxCoeff(), kind);
  if (kind == Normalizer::logsumexp) {
    *out = m + std::log(detail::exp_array(v - m).sum());
    return;
  }
  Eigen::Map<Vector<T>> y(out, n);
  y = detail::exp_array(v - m);
  const T total = y.sum();
  if (kind == Normalizer::log_softmax) {
    y = (v - m) - std::log(total);
  } else {
    y /= total;
  }
}

template <class T>
void normalize_block(const T* x, T* out, std::int64_t n, std::int64_t inner, Normalizer kind) {
  const Eigen::Map<const RowMatrix<T>> block(x, n, inner);
  const RowVector<T> m =
      block.colwise().maxCoeff().unaryExpr([kind](T v) { return shift_of(v, kind); });
  const RowMatrix<T> shifted = block.rowwise() - m;
  const RowMatrix<T> e = detail::exp_array(shifted.array()).matrix();
  const RowVector<T> total = e.colwise().sum();
  if (kind == Normalizer::logsumexp) {
    Eigen::Map<RowVector<T>>(out, inner) = m.array() + detail::log_array(total.array());
    return;
  }
  Eigen::Map<RowMatrix<T>> y(out, n, inner);
  if (kind == Normalizer::log_softmax) {
    y = shifted.rowwise() - detail::log_array(total.array()).matrix();
  } else {
    y = e.array().rowwise() / total.array();
  }
}

Tensor normalize(const Tensor& x, int axis, bool keepdim, Normalizer kind, const char* op) {
  const AxisSplit s = split_at_axis(x.shape(), axis);
  Shape out_shape = x.shape();
  if (kind == Normalizer::logsumexp) {
    out_shape = keepdim ? detail::keepdim_shape(x.shape(), axis) : x.shape().without_axis(axis);
  }
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    Tensor out = empty(out_shape, x.dtype());
    // Nothing to normalise (this also never walks the slices of a tensor that is empty along
    // another axis): logsumexp over an empty axis is −inf.
    if (x.numel() == 0) {
      if (kind == Normalizer::logsumexp) detail::flat<T>(out).setConstant(-INFINITY);
      return out;
    }
    const std::int64_t out_block = kind == Normalizer::logsumexp ? s.inner : s.dim * s.inner;
    const T* x_data = x.data<T>();
    T* out_data = out.data<T>();
    detail::parallel_for(s.outer, x.numel(), [&](std::int64_t o) {
      const T* px = x_data + o * s.dim * s.inner;
      T* po = out_data + o * out_block;
      if (s.inner == 1) {
        normalize_vector(px, po, s.dim, kind);
      } else {
        normalize_block(px, po, s.dim, s.inner, kind);
      }
    });
    return out;
  });
}

Tensor softmax_forward(ForwardContext& ctx, const AxisAttrs& a) {
  return normalize(ctx.input(0), a.axis, true, Normalizer::softmax, "softmax");
}
// dx = s ⊙ (g − ⟨g, s⟩) (softmax) or g − exp(y) ⊙ Σg (log_softmax) in one pass per slice.
template <class T>
void fused_backward_vector(const T* y, const T* g, T* dx, std::int64_t n, Normalizer kind) {
  const Eigen::Map<const Vector<T>> yv(y, n), gv(g, n);
  Eigen::Map<Vector<T>> out(dx, n);
  if (kind == Normalizer::softmax) {
    out = yv * (gv - (gv * yv).sum());
  } else {
    out = gv - detail::exp_array(yv) * gv.sum();
  }
}

template <class T>
void fused_backward_block(const T* y, const T* g, T* dx, std::int64_t n, std::int64_t inner,
                          Normalizer kind) {
  const Eigen::Map<const RowMatrix<T>> ym(y, n, inner), gm(g, n, inner);
  Eigen::Map<RowMatrix<T>> out(dx, n, inner);
  if (kind == Normalizer::softmax) {
    const RowVector<T> dot = (gm.array() * ym.array()).matrix().colwise().sum();
    out = (ym.array() * (gm.rowwise() - dot).array()).matrix();
  } else {
    const RowVector<T> total = gm.colwise().sum();
    out = gm - (detail::exp_array(ym.array()).rowwise() * total.array()).matrix();
  }
}

Tensor fused_backward(const Tensor& y, const Tensor& g, int axis, Normalizer kind) {
  const AxisSplit s = split_at_axis(y.shape(), axis);
  return dispatch_floating(y.dtype(), "softmax", [&]<class T>() {
    Tensor dx = empty(y.shape(), y.dtype());
    if (y.numel() == 0) return dx;
    const std::int64_t block = s.dim * s.inner;
    const T* y_data = y.data<T>();
    const T* g_data = g.data<T>();
    T* dx_data = dx.data<T>();
    detail::parallel_for(s.outer, y.numel(), [&](std::int64_t o) {
      const T* py = y_data + o * block;
      const T* pg = g_data + o * block;
      T* pd = dx_data + o * block;
      if (s.inner == 1) {
        fused_backward_vector(py, pg, pd, s.dim, kind);
      } else {
        fused_backward_block(py, pg, pd, s.dim, s.inner, kind);
      }
    });
    return dx;
  });
}

void softmax_backward(BackwardContext& ctx, const AxisAttrs& a) {
  const Tensor& s = ctx.output();
  const Tensor& g = ctx.grad_output();
  if (!ctx.create_graph())
    return ctx.set_grad(0, fused_backward(s, g, a.axis, Normalizer::softmax));
  ctx.set_grad(0, s * (g - sum(g * s, a.axis, true)));
}
const Op<AxisAttrs> kSoftmax{"softmax", "dx = s ⊙ (g − ⟨g, s⟩)", softmax_forward, softmax_backward};

Tensor log_softmax_forward(ForwardContext& ctx, const AxisAttrs& a) {
  return normalize(ctx.input(0), a.axis, true, Normalizer::log_softmax, "log_softmax");
}
void log_softmax_backward(BackwardContext& ctx, const AxisAttrs& a) {
  const Tensor& g = ctx.grad_output();
  if (!ctx.create_graph()) {
    return ctx.set_grad(0, fused_backward(ctx.output(), g, a.axis, Normalizer::log_softmax));
  }
  ctx.set_grad(0, g - exp(ctx.output()) * sum(g, a.axis, true));
}
const Op<AxisAttrs> kLogSoftmax{"log_softmax", "dx = g − exp(y) ⊙ Σg", log_softmax_forward,
                                log_softmax_backward};

Tensor logsumexp_forward(ForwardContext& ctx, const AxisAttrs& a) {
  return normalize(ctx.input(0), a.axis, a.keepdim, Normalizer::logsumexp, "logsumexp");
}
// dx = g ⊙ softmax(x), the softmax shifted as logsumexp is (by the maximum where it is finite, else
// by 0), not the textbook exp(x − y), wrong by the rounding of y at large magnitude. Composed, the
// shift is a constant: softmax does not depend on it.
void logsumexp_backward(BackwardContext& ctx, const AxisAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor g = detail::unsqueeze_reduced(ctx.grad_output(), x.shape(), a.axis, a.keepdim);
  if (!ctx.create_graph() || x.shape()[a.axis] == 0) {
    return ctx.set_grad(
        0, g * normalize(x, a.axis, true, Normalizer::logsumexp_gradient, "logsumexp"));
  }
  const Tensor shift =
      detail::map_unary(max(x.detach(), a.axis, true), "logsumexp", [](const auto& m) {
        using T = typename std::decay_t<decltype(m)>::Scalar;
        return m.isFinite().select(m, T(0));
      });
  const Tensor e = exp(x - shift);
  ctx.set_grad(0, g * e / sum(e, a.axis, true));
}
const Op<AxisAttrs> kLogsumexp{"logsumexp", "dx = g ⊙ softmax(x)", logsumexp_forward,
                               logsumexp_backward};

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "softmax", location,
                                  [&](const Tensor& v) { return softmax(v, 0, location); });
  }
  return kSoftmax({normalize_axis(axis, x.rank(), "softmax", location), true}, location, x);
}

Tensor log_softmax(const Tensor& x, std::int64_t axis, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "log_softmax", location,
                                  [&](const Tensor& v) { return log_softmax(v, 0, location); });
  }
  return kLogSoftmax({normalize_axis(axis, x.rank(), "log_softmax", location), true}, location, x);
}

Tensor logsumexp(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "logsumexp", location, [&](const Tensor& v) {
      return logsumexp(v, 0, keepdim, location);
    });
  }
  return kLogsumexp({normalize_axis(axis, x.rank(), "logsumexp", location), keepdim}, location, x);
}

namespace detail {

namespace {

// The explicit Jacobian of a map applied independently to every slice along `axis`, from the
// per-slice derivative d(out k)/d(in l) given the slice's softmax s; computed in double from
// std::exp, independently of the kernels above.
Tensor slice_jacobian(const Tensor& x, std::int64_t axis_in, bool reduces,
                      const std::function<double(const std::vector<double>& s, std::int64_t k,
                                                 std::int64_t l)>& derivative) {
  const int axis =
      normalize_axis(axis_in, x.rank(), "slice_jacobian", std::source_location::current());
  const AxisSplit s = split_at_axis(x.shape(), axis);
  const std::vector<double> v = x.to_vector();
  const std::int64_t out_dim = reduces ? 1 : s.dim;
  const std::int64_t rows = s.outer * out_dim * s.inner;
  Tensor jacobian = zeros({rows, x.numel()}, f64);
  double* pj = jacobian.data<double>();
  for (std::int64_t o = 0; o < s.outer; ++o) {
    for (std::int64_t i = 0; i < s.inner; ++i) {
      std::vector<double> slice(std::size_t(s.dim));
      double m = -INFINITY;
      for (std::int64_t k = 0; k < s.dim; ++k) {
        slice[std::size_t(k)] = v[std::size_t((o * s.dim + k) * s.inner + i)];
        m = std::max(m, slice[std::size_t(k)]);
      }
      double total = 0;
      for (double& e : slice) total += (e = std::exp(e - m));
      for (double& e : slice) e /= total;
      for (std::int64_t k = 0; k < out_dim; ++k) {
        for (std::int64_t l = 0; l < s.dim; ++l) {
          const std::int64_t row = (o * out_dim + k) * s.inner + i;
          const std::int64_t col = (o * s.dim + l) * s.inner + i;
          pj[row * x.numel() + col] = derivative(slice, k, l);
        }
      }
    }
  }
  return jacobian;
}

}  // namespace

void register_softmax_ops(OpRegistry& registry) {
  // Random slices, slices at magnitude 1e4 (exact in float32 too) and, except for log_softmax
  // (−inf outputs, which finite differences cannot take), slices with −inf masks.
  const auto samples_for_axis = [](std::int64_t axis, bool masks) {
    return [axis, masks](DType dtype) {
      Generator gen(53);
      std::vector<OpSample> samples;
      for (const Shape& shape : std::vector<Shape>{{1}, {3}, {5, 7}, {2, 3, 4}}) {
        if (axis >= shape.rank() || -axis > shape.rank()) continue;
        samples.push_back({shape.str(), {sample(shape, dtype, gen, -3, 3)}});
      }
      samples.push_back(
          {"[2, 3] at ±1e4",
           {from_vector({1e4, 1e4 + 0.5, 1e4 - 1, -1e4, -1e4 + 2, -1e4}, {2, 3}, dtype)}});
      if (masks) {
        samples.push_back(
            {"[2, 4] with −inf masks",
             {from_vector({0.5, -INFINITY, 1, -INFINITY, -INFINITY, 2, -1, 0}, {2, 4}, dtype)}});
      }
      return samples;
    };
  };
  for (const std::int64_t axis : {-1, 0, 1}) {
    const std::string suffix = fmt::format("(axis={})", axis);
    registry.add(
        {"softmax" + suffix, [=](const auto& in) { return softmax(in[0], axis); },
         samples_for_axis(axis, true),
         [=](const auto& in) {
           return std::vector{slice_jacobian(in[0], axis, false, [](const auto& s, auto k, auto l) {
             return (k == l ? s[std::size_t(k)] : 0.0) - s[std::size_t(k)] * s[std::size_t(l)];
           })};
         }});
    registry.add({"log_softmax" + suffix, [=](const auto& in) { return log_softmax(in[0], axis); },
                  samples_for_axis(axis, false),
                  [=](const auto& in) {
                    return std::vector{
                        slice_jacobian(in[0], axis, false, [](const auto& s, auto k, auto l) {
                          return (k == l ? 1.0 : 0.0) - s[std::size_t(l)];
                        })};
                  }});
    registry.add(
        {"logsumexp" + suffix, [=](const auto& in) { return logsumexp(in[0], axis); },
         samples_for_axis(axis, true),
         [=](const auto& in) {
           return std::vector{slice_jacobian(
               in[0], axis, true, [](const auto& s, auto, auto l) { return s[std::size_t(l)]; })};
         }});
  }
}

}  // namespace detail
}  // namespace tg
