// Indexing along an axis.
//
//   argmax, argmin  int64 positions, not differentiable
//   slice (step)    y = x[start:end:step]                dx = g added into zeros at the picks
//                   (index_select of the picked positions: its rule)
//   narrow          y = x[start:start + length]          dx = g placed in zeros (slice's rule)
//   gather          y[i] = x[..idx[i]..]                 dx = scatter_add(0, idx, g)
//   scatter_add     y = x, src[i] added at [..idx[i]..]  dx = g, dsrc = gather(g, idx)
//   index_add       y = x, src's slices added at idx     scatter_add with idx repeated over src
//
// Every index is checked before anything is read: an index out of range is an error naming the op,
// the axis, the index, its position and the axis size.
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"

namespace tg {
namespace {

// The position of the winner along each slice: `better(v, best)` says v replaces the best so far.
template <class Better>
Tensor arg_reduce(const Tensor& x, std::int64_t axis, bool keepdim, const char* op,
                  const SourceLocation& location, Better better) {
  const int a = detail::checked_axis(axis, x.rank(), op, location);
  const AxisSplit s = split_at_axis(x.shape(), a);
  if (s.dim == 0) {
    detail::fail_at(op, location, "cannot reduce over axis {} of size 0 (shape {})", a,
                    x.shape().str());
  }
  const Shape out_shape = keepdim ? detail::keepdim_shape(x.shape(), a) : x.shape().without_axis(a);
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    Tensor out = empty(out_shape, i64);
    if (out.numel() == 0) return out;
    const T* px = x.data<T>();
    std::int64_t* po = out.data<std::int64_t>();
    for (std::int64_t o = 0; o < s.outer; ++o) {
      for (std::int64_t i = 0; i < s.inner; ++i) {
        const T* slice = px + o * s.dim * s.inner + i;
        std::int64_t best = 0;
        for (std::int64_t k = 1; k < s.dim; ++k) {
          if (better(slice[k * s.inner], slice[best * s.inner])) best = k;
        }
        po[o * s.inner + i] = best;
      }
    }
    return out;
  });
}

// A NaN beats every number (and the first NaN every later one), as in PyTorch.
constexpr auto kLarger = [](auto v, auto best) {
  return v > best || (std::isnan(v) && !std::isnan(best));
};
constexpr auto kSmaller = [](auto v, auto best) {
  return v < best || (std::isnan(v) && !std::isnan(best));
};

// Checks that every entry of an int64 index is in [0, size) before any kernel reads through it.
void check_indices(const Tensor& index, int axis, std::int64_t size, const char* op,
                   const SourceLocation& location) {
  const std::int64_t* idx = index.data<std::int64_t>();
  // One unsigned comparison per index (negatives wrap to huge), a loop that vectorises; the
  // culprit is looked for only when there is one.
  bool any_bad = false;
  for (std::int64_t k = 0; k < index.numel(); ++k) {
    any_bad |= std::uint64_t(idx[k]) >= std::uint64_t(size);
  }
  if (!any_bad) return;
  const std::int64_t k = std::find_if(idx, idx + index.numel(),
                                      [size](std::int64_t i) { return i < 0 || i >= size; }) -
                         idx;
  detail::fail_at(op, location,
                  "index {} at position [{}] of the index is out of range for axis {} of size {} "
                  "(expected 0 to {})",
                  idx[k], fmt::join(unravel_index(k, index.shape()), ", "), axis, size, size - 1);
}

std::array<std::int64_t, Shape::kMaxRank> strides_of(const Shape& shape) {
  std::array<std::int64_t, Shape::kMaxRank> strides{};
  std::int64_t stride = 1;
  for (int d = shape.rank() - 1; d >= 0; --d) {
    strides[std::size_t(d)] = stride;
    stride *= shape[d];
  }
  return strides;
}

// Walks the elements of an index of shape `index` in order: fn(k, data_base, other) with
// data_base the offset in a tensor of shape `data` of k's multi-index with its `axis` coordinate
// 0, and `other` the offset of k's multi-index in a tensor of shape `other`. Both shapes are at
// least as large as the index (outside the axis, for `data`), so every offset is inside.
template <class Fn>
void walk_index(const Shape& index, const Shape& data, const Shape& other, int axis, Fn fn) {
  const std::int64_t n = index.numel();
  if (n == 0) return;
  const int rank = index.rank();
  if (rank == 0) return fn(0, 0, 0);
  std::array<std::int64_t, Shape::kMaxRank> data_strides = strides_of(data);
  const std::array<std::int64_t, Shape::kMaxRank> other_strides = strides_of(other);
  data_strides[std::size_t(axis)] = 0;
  // Rows of the last dimension in a plain loop; an odometer over the dimensions before it.
  const std::size_t last = std::size_t(rank - 1);
  const std::int64_t length = index[rank - 1];
  std::array<std::int64_t, Shape::kMaxRank> at{};
  std::int64_t data_offset = 0;
  std::int64_t other_offset = 0;
  for (std::int64_t row = 0; row < n / length; ++row) {
    for (std::int64_t j = 0; j < length; ++j) {
      fn(row * length + j, data_offset + j * data_strides[last],
         other_offset + j * other_strides[last]);
    }
    for (int d = rank - 2; d >= 0; --d) {
      const std::size_t u = std::size_t(d);
      data_offset += data_strides[u];
      other_offset += other_strides[u];
      if (++at[u] < index[d]) break;
      data_offset -= data_strides[u] * index[d];
      other_offset -= other_strides[u] * index[d];
      at[u] = 0;
    }
  }
}

struct AxisAttrs {
  int axis;
};

Tensor gather_forward(ForwardContext& ctx, const AxisAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& index = ctx.input(1);
  return dispatch_floating(x.dtype(), "gather", [&]<class T>() {
    Tensor out = empty(index.shape(), x.dtype());
    const T* px = x.data<T>();
    const std::int64_t* idx = index.data<std::int64_t>();
    T* po = out.data<T>();
    const std::int64_t stride = split_at_axis(x.shape(), a.axis).inner;
    walk_index(index.shape(), x.shape(), index.shape(), a.axis,
               [&](std::int64_t k, std::int64_t base, std::int64_t) {
                 po[k] = px[base + idx[k] * stride];
               });
    return out;
  });
}
void gather_backward(BackwardContext& ctx, const AxisAttrs& a) {
  ctx.set_grad(0, scatter_add(zeros_like(ctx.input(0)), a.axis, ctx.input(1), ctx.grad_output()));
}
const Op<AxisAttrs> kGather{"gather", "dx = scatter_add(zeros, idx, g)", gather_forward,
                            gather_backward};

Tensor scatter_add_forward(ForwardContext& ctx, const AxisAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& index = ctx.input(1);
  const Tensor& src = ctx.input(2);
  return dispatch_floating(x.dtype(), "scatter_add", [&]<class T>() {
    Tensor out = x.copy();
    const T* ps = src.data<T>();
    const std::int64_t* idx = index.data<std::int64_t>();
    T* po = out.data<T>();
    const std::int64_t stride = split_at_axis(x.shape(), a.axis).inner;
    walk_index(index.shape(), x.shape(), src.shape(), a.axis,
               [&](std::int64_t k, std::int64_t base, std::int64_t s) {
                 po[base + idx[k] * stride] += ps[s];
               });
    return out;
  });
}
void scatter_add_backward(BackwardContext& ctx, const AxisAttrs& a) {
  if (ctx.needs_grad(0)) ctx.set_grad(0, ctx.grad_output());
  if (ctx.needs_grad(2)) ctx.set_grad(2, gather(ctx.grad_output(), a.axis, ctx.input(1)));
}
const Op<AxisAttrs> kScatterAdd{"scatter_add", "dx = g, dsrc = gather(g, idx)", scatter_add_forward,
                                scatter_add_backward};

// An index for gather or scatter_add: int64, of x's rank, no larger than x outside the axis.
void check_index_shape(const Tensor& x, int axis, const Tensor& index, const char* op,
                       const SourceLocation& location) {
  if (index.dtype() != i64 || index.rank() != x.rank()) {
    detail::fail_at(op, location, "the index must be int64 of the input's rank {}, got {} {}",
                    x.rank(), dtype_name(index.dtype()), index.shape().str());
  }
  for (int d = 0; d < x.rank(); ++d) {
    if (d != axis && index.shape()[d] > x.shape()[d]) {
      detail::fail_at(op, location,
                      "index shape {} is larger than the input's {} at dimension {} (only axis {} "
                      "may differ)",
                      index.shape().str(), x.shape().str(), d, axis);
    }
  }
}

}  // namespace

Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "argmax", location,
                                  [&](const Tensor& v) { return argmax(v, 0, keepdim, location); });
  }
  return arg_reduce(x, axis, keepdim, "argmax", location, kLarger);
}
Tensor argmin(const Tensor& x, std::int64_t axis, bool keepdim, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "argmin", location,
                                  [&](const Tensor& v) { return argmin(v, 0, keepdim, location); });
  }
  return arg_reduce(x, axis, keepdim, "argmin", location, kSmaller);
}
Tensor argmax(const Tensor& x, SourceLocation location) {
  return arg_reduce(reshape(x.detach(), Shape{x.numel()}), 0, false, "argmax", location, kLarger);
}
Tensor argmin(const Tensor& x, SourceLocation location) {
  return arg_reduce(reshape(x.detach(), Shape{x.numel()}), 0, false, "argmin", location, kSmaller);
}

Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end,
             std::int64_t step, SourceLocation location) {
  const int a = detail::checked_axis(axis, x.rank(), "slice", location);
  if (step <= 0) detail::fail_at("slice", location, "step must be positive, got {}", step);
  const std::int64_t dim = x.shape()[a];
  const auto clamped = [dim](std::int64_t i) {
    return std::clamp(i < 0 ? i + dim : i, std::int64_t{0}, dim);
  };
  const std::int64_t first = clamped(start);
  const std::int64_t last = std::max(first, clamped(end));
  return detail::composite("slice", location, [&] {
    if (step == 1) return slice(x, a, first, last, location);
    std::vector<std::int64_t> picks;
    for (std::int64_t i = first; i < last; i += std::min(step, last - i)) picks.push_back(i);
    return index_select(x, a, int64_tensor(picks), location);
  });
}

Tensor narrow(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t length,
              SourceLocation location) {
  const int a = detail::checked_axis(axis, x.rank(), "narrow", location);
  const std::int64_t dim = x.shape()[a];
  const std::int64_t first = start < 0 ? start + dim : start;
  if (first < 0 || first > dim || length < 0 || length > dim - first) {
    detail::fail_at("narrow", location,
                    "start {} and length {} do not fit axis {} of size {} (shape {}): expected "
                    "-{} <= start <= {} and 0 <= length <= size - start",
                    start, length, a, dim, x.shape().str(), dim, dim);
  }
  return slice(x, a, first, first + length, location);
}

Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index, SourceLocation location) {
  if (x.rank() == 0 && index.rank() == 0) {
    return detail::on_scalar_axis(x, axis, "gather", location, [&](const Tensor& v) {
      return gather(v, 0, reshape(index, Shape{1}, location), location);
    });
  }
  const int a = detail::checked_axis(axis, x.rank(), "gather", location);
  check_index_shape(x, a, index, "gather", location);
  check_indices(index, a, x.shape()[a], "gather", location);
  return kGather({a}, location, x, index);
}

Tensor scatter_add(const Tensor& x, std::int64_t axis, const Tensor& index, const Tensor& src,
                   SourceLocation location) {
  const int a = detail::checked_axis(axis, x.rank(), "scatter_add", location);
  detail::check_same_floating(x, src, "scatter_add", location);
  check_index_shape(x, a, index, "scatter_add", location);
  // PyTorch also takes a src larger than the index (its extra entries unused); tapegrad asks for
  // the index's shape, so that src's gradient, gather(g, idx), has src's shape.
  if (!(src.shape() == index.shape())) {
    detail::fail_at("scatter_add", location, "src has shape {}, expected the index's shape {}",
                    src.shape().str(), index.shape().str());
  }
  check_indices(index, a, x.shape()[a], "scatter_add", location);
  return kScatterAdd({a}, location, x, index, src);
}

Tensor index_add(const Tensor& x, std::int64_t axis, const Tensor& index, const Tensor& src,
                 SourceLocation location) {
  const int a = detail::checked_axis(axis, x.rank(), "index_add", location);
  if (index.dtype() != i64 || index.rank() != 1) {
    detail::fail_at("index_add", location, "the index must be a 1-D int64 tensor, got {} {}",
                    dtype_name(index.dtype()), index.shape().str());
  }
  const Shape want = x.shape().with_dim(a, index.numel(), "index_add");
  if (!(src.shape() == want)) {
    detail::fail_at("index_add", location,
                    "src has shape {}, expected {} (the input's shape with axis {} the index's "
                    "length {})",
                    src.shape().str(), want.str(), a, index.numel());
  }
  check_indices(index, a, x.shape()[a], "index_add", location);
  // The index repeated over src: scatter_add then adds each slice of src at its position.
  const AxisSplit s = split_at_axis(want, a);
  Tensor spread = empty(want, i64);
  std::int64_t* ps = spread.data<std::int64_t>();
  const std::int64_t* idx = index.data<std::int64_t>();
  for (std::int64_t o = 0; o < s.outer && s.inner > 0; ++o) {
    for (std::int64_t k = 0; k < s.dim; ++k) {
      std::fill_n(ps + (o * s.dim + k) * s.inner, s.inner, idx[k]);
    }
  }
  return detail::composite("index_add", location,
                           [&] { return scatter_add(x, a, spread, src, location); });
}

namespace detail {

void register_index_ops(OpRegistry& registry) {
  registry.add({"slice(step)",
                [](const auto& in) { return slice(in[0], 1, -4, kEnd, 2); },
                [](DType dtype) {
                  Generator gen(73);
                  return std::vector<OpSample>{{"[3, 5]", {sample({3, 5}, dtype, gen)}},
                                               {"[2, 2, 3]", {sample({2, 2, 3}, dtype, gen)}}};
                },
                {}});
  registry.add({"narrow",
                [](const auto& in) { return narrow(in[0], 0, -2, 2); },
                [](DType dtype) {
                  Generator gen(79);
                  return std::vector<OpSample>{{"[3, 2]", {sample({3, 2}, dtype, gen)}}};
                },
                {}});
  registry.add({"gather",
                [](const auto& in) { return gather(in[0], 0, in[1]); },
                [](DType dtype) {
                  Generator gen(83);
                  return std::vector<OpSample>{
                      {"[3, 4] by a [2, 3] index with repeats",
                       {sample({3, 4}, dtype, gen), int64_tensor({2, 0, 2, 2, 1, 2}, {2, 3})}},
                      {"[3] by [5]", {sample({3}, dtype, gen), int64_tensor({1, 1, 0, 2, 1})}}};
                },
                {}});
  registry.add(
      {"gather(axis=-1)",
       [](const auto& in) { return gather(in[0], -1, in[1]); },
       [](DType dtype) {
         Generator gen(89);
         return std::vector<OpSample>{
             {"[2, 2, 3] by [2, 1, 4]",
              {sample({2, 2, 3}, dtype, gen), int64_tensor({0, 2, 2, 1, 1, 1, 0, 2}, {2, 1, 4})}}};
       },
       {}});
  registry.add({"scatter_add",
                [](const auto& in) { return scatter_add(in[0], 0, in[1], in[2]); },
                [](DType dtype) {
                  Generator gen(97);
                  return std::vector<OpSample>{
                      {"[3, 4] with [2, 3] at repeated rows",
                       {sample({3, 4}, dtype, gen), int64_tensor({2, 0, 2, 2, 1, 2}, {2, 3}),
                        sample({2, 3}, dtype, gen)}}};
                },
                {}});
  registry.add({"scatter_add(axis=1)",
                [](const auto& in) { return scatter_add(in[0], 1, in[1], in[2]); },
                [](DType dtype) {
                  Generator gen(101);
                  return std::vector<OpSample>{
                      {"[2, 3] with [2, 4]",
                       {sample({2, 3}, dtype, gen), int64_tensor({0, 0, 2, 0, 1, 2, 1, 1}, {2, 4}),
                        sample({2, 4}, dtype, gen)}}};
                },
                {}});
  registry.add({"index_add",
                [](const auto& in) { return index_add(in[0], 1, in[1], in[2]); },
                [](DType dtype) {
                  Generator gen(103);
                  return std::vector<OpSample>{
                      {"[2, 4, 2] with [2, 3, 2] at columns 3, 0, 3",
                       {sample({2, 4, 2}, dtype, gen), int64_tensor({3, 0, 3}),
                        sample({2, 3, 2}, dtype, gen)}}};
                },
                {}});
}

}  // namespace detail
}  // namespace tg
