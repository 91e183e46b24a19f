// Regression and distribution losses, composed of ops, with d = input − target (broadcast):
//
//   l1_loss         ℓ = |d|                                     dd = g ⊙ sgn d (0 at d = 0)
//   smooth_l1_loss  ℓ = d²/(2β) if |d| < β, else |d| − β/2       dd = g ⊙ clamp(d/β, −1, 1)
//   huber_loss      ℓ = d²/2 if |d| < δ, else δ(|d| − δ/2)      dd = g ⊙ clamp(d, −δ, δ)
//   kl_div          ℓ = t (log t − x), 0 where t = 0; with log_target, eᵗ (t − x)
//
// The branch masks [|d| < β] are constants (both branches meet with equal slope at |d| = β), so
// the composed rules are differentiable again. Reductions: none, sum, mean over every element,
// and for kl_div also batchmean (the sum over the size of dimension 0), PyTorch's correct KL.
#include <cmath>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"

namespace tg {
namespace {

Tensor reduced(const Tensor& loss, KlReduction reduction, const SourceLocation& location) {
  switch (reduction) {
    case KlReduction::batchmean:
      return sum(loss, location) / double(loss.rank() == 0 ? 1 : loss.shape()[0]);
    case KlReduction::mean:
      return detail::reduce_loss(loss, Reduction::mean, location);
    case KlReduction::sum:
      return detail::reduce_loss(loss, Reduction::sum, location);
    case KlReduction::none:
      return loss;
  }
  return loss;
}

// Where |d| < width: 1, else 0; a constant of the rules.
Tensor inside(const Tensor& d, double width, const char* op) {
  return detail::mask_where(d.detach(), op, [width](auto v) { return std::abs(v) < width; });
}

void check_width(double width, const char* name, const char* op, const SourceLocation& location) {
  if (!(width >= 0) || std::isinf(width)) {
    detail::fail_at(op, location, "{} must be finite and >= 0, got {}", name, width);
  }
}

}  // namespace

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction,
               SourceLocation location) {
  return detail::composite("l1_loss", location, [&] {
    return detail::reduce_loss(abs(sub(input, target, location), location), reduction, location);
  });
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction, double beta,
                      SourceLocation location) {
  check_width(beta, "beta", "smooth_l1_loss", location);
  return detail::composite("smooth_l1_loss", location, [&] {
    const Tensor d = sub(input, target, location);
    const Tensor quadratic = inside(d, beta, "smooth_l1_loss");
    // β = 0 never takes the quadratic branch: the loss is l1_loss, as in PyTorch.
    const Tensor square_part = beta > 0 ? quadratic * (d * d) * (0.5 / beta) : zeros_like(d);
    const Tensor loss = square_part + (1.0 - quadratic) * (abs(d, location) - 0.5 * beta);
    return detail::reduce_loss(loss, reduction, location);
  });
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction, double delta,
                  SourceLocation location) {
  check_width(delta, "delta", "huber_loss", location);
  return detail::composite("huber_loss", location, [&] {
    const Tensor d = sub(input, target, location);
    const Tensor quadratic = inside(d, delta, "huber_loss");
    const Tensor loss =
        quadratic * (d * d) * 0.5 + (1.0 - quadratic) * (abs(d, location) - 0.5 * delta) * delta;
    return detail::reduce_loss(loss, reduction, location);
  });
}

Tensor kl_div(const Tensor& input, const Tensor& target, KlReduction reduction, bool log_target,
              SourceLocation location) {
  return detail::composite("kl_div", location, [&] {
    detail::check_same_floating(input, target, "kl_div", location);
    if (log_target) {
      return reduced(exp(target, location) * (target - input), reduction, location);
    }
    // t log t is 0 at t = 0 (its limit, PyTorch's xlogy); log is taken of 1 there so that no
    // inf · 0 reaches the values or the gradients.
    const Tensor positive =
        detail::mask_where(target.detach(), "kl_div", [](auto v) { return v > 0; });
    const Tensor safe = target * positive + (1.0 - positive);
    return reduced(positive * target * (log(safe, location) - input), reduction, location);
  });
}

namespace detail {

void register_regression_loss_ops(OpRegistry& registry) {
  // Differences at least 0.1 from 0 and from the branch points ±1 (β and δ), where finite
  // differences straddle a kink.
  const auto pairs = [](DType dtype) {
    Generator gen(127);
    const Tensor target = sample({2, 3}, dtype, gen);
    return std::vector<OpSample>{
        {"[2, 3] and [2, 3]",
         {target + from_vector({-2.5, -0.6, -0.1, 0.3, 0.9, 1.7}, {2, 3}, dtype), target}},
        {"[2, 3] and [3]",
         {from_vector({1.5, -0.4, 2.2, 0.35, 3, -1.2}, {2, 3}, dtype),
          from_vector({0.2, 0.1, -0.5}, {3}, dtype)}}};
  };
  // The target as kl_div takes it: probabilities, or log-probabilities with log_target.
  const auto distributions = [](bool log_target) {
    return [log_target](DType dtype) {
      Generator gen(131);
      const Tensor input = log_softmax(sample({3, 4}, dtype, gen), -1);
      const Tensor logits = sample({3, 4}, dtype, gen);
      return std::vector<OpSample>{
          {log_target ? "[3, 4] log-probabilities and log-probabilities"
                      : "[3, 4] log-probabilities and probabilities",
           {input, log_target ? log_softmax(logits, -1) : softmax(logits, -1)}}};
    };
  };
  for (const Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
    const std::string suffix = reduction == Reduction::mean  ? "(mean)"
                               : reduction == Reduction::sum ? "(sum)"
                                                             : "(none)";
    registry.add({"l1_loss" + suffix,
                  [=](const auto& in) { return l1_loss(in[0], in[1], reduction); },
                  pairs,
                  {}});
    registry.add({"smooth_l1_loss" + suffix,
                  [=](const auto& in) { return smooth_l1_loss(in[0], in[1], reduction, 1.0); },
                  pairs,
                  {}});
    registry.add({"huber_loss" + suffix,
                  [=](const auto& in) { return huber_loss(in[0], in[1], reduction, 1.0); },
                  pairs,
                  {}});
  }
  for (const KlReduction reduction :
       {KlReduction::mean, KlReduction::sum, KlReduction::none, KlReduction::batchmean}) {
    const char* names[] = {"mean", "sum", "none", "batchmean"};
    const std::string name = names[int(reduction)];
    for (const bool log_target : {false, true}) {
      registry.add({fmt::format("kl_div({}{})", name, log_target ? ", log_target" : ""),
                    [=](const auto& in) { return kl_div(in[0], in[1], reduction, log_target); },
                    distributions(log_target),
                    {}});
    }
  }
}

}  // namespace detail
}  // namespace tg
