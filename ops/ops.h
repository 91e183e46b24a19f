#pragma once
// The differentiable ops. Every function records one tape entry (when grad mode is on and an
// input requires grad) tagged with the caller's source location, which errors and reports quote.
// Binary elementwise ops broadcast like NumPy; axes may be negative.
#include <cstdint>
#include <source_location>
#include <vector>

#include "autograd/factories.h"
#include "autograd/tape.h"

namespace tg {

// ---- elementwise (ops/elementwise.cpp, ops/unary.cpp) ----
Tensor add(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor sub(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor mul(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor div(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());
Tensor add(const Tensor& a, double b, SourceLocation location = SourceLocation::current());
Tensor mul(const Tensor& a, double b, SourceLocation location = SourceLocation::current());
Tensor neg(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor pow(const Tensor& x, double exponent, SourceLocation location = SourceLocation::current());
Tensor exp(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor log(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor sqrt(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor abs(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor tanh(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor sigmoid(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor relu(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor erf(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor clamp(const Tensor& x, double low, double high,
             SourceLocation location = SourceLocation::current());
Tensor sin(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor cos(const Tensor& x, SourceLocation location = SourceLocation::current());
// ln(1 + x), accurate for small x.
Tensor log1p(const Tensor& x, SourceLocation location = SourceLocation::current());
// ln(1 + eˣ), computed as max(x, 0) + log1p(e^(−|x|)) so that it never overflows.
Tensor softplus(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01,
                  SourceLocation location = SourceLocation::current());
// Elementwise larger or smaller of a and b, broadcasting; at a tie each gets half the gradient,
// as in PyTorch.
Tensor maximum(const Tensor& a, const Tensor& b,
               SourceLocation location = SourceLocation::current());
Tensor minimum(const Tensor& a, const Tensor& b,
               SourceLocation location = SourceLocation::current());
// Differentiable dtype conversion (the gradient converts back).
Tensor cast(const Tensor& x, DType dtype, SourceLocation location = SourceLocation::current());

// ---- reductions (ops/reduce.cpp) ----
Tensor sum(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor sum(const Tensor& x, std::int64_t axis, bool keepdim = false,
           SourceLocation location = SourceLocation::current());
Tensor mean(const Tensor& x, SourceLocation location = SourceLocation::current());
Tensor mean(const Tensor& x, std::int64_t axis, bool keepdim = false,
            SourceLocation location = SourceLocation::current());
// Largest value along an axis; the gradient goes to the first arg-max.
Tensor max(const Tensor& x, std::int64_t axis, bool keepdim = false,
           SourceLocation location = SourceLocation::current());
// log Σ exp(x) along an axis, shifted by the maximum so it never overflows.
Tensor logsumexp(const Tensor& x, std::int64_t axis, bool keepdim = false,
                 SourceLocation location = SourceLocation::current());
// Sums a tensor down to a shape it was broadcast from (the engine un-broadcasts with it).
Tensor sum_to(const Tensor& x, const Shape& shape,
              SourceLocation location = SourceLocation::current());
Tensor broadcast_to(const Tensor& x, const Shape& shape,
                    SourceLocation location = SourceLocation::current());

// ---- shape and linear algebra (ops/shape.cpp, ops/matmul.cpp) ----
Tensor reshape(const Tensor& x, const Shape& shape,
               SourceLocation location = SourceLocation::current());
Tensor permute(const Tensor& x, const std::vector<std::int64_t>& axes,
               SourceLocation location = SourceLocation::current());
Tensor transpose(const Tensor& x, std::int64_t axis0 = -2, std::int64_t axis1 = -1,
                 SourceLocation location = SourceLocation::current());
// Elements start <= i < end along an axis.
Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t end,
             SourceLocation location = SourceLocation::current());
Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis = 0,
              SourceLocation location = SourceLocation::current());
// Picks entries along an axis by an int64 index tensor (rows of an embedding table for axis 0).
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices,
                    SourceLocation location = SourceLocation::current());
// x·Wᵀ + b for x of shape [..., in], a weight [out, in] (PyTorch's layout) and a bias [out]
// (optional), fused: no transposed copy of W, the bias added in place.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              SourceLocation location = SourceLocation::current());
// torch.matmul: vector·vector is a scalar, a 1-D first (second) operand is a row (column) whose
// 1 is removed from the result, and the batch dims of N-d operands broadcast like elementwise ops
// ([2,1,3,4]·[5,4,6] -> [2,5,3,6]); the gradient is summed over broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b,
              SourceLocation location = SourceLocation::current());
// torch.bmm: [b,m,k]·[b,k,n] -> [b,m,n], strictly 3-D with equal batches (no broadcasting).
Tensor bmm(const Tensor& a, const Tensor& b, SourceLocation location = SourceLocation::current());

namespace detail {
// An op along `axis` of a scalar, as PyTorch: the scalar is one element along axis 0 (or −1), so
// the op runs on its [1] view and its result is returned as a scalar (keepdim keeps no axis);
// any other axis is an error naming the op and the caller.
template <class Fn>
Tensor on_scalar_axis(const Tensor& scalar, std::int64_t axis, const char* op,
                      SourceLocation location, Fn&& op_on_vector) {
  if (axis != 0 && axis != -1) {
    detail::fail_at(op, location, "axis {} is out of range for a scalar (expected -1 or 0)", axis);
  }
  return reshape(op_on_vector(reshape(scalar, Shape{1}, location)), Shape{}, location);
}
}  // namespace detail

// ---- softmax family and losses (ops/softmax.cpp, ops/loss.cpp) ----
Tensor softmax(const Tensor& x, std::int64_t axis = -1,
               SourceLocation location = SourceLocation::current());
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1,
                   SourceLocation location = SourceLocation::current());

enum class Reduction { mean, sum, none };
namespace detail {
// The reduction of an elementwise loss, shared by every loss function.
Tensor reduce_loss(const Tensor& loss, Reduction reduction,
                   SourceLocation location = SourceLocation::current());
}  // namespace detail

// Softmax cross-entropy of logits [N, C] against int64 class labels [N], fused on log-softmax:
// finite for any finite logits, gradient (softmax − onehot)/N.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels,
                     Reduction reduction = Reduction::mean,
                     SourceLocation location = SourceLocation::current());
// Negative log-likelihood of log-probabilities [N, C] against int64 labels [N].
Tensor nll_loss(const Tensor& log_probs, const Tensor& labels,
                Reduction reduction = Reduction::mean,
                SourceLocation location = SourceLocation::current());

// torch.nn.functional.cross_entropy's options. Scores are [N, C], [N, C, d1, ...] with labels
// [N, d1, ...], or unbatched [C] with a scalar label. A label equal to ignore_index contributes 0
// and is left out of the mean, whose denominator is the sum of the weights of the other labels
// (NaN when every label is ignored, as PyTorch). label_smoothing ε mixes in the uniform
// distribution, as PyTorch: (1 − ε)·nll + ε/C·Σ_c w_c·(−log p_c). No gradient flows to `weight`
// (PyTorch has none either): a weight that requires grad is an error in the backward pass.
struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  Tensor weight{};  // [C] class weights; undefined = all ones
};
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& options,
                     SourceLocation location = SourceLocation::current());
struct NllLossOptions {
  Reduction reduction = Reduction::mean;
  std::int64_t ignore_index = -100;
  Tensor weight{};
};
Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, const NllLossOptions& options,
                SourceLocation location = SourceLocation::current());
// Binary cross-entropy of logits against targets in [0, 1], in the stable form
// max(x, 0) − x·y + log(1 + e^(−|x|)): finite for any finite logits.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction = Reduction::mean,
                                        SourceLocation location = SourceLocation::current());
Tensor mse_loss(const Tensor& prediction, const Tensor& target,
                Reduction reduction = Reduction::mean,
                SourceLocation location = SourceLocation::current());

// ---- operators ----

inline Tensor operator+(Operand a, const Tensor& b) {
  return add(a.tensor, b, a.location);
}
inline Tensor operator-(Operand a, const Tensor& b) {
  return sub(a.tensor, b, a.location);
}
inline Tensor operator*(Operand a, const Tensor& b) {
  return mul(a.tensor, b, a.location);
}
inline Tensor operator/(Operand a, const Tensor& b) {
  return div(a.tensor, b, a.location);
}
inline Tensor operator+(Operand a, double b) {
  return add(a.tensor, b, a.location);
}
inline Tensor operator-(Operand a, double b) {
  return add(a.tensor, -b, a.location);
}
inline Tensor operator*(Operand a, double b) {
  return mul(a.tensor, b, a.location);
}
inline Tensor operator/(Operand a, double b) {
  return mul(a.tensor, 1.0 / b, a.location);
}
inline Tensor operator+(double a, Operand b) {
  return add(b.tensor, a, b.location);
}
inline Tensor operator-(double a, Operand b) {
  return add(neg(b.tensor, b.location), a, b.location);
}
inline Tensor operator*(double a, Operand b) {
  return mul(b.tensor, a, b.location);
}
inline Tensor operator/(double a, Operand b) {
  return mul(pow(b.tensor, -1.0, b.location), a, b.location);
}
inline Tensor operator-(Operand x) {
  return neg(x.tensor, x.location);
}

}  // namespace tg
