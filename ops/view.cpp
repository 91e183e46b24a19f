// Views: new shapes for the same values, composed of reshape (which shares storage), concat and
// broadcast_to, so their gradients (and gradients of gradients) are those ops' rules.
//
//   unsqueeze, squeeze, flatten, unflatten, reshape with −1   y = reshape(x)   dx = reshape(g)
//   stack    y = concat(unsqueeze(xᵢ, a))                     dxᵢ = slice of g along a
//   expand   y = broadcast_to(x, sizes)                       dx = g summed back to x's shape
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <iterator>

#include "ops/everyday.h"
#include "ops/registrations.h"

namespace tg {
namespace {

// Dims with at most one −1, which takes the size that makes `numel` elements: those of `shape`, or
// of its axis `axis` when that is >= 0 (named in the message).
Shape infer_dims(std::span<const std::int64_t> dims, const Shape& shape, int axis, const char* op,
                 const SourceLocation& location) {
  const std::int64_t numel = axis < 0 ? shape.numel() : shape[axis];
  std::array<std::int64_t, Shape::kMaxRank> out{};
  if (dims.size() > std::size_t(Shape::kMaxRank)) {
    detail::fail_at(op, location, "[{}] has more than {} dimensions", fmt::join(dims, ", "),
                    Shape::kMaxRank);
  }
  int inferred = -1;
  std::int64_t known = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    out[i] = dims[i];
    if (dims[i] == -1) {
      if (inferred >= 0) {
        detail::fail_at(op, location, "only one dimension can be -1, got [{}]",
                        fmt::join(dims, ", "));
      }
      inferred = int(i);
    } else if (dims[i] < 0) {
      detail::fail_at(op, location, "dimension {} of [{}] is negative", dims[i],
                      fmt::join(dims, ", "));
    } else if (__builtin_mul_overflow(known, dims[i], &known)) {
      detail::fail_at(op, location, "the product of [{}] exceeds 2^63 - 1", fmt::join(dims, ", "));
    }
  }
  if (inferred >= 0) {
    if (known == 0 || numel % known != 0) {
      detail::fail_at(op, location,
                      "cannot infer the -1 in [{}] for {} elements: the other dimensions' "
                      "product {} {}",
                      fmt::join(dims, ", "), numel, known,
                      known == 0 ? "is 0, so any size would do" : "does not divide it");
    }
    out[std::size_t(inferred)] = numel / known;
  } else if (known != numel) {
    detail::fail_at(op, location, "cannot make [{}] ({} elements) of {} elements ({}{})",
                    fmt::join(dims, ", "), known, numel,
                    axis < 0 ? "" : fmt::format("axis {} of ", axis), shape.str());
  }
  return Shape(std::span<const std::int64_t>(out.data(), dims.size()), op);
}

// x reshaped with its axes first .. first + count − 1 replaced by `dims`.
Tensor reshape_axes(const Tensor& x, int first, int count, std::span<const std::int64_t> dims,
                    const char* op, const SourceLocation& location) {
  std::vector<std::int64_t> all(x.shape().begin(), x.shape().begin() + first);
  all.insert(all.end(), dims.begin(), dims.end());
  all.insert(all.end(), x.shape().begin() + first + count, x.shape().end());
  if (all.size() > std::size_t(Shape::kMaxRank)) {
    detail::fail_at(op, location, "the result [{}] of {} has more than {} dimensions",
                    fmt::join(all, ", "), x.shape().str(), Shape::kMaxRank);
  }
  return reshape(x, Shape(all, op), location);
}

}  // namespace

Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& dims, SourceLocation location) {
  return reshape(x, infer_dims(dims, x.shape(), -1, "reshape", location), location);
}

Tensor reshape(const Tensor& x, std::initializer_list<std::int64_t> dims, SourceLocation location) {
  return reshape(x, infer_dims({dims.begin(), dims.size()}, x.shape(), -1, "reshape", location),
                 location);
}

Tensor unsqueeze(const Tensor& x, std::int64_t axis, SourceLocation location) {
  const int a = detail::checked_axis(axis, x.rank(), "unsqueeze", location, 1);
  const std::array<std::int64_t, 1> one{1};
  return reshape_axes(x, a, 0, one, "unsqueeze", location);
}

Tensor squeeze(const Tensor& x, SourceLocation location) {
  std::vector<std::int64_t> kept;
  std::copy_if(x.shape().begin(), x.shape().end(), std::back_inserter(kept),
               [](std::int64_t d) { return d != 1; });
  return reshape(x, Shape(kept, "squeeze"), location);
}

Tensor squeeze(const Tensor& x, std::int64_t axis, SourceLocation location) {
  // A scalar has no axis to remove, but PyTorch accepts axis 0 or −1 for it and returns it.
  const int a = detail::checked_axis(axis, std::max(x.rank(), 1), "squeeze", location);
  if (x.rank() == 0 || x.shape()[a] != 1) return x;
  return reshape_axes(x, a, 1, {}, "squeeze", location);
}

Tensor flatten(const Tensor& x, std::int64_t start, std::int64_t end, SourceLocation location) {
  if (x.rank() == 0) return reshape(x, Shape{1}, location);
  const int s = detail::checked_axis(start, x.rank(), "flatten", location);
  const int e = detail::checked_axis(end, x.rank(), "flatten", location);
  if (s > e) {
    detail::fail_at("flatten", location,
                    "start axis {} comes after end axis {} (shape {}): expected start <= end", s, e,
                    x.shape().str());
  }
  std::int64_t merged = 1;
  for (int d = s; d <= e; ++d) merged *= x.shape()[d];
  const std::array<std::int64_t, 1> dims{merged};
  return reshape_axes(x, s, e - s + 1, dims, "flatten", location);
}

Tensor unflatten(const Tensor& x, std::int64_t axis, const std::vector<std::int64_t>& sizes,
                 SourceLocation location) {
  const int a = detail::checked_axis(axis, x.rank(), "unflatten", location);
  if (sizes.empty()) detail::fail_at("unflatten", location, "sizes must not be empty");
  const Shape split = infer_dims(sizes, x.shape(), a, "unflatten", location);
  return reshape_axes(x, a, 1, split.dims(), "unflatten", location);
}

Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis, SourceLocation location) {
  if (tensors.empty()) detail::fail_at("stack", location, "expected at least one tensor");
  const Tensor& first = tensors.front();
  const int a = detail::checked_axis(axis, first.rank(), "stack", location, 1);
  std::vector<Tensor> pieces;
  pieces.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!(tensors[i].shape() == first.shape()) || tensors[i].dtype() != first.dtype()) {
      detail::fail_at("stack", location,
                      "tensor {} is {} {}, tensor 0 is {} {}: stacked tensors need one shape and "
                      "dtype",
                      i, dtype_name(tensors[i].dtype()), tensors[i].shape().str(),
                      dtype_name(first.dtype()), first.shape().str());
    }
    pieces.push_back(unsqueeze(tensors[i], a, location));
  }
  return detail::composite("stack", location, [&] { return concat(pieces, a, location); });
}

Tensor expand(const Tensor& x, const std::vector<std::int64_t>& sizes, SourceLocation location) {
  const std::size_t rank = std::size_t(x.rank());
  if (sizes.size() < rank) {
    detail::fail_at("expand", location, "[{}] has fewer dimensions than the tensor's shape {}",
                    fmt::join(sizes, ", "), x.shape().str());
  }
  const std::size_t leading = sizes.size() - rank;
  std::vector<std::int64_t> dims(sizes);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const bool new_axis = i < leading;
    const std::int64_t have = new_axis ? 1 : x.shape()[int(i - leading)];
    if (sizes[i] == -1 && !new_axis) {
      dims[i] = have;
    } else if (sizes[i] < 0 || (have != 1 && sizes[i] != have)) {
      detail::fail_at("expand", location,
                      "cannot expand {} to [{}]: size {} at dimension {} must be {}{}",
                      x.shape().str(), fmt::join(sizes, ", "), sizes[i], i,
                      new_axis ? "non-negative (a new leading dimension)" : std::to_string(have),
                      new_axis || have == 1 ? "" : ", -1 or the size of a size-1 dimension");
    }
  }
  return detail::composite("expand", location,
                           [&] { return broadcast_to(x, Shape(dims, "expand"), location); });
}

namespace detail {

void register_view_ops(OpRegistry& registry) {
  const auto samples = [](std::vector<Shape> shapes) {
    return [shapes](DType dtype) {
      Generator gen(61);
      std::vector<OpSample> out;
      for (const Shape& shape : shapes) out.push_back({shape.str(), {sample(shape, dtype, gen)}});
      return out;
    };
  };
  registry.add({"stack",
                [](const auto& in) {
                  return stack({in[0], in[1], in[2]}, 1);
                },
                [](DType dtype) {
                  Generator gen(67);
                  std::vector<OpSample> out;
                  for (const Shape& shape : std::vector<Shape>{{2, 3}, {4}, {0, 2}}) {
                    out.push_back({"three " + shape.str(),
                                   {sample(shape, dtype, gen), sample(shape, dtype, gen),
                                    sample(shape, dtype, gen)}});
                  }
                  return out;
                },
                {}});
  registry.add({"stack(axis=-1)",
                [](const auto& in) {
                  return stack({in[0], in[1]}, -1);
                },
                [](DType dtype) {
                  Generator gen(71);
                  return std::vector<OpSample>{
                      {"two [2, 3]", {sample({2, 3}, dtype, gen), sample({2, 3}, dtype, gen)}}};
                },
                {}});
  registry.add({"unsqueeze",
                [](const auto& in) { return unsqueeze(in[0], -1); },
                samples({{2, 3}, {}, {0}}),
                {}});
  registry.add(
      {"squeeze", [](const auto& in) { return squeeze(in[0]); }, samples({{1, 3, 1}, {1}}), {}});
  registry.add({"squeeze(axis)",
                [](const auto& in) { return squeeze(in[0], 1); },
                samples({{2, 1, 3}, {2, 3}}),
                {}});
  registry.add({"flatten",
                [](const auto& in) { return flatten(in[0], 1, -1); },
                samples({{2, 3, 4}, {2, 0, 3}}),
                {}});
  registry.add({"unflatten",
                [](const auto& in) {
                  return unflatten(in[0], 1, {2, -1});
                },
                samples({{3, 6}, {2, 4, 2}}),
                {}});
  registry.add({"reshape(-1)",
                [](const auto& in) {
                  return reshape(in[0], {-1, 2});
                },
                samples({{2, 3, 2}, {0, 4}}),
                {}});
  registry.add({"expand",
                [](const auto& in) {
                  return expand(in[0], {2, -1, 4});
                },
                samples({{3, 1}, {1, 4}, {3, 4}}),
                {}});
}

}  // namespace detail
}  // namespace tg
