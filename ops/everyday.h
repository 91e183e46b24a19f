#pragma once
// Everyday tensor ops with PyTorch's semantics (issue 13): indexing, views, statistics. Each
// records the caller's source location, and argument errors name the op and the caller's
// file:line. Axes may be negative. Where an op differs from PyTorch on purpose, its comment says
// so.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string_view>
#include <vector>

#include "autograd/autograd.h"
#include "ops/ops.h"

namespace tg {

class OpRegistry;

// ---- indexing (ops/index.cpp) ----

// The int64 index of the largest (smallest) value along an axis: the first one at a tie, and a NaN
// counts as larger (and as smaller) than any number, as in PyTorch. Not differentiable. Over an
// empty axis it is an error.
Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim = false,
              SourceLocation location = SourceLocation::current());
Tensor argmin(const Tensor& x, std::int64_t axis, bool keepdim = false,
              SourceLocation location = SourceLocation::current());
// Over every element: the index into the flattened tensor, a scalar.
Tensor argmax(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor argmin(const Tensor& x, SourceLocation location = SourceLocation::current());

// Python's x[start:end:step] along an axis: negative start and end count from the end, both are
// clamped to the axis (so an out-of-range slice is empty, never an error) and step must be > 0.
// Use kEnd for an open end. (The four-argument slice of ops/ops.h takes only in-range indices.)
inline constexpr std::int64_t kEnd = std::numeric_limits<std::int64_t>::max();
Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end,
             std::int64_t step, SourceLocation location = SourceLocation::current());
// `length` elements from `start` along an axis (a negative start counts from the end); unlike
// slice, a range past the axis is an error, as in PyTorch.
Tensor narrow(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t length,
              SourceLocation location = SourceLocation::current());

// out[i][j] = x[index[i][j]][j] along axis 0 (likewise along any axis): `index` is int64 of x's
// rank, no larger than x outside the axis; the output has index's shape.
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index,
              SourceLocation location = SourceLocation::current());
// x with src[i][j] added at [index[i][j]][j] (along axis 0): repeated indices accumulate. `index`
// is int64 of x's rank, no larger than src anywhere nor than x outside the axis.
Tensor scatter_add(const Tensor& x, std::int64_t axis, const Tensor& index, const Tensor& src,
                   SourceLocation location = SourceLocation::current());
// x with the slices of src along the axis added at the positions of a 1-D int64 index.
Tensor index_add(const Tensor& x, std::int64_t axis, const Tensor& index, const Tensor& src,
                 SourceLocation location = SourceLocation::current());

// ---- views (ops/view.cpp): reshapes of the same storage, except stack and expand ----

// Joins tensors of one shape along a new axis (in [-(rank + 1), rank]).
Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis = 0,
             SourceLocation location = SourceLocation::current());
// Inserts a size-1 axis at `axis` (in [-(rank + 1), rank]).
Tensor unsqueeze(const Tensor& x, std::int64_t axis,
                 SourceLocation location = SourceLocation::current());
// Removes every size-1 axis; or one axis, when it has size 1 (otherwise x is returned as is).
Tensor squeeze(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor squeeze(const Tensor& x, std::int64_t axis,
               SourceLocation location = SourceLocation::current());
// Merges axes start..end (inclusive) into one; a scalar becomes [1].
Tensor flatten(const Tensor& x, std::int64_t start = 0, std::int64_t end = -1,
               SourceLocation location = SourceLocation::current());
// Splits one axis into `sizes`, one of which may be −1 (inferred).
Tensor unflatten(const Tensor& x, std::int64_t axis, const std::vector<std::int64_t>& sizes,
                 SourceLocation location = SourceLocation::current());
// reshape to dims of which one may be −1 (inferred from the others).
Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& dims,
               SourceLocation location = SourceLocation::current());
// The brace form, reshape(x, {3, -1}): exact match, so it is not ambiguous with Shape.
Tensor reshape(const Tensor& x, std::initializer_list<std::int64_t> dims,
               SourceLocation location = SourceLocation::current());
// x repeated along its size-1 axes to `sizes`, with new leading axes; −1 keeps an axis's size.
// A copy (broadcast_to), not a view of the storage as in PyTorch.
Tensor expand(const Tensor& x, const std::vector<std::int64_t>& sizes,
              SourceLocation location = SourceLocation::current());

// ---- statistics (ops/statistics.cpp) ----

// Largest (smallest) value along an axis; the gradient is split evenly among tied entries, as
// PyTorch's amax and amin.
Tensor amax(const Tensor& x, std::int64_t axis, bool keepdim = false,
            SourceLocation location = SourceLocation::current());
Tensor amin(const Tensor& x, std::int64_t axis, bool keepdim = false,
            SourceLocation location = SourceLocation::current());
// Smallest value along an axis; the gradient goes to the first arg-min (the counterpart of max).
Tensor min(const Tensor& x, std::int64_t axis, bool keepdim = false,
           SourceLocation location = SourceLocation::current());
// Variance Σ(x − x̄)² / (n − correction) and its square root, along an axis or over everything
// (with correction 1; var(flatten(x), 0, c) for another); n − c ≤ 0 gives inf or NaN, as in
// PyTorch. Unlike PyTorch, the correction is not a second positional argument of the
// every-element form: var(x, 1) would be ambiguous between an axis and a correction.
Tensor var(const Tensor& x, std::int64_t axis, double correction = 1.0, bool keepdim = false,
           SourceLocation location = SourceLocation::current());
Tensor var(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor std(const Tensor& x, std::int64_t axis, double correction = 1.0, bool keepdim = false,
           SourceLocation location = SourceLocation::current());
Tensor std(const Tensor& x, SourceLocation location = SourceLocation::current());
// Product along an axis or of everything (1 over nothing); its gradient is right with zeros in x.
Tensor prod(const Tensor& x, std::int64_t axis, bool keepdim = false,
            SourceLocation location = SourceLocation::current());
Tensor prod(const Tensor& x, SourceLocation location = SourceLocation::current());
// Running sum along an axis.
Tensor cumsum(const Tensor& x, std::int64_t axis,
              SourceLocation location = SourceLocation::current());
// The p-norm for p = 1, 2 or INFINITY, along an axis or of everything; the 2-norm's gradient at
// 0 is 0 and the ∞-norm's is split among the largest |x|, as in PyTorch.
Tensor norm(const Tensor& x, double p, std::int64_t axis, bool keepdim = false,
            SourceLocation location = SourceLocation::current());
Tensor norm(const Tensor& x, double p = 2.0, SourceLocation location = SourceLocation::current());

// ---- activations (ops/activation.cpp) ----

// −1, 0 or 1 (0 at ±0 and at NaN, as PyTorch 1.13); gradient 0.
Tensor sign(const Tensor& x, SourceLocation location = SourceLocation::current());
// 1/√x and x², as pow(x, −0.5) and pow(x, 2).
Tensor rsqrt(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor square(const Tensor& x, SourceLocation location = SourceLocation::current());
// x ⊙ sigmoid(x).
Tensor silu(const Tensor& x, SourceLocation location = SourceLocation::current());
enum class GeluApproximate { none, tanh };
// x/2 ⊙ (1 + erf(x/√2)), or PyTorch's tanh approximation.
Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::none,
            SourceLocation location = SourceLocation::current());
// x clamped to [low, high], gradient 0 at the bounds themselves (clamp passes it there).
Tensor hardtanh(const Tensor& x, double low = -1.0, double high = 1.0,
                SourceLocation location = SourceLocation::current());
// x for x > 0, α(eˣ − 1) otherwise.
Tensor elu(const Tensor& x, double alpha = 1.0,
           SourceLocation location = SourceLocation::current());

// ---- regression losses (ops/regression_loss.cpp); the target broadcasts to the input ----

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
               SourceLocation location = SourceLocation::current());
// Quadratic below |d| = beta, linear above; beta = 0 is l1_loss.
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      Reduction reduction = Reduction::mean, double beta = 1.0,
                      SourceLocation location = SourceLocation::current());
// Quadratic below |d| = delta, linear above (smooth_l1_loss times delta).
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
                  double delta = 1.0, SourceLocation location = SourceLocation::current());
// tg::Reduction and batchmean: the sum divided by the size of dimension 0 (the KL divergence).
enum class KlReduction { mean, sum, none, batchmean };
// KL divergence of input (log-probabilities) to target (probabilities, or log-probabilities with
// log_target): Σ t (log t − x), with 0 · log 0 = 0.
Tensor kl_div(const Tensor& input, const Tensor& target, KlReduction reduction = KlReduction::mean,
              bool log_target = false, SourceLocation location = SourceLocation::current());

// ---- factories (ops/factory.cpp; constants, never recorded) ----

// The n x m identity (ones on the main diagonal).
Tensor eye(std::int64_t n, std::int64_t m, DType dtype = f32,
           SourceLocation location = SourceLocation::current());
Tensor eye(std::int64_t n, DType dtype = f32, SourceLocation location = SourceLocation::current());
// `steps` evenly spaced values from start to end inclusive, computed as PyTorch does.
Tensor linspace(double start, double end, std::int64_t steps, DType dtype = f32,
                SourceLocation location = SourceLocation::current());
// Uniform in [0, 1).
Tensor rand(const Shape& shape, Generator& generator, DType dtype = f32);
// Uniform integers in [low, high), int64 unless another dtype is asked for.
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& generator,
               DType dtype = i64, SourceLocation location = SourceLocation::current());
// A uniformly random permutation of 0 .. n − 1 (int64).
Tensor randperm(std::int64_t n, Generator& generator,
                SourceLocation location = SourceLocation::current());
// The shape and dtype of `like`.
Tensor full_like(const Tensor& like, double value);
Tensor rand_like(const Tensor& like, Generator& generator);
Tensor randn_like(const Tensor& like, Generator& generator);
Tensor randint_like(const Tensor& like, std::int64_t low, std::int64_t high, Generator& generator,
                    SourceLocation location = SourceLocation::current());

// ---- masks (ops/mask.cpp) ----
//
// Boolean masks (dtype tg::b8, PyTorch's torch.bool) with PyTorch's semantics: comparisons and the
// logical ops make them, where / masked_fill / masked_select select with them, sum counts them
// (int64) and cast(mask, f32) turns them into 0 and 1. Comparisons, logic and isnan are not
// differentiable (their outputs never require grad); where, masked_fill and masked_select are, in
// their floating operands. mean(mask) is an error, as in PyTorch.

// a == b, a != b, a < b, a <= b, a > b, a >= b elementwise, broadcasting, as a bool mask. Both
// operands have one dtype, any of the four; unlike PyTorch, mixed dtypes are an error instead of
// being promoted (convert one with .to()). NaN compares unequal to everything, itself included;
// −0 equals 0; false < true.
Tensor eq(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor ne(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor lt(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor le(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor gt(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor ge(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
// Against a number. A float32 or float64 tensor compares in its own precision, the number rounded
// to it first, as PyTorch does (a float32 0.1f == 0.1 is true, and 3e38f < 1e300 is true because
// 1e300 rounds to inf). An int64 or bool tensor compares exactly: as PyTorch with a Python int,
// whereas with a Python float PyTorch rounds both sides to float32 (there 16777217 == 16777216.0
// is true; here it is false).
Tensor eq(const Tensor& a, double b, SourceLocation location = SourceLocation::current());
Tensor ne(const Tensor& a, double b, SourceLocation location = SourceLocation::current());
Tensor lt(const Tensor& a, double b, SourceLocation location = SourceLocation::current());
Tensor le(const Tensor& a, double b, SourceLocation location = SourceLocation::current());
Tensor gt(const Tensor& a, double b, SourceLocation location = SourceLocation::current());
Tensor ge(const Tensor& a, double b, SourceLocation location = SourceLocation::current());

// Logic on truth values, broadcasting: any dtypes, mixed too; non-zero is true, NaN included (as
// PyTorch's logical_* and bool()).
Tensor logical_and(const Tensor& a, const Tensor& b,
                   SourceLocation location = SourceLocation::current());
Tensor logical_or(const Tensor& a, const Tensor& b,
                  SourceLocation location = SourceLocation::current());
Tensor logical_xor(const Tensor& a, const Tensor& b,
                   SourceLocation location = SourceLocation::current());
Tensor logical_not(const Tensor& x, SourceLocation location = SourceLocation::current());
// Which elements are NaN, ±inf, or neither; int64 and bool elements are always finite.
Tensor isnan(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor isinf(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor isfinite(const Tensor& x, SourceLocation location = SourceLocation::current());

// a where cond is true, else b; cond is bool, a and b share a dtype, and all three broadcast to
// the output. Differentiable in a and b: da = g where cond (0 elsewhere), db = g elsewhere, each
// summed back over broadcasting. The rule selects rather than multiplies by the mask, so an
// infinite or NaN cotangent never leaks into the other branch as 0·inf. A NaN that the unselected
// branch computes is not hidden from that branch's own rule, exactly as in PyTorch:
// where(x > 0, sqrt(x), 0) has gradient 0 / (2·sqrt(x)) = NaN at x < 0. Write
// where(x > 0, sqrt(where(x > 0, x, 1)), 0) for a gradient of 0 there.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b,
             SourceLocation location = SourceLocation::current());
// A number for one branch (of the other branch's dtype).
Tensor where(const Tensor& cond, const Tensor& a, double b,
             SourceLocation location = SourceLocation::current());
Tensor where(const Tensor& cond, double a, const Tensor& b,
             SourceLocation location = SourceLocation::current());
// x with `value` where the bool mask (broadcasting to x's shape, not the other way) is true;
// dx = g where the mask is false, 0 where filled.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value,
                   SourceLocation location = SourceLocation::current());
// The elements of x where the bool mask is true, x and mask broadcast to one shape, in row-major
// order: a 1-D tensor. dx = g added into zeros at the picked positions (summed over broadcasting).
Tensor masked_select(const Tensor& x, const Tensor& mask,
                     SourceLocation location = SourceLocation::current());

inline Tensor operator==(Operand a, const Tensor& b) {
  return eq(a.tensor, b, a.location);
}
inline Tensor operator!=(Operand a, const Tensor& b) {
  return ne(a.tensor, b, a.location);
}
inline Tensor operator<(Operand a, const Tensor& b) {
  return lt(a.tensor, b, a.location);
}
inline Tensor operator<=(Operand a, const Tensor& b) {
  return le(a.tensor, b, a.location);
}
inline Tensor operator>(Operand a, const Tensor& b) {
  return gt(a.tensor, b, a.location);
}
inline Tensor operator>=(Operand a, const Tensor& b) {
  return ge(a.tensor, b, a.location);
}
inline Tensor operator==(Operand a, double b) {
  return eq(a.tensor, b, a.location);
}
inline Tensor operator!=(Operand a, double b) {
  return ne(a.tensor, b, a.location);
}
inline Tensor operator<(Operand a, double b) {
  return lt(a.tensor, b, a.location);
}
inline Tensor operator<=(Operand a, double b) {
  return le(a.tensor, b, a.location);
}
inline Tensor operator>(Operand a, double b) {
  return gt(a.tensor, b, a.location);
}
inline Tensor operator>=(Operand a, double b) {
  return ge(a.tensor, b, a.location);
}
// A number on the left: 0 < x is x > 0.
inline Tensor operator==(double a, Operand b) {
  return eq(b.tensor, a, b.location);
}
inline Tensor operator!=(double a, Operand b) {
  return ne(b.tensor, a, b.location);
}
inline Tensor operator<(double a, Operand b) {
  return gt(b.tensor, a, b.location);
}
inline Tensor operator<=(double a, Operand b) {
  return ge(b.tensor, a, b.location);
}
inline Tensor operator>(double a, Operand b) {
  return lt(b.tensor, a, b.location);
}
inline Tensor operator>=(double a, Operand b) {
  return le(b.tensor, a, b.location);
}
// PyTorch's ~m, m & n, m | n, m ^ n on masks. Only on bool tensors: on int64, PyTorch's are
// bitwise, and a logical answer there would be a silent wrong number.
Tensor operator~(Operand mask);
Tensor operator&(Operand a, const Tensor& b);
Tensor operator|(Operand a, const Tensor& b);
Tensor operator^(Operand a, const Tensor& b);

namespace detail {

// A message without the "op: " or "op (file:line): " that tapegrad's errors start with.
inline std::string_view without_op_prefix(std::string_view message) {
  const std::size_t colon = message.find(": ");
  if (colon == std::string_view::npos) return message;
  std::string_view head = message.substr(0, colon);
  if (const std::size_t paren = head.find(" ("); paren != std::string_view::npos) {
    head = head.substr(0, paren);
  }
  const bool names_op = !head.empty() && std::all_of(head.begin(), head.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  });
  return names_op ? message.substr(colon + 2) : message;
}

// Runs a composite op (one built from other ops rather than an Op<Attrs>): an error an inner op
// raises on the user's arguments is raised again as the composite's, with the caller's location,
// since the user called the composite and never sees the inner op. Anomaly reports pass as they
// are: they name the tape entry where a NaN started on purpose.
template <class Fn>
auto composite(const char* op, const SourceLocation& location, Fn&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error& e) {
    const std::string_view message = e.what();
    if (message.starts_with("anomaly:")) throw;
    fail_at(op, location, "{}", without_op_prefix(without_location(message)));
  }
}

// A possibly negative axis of a tensor of rank `rank` (plus `extra` positions past the end, for an
// axis being inserted) in [0, rank + extra), or an error naming the op and the caller.
inline int checked_axis(std::int64_t axis, int rank, const char* op, const SourceLocation& location,
                        int extra = 0) {
  const std::int64_t n = rank + extra;
  if (axis < -n || axis >= n) {
    fail_at(op, location, "axis {} is out of range for a tensor of rank {} (expected {} to {})",
            axis, rank, -n, n - 1);
  }
  return int(axis < 0 ? axis + n : axis);
}

// Registration functions, one per file, each below the ops it registers.
void register_index_ops(OpRegistry& registry);
void register_view_ops(OpRegistry& registry);
void register_statistics_ops(OpRegistry& registry);
void register_activation_ops(OpRegistry& registry);
void register_regression_loss_ops(OpRegistry& registry);
void register_mask_ops(OpRegistry& registry);
// All of them, for ops/builtin_ops.cpp.
inline void register_everyday_ops(OpRegistry& registry) {
  register_index_ops(registry);
  register_view_ops(registry);
  register_statistics_ops(registry);
  register_activation_ops(registry);
  register_regression_loss_ops(registry);
  register_mask_ops(registry);
}

}  // namespace detail
}  // namespace tg
