#include "nn/optim.h"

#include <Eigen/Core>
#include <cmath>

#include "autograd/tape.h"

namespace tg::nn {
namespace {

template <class T>
using Vector = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

template <class T>
Vector<T> values(Tensor& t) {
  return {t.data<T>(), t.numel()};
}

void check_parameters(const std::vector<Tensor>& parameters, const char* what) {
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    if (!parameters[i].defined() || !is_floating(parameters[i].dtype())) {
      fail("{}: parameter {} is undefined or not floating", what, i);
    }
  }
}

// Zero-filled state tensors shaped like the parameters.
std::vector<Tensor> state_like(const std::vector<Tensor>& parameters) {
  std::vector<Tensor> state;
  for (const Tensor& p : parameters) state.push_back(zeros_like(p));
  return state;
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> parameters, double lr)
    : parameters_(std::move(parameters)), lr_(lr) {}

void Optimizer::zero_grad() {
  for (Tensor& p : parameters_) p.zero_grad();
}

SGD::SGD(std::vector<Tensor> parameters, SGDOptions options)
    : Optimizer(std::move(parameters), options.lr), options_(options) {
  check_parameters(parameters_, "SGD");
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
    Tensor g = p.grad();
    if (!g.defined()) continue;
    dispatch_floating(p.dtype(), "SGD", [&]<class T>() {
      auto w = values<T>(p);
      const auto d = values<T>(g) + T(options_.weight_decay) * w;  // an expression, no temporary
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
      const auto b = values<T>(momentum_[i]);
      if (options_.nesterov) {
        w -= T(lr_) * (d + T(options_.momentum) * b);
      } else {
        w -= T(lr_) * b;
      }
    });
  }
}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Adam(std::move(parameters), options, false) {}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled)
    : Optimizer(std::move(parameters), options.lr), options_(options), decoupled_(decoupled) {
  check_parameters(parameters_, decoupled ? "AdamW" : "Adam");
  m_ = state_like(parameters_);
  v_ = state_like(parameters_);
}

void Adam::step() {
  ++steps_;
  const double correction1 = 1 - std::pow(options_.beta1, double(steps_));
  const double correction2 = 1 - std::pow(options_.beta2, double(steps_));
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    Tensor& p = parameters_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    dispatch_floating(p.dtype(), "Adam", [&]<class T>() {
      auto w = values<T>(p);
      auto m = values<T>(m_[i]);
      auto v = values<T>(v_[i]);
      // L2 decay enters the gradient; AdamW's decoupled decay shrinks the weight instead.
      const T l2 = decoupled_ ? T(0) : T(options_.weight_decay);
      const auto d = values<T>(g) + l2 * w;
      m = T(options_.beta1) * m + T(1 - options_.beta1) * d;
      v = T(options_.beta2) * v + T(1 - options_.beta2) * d.square();
      if (decoupled_) w *= T(1 - lr_ * options_.weight_decay);
      w -= T(lr_) * (m / T(correction1)) / ((v / T(correction2)).sqrt() + T(options_.eps));
    });
  }
}

AdamW::AdamW(std::vector<Tensor> parameters, AdamOptions options)
    : Adam(std::move(parameters), options, true) {}

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm) {
  double squares = 0;
  for (const Tensor& p : parameters) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    dispatch_floating(g.dtype(), "clip_grad_norm", [&]<class T>() {
      squares += double(Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(g.data<T>(), g.numel())
                            .square()
                            .sum());
    });
  }
  const double norm = std::sqrt(squares);
  if (norm > max_norm) {
    // As PyTorch: the 1e-6 keeps the scale finite for a zero norm.
    const double scale = max_norm / (norm + 1e-6);
    for (const Tensor& p : parameters) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      dispatch_floating(g.dtype(), "clip_grad_norm", [&]<class T>() { values<T>(g) *= T(scale); });
    }
  }
  return norm;
}

void LRScheduler::step() {
  optimizer_.set_lr(lr_at(++epoch_));
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0) fail("StepLR: expected a positive step_size, got {}", step_size);
}

double StepLR::lr_at(std::int64_t epoch) const {
  return base_lr() * std::pow(gamma_, double(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  if (t_max <= 0) fail("CosineAnnealingLR: expected a positive T_max, got {}", t_max);
}

double CosineAnnealingLR::lr_at(std::int64_t epoch) const {
  return eta_min_ +
         (base_lr() - eta_min_) * (1 + std::cos(M_PI * double(epoch) / double(t_max_))) / 2;
}

}  // namespace tg::nn
