// Losses. With r the reduction's scale (1/N for mean, 1 for sum, per-sample for none):
//
//   cross_entropy  ℓᵢ = −Σ_c qᵢ_c log_softmax(xᵢ)_c   dx = (softmax(x)·Σ_c q − q) ⊙ g
//   nll_loss       ℓᵢ = −Σ_c qᵢ_c pᵢ_c                 dp = −q ⊙ g
//     with qᵢ = r·((1 − ε)·w[yᵢ]·onehot(yᵢ) + ε/C·w) for class weights w (default 1) and label
//     smoothing ε, qᵢ = 0 for a label equal to ignore_index, and for the mean r = 1/Σ w[yᵢ] over
//     the labels not ignored (PyTorch's; NaN when every label is ignored, the gradient then 0).
//     The scores are [N, C, d...] (class axis 1) or unbatched [C] (class axis 0).
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
#include <fmt/ranges.h>

#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/tape.h"
#include "ops/everyday.h"
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

// The class axis of scores: 0 for unbatched [C], else 1 ([N, C, d1, ...]).
int class_axis(const Tensor& scores) {
  return scores.rank() == 1 ? 0 : 1;
}

void check_class_inputs(const Tensor& scores, const Tensor& labels, const Tensor& weight,
                        std::int64_t ignore_index, const char* op, const SourceLocation& location) {
  if (!is_floating(scores.dtype())) {
    detail::fail_at(op, location, "expected floating scores (float32 or float64), got {}",
                    dtype_name(scores.dtype()));
  }
  if (scores.rank() == 0) {
    detail::fail_at(op, location,
                    "expected scores [N, C] or [N, C, d1, ...] (or unbatched [C]), got a scalar");
  }
  const Shape expected =
      scores.rank() == 1 ? Shape{} : scores.shape().without_axis(class_axis(scores));
  if (labels.dtype() != i64 || !(labels.shape() == expected)) {
    detail::fail_at(op, location,
                    "expected int64 labels of shape {} for scores {} ([N, C] or [N, C, d1, ...] "
                    "with labels [N, d1, ...], or [C] with a scalar label), got {} {}",
                    expected.str(), scores.shape().str(), dtype_name(labels.dtype()),
                    labels.shape().str());
  }
  const std::int64_t classes = scores.shape()[class_axis(scores)];
  if (weight.defined() &&
      (weight.dtype() != scores.dtype() || !(weight.shape() == Shape{classes}))) {
    detail::fail_at(op, location, "expected a {} weight of shape [{}] for scores {}, got {} {}",
                    dtype_name(scores.dtype()), classes, scores.shape().str(),
                    dtype_name(weight.dtype()), weight.shape().str());
  }
  const std::int64_t* y = labels.data<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    if (y[i] != ignore_index && (y[i] < 0 || y[i] >= classes)) {
      detail::fail_at(op, location,
                      "label {} at position [{}] (sample {}) is out of range for {} classes "
                      "(expected 0 to {}, or ignore_index {})",
                      y[i], fmt::join(unravel_index(i, labels.shape()), ", "),
                      labels.rank() == 0 ? 0 : unravel_index(i, labels.shape())[0], classes,
                      classes - 1, ignore_index);
    }
  }
}

// The reduction's scale on an elementwise loss of n elements.
double elementwise_scale(Reduction reduction, std::int64_t n) {
  return reduction == Reduction::mean ? 1.0 / double(n) : 1.0;
}

struct ClassLossAttrs {
  Reduction reduction;
  std::int64_t ignore_index;
  double label_smoothing;  // 0 for nll_loss
};

// Walks the labels of scores [outer, C, inner]: visit(position, offset of class 0, label, w[label])
// for each label that is not ignored, and returns Σ w[label], the mean's denominator.
template <class T, class Visit>
T for_each_label(const Tensor& scores, const Tensor& labels, const T* weight,
                 const ClassLossAttrs& a, Visit visit) {
  const AxisSplit s = split_at_axis(scores.shape(), class_axis(scores));
  const std::int64_t* y = labels.data<std::int64_t>();
  T total_weight = 0;
  for (std::int64_t o = 0; o < s.outer; ++o) {
    for (std::int64_t i = 0; i < s.inner; ++i) {
      const std::int64_t at = o * s.inner + i;
      if (y[at] == a.ignore_index) continue;
      const T w = weight ? weight[y[at]] : T(1);
      total_weight += w;
      visit(at, o * s.dim * s.inner + i, y[at], w);
    }
  }
  return total_weight;
}

template <class T, class Context>
const T* weight_data(const Context& ctx) {
  return ctx.num_inputs() == 3 ? ctx.input(2).template data<T>() : nullptr;
}

// PyTorch's loss on log-probabilities [N, C, d...]: ℓ = −w[y]·p[y] for a label that is not
// ignored (0 for one that is) and, with label smoothing ε, (1 − ε)·ℓ + ε/C·Σ_c −w_c·p_c, each of
// the two terms reduced separately (a mean divides by Σ w[y] over the labels not ignored).
Tensor class_loss(const Tensor& log_probs, const Tensor& labels, const ForwardContext& ctx,
                  const ClassLossAttrs& a) {
  const AxisSplit s = split_at_axis(log_probs.shape(), class_axis(log_probs));
  const double eps = a.label_smoothing;
  return dispatch_floating(log_probs.dtype(), "loss", [&]<class T>() {
    const T* p = log_probs.data<T>();
    const T* weight = weight_data<T>(ctx);
    Tensor none = zeros(labels.shape(), log_probs.dtype());
    T* out = none.data<T>();
    T nll = 0, smooth = 0;
    const T total_weight = for_each_label<T>(
        log_probs, labels, weight, a,
        [&](std::int64_t at, std::int64_t first, std::int64_t y, T w) {
          const T picked = -(w * p[first + y * s.inner]);
          T spread = 0;
          if (eps > 0) {
            for (std::int64_t c = 0; c < s.dim; ++c) {
              spread -= (weight ? weight[c] : T(1)) * p[first + c * s.inner];
            }
          }
          nll += picked;
          smooth += spread;
          out[at] = eps > 0 ? T(1 - eps) * picked + spread * T(eps / double(s.dim)) : picked;
        });
    if (a.reduction == Reduction::none) return none;
    if (a.reduction == Reduction::mean) {
      nll /= total_weight;
      smooth /= total_weight;
    }
    Tensor out_scalar = empty({}, log_probs.dtype());
    *out_scalar.data<T>() = eps > 0 ? T(1 - eps) * nll + smooth * T(eps / double(s.dim)) : nll;
    return out_scalar;
  });
}

// −∂ℓ/∂p as constants q (of the scores' shape) with the reduction's scale folded in, and their
// sum over the classes: the gradient is −q·g for nll_loss and (softmax·Σq − q)·g for
// cross_entropy. An ignored label's q is 0, so its gradient is 0 even when the mean divides by 0.
std::pair<Tensor, Tensor> class_targets(const BackwardContext& ctx, const ClassLossAttrs& a) {
  const Tensor& scores = ctx.input(0);
  const Tensor& labels = ctx.input(1);
  const AxisSplit s = split_at_axis(scores.shape(), class_axis(scores));
  const double eps = a.label_smoothing;
  return dispatch_floating(scores.dtype(), "loss", [&]<class T>() {
    const T* weight = weight_data<T>(ctx);
    const auto class_weight = [&](std::int64_t c) { return weight ? weight[c] : T(1); };
    T weight_sum = 0;
    for (std::int64_t c = 0; c < s.dim; ++c) weight_sum += class_weight(c);
    const T total_weight = for_each_label<T>(scores, labels, weight, a,
                                             [](std::int64_t, std::int64_t, std::int64_t, T) {});
    const T scale = a.reduction == Reduction::mean ? T(1) / total_weight : T(1);
    const T spread = scale * T(eps / double(s.dim));
    Tensor q = zeros(scores.shape(), scores.dtype());
    Tensor q_sum = zeros(scores.shape().with_dim(class_axis(scores), 1), scores.dtype());
    T* pq = q.data<T>();
    T* ps = q_sum.data<T>();
    for_each_label<T>(scores, labels, weight, a,
                      [&](std::int64_t at, std::int64_t first, std::int64_t y, T w) {
                        if (eps > 0) {
                          for (std::int64_t c = 0; c < s.dim; ++c) {
                            pq[first + c * s.inner] = spread * class_weight(c);
                          }
                        }
                        pq[first + y * s.inner] += scale * T(1 - eps) * w;
                        ps[at] = scale * T(1 - eps) * w + spread * weight_sum;
                      });
    return std::pair{q, q_sum};
  });
}

// g shaped to broadcast against the scores: per label for none, a scalar otherwise.
Tensor class_grad_output(const BackwardContext& ctx, const ClassLossAttrs& a) {
  const Tensor& g = ctx.grad_output();
  return a.reduction == Reduction::none ? unsqueeze(g, class_axis(ctx.input(0))) : g;
}

void check_no_weight_grad(const BackwardContext& ctx) {
  if (ctx.num_inputs() == 3 && ctx.needs_grad(2)) {
    fail(
        "{}: no gradient with respect to the class weights (PyTorch has none either); pass a "
        "weight that does not require grad",
        ctx.op_name());
  }
}

Tensor cross_entropy_forward(ForwardContext& ctx, const ClassLossAttrs& a) {
  const Tensor log_probs = log_softmax(ctx.input(0), class_axis(ctx.input(0)));
  ctx.save(exp(log_probs));
  return class_loss(log_probs, ctx.input(1), ctx, a);
}
void cross_entropy_backward(BackwardContext& ctx, const ClassLossAttrs& a) {
  check_no_weight_grad(ctx);
  const Tensor& logits = ctx.input(0);
  // The saved softmax is a plain value; under create_graph it is recomputed from the logits so
  // the second derivative sees its dependence on them.
  const Tensor probs = ctx.create_graph() ? softmax(logits, class_axis(logits)) : ctx.saved(0);
  const auto [q, q_sum] = class_targets(ctx, a);
  ctx.set_grad(0, (probs * q_sum - q) * class_grad_output(ctx, a));
}
const Op<ClassLossAttrs> kCrossEntropy{"cross_entropy",
                                       "dx = (softmax(x)·Σq − q) ⊙ g, q = r·((1 − ε)·w_y·onehot(y) "
                                       "+ ε/C·w)",
                                       cross_entropy_forward, cross_entropy_backward};

Tensor nll_forward(ForwardContext& ctx, const ClassLossAttrs& a) {
  return class_loss(ctx.input(0), ctx.input(1), ctx, a);
}
void nll_backward(BackwardContext& ctx, const ClassLossAttrs& a) {
  check_no_weight_grad(ctx);
  ctx.set_grad(0, -class_targets(ctx, a).first * class_grad_output(ctx, a));
}
const Op<ClassLossAttrs> kNll{"nll_loss", "dp = −r·w_y·onehot(y) ⊙ g", nll_forward, nll_backward};

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
  detail::check_same_floating(logits, targets, "binary_cross_entropy_with_logits", location);
  detail::composite("binary_cross_entropy_with_logits", location, [&] {
    broadcast_shapes(logits.shape(), targets.shape(), "binary_cross_entropy_with_logits");
  });
  return kBce({reduction}, location, logits, targets);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& options,
                     SourceLocation location) {
  check_class_inputs(logits, labels, options.weight, options.ignore_index, "cross_entropy",
                     location);
  if (!(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0)) {
    detail::fail_at("cross_entropy", location, "label_smoothing must be in [0, 1], got {}",
                    options.label_smoothing);
  }
  const ClassLossAttrs attrs{options.reduction, options.ignore_index, options.label_smoothing};
  if (!options.weight.defined()) return kCrossEntropy(attrs, location, logits, labels);
  return kCrossEntropy(attrs, location, logits, labels, options.weight);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, Reduction reduction,
                     SourceLocation location) {
  return cross_entropy(logits, labels, CrossEntropyOptions{.reduction = reduction}, location);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, const NllLossOptions& options,
                SourceLocation location) {
  check_class_inputs(log_probs, labels, options.weight, options.ignore_index, "nll_loss", location);
  const ClassLossAttrs attrs{options.reduction, options.ignore_index, 0.0};
  if (!options.weight.defined()) return kNll(attrs, location, log_probs, labels);
  return kNll(attrs, location, log_probs, labels, options.weight);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, Reduction reduction,
                SourceLocation location) {
  return nll_loss(log_probs, labels, NllLossOptions{.reduction = reduction}, location);
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target, Reduction reduction,
                SourceLocation location) {
  detail::check_same_floating(prediction, target, "mse_loss", location);
  detail::composite("mse_loss", location,
                    [&] { broadcast_shapes(prediction.shape(), target.shape(), "mse_loss"); });
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
  // Four classes, a label ignored in each batched sample, and the unbatched form.
  const auto option_samples = [](std::int64_t ignore) {
    return [ignore](DType dtype) {
      Generator gen(83);
      return std::vector<OpSample>{
          {"[4, 4] logits, one label ignored",
           {sample({4, 4}, dtype, gen, -3, 3), int64_tensor({0, ignore, 3, 2})}},
          {"[2, 4, 3] logits, labels [2, 3]",
           {sample({2, 4, 3}, dtype, gen, -3, 3), int64_tensor({1, 3, ignore, 0, 2, 2}, {2, 3})}},
          {"unbatched [4] logits, scalar label",
           {sample({4}, dtype, gen, -3, 3), int64_tensor({2}, {})}}};
    };
  };
  // The class weights, in the scores' dtype (float64 when the bad-input test passes int64).
  const auto class_weight = [](const Tensor& scores) {
    return from_vector({0.5, 2.0, 1.0, 1.5}, {4},
                       is_floating(scores.dtype()) ? scores.dtype() : f64);
  };
  for (const Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    const std::string suffix = fmt::format("({})", reduction_name(r));
    struct ClassOptions {
      const char* name;  // the registered name without the reduction
      std::int64_t ignore_index;
      double label_smoothing;  // 0 for nll_loss
      bool weighted;
    };
    for (const ClassOptions o :
         {ClassOptions{"cross_entropy(weight, ignore_index=1", 1, 0.0, true},
          ClassOptions{"cross_entropy(label_smoothing=0.2", -100, 0.2, false},
          ClassOptions{"cross_entropy(label_smoothing=0.3, weight", -100, 0.3, true},
          ClassOptions{"nll_loss(weight, ignore_index=1", 1, 0.0, true}}) {
      const bool nll = std::string_view(o.name).starts_with("nll_loss");
      registry.add(
          {fmt::format("{}, {})", o.name, reduction_name(r)),
           [=](const auto& in) {
             const Tensor weight = o.weighted ? class_weight(in[0]) : Tensor();
             return nll ? nll_loss(
                              in[0], in[1],
                              {.reduction = r, .ignore_index = o.ignore_index, .weight = weight})
                        : cross_entropy(in[0], in[1],
                                        {.reduction = r,
                                         .ignore_index = o.ignore_index,
                                         .label_smoothing = o.label_smoothing,
                                         .weight = weight});
           },
           option_samples(o.ignore_index),
           {}});
    }
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
