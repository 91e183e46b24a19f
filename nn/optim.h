#pragma once
// Optimizers with PyTorch's documented update rules, gradient clipping and learning-rate
// schedules. They update the parameters' storage in place, outside any tape.
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace tg::nn {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> parameters, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update from the parameters' current grad(); parameters without a gradient are skipped.
  virtual void step() = 0;
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  const std::vector<Tensor>& parameters() const { return parameters_; }

 protected:
  std::vector<Tensor> parameters_;
  double lr_;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// g ← ∇ + λp; b ← μb + (1 − τ)g (b = g on the first step); g ← g + μb (Nesterov) or b;
// p ← p − lr·g.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> parameters, SGDOptions options);
  void step() override;

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// g ← ∇ + λp; m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
// p ← p − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε).
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> parameters, AdamOptions options);
  void step() override;

 protected:
  // decoupled: AdamW's p ← p(1 − lr·λ) instead of adding λp to the gradient.
  Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled);

 private:
  AdamOptions options_;
  bool decoupled_;
  std::int64_t steps_ = 0;
  std::vector<Tensor> m_;
  std::vector<Tensor> v_;
};

// Adam with decoupled weight decay (Loshchilov and Hutter): p ← p(1 − lr·λ), then Adam's step
// without λ. PyTorch's default λ is 0.01.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> parameters, AdamOptions options = {.weight_decay = 0.01});
};

// Scales every gradient by max_norm / ‖all gradients‖₂ when that norm exceeds max_norm; returns
// the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm);

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}
  virtual ~LRScheduler() = default;
  // Call once per epoch, after the optimizer's steps.
  void step();
  std::int64_t epoch() const { return epoch_; }

 protected:
  virtual double lr_at(std::int64_t epoch) const = 0;
  double base_lr() const { return base_lr_; }

 private:
  Optimizer& optimizer_;
  double base_lr_;
  std::int64_t epoch_ = 0;
};

// lr = base · γ^⌊epoch / step_size⌋.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

// lr = η_min + (base − η_min)(1 + cos(π·epoch / T_max)) / 2.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min = 0.0);

 protected:
  double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t t_max_;
  double eta_min_;
};

}  // namespace tg::nn
