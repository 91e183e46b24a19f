// Losses. With r the reduction's scale (1/N for mean, 1 for sum, per-sample for none):
//
//   cross_entropy  ℓᵢ = −log_softmax(xᵢ)[yᵢ]     dx = (softmax(x) − onehot(y)) ⊙ r·g
//   nll_loss       ℓᵢ = −pᵢ[yᵢ]                  dp = −onehot(y) ⊙ r·g
//   mse_loss       ℓ = (a − b)²                  da = 2(a − b) ⊙ r·g,  db = −da
//   binary_cross_entropy_with_logits
//                  ℓ = max(x, 0) − x·y + log1p(e^(−|x|))
//                                                dx = (sigmoid(x) − y) ⊙ r·g,  dy = −x ⊙ r·g
//
// cross_entropy is one fused entry on log-softmax: its gradient softmax − onehot stays accurate
// where going through softmax and then log would lose it (a probability rounded to 0 or 1), and
// log-softmax is accurate at any magnitude (ops/softmax.cpp), so the gradient sums to 0 per row.
// The binary loss is one kernel, accurate to a few ulps for any finite logit: max(x, 0) − x·y is
// x·(1 − y) or −x·y (no cancellation for y near 1), and log1p keeps e^(−|x|) where 1 + e^(−|x|)
// would round it away (PyTorch's log(1 + e^(−|x|)) is 0.1 % off at |x| = 30 in float64). At
// x = −inf with y > 0 the loss is its limit +inf, where PyTorch's formula gives NaN.
#include <cmath>

#include "autograd/tape.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "ops/registrations.h"

namespace tg {

Tensor detail::reduce_loss(const Tensor& loss, Reduction reduction, SourceLocation location) {
  switch (reduction) {
    case Reduction::mean:
      return mean(loss, location);
    case Reduction::sum:
      return sum(loss, location);
    case Reduction::none:
      return loss;
  }
  return loss;
}
namespace {

struct ReductionAttrs {
  Reduction reduction;
};

const char* reduction_name(Reduction r) {
  return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none";
}

void check_class_inputs(const Tensor& scores, const Tensor& labels, const char* op) {
  if (!is_floating(scores.dtype())) {
    fail("{}: expected floating scores (float32 or float64), got {}", op,
         dtype_name(scores.dtype()));
  }
  if (scores.rank() != 2) {
    fail("{}: expected scores of shape [N, C], got {}", op, scores.shape().str());
  }
  if (labels.dtype() != i64 || labels.rank() != 1 || labels.shape()[0] != scores.shape()[0]) {
    fail("{}: expected int64 labels of shape [{}], got {} {}", op, scores.shape()[0],
         dtype_name(labels.dtype()), labels.shape().str());
  }
  const std::int64_t classes = scores.shape()[1];
  const std::int64_t* y = labels.data<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    if (y[i] < 0 || y[i] >= classes) {
      fail("{}: label {} of sample {} is out of range for {} classes", op, y[i], i, classes);
    }
  }
}

// The reduction's scale on an elementwise loss of n elements.
double elementwise_scale(Reduction reduction, std::int64_t n) {
  return reduction == Reduction::mean ? 1.0 / double(n) : 1.0;
}

// A constant [N, C] tensor with 1 at (i, labels[i]).
Tensor one_hot(const Tensor& labels, std::int64_t classes, DType dtype) {
  Tensor out = zeros({labels.numel(), classes}, dtype);
  const std::int64_t* y = labels.data<std::int64_t>();
  dispatch_floating(dtype, "one_hot", [&]<class T>() {
    for (std::int64_t i = 0; i < labels.numel(); ++i) out.data<T>()[i * classes + y[i]] = T(1);
  });
  return out;
}

// −Σᵢ pᵢ[yᵢ] reduced: the shared tail of cross_entropy and nll_loss.
Tensor reduce_picked(const Tensor& log_probs, const Tensor& labels, Reduction reduction) {
  const std::int64_t n = log_probs.shape()[0];
  const std::int64_t classes = log_probs.shape()[1];
  const std::int64_t* y = labels.data<std::int64_t>();
  return dispatch_floating(log_probs.dtype(), "loss", [&]<class T>() {
    const T* p = log_probs.data<T>();
    if (reduction == Reduction::none) {
      Tensor out = empty({n}, log_probs.dtype());
      for (std::int64_t i = 0; i < n; ++i) out.data<T>()[i] = -p[i * classes + y[i]];
      return out;
    }
    T total = 0;
    for (std::int64_t i = 0; i < n; ++i) total -= p[i * classes + y[i]];
    Tensor out = empty({}, log_probs.dtype());
    *out.data<T>() = reduction == Reduction::mean ? total / T(n) : total;
    return out;
  });
}

// g scaled by the reduction, shaped to broadcast against [N, C].
Tensor scaled_grad(const Tensor& g, Reduction reduction, std::int64_t n) {
  switch (reduction) {
    case Reduction::mean:
      return g * (1.0 / double(n));
    case Reduction::sum:
      return g;
    case Reduction::none:
      return reshape(g, {n, 1});
  }
  return g;
}

Tensor cross_entropy_forward(ForwardContext& ctx, const ReductionAttrs& a) {
  const Tensor log_probs = log_softmax(ctx.input(0), 1);
  ctx.save(exp(log_probs));
  return reduce_picked(log_probs, ctx.input(1), a.reduction);
}
void cross_entropy_backward(BackwardContext& ctx, const ReductionAttrs& a) {
  const Tensor& logits = ctx.input(0);
  // The saved softmax is a plain value; under create_graph it is recomputed from the logits so
  // the second derivative sees its dependence on them.
  const Tensor probs = ctx.create_graph() ? softmax(logits, 1) : ctx.saved(0);
  const Tensor target = one_hot(ctx.input(1), logits.shape()[1], logits.dtype());
  ctx.set_grad(0,
               (probs - target) * scaled_grad(ctx.grad_output(), a.reduction, logits.shape()[0]));
}
const Op<ReductionAttrs> kCrossEntropy{"cross_entropy", "dx = (softmax(x) − onehot(y)) ⊙ r·g",
                                       cross_entropy_forward, cross_entropy_backward};

Tensor nll_forward(ForwardContext& ctx, const ReductionAttrs& a) {
  return reduce_picked(ctx.input(0), ctx.input(1), a.reduction);
}
void nll_backward(BackwardContext& ctx, const ReductionAttrs& a) {
  const Tensor& log_probs = ctx.input(0);
  const Tensor target = one_hot(ctx.input(1), log_probs.shape()[1], log_probs.dtype());
  ctx.set_grad(0, -target * scaled_grad(ctx.grad_output(), a.reduction, log_probs.shape()[0]));
}
const Op<ReductionAttrs> kNll{"nll_loss", "dp = −onehot(y) ⊙ r·g", nll_forward, nll_backward};

Tensor mse_forward(ForwardContext& ctx, const ReductionAttrs& a) {
  const Tensor diff = sub(ctx.input(0), ctx.input(1));
  return detail::reduce_loss(mul(diff, diff), a.reduction);
}
void mse_backward(BackwardContext& ctx, const ReductionAttrs& a) {
  const Tensor diff = ctx.input(0) - ctx.input(1);
  const double scale = 2.0 * elementwise_scale(a.reduction, diff.numel());
  const Tensor grad = diff * ctx.grad_output() * scale;
  if (ctx.needs_grad(0)) ctx.set_grad(0, grad);
  if (ctx.needs_grad(1)) ctx.set_grad(1, -grad);
}
const Op<ReductionAttrs> kMse{"mse_loss", "da = 2(a − b) ⊙ r·g, db = −da", mse_forward,
                              mse_backward};

Tensor bce_forward(ForwardContext& ctx, const ReductionAttrs& a) {
  const Tensor loss = detail::map_binary(
      ctx.input(0), ctx.input(1), "binary_cross_entropy_with_logits",
      [](const auto& x, const auto& y) {
        using T = typename std::decay_t<decltype(x)>::Scalar;
        return (x > T(0)).select(x * (T(1) - y), -(x * y)) + detail::exp_array(-x.abs()).log1p();
      });
  return detail::reduce_loss(loss, a.reduction);
}
void bce_backward(BackwardContext& ctx, const ReductionAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& y = ctx.input(1);
  const std::int64_t n = broadcast_shapes(x.shape(), y.shape(), "bce").numel();
  const Tensor g = ctx.grad_output() * elementwise_scale(a.reduction, n);
  if (ctx.needs_grad(0)) ctx.set_grad(0, (sigmoid(x) - y) * g);
  if (ctx.needs_grad(1)) ctx.set_grad(1, -(x * g));
}
const Op<ReductionAttrs> kBce{"binary_cross_entropy_with_logits",
                              "dx = (sigmoid(x) − y) ⊙ r·g, dy = −x ⊙ r·g", bce_forward,
                              bce_backward};

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction, SourceLocation location) {
  detail::check_same_floating(logits, targets, "binary_cross_entropy_with_logits");
  broadcast_shapes(logits.shape(), targets.shape(), "binary_cross_entropy_with_logits");
  return kBce({reduction}, location, logits, targets);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, Reduction reduction,
                     SourceLocation location) {
  check_class_inputs(logits, labels, "cross_entropy");
  return kCrossEntropy({reduction}, location, logits, labels);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, Reduction reduction,
                SourceLocation location) {
  check_class_inputs(log_probs, labels, "nll_loss");
  return kNll({reduction}, location, log_probs, labels);
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target, Reduction reduction,
                SourceLocation location) {
  detail::check_same_floating(prediction, target, "mse_loss");
  broadcast_shapes(prediction.shape(), target.shape(), "mse_loss");
  return kMse({reduction}, location, prediction, target);
}

namespace detail {

void register_loss_ops(OpRegistry& registry) {
  const auto class_samples = [](DType dtype) {
    Generator gen(59);
    return std::vector<OpSample>{
        {"[4, 3] logits", {sample({4, 3}, dtype, gen, -3, 3), int64_tensor({0, 2, 1, 2})}},
        {"[1, 5] logits", {sample({1, 5}, dtype, gen, -3, 3), int64_tensor({4})}},
        {"[2, 3] logits at ±1e4",
         {from_vector({1e4, 1e4 + 1, 1e4 - 2, -1e4, 0, 1e4}, {2, 3}, dtype),
          int64_tensor({0, 2})}}};
  };
  for (const Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    const std::string suffix = fmt::format("({})", reduction_name(r));
    registry.add({"cross_entropy" + suffix,
                  [=](const auto& in) { return cross_entropy(in[0], in[1], r); },
                  class_samples,
                  {}});
    registry.add({"nll_loss" + suffix,
                  [=](const auto& in) { return nll_loss(in[0], in[1], r); },
                  class_samples,
                  {}});
    registry.add({"binary_cross_entropy_with_logits" + suffix,
                  [=](const auto& in) { return binary_cross_entropy_with_logits(in[0], in[1], r); },
                  [](DType dtype) {
                    Generator gen(73);
                    return std::vector<OpSample>{
                        {"[2, 3] logits, targets in [0, 1]",
                         {sample({2, 3}, dtype, gen, -4, 4), sample({2, 3}, dtype, gen, 0, 1)}},
                        {"[4] logits, [1] target",
                         {sample({4}, dtype, gen, -4, 4), sample({1}, dtype, gen, 0, 1)}},
                        {"[6] logits at ±30 and ±1e4",
                         {from_vector({-1e4, -30, 0, 30, 1e4, 1e4}, {6}, dtype),
                          from_vector({0, 1, 0.5, 0.25, 1, 0.75}, {6}, dtype)}}};
                  },
                  {}});
    registry.add(
        {"mse_loss" + suffix,
         [=](const auto& in) { return mse_loss(in[0], in[1], r); },
         [](DType dtype) {
           Generator gen(61);
           return std::vector<OpSample>{
               {"[2, 3] and [2, 3]", {sample({2, 3}, dtype, gen), sample({2, 3}, dtype, gen)}},
               {"[2, 3] and [3]", {sample({2, 3}, dtype, gen), sample({3}, dtype, gen)}}};
         },
         {}});
  }
}

}  // namespace detail
}  // namespace tg
