#include "nn/loss_module.h"

#include <utility>

namespace tg::nn {

std::string Loss::describe() const {
  return detail::class_name(typeid(*this)) + "()";
}

Tensor Loss::forward(const Tensor&) {
  fail("{}: a loss takes (input, target), not one tensor", detail::class_name(typeid(*this)));
}

void Loss::register_weight(Tensor& weight) {
  if (weight.defined()) register_buffer("weight", weight, weight);
}

Tensor MSELoss::forward(const Tensor& input, const Tensor& target, SourceLocation location) {
  return mse_loss(input, target, options_.reduction, location);
}

Tensor L1Loss::forward(const Tensor& input, const Tensor& target, SourceLocation location) {
  return l1_loss(input, target, options_.reduction, location);
}

Tensor SmoothL1Loss::forward(const Tensor& input, const Tensor& target, SourceLocation location) {
  return smooth_l1_loss(input, target, options_.reduction, options_.beta, location);
}

Tensor BCEWithLogitsLoss::forward(const Tensor& input, const Tensor& target,
                                  SourceLocation location) {
  return binary_cross_entropy_with_logits(input, target, options_.reduction, location);
}

CrossEntropyLoss::CrossEntropyLoss(CrossEntropyLossOptions options) : options_(std::move(options)) {
  register_weight(options_.weight);
}

Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target,
                                 SourceLocation location) {
  return cross_entropy(input, target, options_, location);
}

NLLLoss::NLLLoss(NLLLossOptions options) : options_(std::move(options)) {
  register_weight(options_.weight);
}

Tensor NLLLoss::forward(const Tensor& input, const Tensor& target, SourceLocation location) {
  return nll_loss(input, target, options_, location);
}

}  // namespace tg::nn
