// Reductions, and the broadcast pair the engine un-broadcasts with.
//
//   sum          y = Σₐ x            dx = broadcast(g)
//   mean         y = Σₐ x / n        dx = broadcast(g) / n
//   max          y = maxₐ x          dx = broadcast(g) ⊙ onehot(first argmax; the first NaN wins)
//
// Over nothing, as PyTorch: a sum is 0, a mean NaN (0/0), a max an error; gradients have the
// input's (empty) shape. A bool mask sums to an int64 count; its mean is an error, as in PyTorch.
//   sum_to       y = x summed to s   dx = broadcast(g)
//   broadcast_to y = x repeated to s dx = g (the engine sums it back to x's shape)
#include <array>
#include <cmath>
#include <numeric>

#include "autograd/tape.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "ops/registrations.h"

namespace tg {
namespace {

using detail::ColumnVector;
using detail::RowMatrix;
using detail::RowVector;

struct AxisAttrs {
  int axis;
  bool keepdim;
};

// Σ over one axis through Eigen: rows of an [outer, n] matrix when the axis is innermost,
// else columns of each [n, inner] block.
Tensor sum_over_axis(const Tensor& x, int axis, bool keepdim, const char* op) {
  const AxisSplit s = split_at_axis(x.shape(), axis);
  const Shape out_shape =
      keepdim ? detail::keepdim_shape(x.shape(), axis) : x.shape().without_axis(axis);
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    Tensor out = empty(out_shape, x.dtype());
    if (x.numel() == 0) {  // sums of nothing, without walking the empty slices
      detail::flat<T>(out).setZero();
      return out;
    }
    const T* px = x.data<T>();
    T* po = out.data<T>();
    if (s.inner == 1) {
      Eigen::Map<ColumnVector<T>>(po, s.outer) =
          Eigen::Map<const RowMatrix<T>>(px, s.outer, s.dim).rowwise().sum();
    } else {
      for (std::int64_t o = 0; o < s.outer; ++o) {
        Eigen::Map<RowVector<T>>(po + o * s.inner, s.inner) =
            Eigen::Map<const RowMatrix<T>>(px + o * s.dim * s.inner, s.dim, s.inner)
                .colwise()
                .sum();
      }
    }
    return out;
  });
}

Tensor sum_all_forward(ForwardContext& ctx, const NoAttrs&) {
  const Tensor& x = ctx.input(0);
  return dispatch_floating(x.dtype(), "sum", [&]<class T>() {
    // Per-chunk partial sums, added in chunk order: the same result for the same thread count.
    std::array<T, detail::kMaxChunks> partial{};
    const T* px = x.data<T>();
    detail::for_each_chunk(x.numel(), [&](std::int64_t chunk, std::int64_t begin,
                                          std::int64_t count) {
      partial[std::size_t(chunk)] = Eigen::Map<const detail::Vector<T>>(px + begin, count).sum();
    });
    Tensor out = empty({}, x.dtype());
    *out.data<T>() = std::accumulate(partial.begin(), partial.end(), T(0));
    return out;
  });
}
void sum_all_backward(BackwardContext& ctx, const NoAttrs&) {
  ctx.set_grad(0, broadcast_to(ctx.grad_output(), ctx.input(0).shape()));
}
const Op<> kSumAll{"sum", "dx = broadcast(g)", sum_all_forward, sum_all_backward};

Tensor sum_forward(ForwardContext& ctx, const AxisAttrs& a) {
  return sum_over_axis(ctx.input(0), a.axis, a.keepdim, "sum");
}
void sum_backward(BackwardContext& ctx, const AxisAttrs& a) {
  const Shape& shape = ctx.input(0).shape();
  ctx.set_grad(
      0,
      broadcast_to(detail::unsqueeze_reduced(ctx.grad_output(), shape, a.axis, a.keepdim), shape));
}
const Op<AxisAttrs> kSum{"sum", "dx = broadcast(g)", sum_forward, sum_backward};

Tensor mean_all_forward(ForwardContext& ctx, const NoAttrs&) {
  const Tensor& x = ctx.input(0);
  return dispatch_floating(x.dtype(), "mean", [&]<class T>() {
    Tensor out = empty({}, x.dtype());
    *out.data<T>() = detail::flat<T>(x).sum() / T(x.numel());
    return out;
  });
}
void mean_all_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& x = ctx.input(0);
  ctx.set_grad(0, broadcast_to(ctx.grad_output() * (1.0 / double(x.numel())), x.shape()));
}
const Op<> kMeanAll{"mean", "dx = broadcast(g) / n", mean_all_forward, mean_all_backward};

Tensor mean_forward(ForwardContext& ctx, const AxisAttrs& a) {
  const Tensor& x = ctx.input(0);
  return mul(sum_over_axis(x, a.axis, a.keepdim, "mean"), 1.0 / double(x.shape()[a.axis]));
}
void mean_backward(BackwardContext& ctx, const AxisAttrs& a) {
  const Shape& shape = ctx.input(0).shape();
  const Tensor g = detail::unsqueeze_reduced(ctx.grad_output(), shape, a.axis, a.keepdim);
  ctx.set_grad(0, broadcast_to(g * (1.0 / double(shape[a.axis])), shape));
}
const Op<AxisAttrs> kMean{"mean", "dx = broadcast(g) / n", mean_forward, mean_backward};

Tensor max_forward(ForwardContext& ctx, const AxisAttrs& a) {
  const Tensor& x = ctx.input(0);
  const AxisSplit s = split_at_axis(x.shape(), a.axis);
  if (s.dim == 0) {
    fail("max: cannot reduce over axis {} of size 0 (shape {})", a.axis, x.shape().str());
  }
  const Shape out_shape =
      a.keepdim ? detail::keepdim_shape(x.shape(), a.axis) : x.shape().without_axis(a.axis);
  return dispatch_floating(x.dtype(), "max", [&]<class T>() {
    Tensor out = empty(out_shape, x.dtype());
    Tensor argmax_mask = zeros(x.shape(), x.dtype());
    if (x.numel() == 0) {  // a non-empty axis with an empty one beside it: nothing to walk
      ctx.save(argmax_mask);
      return out;
    }
    const T* px = x.data<T>();
    T* po = out.data<T>();
    T* pm = argmax_mask.data<T>();
    // Eigen has no arg-max along one axis of a block, so this walks the axis itself. NaN wins,
    // as in PyTorch, so a NaN input is never hidden.
    for (std::int64_t o = 0; o < s.outer; ++o) {
      for (std::int64_t i = 0; i < s.inner; ++i) {
        const std::int64_t base = o * s.dim * s.inner + i;
        std::int64_t best = 0;
        for (std::int64_t k = 1; k < s.dim; ++k) {
          const T v = px[base + k * s.inner];
          const T b = px[base + best * s.inner];
          if (v > b || (std::isnan(v) && !std::isnan(b))) best = k;
        }
        po[o * s.inner + i] = px[base + best * s.inner];
        pm[base + best * s.inner] = T(1);
      }
    }
    ctx.save(argmax_mask);
    return out;
  });
}
void max_backward(BackwardContext& ctx, const AxisAttrs& a) {
  const Shape& shape = ctx.input(0).shape();
  ctx.set_grad(
      0, detail::unsqueeze_reduced(ctx.grad_output(), shape, a.axis, a.keepdim) * ctx.saved(0));
}
const Op<AxisAttrs> kMax{"max", "dx = broadcast(g) ⊙ onehot(argmax)", max_forward, max_backward};

struct ShapeAttrs {
  Shape shape;
};

Tensor sum_to_forward(ForwardContext& ctx, const ShapeAttrs& a) {
  const Tensor& x = ctx.input(0);
  return dispatch_floating(x.dtype(), "sum_to", [&]<class T>() {
    Tensor out = zeros(a.shape, x.dtype());
    if (x.numel() == 0) return out;
    const detail::BroadcastRows rows(x.shape(), a.shape, x.shape());
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const std::int64_t n = rows.length();
    rows.for_each([&](std::int64_t row, std::int64_t io, std::int64_t) {
      const Eigen::Map<const detail::Vector<T>> segment(px + row * n, n);
      if (rows.a_repeats()) {
        po[io] += segment.sum();
      } else {
        Eigen::Map<detail::Vector<T>>(po + io, n) += segment;
      }
    });
    return out;
  });
}
void sum_to_backward(BackwardContext& ctx, const ShapeAttrs&) {
  ctx.set_grad(0, broadcast_to(ctx.grad_output(), ctx.input(0).shape()));
}
const Op<ShapeAttrs> kSumTo{"sum_to", "dx = broadcast(g)", sum_to_forward, sum_to_backward};

Tensor broadcast_to_forward(ForwardContext& ctx, const ShapeAttrs& a) {
  const Tensor& x = ctx.input(0);
  return dispatch_floating(x.dtype(), "broadcast_to", [&]<class T>() {
    Tensor out = empty(a.shape, x.dtype());
    if (out.numel() == 0) return out;
    if (x.numel() == 1) {  // the gradient of a full reduction: one value everywhere
      T* po = out.data<T>();
      const T value = *x.data<T>();
      detail::for_each_chunk(out.numel(),
                             [&](std::int64_t, std::int64_t begin, std::int64_t count) {
                               Eigen::Map<detail::Vector<T>>(po + begin, count).setConstant(value);
                             });
      return out;
    }
    const detail::BroadcastRows rows(a.shape, x.shape(), a.shape);
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const std::int64_t n = rows.length();
    rows.for_each([&](std::int64_t row, std::int64_t ix, std::int64_t) {
      detail::with_segment(px + ix, n, rows.a_repeats(), [&](const auto& segment) {
        Eigen::Map<detail::Vector<T>>(po + row * n, n) = segment;
      });
    });
    return out;
  });
}
void broadcast_to_backward(BackwardContext& ctx, const ShapeAttrs&) {
  ctx.set_grad(0, ctx.grad_output());
}
const Op<ShapeAttrs> kBroadcastTo{"broadcast_to", "dx = sum of g back to x's shape",
                                  broadcast_to_forward, broadcast_to_backward};

}  // namespace

// A bool mask sums to its int64 count of true elements, as in PyTorch (the float64 sum is exact
// up to 2^53 elements); a mask carries no gradient, so nothing is recorded.
Tensor sum(const Tensor& x, SourceLocation location) {
  if (x.dtype() == b8) return sum(cast(x, f64, location), location).to(i64);
  return kSumAll({}, location, x);
}

Tensor sum(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "sum", location,
                                  [&](const Tensor& v) { return sum(v, 0, keepdim, location); });
  }
  if (x.dtype() == b8) return sum(cast(x, f64, location), axis, keepdim, location).to(i64);
  return kSum({normalize_axis(axis, x.rank(), "sum", location), keepdim}, location, x);
}

Tensor mean(const Tensor& x, SourceLocation location) {
  return kMeanAll({}, location, x);
}

Tensor mean(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "mean", location,
                                  [&](const Tensor& v) { return mean(v, 0, keepdim, location); });
  }
  return kMean({normalize_axis(axis, x.rank(), "mean", location), keepdim}, location, x);
}

Tensor max(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "max", location,
                                  [&](const Tensor& v) { return max(v, 0, keepdim, location); });
  }
  return kMax({normalize_axis(axis, x.rank(), "max", location), keepdim}, location, x);
}

Tensor sum_to(const Tensor& x, const Shape& shape, SourceLocation location) {
  if (!broadcastable_to(shape, x.shape())) {
    detail::fail_at("sum_to", location, "shape {} does not broadcast to the tensor's shape {}",
                    shape.str(), x.shape().str());
  }
  if (x.shape() == shape) return x;
  return kSumTo({shape}, location, x);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape, SourceLocation location) {
  if (!broadcastable_to(x.shape(), shape)) {
    detail::fail_at("broadcast_to", location, "shape {} does not broadcast to {}", x.shape().str(),
                    shape.str());
  }
  if (x.shape() == shape) return x;
  return kBroadcastTo({shape}, location, x);
}

namespace detail {

void register_reduce_ops(OpRegistry& registry) {
  const auto axis_samples = [](DType dtype) {
    Generator gen(19);
    return std::vector<OpSample>{{"[5]", {sample({5}, dtype, gen)}},
                                 {"[3, 4]", {sample({3, 4}, dtype, gen)}},
                                 {"[2, 3, 4]", {sample({2, 3, 4}, dtype, gen)}}};
  };
  // A sum over nothing is 0 (mean and max over nothing are NaN and an error: not samples).
  const auto sum_samples = [=](DType dtype) {
    std::vector<OpSample> samples = axis_samples(dtype);
    samples.push_back({"[2, 0] empty", {zeros({2, 0}, dtype)}});
    return samples;
  };
  const auto ones_row = [](const std::vector<Tensor>& in) {
    return std::vector{ones({1, in[0].numel()}, f64)};
  };
  registry.add({"sum", [](const auto& in) { return sum(in[0]); }, sum_samples, ones_row});
  registry.add({"mean", [](const auto& in) { return mean(in[0]); }, axis_samples,
                [](const auto& in) {
                  return std::vector{full({1, in[0].numel()}, 1.0 / double(in[0].numel()), f64)};
                }});
  for (const std::int64_t axis : {0, -1}) {
    for (const bool keepdim : {false, true}) {
      const std::string suffix = fmt::format("(axis={}, keepdim={})", axis, keepdim);
      registry.add({"sum" + suffix,
                    [=](const auto& in) { return sum(in[0], axis, keepdim); },
                    sum_samples,
                    {}});
      registry.add({"mean" + suffix,
                    [=](const auto& in) { return mean(in[0], axis, keepdim); },
                    axis_samples,
                    {}});
      registry.add({"max" + suffix,
                    [=](const auto& in) { return max(in[0], axis, keepdim); },
                    axis_samples,
                    {}});
    }
  }
  registry.add({"sum_to",
                [](const auto& in) {
                  return sum_to(in[0], {3, 1});
                },
                [](DType dtype) {
                  Generator gen(23);
                  return std::vector<OpSample>{
                      {"[2, 3, 4] to [3, 1]", {sample({2, 3, 4}, dtype, gen)}},
                      {"[3, 5] to [3, 1]", {sample({3, 5}, dtype, gen)}}};
                },
                {}});
  registry.add({"broadcast_to",
                [](const auto& in) {
                  return broadcast_to(in[0], {2, 3, 4});
                },
                [](DType dtype) {
                  Generator gen(29);
                  return std::vector<OpSample>{
                      {"[3, 1] to [2, 3, 4]", {sample({3, 1}, dtype, gen)}},
                      {"[4] to [2, 3, 4]", {sample({4}, dtype, gen)}},
                      {"[] to [2, 3, 4]", {sample({}, dtype, gen)}}};
                },
                {}});
}

}  // namespace detail
}  // namespace tg
