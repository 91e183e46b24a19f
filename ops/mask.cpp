// Boolean masks: comparisons, logic, and selection by a mask.
//
//   eq ne lt le gt ge    m = a ∘ b (bool, broadcast)    not differentiable
//   logical_and/or/xor/not, isnan, isinf, isfinite       not differentiable
//   where          y = c ? a : b (c, a, b broadcast)    da = where(c, g, 0), db = where(c, 0, g)
//   masked_fill    y = where(m, v, x)                    dx = where(m, 0, g)
//   masked_select  y = x[m], 1-D in row-major order      dx = g added into zeros at the picks
//
// The rules select rather than multiply by the mask: g ⊙ m would turn an infinite cotangent in
// the other branch into 0·inf = NaN.
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"

namespace tg {
namespace {

// fn(k, ia, ib) for each element k of `out`, the broadcast of shapes a and b, with ia and ib the
// offsets of its operands. Nothing is walked for an empty output (it may have 2^40 empty rows).
template <class Fn>
void for_each_broadcast(const Shape& out, const Shape& a, const Shape& b, Fn fn) {
  if (out.numel() == 0) return;
  const detail::BroadcastRows rows(out, a, b);
  const std::int64_t n = rows.length();
  const std::int64_t step_a = rows.a_repeats() ? 0 : 1;
  const std::int64_t step_b = rows.b_repeats() ? 0 : 1;
  rows.for_each([&](std::int64_t row, std::int64_t ia, std::int64_t ib) {
    for (std::int64_t j = 0; j < n; ++j) fn(row * n + j, ia + j * step_a, ib + j * step_b);
  });
}

// x repeated to a shape it broadcasts to, in any dtype (broadcast_to takes floating tensors only).
Tensor expand_any(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  return dispatch_all(x.dtype(), [&]<class T>() {
    Tensor out = empty(shape, x.dtype());
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for_each_broadcast(shape, x.shape(), x.shape(),
                       [&](std::int64_t k, std::int64_t i, std::int64_t) { po[k] = px[i]; });
    return out;
  });
}

void check_mask(const Tensor& mask, const char* op, const char* what,
                const SourceLocation& location) {
  if (mask.dtype() != b8) {
    detail::fail_at(op, location, "{} must be a bool mask, got {} {} (compare, or use .to(tg::b8))",
                    what, dtype_name(mask.dtype()), mask.shape().str());
  }
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op,
                      const SourceLocation& location) {
  if (a.dtype() != b.dtype()) {
    detail::fail_at(op, location, "dtype mismatch: {} {} and {} {} (convert one with .to())",
                    dtype_name(a.dtype()), a.shape().str(), dtype_name(b.dtype()), b.shape().str());
  }
}

template <class Pred>
Tensor compare(const Tensor& a, const Tensor& b, const char* op, const SourceLocation& location,
               Pred pred) {
  check_same_dtype(a, b, op, location);
  return detail::composite(op, location, [&] {
    const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
    return dispatch_all(a.dtype(), [&]<class T>() {
      Tensor out = empty(shape, b8);
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      bool* po = out.data<bool>();
      for_each_broadcast(
          shape, a.shape(), b.shape(),
          [&](std::int64_t k, std::int64_t ia, std::int64_t ib) { po[k] = pred(pa[ia], pb[ib]); });
      return out;
    });
  });
}

template <class Pred>
Tensor compare(const Tensor& a, double b, Pred pred) {
  return dispatch_all(a.dtype(), [&]<class T>() {
    Tensor out = empty(a.shape(), b8);
    const T* pa = a.data<T>();
    bool* po = out.data<bool>();
    if constexpr (std::is_floating_point_v<T>) {
      const T c = T(b);  // rounded to the tensor's precision first, as PyTorch does
      for (std::int64_t k = 0; k < a.numel(); ++k) po[k] = pred(pa[k], c);
    } else {
      // long double holds every int64 and every double exactly: the comparison is exact.
      const long double c = b;
      for (std::int64_t k = 0; k < a.numel(); ++k) po[k] = pred(static_cast<long double>(pa[k]), c);
    }
    return out;
  });
}

// A mask of x's shape: pred(value) for each element, read as a double (which keeps NaN and inf).
template <class Pred>
Tensor classify(const Tensor& x, Pred pred) {
  return dispatch_all(x.dtype(), [&]<class T>() {
    Tensor out = empty(x.shape(), b8);
    const T* px = x.data<T>();
    bool* po = out.data<bool>();
    for (std::int64_t k = 0; k < x.numel(); ++k) po[k] = pred(double(px[k]));
    return out;
  });
}

// Truth values, as bool(): non-zero (NaN too) is true.
Tensor truth(const Tensor& x, const SourceLocation& location) {
  return x.dtype() == b8 ? x : ne(x, 0.0, location);
}

template <class Pred>
Tensor logical(const Tensor& a, const Tensor& b, const char* op, const SourceLocation& location,
               Pred pred) {
  return compare(truth(a, location), truth(b, location), op, location, pred);
}

// A bool operator (~, &, |, ^) on something that is not a mask.
void check_bool_operands(const char* op, const SourceLocation& location, const Tensor& a,
                         const Tensor& b) {
  if (a.dtype() != b8 || b.dtype() != b8) {
    detail::fail_at(op, location,
                    "expected bool masks, got {} and {} (tapegrad has no bitwise ops on numbers; "
                    "logical_and, logical_or, logical_xor and logical_not take any dtype)",
                    dtype_name(a.dtype()), dtype_name(b.dtype()));
  }
}

// Refuses a number that an int64 or bool tensor selected with it cannot hold exactly. PyTorch
// promotes such a tensor to float32 in where and truncates the number in masked_fill; tapegrad
// refuses rather than silently round.
void check_fits(const Tensor& like, double value, const char* op, const SourceLocation& location) {
  const DType dtype = like.dtype();
  // A finite number past float32's range would become inf: an error, as in PyTorch.
  const bool fits =
      dtype == f64 ||
      (dtype == f32 ? !std::isfinite(value) || std::abs(value) <= std::numeric_limits<float>::max()
       : dtype == i64 ? value == std::trunc(value) && std::abs(value) < 0x1p63
                      : value == 0 || value == 1);
  if (!fits) {
    detail::fail_at(op, location,
                    "{} is not a value of the {} tensor it is selected with (convert that tensor "
                    "with .to())",
                    value, dtype_name(dtype));
  }
}

// c ? a : b elementwise over `shape`, to which all three broadcast.
Tensor select(const Tensor& c, const Tensor& a, const Tensor& b, const Shape& shape) {
  const Tensor cond = expand_any(c, shape);
  return dispatch_all(a.dtype(), [&]<class T>() {
    Tensor out = empty(shape, a.dtype());
    const bool* pc = cond.data<bool>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    for_each_broadcast(
        shape, a.shape(), b.shape(),
        [&](std::int64_t k, std::int64_t ia, std::int64_t ib) { po[k] = pc[k] ? pa[ia] : pb[ib]; });
    return out;
  });
}

struct ShapeAttrs {
  Shape shape;  // the output's, or for masked_select the broadcast shape of x and the mask
};

Tensor where_forward(ForwardContext& ctx, const ShapeAttrs& s) {
  return select(ctx.input(0), ctx.input(1), ctx.input(2), s.shape);
}
void where_backward(BackwardContext& ctx, const ShapeAttrs&) {
  const Tensor& cond = ctx.input(0);
  const Tensor& g = ctx.grad_output();
  if (ctx.needs_grad(1)) ctx.set_grad(1, where(cond, g, 0.0));
  if (ctx.needs_grad(2)) ctx.set_grad(2, where(cond, 0.0, g));
}
const Op<ShapeAttrs> kWhere{"where", "da = where(c, g, 0), db = where(c, 0, g)", where_forward,
                            where_backward};

struct FillAttrs {
  double value;
};
Tensor masked_fill_forward(ForwardContext& ctx, const FillAttrs& f) {
  const Tensor& x = ctx.input(0);
  return select(ctx.input(1), full({}, f.value, x.dtype()), x, x.shape());
}
void masked_fill_backward(BackwardContext& ctx, const FillAttrs&) {
  ctx.set_grad(0, where(ctx.input(1), 0.0, ctx.grad_output()));
}
const Op<FillAttrs> kMaskedFill{"masked_fill", "dx = where(mask, 0, g)", masked_fill_forward,
                                masked_fill_backward};

Tensor masked_select_forward(ForwardContext& ctx, const ShapeAttrs& s) {
  const Tensor x = expand_any(ctx.input(0), s.shape);
  const Tensor mask = expand_any(ctx.input(1), s.shape);
  const bool* pm = mask.data<bool>();
  std::vector<std::int64_t> picks;
  for (std::int64_t k = 0; k < mask.numel(); ++k) {
    if (pm[k]) picks.push_back(k);
  }
  return dispatch_all(x.dtype(), [&]<class T>() {
    Tensor out = empty({std::int64_t(picks.size())}, x.dtype());
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (std::size_t i = 0; i < picks.size(); ++i) po[i] = px[picks[i]];
    ctx.save(int64_tensor(picks), Residual::constant);
    return out;
  });
}
void masked_select_backward(BackwardContext& ctx, const ShapeAttrs& s) {
  const Tensor& g = ctx.grad_output();
  const Tensor spread = index_add(zeros({s.shape.numel()}, g.dtype()), 0, ctx.saved(0), g);
  ctx.set_grad(0, reshape(spread, s.shape));
}
const Op<ShapeAttrs> kMaskedSelect{"masked_select", "dx = g added into zeros at the picks",
                                   masked_select_forward, masked_select_backward};

}  // namespace

Tensor eq(const Tensor& a, const Tensor& b, SourceLocation location) {
  return compare(a, b, "eq", location, std::equal_to<>());
}
Tensor ne(const Tensor& a, const Tensor& b, SourceLocation location) {
  return compare(a, b, "ne", location, std::not_equal_to<>());
}
Tensor lt(const Tensor& a, const Tensor& b, SourceLocation location) {
  return compare(a, b, "lt", location, std::less<>());
}
Tensor le(const Tensor& a, const Tensor& b, SourceLocation location) {
  return compare(a, b, "le", location, std::less_equal<>());
}
Tensor gt(const Tensor& a, const Tensor& b, SourceLocation location) {
  return compare(a, b, "gt", location, std::greater<>());
}
Tensor ge(const Tensor& a, const Tensor& b, SourceLocation location) {
  return compare(a, b, "ge", location, std::greater_equal<>());
}
// A number cannot be a bad argument: the location only documents the call.
Tensor eq(const Tensor& a, double b, SourceLocation) {
  return compare(a, b, std::equal_to<>());
}
Tensor ne(const Tensor& a, double b, SourceLocation) {
  return compare(a, b, std::not_equal_to<>());
}
Tensor lt(const Tensor& a, double b, SourceLocation) {
  return compare(a, b, std::less<>());
}
Tensor le(const Tensor& a, double b, SourceLocation) {
  return compare(a, b, std::less_equal<>());
}
Tensor gt(const Tensor& a, double b, SourceLocation) {
  return compare(a, b, std::greater<>());
}
Tensor ge(const Tensor& a, double b, SourceLocation) {
  return compare(a, b, std::greater_equal<>());
}

Tensor logical_and(const Tensor& a, const Tensor& b, SourceLocation location) {
  return logical(a, b, "logical_and", location, std::logical_and<>());
}
Tensor logical_or(const Tensor& a, const Tensor& b, SourceLocation location) {
  return logical(a, b, "logical_or", location, std::logical_or<>());
}
Tensor logical_xor(const Tensor& a, const Tensor& b, SourceLocation location) {
  return logical(a, b, "logical_xor", location, std::not_equal_to<>());
}
Tensor logical_not(const Tensor& x, SourceLocation location) {
  return eq(x, 0.0, location);
}

Tensor isnan(const Tensor& x, SourceLocation) {
  return classify(x, [](double v) { return std::isnan(v); });
}
Tensor isinf(const Tensor& x, SourceLocation) {
  return classify(x, [](double v) { return std::isinf(v); });
}
Tensor isfinite(const Tensor& x, SourceLocation) {
  return classify(x, [](double v) { return std::isfinite(v); });
}

Tensor operator~(Operand mask) {
  check_bool_operands("operator~", mask.location, mask.tensor, mask.tensor);
  return logical_not(mask.tensor, mask.location);
}
Tensor operator&(Operand a, const Tensor& b) {
  check_bool_operands("operator&", a.location, a.tensor, b);
  return logical_and(a.tensor, b, a.location);
}
Tensor operator|(Operand a, const Tensor& b) {
  check_bool_operands("operator|", a.location, a.tensor, b);
  return logical_or(a.tensor, b, a.location);
}
Tensor operator^(Operand a, const Tensor& b) {
  check_bool_operands("operator^", a.location, a.tensor, b);
  return logical_xor(a.tensor, b, a.location);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, SourceLocation location) {
  check_mask(cond, "where", "the condition", location);
  check_same_dtype(a, b, "where", location);
  return detail::composite("where", location, [&] {
    const Shape shape =
        broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
    return kWhere({shape}, location, cond, a, b);
  });
}
Tensor where(const Tensor& cond, const Tensor& a, double b, SourceLocation location) {
  check_fits(a, b, "where", location);
  return where(cond, a, full({}, b, a.dtype()), location);
}
Tensor where(const Tensor& cond, double a, const Tensor& b, SourceLocation location) {
  check_fits(b, a, "where", location);
  return where(cond, full({}, a, b.dtype()), b, location);
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value, SourceLocation location) {
  check_mask(mask, "masked_fill", "the mask", location);
  if (!broadcastable_to(mask.shape(), x.shape())) {
    detail::fail_at("masked_fill", location,
                    "the mask's shape {} does not broadcast to the input's shape {}",
                    mask.shape().str(), x.shape().str());
  }
  check_fits(x, value, "masked_fill", location);
  return kMaskedFill({value}, location, x, mask);
}

Tensor masked_select(const Tensor& x, const Tensor& mask, SourceLocation location) {
  check_mask(mask, "masked_select", "the mask", location);
  return detail::composite("masked_select", location, [&] {
    return kMaskedSelect({broadcast_shapes(x.shape(), mask.shape(), "masked_select")}, location, x,
                         mask);
  });
}

namespace detail {

void register_mask_ops(OpRegistry& registry) {
  // About half true, from the sample generator.
  const auto mask = [](const Shape& shape, Generator& gen) {
    return lt(uniform(shape, gen, 0.0, 1.0, f64), 0.5);
  };
  // d output / d input of a selection: 1 at [k, i] where output element k is input element
  // picks[k], for an input of `numel` elements.
  const auto selection_jacobian = [](const std::vector<std::int64_t>& picks, std::int64_t numel) {
    Tensor jacobian = zeros({std::int64_t(picks.size()), numel}, f64);
    double* pj = jacobian.data<double>();
    for (std::size_t k = 0; k < picks.size(); ++k) {
      if (picks[k] >= 0) pj[std::int64_t(k) * numel + picks[k]] = 1.0;
    }
    return jacobian;
  };
  // Output element k picks input element k where the (same-shaped) mask says `pick`, else none.
  const auto masked_diagonal = [=](const Tensor& m, bool pick) {
    std::vector<std::int64_t> picks;
    const std::vector<double> values = m.to_vector();
    for (std::size_t k = 0; k < values.size(); ++k) {
      picks.push_back((values[k] != 0) == pick ? std::int64_t(k) : -1);
    }
    return selection_jacobian(picks, m.numel());
  };
  registry.add({"where", [](const auto& in) { return where(in[0], in[1], in[2]); },
                [=](DType dtype) {
                  Generator gen(107);
                  return std::vector<OpSample>{
                      {"[2, 3] all three",
                       {mask({2, 3}, gen), sample({2, 3}, dtype, gen), sample({2, 3}, dtype, gen)}},
                      {"[3, 1] condition, [4] and [2, 1, 1]: three-way broadcast",
                       {mask({3, 1}, gen), sample({4}, dtype, gen), sample({2, 1, 1}, dtype, gen)}},
                      {"[] condition, [3] and [] branches",
                       {mask({}, gen), sample({3}, dtype, gen), sample({}, dtype, gen)}},
                      {"[0, 3] empty",
                       {mask({0, 3}, gen), sample({3}, dtype, gen), sample({0, 1}, dtype, gen)}}};
                },
                [=](const std::vector<Tensor>& in) -> std::vector<Tensor> {
                  if (!(in[0].shape() == in[1].shape() && in[1].shape() == in[2].shape())) {
                    return {Tensor(), Tensor(), Tensor()};
                  }
                  return {Tensor(), masked_diagonal(in[0], true), masked_diagonal(in[0], false)};
                }});
  registry.add(
      {"masked_fill", [](const auto& in) { return masked_fill(in[0], in[1], -1.5); },
       [=](DType dtype) {
         Generator gen(109);
         return std::vector<OpSample>{
             {"[2, 3] with a [2, 3] mask", {sample({2, 3}, dtype, gen), mask({2, 3}, gen)}},
             {"[2, 3] with a [3] mask", {sample({2, 3}, dtype, gen), mask({3}, gen)}},
             {"[] with a [] mask", {sample({}, dtype, gen), mask({}, gen)}}};
       },
       [=](const std::vector<Tensor>& in) {
         return std::vector{masked_diagonal(expand_any(in[1], in[0].shape()), false), Tensor()};
       }});
  registry.add(
      {"masked_select", [](const auto& in) { return masked_select(in[0], in[1]); },
       [=](DType dtype) {
         Generator gen(113);
         return std::vector<OpSample>{
             {"[2, 3] with a [2, 3] mask", {sample({2, 3}, dtype, gen), mask({2, 3}, gen)}},
             {"[2, 3] with a [3] mask", {sample({2, 3}, dtype, gen), mask({3}, gen)}},
             {"[3] broadcast to a [2, 3] mask: picks repeat",
              {sample({3}, dtype, gen), ones({2, 3}, b8)}},
             {"[4] with nothing picked", {sample({4}, dtype, gen), zeros({4}, b8)}}};
       },
       [=](const std::vector<Tensor>& in) -> std::vector<Tensor> {
         if (!(in[0].shape() == in[1].shape())) return {Tensor(), Tensor()};
         std::vector<std::int64_t> picks;
         const std::vector<double> m = in[1].to_vector();
         for (std::size_t k = 0; k < m.size(); ++k) {
           if (m[k] != 0) picks.push_back(std::int64_t(k));
         }
         return {selection_jacobian(picks, in[0].numel()), Tensor()};
       }});
}

}  // namespace detail
}  // namespace tg
