// Shape ops.
//
//   reshape       y = x with shape s (shares storage)     dx = reshape(g, x.shape)
//   permute       y = x with axes reordered by p          dx = permute(g, p⁻¹)
//   slice         y = x[start:end] along axis a           dx = slice_backward(g): g placed in zeros
//   concat        y = [x₀, x₁, …] along axis a            dxᵢ = slice of g
//   index_select  y = x[idx] along axis a                 dx = index_select_backward(g): g added
//                                                         into zeros at idx (repeats accumulate)
#include <algorithm>
#include <array>
#include <cstring>

#include "autograd/tape.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "ops/registrations.h"

namespace tg {
namespace {

struct ShapeAttrs {
  Shape shape;
};

Tensor reshape_forward(ForwardContext& ctx, const ShapeAttrs& a) {
  const Tensor& x = ctx.input(0);
  return Tensor(detail::make_impl(x.impl()->storage, a.shape, x.dtype()));
}
void reshape_backward(BackwardContext& ctx, const ShapeAttrs&) {
  ctx.set_grad(0, reshape(ctx.grad_output(), ctx.input(0).shape()));
}
const Op<ShapeAttrs> kReshape{"reshape", "dx = reshape(g, x.shape)", reshape_forward,
                              reshape_backward};

struct PermuteAttrs {
  std::array<std::int8_t, Shape::kMaxRank> axes;
};

Tensor permute_forward(ForwardContext& ctx, const PermuteAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Shape& in = x.shape();
  const int rank = in.rank();
  Shape out_shape;
  std::array<std::int64_t, Shape::kMaxRank> in_strides{};
  std::int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    in_strides[d] = stride;
    stride *= in[d];
  }
  // Strides of the input walked in output order.
  std::array<std::int64_t, Shape::kMaxRank> strides{};
  for (int d = 0; d < rank; ++d) {
    out_shape.push_back(in[a.axes[d]]);
    strides[d] = in_strides[a.axes[d]];
  }
  Tensor out = empty(out_shape, x.dtype());
  // Trailing axes left in place are contiguous in both tensors: copied as one block (the split
  // and merge of attention heads, [B, T, H, D] <-> [B, H, T, D], copy rows of D).
  int outer = rank;
  std::int64_t block = 1;
  while (outer > 0 && a.axes[outer - 1] == outer - 1) block *= in[--outer];
  const std::size_t block_bytes = std::size_t(block) * dtype_size(x.dtype());
  const auto* px = static_cast<const std::byte*>(x.raw_data());
  auto* po = static_cast<std::byte*>(out.raw_data());
  // An odometer over the output's outer axes: no Eigen kernel permutes a tensor of runtime rank.
  std::array<std::int64_t, Shape::kMaxRank> index{};
  std::int64_t offset = 0;
  const std::int64_t blocks = block == 0 ? 0 : out.numel() / block;
  for (std::int64_t i = 0; i < blocks; ++i) {
    std::memcpy(po + std::size_t(i) * block_bytes, px + std::size_t(offset) * dtype_size(x.dtype()),
                block_bytes);
    for (int d = outer - 1; d >= 0; --d) {
      offset += strides[d];
      if (++index[d] < out_shape[d]) break;
      offset -= strides[d] * out_shape[d];
      index[d] = 0;
    }
  }
  return out;
}
void permute_backward(BackwardContext& ctx, const PermuteAttrs& a) {
  const int rank = ctx.input(0).rank();
  std::vector<std::int64_t> inverse(static_cast<std::size_t>(rank));
  for (int d = 0; d < rank; ++d) inverse[std::size_t(a.axes[d])] = d;
  ctx.set_grad(0, permute(ctx.grad_output(), inverse));
}
const Op<PermuteAttrs> kPermute{"permute", "dx = permute(g, p⁻¹)", permute_forward,
                                permute_backward};

struct SliceAttrs {
  int axis;
  std::int64_t start;
  std::int64_t end;
};

// Copies the [start, start + count) range along an axis between two tensors whose blocks
// around that axis have dims src_dim and dst_dim.
void copy_axis_range(const Tensor& src, std::int64_t src_start, Tensor& dst, std::int64_t dst_start,
                     std::int64_t count, int axis) {
  const AxisSplit s = split_at_axis(src.shape(), axis);
  const AxisSplit d = split_at_axis(dst.shape(), axis);
  // Nothing to copy, but the outer loop could still run up to 2^63 times (a [2^62, 0] slice).
  if (s.outer == 0 || count == 0 || s.inner == 0) return;
  const std::size_t element = dtype_size(src.dtype());
  const std::size_t run = std::size_t(count * s.inner) * element;
  const auto* ps = static_cast<const std::byte*>(src.raw_data());
  auto* pd = static_cast<std::byte*>(dst.raw_data());
  for (std::int64_t o = 0; o < s.outer; ++o) {
    std::memcpy(pd + std::size_t((o * d.dim + dst_start) * d.inner) * element,
                ps + std::size_t((o * s.dim + src_start) * s.inner) * element, run);
  }
}

Tensor slice_forward(ForwardContext& ctx, const SliceAttrs& a) {
  const Tensor& x = ctx.input(0);
  Tensor out = empty(x.shape().with_dim(a.axis, a.end - a.start), x.dtype());
  copy_axis_range(x, a.start, out, 0, a.end - a.start, a.axis);
  return out;
}
void slice_backward(BackwardContext& ctx, const SliceAttrs& a);
const Op<SliceAttrs> kSlice{"slice", "dx = g placed in zeros at [start, end)", slice_forward,
                            slice_backward};

struct SliceBackwardAttrs {
  SliceAttrs slice;
  std::int64_t full_dim;
};
Tensor slice_backward_forward(ForwardContext& ctx, const SliceBackwardAttrs& a) {
  const Tensor& g = ctx.input(0);
  Tensor out = zeros(g.shape().with_dim(a.slice.axis, a.full_dim), g.dtype());
  copy_axis_range(g, 0, out, a.slice.start, a.slice.end - a.slice.start, a.slice.axis);
  return out;
}
void slice_backward_backward(BackwardContext& ctx, const SliceBackwardAttrs& a) {
  ctx.set_grad(0, slice(ctx.grad_output(), a.slice.axis, a.slice.start, a.slice.end));
}
const Op<SliceBackwardAttrs> kSliceBackward{"slice_backward", "dg = slice(gg, start, end)",
                                            slice_backward_forward, slice_backward_backward};

void slice_backward(BackwardContext& ctx, const SliceAttrs& a) {
  const SliceBackwardAttrs attrs{a, ctx.input(0).shape()[a.axis]};
  ctx.set_grad(0, kSliceBackward(attrs, SourceLocation::current(), ctx.grad_output()));
}

struct ConcatAttrs {
  int axis;
};
Tensor concat_forward(ForwardContext& ctx, const ConcatAttrs& a) {
  const Tensor& first = ctx.input(0);
  std::int64_t total = 0;
  for (std::size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (__builtin_add_overflow(total, ctx.input(i).shape()[a.axis], &total)) {
      fail("concat: the sizes of axis {} of {} tensors add up to more than 2^63 - 1", a.axis,
           ctx.num_inputs());
    }
  }
  Tensor out = empty(first.shape().with_dim(a.axis, total, "concat"), first.dtype());
  std::int64_t start = 0;
  for (std::size_t i = 0; i < ctx.num_inputs(); ++i) {
    const std::int64_t count = ctx.input(i).shape()[a.axis];
    copy_axis_range(ctx.input(i), 0, out, start, count, a.axis);
    start += count;
  }
  return out;
}
void concat_backward(BackwardContext& ctx, const ConcatAttrs& a) {
  std::int64_t start = 0;
  for (std::size_t i = 0; i < ctx.num_inputs(); ++i) {
    const std::int64_t count = ctx.input(i).shape()[a.axis];
    if (ctx.needs_grad(i)) ctx.set_grad(i, slice(ctx.grad_output(), a.axis, start, start + count));
    start += count;
  }
}
const Op<ConcatAttrs> kConcat{"concat", "dxᵢ = slice of g", concat_forward, concat_backward};

struct IndexAttrs {
  int axis;
  std::int64_t dim;  // size of the indexed axis of x
};

// Copies (or, with accumulate, adds) blocks along an axis: dst[idx[k]] ⟵ src[k] or
// dst[k] ⟵ src[idx[k]].
template <class T>
void gather_scatter(const Tensor& src, Tensor& dst, const Tensor& indices, int axis,
                    bool scatter_add) {
  // An empty side leaves nothing to move, however many times the outer loop would run.
  if (src.numel() == 0 || dst.numel() == 0) return;
  const AxisSplit s = split_at_axis(src.shape(), axis);
  const AxisSplit d = split_at_axis(dst.shape(), axis);
  const std::int64_t* idx = indices.data<std::int64_t>();
  const T* ps = src.data<T>();
  T* pd = dst.data<T>();
  for (std::int64_t o = 0; o < s.outer; ++o) {
    for (std::int64_t k = 0; k < indices.numel(); ++k) {
      if (scatter_add) {
        Eigen::Map<detail::Vector<T>>(pd + (o * d.dim + idx[k]) * d.inner, d.inner) +=
            Eigen::Map<const detail::Vector<T>>(ps + (o * s.dim + k) * s.inner, s.inner);
      } else {
        Eigen::Map<detail::Vector<T>>(pd + (o * d.dim + k) * d.inner, d.inner) =
            Eigen::Map<const detail::Vector<T>>(ps + (o * s.dim + idx[k]) * s.inner, s.inner);
      }
    }
  }
}

Tensor index_select_forward(ForwardContext& ctx, const IndexAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  return dispatch_floating(x.dtype(), "index_select", [&]<class T>() {
    Tensor out = empty(x.shape().with_dim(a.axis, indices.numel(), "index_select"), x.dtype());
    gather_scatter<T>(x, out, indices, a.axis, false);
    return out;
  });
}
void index_select_backward(BackwardContext& ctx, const IndexAttrs& a);
const Op<IndexAttrs> kIndexSelect{"index_select", "dx = g added into zeros at idx",
                                  index_select_forward, index_select_backward};

Tensor index_add_forward(ForwardContext& ctx, const IndexAttrs& a) {
  const Tensor& g = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  return dispatch_floating(g.dtype(), "index_select_backward", [&]<class T>() {
    Tensor out = zeros(g.shape().with_dim(a.axis, a.dim), g.dtype());
    gather_scatter<T>(g, out, indices, a.axis, true);
    return out;
  });
}
void index_add_backward(BackwardContext& ctx, const IndexAttrs& a) {
  ctx.set_grad(0, index_select(ctx.grad_output(), a.axis, ctx.input(1)));
}
const Op<IndexAttrs> kIndexSelectBackward{"index_select_backward", "dg = index_select(gg, idx)",
                                          index_add_forward, index_add_backward};

void index_select_backward(BackwardContext& ctx, const IndexAttrs& a) {
  ctx.set_grad(0,
               kIndexSelectBackward(a, SourceLocation::current(), ctx.grad_output(), ctx.input(1)));
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape, SourceLocation location) {
  if (shape.numel() != x.numel()) {
    detail::fail_at("reshape", location, "cannot reshape {} ({} elements) to {} ({} elements)",
                    x.shape().str(), x.numel(), shape.str(), shape.numel());
  }
  return kReshape({shape}, location, x);
}

Tensor permute(const Tensor& x, const std::vector<std::int64_t>& axes, SourceLocation location) {
  const int rank = x.rank();
  if (int(axes.size()) != rank) {
    detail::fail_at("permute", location, "{} axes given for a tensor of shape {}", axes.size(),
                    x.shape().str());
  }
  PermuteAttrs attrs{};
  std::array<bool, Shape::kMaxRank> seen{};
  for (int d = 0; d < rank; ++d) {
    const int axis = normalize_axis(axes[std::size_t(d)], rank, "permute", location);
    if (seen[axis])
      detail::fail_at("permute", location, "axis {} appears twice in the permutation", axis);
    seen[axis] = true;
    attrs.axes[d] = std::int8_t(axis);
  }
  return kPermute(attrs, location, x);
}

Tensor transpose(const Tensor& x, std::int64_t axis0, std::int64_t axis1, SourceLocation location) {
  if (x.rank() == 0) {
    return detail::on_scalar_axis(x, axis0, "transpose", location, [&](const Tensor& v) {
      return transpose(v, 0, axis1, location);
    });
  }
  const int rank = x.rank();
  std::vector<std::int64_t> axes(static_cast<std::size_t>(rank));
  for (int d = 0; d < rank; ++d) axes[std::size_t(d)] = d;
  std::swap(axes[std::size_t(normalize_axis(axis0, rank, "transpose", location))],
            axes[std::size_t(normalize_axis(axis1, rank, "transpose", location))]);
  return permute(x, axes, location);
}

Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end,
             SourceLocation location) {
  const int a = normalize_axis(axis, x.rank(), "slice", location);
  const std::int64_t dim = x.shape()[a];
  if (start < 0 || end > dim || start > end) {
    detail::fail_at("slice", location, "range [{}, {}) is not within axis {} of size {} (shape {})",
                    start, end, a, dim, x.shape().str());
  }
  return kSlice({a, start, end}, location, x);
}

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis, SourceLocation location) {
  if (tensors.empty()) detail::fail_at("concat", location, "no tensors given");
  // As in PyTorch, a tensor of shape [0] joins any concatenation as nothing: it is how a list of
  // pieces often starts. It is left out of the entry, so its gradient is zeros.
  const auto is_legacy_empty = [](const Tensor& t) { return t.rank() == 1 && t.numel() == 0; };
  const auto kept = std::find_if_not(tensors.begin(), tensors.end(), is_legacy_empty);
  const std::size_t f = kept == tensors.end() ? 0 : std::size_t(kept - tensors.begin());
  const Tensor& first = tensors[f];
  const int a = normalize_axis(axis, first.rank(), "concat", location);
  // Up to 64 pieces (an RNN's time steps) are listed on the stack: a training step's concat then
  // allocates nothing (the growing list was 6 of an LSTM step's 7 heap allocations).
  constexpr std::size_t kPiecesOnStack = 64;
  std::array<const Tensor*, kPiecesOnStack> on_stack;
  std::vector<const Tensor*> on_heap;
  const bool many = tensors.size() > kPiecesOnStack;
  if (many) on_heap.reserve(tensors.size());
  std::size_t pieces = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.dtype() != first.dtype()) {
      detail::fail_at("concat", location, "tensor {} is {}, tensor {} is {}", i,
                      dtype_name(t.dtype()), f, dtype_name(first.dtype()));
    }
    if (i != f && is_legacy_empty(t)) continue;
    if (t.rank() != first.rank() || !(t.shape().with_dim(a, 0) == first.shape().with_dim(a, 0))) {
      detail::fail_at("concat", location,
                      "tensor {} has shape {}, which differs from tensor {}'s {} outside axis {}",
                      i, t.shape().str(), f, first.shape().str(), a);
    }
    if (many) {
      on_heap.push_back(&t);
    } else {
      on_stack[pieces++] = &t;
    }
  }
  return kConcat.apply(many ? std::span<const Tensor* const>(on_heap)
                            : std::span<const Tensor* const>(on_stack.data(), pieces),
                       {a}, location);
}

Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices,
                    SourceLocation location) {
  if (x.rank() == 0 && indices.numel() == 1) {
    return detail::on_scalar_axis(x, axis, "index_select", location, [&](const Tensor& v) {
      return index_select(v, 0, reshape(indices, Shape{1}, location), location);
    });
  }
  const int a = normalize_axis(axis, x.rank(), "index_select", location);
  if (indices.dtype() != i64 || indices.rank() != 1) {
    detail::fail_at("index_select", location, "indices must be a 1-D int64 tensor, got {} {}",
                    dtype_name(indices.dtype()), indices.shape().str());
  }
  const std::int64_t dim = x.shape()[a];
  const std::int64_t* idx = indices.data<std::int64_t>();
  for (std::int64_t k = 0; k < indices.numel(); ++k) {
    if (idx[k] < 0 || idx[k] >= dim) {
      detail::fail_at("index_select", location,
                      "index {} at position {} is out of range for axis {} of size {}", idx[k], k,
                      a, dim);
    }
  }
  return kIndexSelect({a, dim}, location, x, indices);
}

namespace detail {

void register_shape_ops(OpRegistry& registry) {
  const auto samples = [](Shape shape) {
    return [shape](DType dtype) {
      Generator gen(31);
      return std::vector<OpSample>{{shape.str(), {sample(shape, dtype, gen)}}};
    };
  };
  registry.add({"reshape",
                [](const auto& in) {
                  return reshape(in[0], {3, 2, 2});
                },
                samples({2, 6}),
                {}});
  registry.add({"permute",
                [](const auto& in) {
                  return permute(in[0], {2, 0, 1});
                },
                samples({2, 3, 4}),
                {}});
  registry.add({"transpose", [](const auto& in) { return transpose(in[0]); }, samples({3, 5}), {}});
  registry.add(
      {"slice", [](const auto& in) { return slice(in[0], 1, 1, 3); }, samples({3, 4}), {}});
  registry.add({"slice(axis=0)",
                [](const auto& in) { return slice(in[0], 0, 2, 4); },
                samples({5, 2, 3}),
                {}});
  registry.add({"concat",
                [](const auto& in) {
                  return concat({in[0], in[1], in[2]}, 1);
                },
                [](DType dtype) {
                  Generator gen(37);
                  return std::vector<OpSample>{
                      {"[2, 1] [2, 3] [2, 2] along 1",
                       {sample({2, 1}, dtype, gen), sample({2, 3}, dtype, gen),
                        sample({2, 2}, dtype, gen)}}};
                },
                {}});
  registry.add(
      {"index_select",
       [](const auto& in) { return index_select(in[0], 0, in[1]); },
       [](DType dtype) {
         Generator gen(41);
         return std::vector<OpSample>{
             {"rows [4, 3] with repeats", {sample({4, 3}, dtype, gen), int64_tensor({2, 0, 2, 3})}},
             {"axis 0 of [5]", {sample({5}, dtype, gen), int64_tensor({4, 1})}}};
       },
       {}});
  registry.add(
      {"index_select(axis=1)",
       [](const auto& in) { return index_select(in[0], 1, in[1]); },
       [](DType dtype) {
         Generator gen(43);
         return std::vector<OpSample>{
             {"columns of [2, 4, 2]", {sample({2, 4, 2}, dtype, gen), int64_tensor({3, 3, 0})}}};
       },
       {}});
}

}  // namespace detail
}  // namespace tg
