#include "nn/optim.h"

#include <Eigen/Core>
#include <cmath>
#include <utility>

#include "autograd/tape.h"
#include "nn/module.h"

namespace tg::nn {
namespace {

template <class T>
using Vector = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstVector = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// For writing: bumps t's version.
template <class T>
Vector<T> values(Tensor& t) {
  return {t.data<T>(), t.numel()};
}

template <class T>
ConstVector<T> read(const Tensor& t) {
  return {t.data<T>(), t.numel()};
}

// Hands `use` the gradient with L2 decay, grad + λ·p, as PyTorch forms it: λ = 0 adds nothing,
// not even 0·p (which is NaN for an infinite p).
template <class T, class Use>
void with_decay(const ConstVector<T>& grad, const Vector<T>& w, double decay, Use&& use) {
  if (decay != 0) {
    use(grad + T(decay) * w);
  } else {
    use(grad);
  }
}

// When !ok, an error naming the optimizer, the option and its value. Callers test value ≥ …,
// which is false for NaN, so NaN is rejected too.
void require(bool ok, const char* optimizer, const char* option, const char* expected,
             double value) {
  if (!ok) fail("{}: expected {} {}, got {}", optimizer, option, expected, value);
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> parameters, double lr, const char* name)
    : parameters_(std::move(parameters)), lr_(lr) {
  if (parameters_.empty()) fail("{}: got an empty parameter list", name);
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (!parameters_[i].defined() || !is_floating(parameters_[i].dtype())) {
      fail("{}: parameter {} is undefined or not floating", name, i);
    }
  }
  require(lr >= 0, name, "lr", "≥ 0", lr);
}

void Optimizer::zero_grad(bool set_to_none) {
  nn::zero_grad(parameters_, set_to_none);
}

SGD::SGD(std::vector<Tensor> parameters, SGDOptions options)
    : Optimizer(std::move(parameters), options.lr, "SGD"), options_(options) {
  require(options.momentum >= 0, "SGD", "momentum", "≥ 0", options.momentum);
  require(options.weight_decay >= 0, "SGD", "weight_decay", "≥ 0", options.weight_decay);
  if (options.nesterov && (options.momentum <= 0 || options.dampening != 0)) {
    fail(
        "SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum = {}, "
        "dampening = {}",
        options.momentum, options.dampening);
  }
  momentum_.resize(parameters_.size());
}

void SGD::step() {
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    Tensor& p = parameters_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    dispatch_floating(p.dtype(), "SGD", [&]<class T>() {
      auto w = values<T>(p);
      with_decay(read<T>(g), w, options_.weight_decay, [&](const auto& d) {
        if (options_.momentum == 0) {
          w -= T(lr_) * d;
          return;
        }
        if (!momentum_[i].defined()) {
          momentum_[i] = zeros_like(p);
          values<T>(momentum_[i]) = d;
        } else {
          values<T>(momentum_[i]) =
              T(options_.momentum) * values<T>(momentum_[i]) + T(1 - options_.dampening) * d;
        }
        const auto b = read<T>(momentum_[i]);
        if (options_.nesterov) {
          w -= T(lr_) * (d + T(options_.momentum) * b);
        } else {
          w -= T(lr_) * b;
        }
      });
    });
  }
}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Adam(std::move(parameters), options, false) {}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled)
    : Optimizer(std::move(parameters), options.lr, decoupled ? "AdamW" : "Adam"),
      options_(options),
      decoupled_(decoupled),
      state_(parameters_.size()) {
  const char* name = decoupled ? "AdamW" : "Adam";
  require(options.eps >= 0, name, "eps", "≥ 0", options.eps);
  require(options.beta1 >= 0 && options.beta1 < 1, name, "beta1", "in [0, 1)", options.beta1);
  require(options.beta2 >= 0 && options.beta2 < 1, name, "beta2", "in [0, 1)", options.beta2);
  require(options.weight_decay >= 0, name, "weight_decay", "≥ 0", options.weight_decay);
}

void Adam::step() {
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    Tensor& p = parameters_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    State& s = state_[i];
    if (!s.m.defined()) {
      s.m = zeros_like(p);
      s.v = zeros_like(p);
    }
    ++s.steps;
    // In PyTorch's order of operations, so float32 results round as PyTorch's do.
    const double step_size = lr_ / (1 - std::pow(options_.beta1, double(s.steps)));
    const double correction2_sqrt = std::sqrt(1 - std::pow(options_.beta2, double(s.steps)));
    dispatch_floating(p.dtype(), "Adam", [&]<class T>() {
      auto w = values<T>(p);
      auto m = values<T>(s.m);
      auto v = values<T>(s.v);
      if (decoupled_) w *= T(1 - lr_ * options_.weight_decay);
      // AdamW's decay is decoupled: nothing enters the gradient.
      with_decay(read<T>(g), w, decoupled_ ? 0.0 : options_.weight_decay, [&](const auto& d) {
        m = T(options_.beta1) * m + T(1 - options_.beta1) * d;
        v = T(options_.beta2) * v + T(1 - options_.beta2) * d.square();
      });
      w -= T(step_size) * m / (v.sqrt() / T(correction2_sqrt) + T(options_.eps));
    });
  }
}

AdamW::AdamW(std::vector<Tensor> parameters, AdamWOptions options)
    : Adam(std::move(parameters),
           {.lr = options.lr,
            .beta1 = options.beta1,
            .beta2 = options.beta2,
            .eps = options.eps,
            .weight_decay = options.weight_decay},
           true) {}

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  if (!(max_norm >= 0)) fail("clip_grad_norm: expected max_norm ≥ 0, got {}", max_norm);
  if (!(norm_type > 0)) {
    fail("clip_grad_norm: expected norm_type > 0 (or INFINITY), got {}", norm_type);
  }
  const bool largest = std::isinf(norm_type);
  // As PyTorch: the norm of the per-gradient norms.
  double total = 0;  // also the norm of no gradients at all
  for (const Tensor& p : parameters) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const double norm = dispatch_floating(g.dtype(), "clip_grad_norm", [&]<class T>() {
      const auto a = read<T>(g).template cast<double>().abs();
      if (g.numel() == 0) return 0.0;
      if (largest) return a.template maxCoeff<Eigen::PropagateNaN>();
      if (norm_type == 2) return std::sqrt(a.square().sum());
      return std::pow(a.pow(norm_type).sum(), 1 / norm_type);
    });
    if (!largest) {
      total += std::pow(norm, norm_type);
    } else if (std::isnan(norm) || norm > total) {  // a NaN, once in, stays: PyTorch's max
      total = norm;
    }
  }
  if (!largest) total = norm_type == 2 ? std::sqrt(total) : std::pow(total, 1 / norm_type);
  if (error_if_nonfinite && !std::isfinite(total)) {
    fail(
        "clip_grad_norm: the total norm of order {} of the gradients is {}, so they cannot be "
        "clipped (error_if_nonfinite = false scales them by it anyway)",
        norm_type, total);
  }
  // torch.clamp(coef, max=1) keeps a NaN coefficient, and so does std::min with NaN first.
  const double coef = max_norm / (total + 1e-6);
  const double scale = std::min(coef, 1.0);
  for (const Tensor& p : parameters) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    dispatch_floating(g.dtype(), "clip_grad_norm", [&]<class T>() { values<T>(g) *= T(scale); });
  }
  return total;
}

void LRScheduler::step() {
  optimizer_.set_lr(lr_at(++epoch_));
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0) fail("StepLR: expected step_size > 0, got {}", step_size);
  if (!(gamma >= 0)) fail("StepLR: expected gamma ≥ 0, got {}", gamma);
}

double StepLR::lr_at(std::int64_t epoch) const {
  return base_lr() * std::pow(gamma_, double(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  if (t_max <= 0) fail("CosineAnnealingLR: expected T_max > 0, got {}", t_max);
  if (!(eta_min >= 0)) fail("CosineAnnealingLR: expected eta_min ≥ 0, got {}", eta_min);
}

double CosineAnnealingLR::lr_at(std::int64_t epoch) const {
  return eta_min_ +
         (base_lr() - eta_min_) * (1 + std::cos(M_PI * double(epoch) / double(t_max_))) / 2;
}

}  // namespace tg::nn
