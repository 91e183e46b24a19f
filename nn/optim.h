#pragma once
// Optimizers with PyTorch's update rules (torch.optim as of 1.13, operation for operation),
// gradient clipping and learning-rate schedules. They update the parameters' storage in place,
// outside any tape (each update bumps the parameter's version, so a graph that saved it cannot be
// backpropagated afterwards by mistake).
//
// As in PyTorch, the state of a parameter starts at its first gradient: a parameter whose grad()
// is undefined at a step is skipped entirely (no weight decay, no momentum, no step counted), so
// Adam's bias correction for a parameter first reached at the third step starts there at t = 1.
// A gradient of zeros (zero_grad(false)) is a gradient: the parameter is stepped with it.
// Every option is validated as PyTorch validates it (and NaN is rejected as well).
#include <cstdint>
#include <vector>

#include "autograd/tensor.h"

namespace tg::nn {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update from the parameters' current grad(); parameters without a gradient are skipped.
  virtual void step() = 0;
  // As nn::zero_grad: drops the gradients (PyTorch 2's default), or zeroes them in place.
  void zero_grad(bool set_to_none = true);
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  const std::vector<Tensor>& parameters() const { return parameters_; }

 protected:
  // Checks the parameters and lr; `name` heads every error message.
  Optimizer(std::vector<Tensor> parameters, double lr, const char* name);

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

// g ← ∇ + λp; b ← μb + (1 − τ)g (b = g at the parameter's first gradient);
// g ← g + μb (Nesterov) or b; p ← p − lr·g.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> parameters, SGDOptions options);
  void step() override;

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_;  // undefined until the parameter's first gradient
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// AdamW's options: the same, with PyTorch's AdamW default λ = 0.01.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// Per parameter, with t its own count of steps that had a gradient:
// g ← ∇ + λp; m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
// p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> parameters, AdamOptions options);
  void step() override;
  // How many steps parameter i has been updated by (its t in the bias correction).
  std::int64_t steps(std::size_t parameter) const { return state_.at(parameter).steps; }

 protected:
  // decoupled: AdamW's p ← p(1 − lr·λ) instead of adding λp to the gradient.
  Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled);

 private:
  struct State {
    Tensor m;  // both undefined until the parameter's first gradient
    Tensor v;
    std::int64_t steps = 0;
  };
  AdamOptions options_;
  bool decoupled_;
  std::vector<State> state_;
};

// Adam with decoupled weight decay (Loshchilov and Hutter): p ← p(1 − lr·λ), then Adam's step
// without λ.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> parameters, AdamWOptions options = {});
};

// torch.nn.utils.clip_grad_norm_: the norm of order norm_type (> 0, or INFINITY for the largest
// |gradient|) of all gradients together, as if concatenated; every gradient is then multiplied
// by min(1, max_norm / (norm + 1e-6)), always (so a norm equal to max_norm still shrinks by the
// 1e-6, and a NaN norm makes every gradient NaN, as in PyTorch), unless error_if_nonfinite
// rejects a NaN or infinite norm. Parameters without a gradient are skipped; with none, the
// norm is 0. Returns the norm before clipping. A negative or NaN max_norm is an error (PyTorch
// would flip the gradients' sign).
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm,
                      double norm_type = 2.0, bool error_if_nonfinite = false);

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

// lr = base · γ^⌊epoch / step_size⌋ (PyTorch's closed form); step_size > 0, γ ≥ 0.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

// lr = η_min + (base − η_min)(1 + cos(π·epoch / T_max)) / 2, periodic past T_max as PyTorch's;
// T_max > 0, η_min ≥ 0.
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
