#include "nn/optim.h"

#include <fmt/ranges.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
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

Optimizer::Optimizer(const std::vector<std::vector<Tensor>>& groups, const std::vector<double>& lrs,
                     const char* name)
    : name_(name), lrs_(lrs) {
  std::set<const tg::detail::TensorImpl*> seen;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    require(lrs[g] >= 0, name, "lr", "≥ 0", lrs[g]);
    for (const Tensor& p : groups[g]) {
      const std::size_t i = parameters_.size();
      if (!p.defined() || !is_floating(p.dtype())) {
        fail("{}: parameter {} is undefined or not floating", name, i);
      }
      if (groups.size() > 1 && !seen.insert(p.impl().get()).second) {
        fail("{}: parameter {} (of group {}) appears in more than one parameter group", name, i, g);
      }
      parameters_.push_back(p);
      group_of_.push_back(g);
    }
  }
  if (parameters_.empty()) fail("{}: got an empty parameter list", name);
}

double Optimizer::lr(std::size_t group) const {
  if (group >= lrs_.size()) fail("{}: no group {} (it has {})", name_, group, lrs_.size());
  return lrs_[group];
}

void Optimizer::set_lr(double lr) {
  for (std::size_t g = 0; g < lrs_.size(); ++g) set_lr(g, lr);
}

void Optimizer::set_lr(std::size_t group, double lr) {
  if (group >= lrs_.size()) fail("{}: no group {} (it has {})", name_, group, lrs_.size());
  lrs_[group] = lr;
}

std::vector<Tensor> Optimizer::parameters(std::size_t group) const {
  if (group >= lrs_.size()) fail("{}: no group {} (it has {})", name_, group, lrs_.size());
  std::vector<Tensor> in_group;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    if (group_of_[i] == group) in_group.push_back(parameters_[i]);
  }
  return in_group;
}

const std::vector<double>& Optimizer::initial_lrs() {
  if (initial_lrs_.empty()) initial_lrs_ = lrs_;
  return initial_lrs_;
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state_dict() {
  std::vector<std::pair<std::string, Tensor>> state;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const StateSlots slots = state_slots(i);
    for (const auto& [name, tensor] : slots.tensors) {
      if (tensor->defined())
        state.emplace_back(fmt::format("state.{}.{}", i, name), tensor->clone());
    }
    for (const auto& [name, count] : slots.counters) {
      if (*count != 0) {
        state.emplace_back(fmt::format("state.{}.{}", i, name), int64_tensor({*count}, Shape{}));
      }
    }
  }
  return state;
}

void Optimizer::load_state_dict(const std::vector<std::pair<std::string, Tensor>>& state) {
  std::map<std::string, Tensor> entries;
  for (const auto& [name, tensor] : state) {
    if (!entries.emplace(name, tensor).second) {
      fail("{}: load_state_dict: the entry '{}' appears twice", name_, name);
    }
  }
  // Checked in full before anything changes, so a bad state leaves the optimizer as it was.
  const auto take = [&](std::size_t i, const char* name) -> std::optional<Tensor> {
    const auto found = entries.find(fmt::format("state.{}.{}", i, name));
    if (found == entries.end()) return std::nullopt;
    Tensor value = found->second;
    entries.erase(found);
    return value;
  };
  std::vector<std::function<void()>> writes;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const StateSlots slots = state_slots(i);
    const Tensor& p = parameters_[i];
    // A parameter's state is whole or absent: a step on part of it would restart the moments
    // that are missing under the loaded step count.
    std::vector<std::string> present, missing;
    const auto sort_slot = [&](const char* name) {
      (entries.contains(fmt::format("state.{}.{}", i, name)) ? present : missing).push_back(name);
    };
    for (const auto& slot : slots.tensors) sort_slot(slot.first);
    for (const auto& slot : slots.counters) sort_slot(slot.first);
    if (!present.empty() && !missing.empty()) {
      fail("{}: load_state_dict: the state of parameter {} is incomplete: it has {} but not {}",
           name_, i, fmt::join(present, ", "), fmt::join(missing, ", "));
    }
    for (const auto& [name, tensor] : slots.tensors) {
      std::optional<Tensor> value = take(i, name);
      if (value && (value->shape() != p.shape() || value->dtype() != p.dtype())) {
        fail("{}: load_state_dict: state.{}.{} is {} {}, the parameter {} {}", name_, i, name,
             dtype_name(value->dtype()), value->shape().str(), dtype_name(p.dtype()),
             p.shape().str());
      }
      writes.push_back([slot = tensor, value] { *slot = value ? value->clone() : Tensor(); });
    }
    for (const auto& [name, count] : slots.counters) {
      std::optional<Tensor> value = take(i, name);
      if (value && (value->numel() != 1 || value->dtype() != i64 || value->item() < 0)) {
        fail("{}: load_state_dict: state.{}.{} must be one non-negative int64 count, got {} {}",
             name_, i, name, dtype_name(value->dtype()), value->shape().str());
      }
      const std::int64_t n = value ? std::int64_t(value->item()) : 0;
      writes.push_back([slot = count, n] { *slot = n; });
    }
  }
  if (!entries.empty()) {
    fail("{}: load_state_dict: '{}' is not state of this optimizer ({} parameters)", name_,
         entries.begin()->first, parameters_.size());
  }
  for (const auto& write : writes) write();
}

void Optimizer::zero_grad(bool set_to_none) {
  nn::zero_grad(parameters_, set_to_none);
}

SGD::SGD(std::vector<Tensor> parameters, SGDOptions options)
    : SGD({{.params = std::move(parameters), .options = options}}, options) {}

SGD::SGD(std::vector<ParamGroup<SGDOptions>> groups, SGDOptions defaults)
    : GroupedOptimizer(std::move(groups), defaults, "SGD"), momentum_(parameters_.size()) {
  for (const SGDOptions& o : group_options()) {
    require(o.momentum >= 0, "SGD", "momentum", "≥ 0", o.momentum);
    require(o.weight_decay >= 0, "SGD", "weight_decay", "≥ 0", o.weight_decay);
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
      fail(
          "SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum = {}, "
          "dampening = {}",
          o.momentum, o.dampening);
    }
  }
}

Optimizer::StateSlots SGD::state_slots(std::size_t parameter) {
  if (options_of(parameter).momentum == 0) return {};
  return {{{"momentum_buffer", &momentum_.at(parameter)}}, {}};
}

void SGD::step() {
  for_each_gradient([&](std::size_t i, Tensor& p, const Tensor& g) {
    const SGDOptions& o = options_of(i);
    const double lr = lr_of(i);
    dispatch_floating(p.dtype(), "SGD", [&]<class T>() {
      auto w = values<T>(p);
      with_decay(read<T>(g), w, o.weight_decay, [&](const auto& d) {
        if (o.momentum == 0) {
          w -= T(lr) * d;
          return;
        }
        if (!momentum_[i].defined()) {
          momentum_[i] = zeros_like(p);
          values<T>(momentum_[i]) = d;
        } else {
          values<T>(momentum_[i]) =
              T(o.momentum) * values<T>(momentum_[i]) + T(1 - o.dampening) * d;
        }
        const auto b = read<T>(momentum_[i]);
        if (o.nesterov) {
          w -= T(lr) * (d + T(o.momentum) * b);
        } else {
          w -= T(lr) * b;
        }
      });
    });
  });
}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Adam({{.params = std::move(parameters), .options = options}}, options) {}

Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups, AdamOptions defaults)
    : Adam(std::move(groups), defaults, false) {}

Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups, const AdamOptions& defaults, bool decoupled)
    : GroupedOptimizer(std::move(groups), defaults, decoupled ? "AdamW" : "Adam"),
      decoupled_(decoupled),
      state_(parameters_.size()) {
  const char* name = decoupled ? "AdamW" : "Adam";
  for (const AdamOptions& o : group_options()) {
    require(o.eps >= 0, name, "eps", "≥ 0", o.eps);
    require(o.beta1 >= 0 && o.beta1 < 1, name, "beta1", "in [0, 1)", o.beta1);
    require(o.beta2 >= 0 && o.beta2 < 1, name, "beta2", "in [0, 1)", o.beta2);
    require(o.weight_decay >= 0, name, "weight_decay", "≥ 0", o.weight_decay);
  }
}

Optimizer::StateSlots Adam::state_slots(std::size_t parameter) {
  State& s = state_.at(parameter);
  StateSlots slots{{{"exp_avg", &s.m}, {"exp_avg_sq", &s.v}}, {{"step", &s.steps}}};
  if (options_of(parameter).amsgrad) slots.tensors.emplace_back("max_exp_avg_sq", &s.v_max);
  return slots;
}

void Adam::step() {
  for_each_gradient([&](std::size_t i, Tensor& p, const Tensor& g) {
    const AdamOptions& o = options_of(i);
    const double lr = lr_of(i);
    State& s = state_[i];
    if (!s.m.defined()) {
      s.m = zeros_like(p);
      s.v = zeros_like(p);
      if (o.amsgrad) s.v_max = zeros_like(p);
    }
    ++s.steps;
    // In PyTorch's order of operations, so float32 results round as PyTorch's do.
    const double step_size = lr / (1 - std::pow(o.beta1, double(s.steps)));
    const double correction2_sqrt = std::sqrt(1 - std::pow(o.beta2, double(s.steps)));
    dispatch_floating(p.dtype(), "Adam", [&]<class T>() {
      auto w = values<T>(p);
      auto m = values<T>(s.m);
      auto v = values<T>(s.v);
      if (decoupled_) w *= T(1 - lr * o.weight_decay);
      // AdamW's decay is decoupled: nothing enters the gradient.
      with_decay(read<T>(g), w, decoupled_ ? 0.0 : o.weight_decay, [&](const auto& d) {
        m = T(o.beta1) * m + T(1 - o.beta1) * d;
        v = T(o.beta2) * v + T(1 - o.beta2) * d.square();
      });
      if (o.amsgrad) {
        auto v_max = values<T>(s.v_max);
        v_max = v_max.max(v);
        w -= T(step_size) * m / (v_max.sqrt() / T(correction2_sqrt) + T(o.eps));
      } else {
        w -= T(step_size) * m / (v.sqrt() / T(correction2_sqrt) + T(o.eps));
      }
    });
  });
}

namespace {

AdamOptions as_adam(const AdamWOptions& o) {
  return {.lr = o.lr,
          .beta1 = o.beta1,
          .beta2 = o.beta2,
          .eps = o.eps,
          .weight_decay = o.weight_decay,
          .amsgrad = o.amsgrad};
}

std::vector<ParamGroup<AdamOptions>> as_adam(std::vector<ParamGroup<AdamWOptions>> groups) {
  std::vector<ParamGroup<AdamOptions>> converted;
  for (ParamGroup<AdamWOptions>& group : groups) {
    ParamGroup<AdamOptions>& adam = converted.emplace_back();
    adam.params = std::move(group.params);
    if (group.options) adam.options = as_adam(*group.options);
  }
  return converted;
}

}  // namespace

AdamW::AdamW(std::vector<Tensor> parameters, AdamWOptions options)
    : AdamW({{.params = std::move(parameters), .options = options}}, options) {}

AdamW::AdamW(std::vector<ParamGroup<AdamWOptions>> groups, AdamWOptions defaults)
    : Adam(as_adam(std::move(groups)), as_adam(defaults), true) {}

RMSprop::RMSprop(std::vector<Tensor> parameters, RMSpropOptions options)
    : RMSprop({{.params = std::move(parameters), .options = options}}, options) {}

RMSprop::RMSprop(std::vector<ParamGroup<RMSpropOptions>> groups, RMSpropOptions defaults)
    : GroupedOptimizer(std::move(groups), defaults, "RMSprop"), state_(parameters_.size()) {
  for (const RMSpropOptions& o : group_options()) {
    require(o.eps >= 0, "RMSprop", "eps", "≥ 0", o.eps);
    require(o.alpha >= 0, "RMSprop", "alpha", "≥ 0", o.alpha);
    require(o.momentum >= 0, "RMSprop", "momentum", "≥ 0", o.momentum);
    require(o.weight_decay >= 0, "RMSprop", "weight_decay", "≥ 0", o.weight_decay);
  }
}

Optimizer::StateSlots RMSprop::state_slots(std::size_t parameter) {
  State& s = state_.at(parameter);
  const RMSpropOptions& o = options_of(parameter);
  StateSlots slots{{{"square_avg", &s.square_avg}}, {}};
  if (o.centered) slots.tensors.emplace_back("grad_avg", &s.grad_avg);
  if (o.momentum > 0) slots.tensors.emplace_back("momentum_buffer", &s.momentum);
  return slots;
}

void RMSprop::step() {
  for_each_gradient([&](std::size_t i, Tensor& p, const Tensor& g) {
    const RMSpropOptions& o = options_of(i);
    const double lr = lr_of(i);
    State& s = state_[i];
    if (!s.square_avg.defined()) {
      s.square_avg = zeros_like(p);
      if (o.centered) s.grad_avg = zeros_like(p);
      if (o.momentum > 0) s.momentum = zeros_like(p);
    }
    dispatch_floating(p.dtype(), "RMSprop", [&]<class T>() {
      auto w = values<T>(p);
      with_decay(read<T>(g), w, o.weight_decay, [&](const auto& d) {
        auto square_avg = values<T>(s.square_avg);
        square_avg = T(o.alpha) * square_avg + T(1 - o.alpha) * d.square();
        // Materialised: d may read w, which the update below writes.
        Eigen::Array<T, Eigen::Dynamic, 1> ratio;
        if (o.centered) {
          auto grad_avg = values<T>(s.grad_avg);
          grad_avg = T(o.alpha) * grad_avg + T(1 - o.alpha) * d;
          ratio = d / ((square_avg - grad_avg.square()).sqrt() + T(o.eps));
        } else {
          ratio = d / (square_avg.sqrt() + T(o.eps));
        }
        if (o.momentum > 0) {
          auto b = values<T>(s.momentum);
          b = T(o.momentum) * b + ratio;
          w -= T(lr) * b;
        } else {
          w -= T(lr) * ratio;
        }
      });
    });
  });
}

Adagrad::Adagrad(std::vector<Tensor> parameters, AdagradOptions options)
    : Adagrad({{.params = std::move(parameters), .options = options}}, options) {}

Adagrad::Adagrad(std::vector<ParamGroup<AdagradOptions>> groups, AdagradOptions defaults)
    : GroupedOptimizer(std::move(groups), defaults, "Adagrad"), state_(parameters_.size()) {
  for (const AdagradOptions& o : group_options()) {
    require(o.lr_decay >= 0, "Adagrad", "lr_decay", "≥ 0", o.lr_decay);
    require(o.weight_decay >= 0, "Adagrad", "weight_decay", "≥ 0", o.weight_decay);
    require(o.initial_accumulator_value >= 0, "Adagrad", "initial_accumulator_value", "≥ 0",
            o.initial_accumulator_value);
    require(o.eps >= 0, "Adagrad", "eps", "≥ 0", o.eps);
  }
}

Optimizer::StateSlots Adagrad::state_slots(std::size_t parameter) {
  State& s = state_.at(parameter);
  return {{{"sum", &s.sum}}, {{"step", &s.steps}}};
}

void Adagrad::step() {
  for_each_gradient([&](std::size_t i, Tensor& p, const Tensor& g) {
    const AdagradOptions& o = options_of(i);
    State& s = state_[i];
    if (!s.sum.defined()) s.sum = full(p.shape(), o.initial_accumulator_value, p.dtype());
    ++s.steps;
    const double clr = lr_of(i) / (1 + double(s.steps - 1) * o.lr_decay);
    dispatch_floating(p.dtype(), "Adagrad", [&]<class T>() {
      auto w = values<T>(p);
      auto sum = values<T>(s.sum);
      with_decay(read<T>(g), w, o.weight_decay, [&](const auto& d) {
        sum += d.square();
        // Materialised: d may read w.
        const Eigen::Array<T, Eigen::Dynamic, 1> step = d / (sum.sqrt() + T(o.eps));
        w -= T(clr) * step;
      });
    });
  });
}

namespace detail {

WeightDecaySplit split_for_weight_decay(const Module& module, bool exclude_embeddings) {
  // How many slots hold each tensor, and how many of those are Embedding weights: a tensor all
  // of whose slots are is an embedding table only.
  std::map<const tg::detail::TensorImpl*, int> slots;
  std::map<const tg::detail::TensorImpl*, int> embedding_slots;
  for (const auto& [name, t] : module.state_dict()) ++slots[t.impl().get()];
  const std::function<void(const Module&)> visit = [&](const Module& m) {
    if (const auto* embedding = dynamic_cast<const Embedding*>(&m)) {
      ++embedding_slots[embedding->weight.impl().get()];
    }
    for (const auto& [name, child] : m.children()) visit(*child);
  };
  visit(module);
  WeightDecaySplit split;
  for (const Tensor& p : module.parameters()) {
    const bool embedding_only =
        exclude_embeddings && embedding_slots[p.impl().get()] == slots[p.impl().get()];
    (p.rank() >= 2 && !embedding_only ? split.decayed : split.not_decayed).push_back(p);
  }
  return split;
}

}  // namespace detail

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

LRScheduler::LRScheduler(Optimizer& optimizer)
    : optimizer_(optimizer), base_lrs_(optimizer.initial_lrs()) {}

void LRScheduler::apply(std::int64_t epoch) {
  std::vector<double> lrs;
  // All rates first: a schedule that refuses the epoch (OneCycleLR past its end) changes none.
  for (double base : base_lrs_) lrs.push_back(lr_at(epoch, base));
  for (std::size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, lrs[g]);
  epoch_ = epoch;
}

void LRScheduler::step() {
  apply(epoch_ + 1);
}

void LRScheduler::start() {
  apply(0);
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0) fail("StepLR: expected step_size > 0, got {}", step_size);
  if (!(gamma >= 0)) fail("StepLR: expected gamma ≥ 0, got {}", gamma);
}

double StepLR::lr_at(std::int64_t epoch, double base_lr) const {
  return base_lr * std::pow(gamma_, double(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  if (t_max <= 0) fail("CosineAnnealingLR: expected T_max > 0, got {}", t_max);
  if (!(eta_min >= 0)) fail("CosineAnnealingLR: expected eta_min ≥ 0, got {}", eta_min);
}

double CosineAnnealingLR::lr_at(std::int64_t epoch, double base_lr) const {
  return eta_min_ +
         (base_lr - eta_min_) * (1 + std::cos(M_PI * double(epoch) / double(t_max_))) / 2;
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   std::int64_t total_iters)
    : LRScheduler(optimizer),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  require(start_factor > 0 && start_factor <= 1, "LinearLR", "start_factor", "in (0, 1]",
          start_factor);
  require(end_factor >= 0 && end_factor <= 1, "LinearLR", "end_factor", "in [0, 1]", end_factor);
  if (total_iters <= 0) fail("LinearLR: expected total_iters > 0, got {}", total_iters);
  start();
}

double LinearLR::lr_at(std::int64_t epoch, double base_lr) const {
  return base_lr *
         (start_factor_ + (end_factor_ - start_factor_) * double(std::min(epoch, total_iters_)) /
                              double(total_iters_));
}

OneCycleLR::OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps,
                       double pct_start, Anneal anneal, double div_factor, double final_div_factor)
    : LRScheduler(optimizer),
      max_lr_(max_lr),
      total_steps_(total_steps),
      warmup_end_(pct_start * double(total_steps) - 1),
      anneal_(anneal),
      initial_lr_(max_lr / div_factor),
      min_lr_(initial_lr_ / final_div_factor) {
  require(max_lr >= 0, "OneCycleLR", "max_lr", "≥ 0", max_lr);
  if (total_steps <= 0) fail("OneCycleLR: expected total_steps > 0, got {}", total_steps);
  require(pct_start >= 0 && pct_start <= 1, "OneCycleLR", "pct_start", "in [0, 1]", pct_start);
  require(div_factor > 0, "OneCycleLR", "div_factor", "> 0", div_factor);
  require(final_div_factor > 0, "OneCycleLR", "final_div_factor", "> 0", final_div_factor);
  // PyTorch divides by each phase's length at a step within it: a warm-up ending at step 0, or
  // an annealing phase of no steps, is 0/0 there (a ZeroDivisionError in PyTorch). Compared
  // before subtracting 1, which the compiler may fuse into a multiply-add that never gives 0.
  const double warmup_steps = pct_start * double(total_steps);
  if (warmup_steps == 1 || warmup_steps == double(total_steps)) {
    fail(
        "OneCycleLR: pct_start = {} with total_steps = {} leaves a phase of no steps "
        "(pct_start · total_steps must be neither 1 nor total_steps)",
        pct_start, total_steps);
  }
  start();
}

double OneCycleLR::lr_at(std::int64_t epoch, double) const {
  if (epoch > total_steps_) {
    fail("OneCycleLR: stepped {} times, past total_steps = {}", epoch + 1, total_steps_);
  }
  const double step = double(epoch);
  const bool warming = step <= warmup_end_;
  const double from = warming ? initial_lr_ : max_lr_;
  const double to = warming ? max_lr_ : min_lr_;
  const double pct = warming ? step / warmup_end_
                             : (step - warmup_end_) / (double(total_steps_ - 1) - warmup_end_);
  if (anneal_ == Anneal::linear) return (to - from) * pct + from;
  return to + (from - to) / 2.0 * (std::cos(M_PI * pct) + 1);
}

SequentialLR::SequentialLR(Optimizer& optimizer,
                           std::vector<std::shared_ptr<LRScheduler>> schedules,
                           std::vector<std::int64_t> milestones)
    : LRScheduler(optimizer), schedules_(std::move(schedules)), milestones_(std::move(milestones)) {
  if (schedules_.size() != milestones_.size() + 1) {
    fail(
        "SequentialLR: expected one schedule more than milestones, got {} schedules and {} "
        "milestones",
        schedules_.size(), milestones_.size());
  }
  for (std::size_t i = 0; i < schedules_.size(); ++i) {
    if (!schedules_[i] || &schedules_[i]->optimizer_ != &optimizer) {
      fail("SequentialLR: schedule {} is null or built on another optimizer", i);
    }
  }
  for (std::size_t i = 0; i < milestones_.size(); ++i) {
    if (milestones_[i] <= (i == 0 ? 0 : milestones_[i - 1])) {
      fail("SequentialLR: expected positive, increasing milestones, got {} after {}",
           milestones_[i], i == 0 ? 0 : milestones_[i - 1]);
    }
  }
  start();
}

double SequentialLR::lr_at(std::int64_t epoch, double base_lr) const {
  const auto next = std::upper_bound(milestones_.begin(), milestones_.end(), epoch);
  const auto index = std::size_t(next - milestones_.begin());
  const std::int64_t since = index == 0 ? epoch : epoch - milestones_[index - 1];
  return schedules_[index]->lr_at(since, base_lr);
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options)
    : optimizer_(optimizer),
      options_(options),
      best_(options.mode == PlateauMode::min ? INFINITY : -INFINITY) {
  require(options.factor < 1, "ReduceLROnPlateau", "factor", "< 1", options.factor);
  require(options.factor >= 0, "ReduceLROnPlateau", "factor", "≥ 0", options.factor);
  if (options.patience < 0) {
    fail("ReduceLROnPlateau: expected patience ≥ 0, got {}", options.patience);
  }
  if (options.cooldown < 0) {
    fail("ReduceLROnPlateau: expected cooldown ≥ 0, got {}", options.cooldown);
  }
  require(options.threshold >= 0, "ReduceLROnPlateau", "threshold", "≥ 0", options.threshold);
  require(options.min_lr >= 0, "ReduceLROnPlateau", "min_lr", "≥ 0", options.min_lr);
  require(options.eps >= 0, "ReduceLROnPlateau", "eps", "≥ 0", options.eps);
}

bool ReduceLROnPlateau::improves(double metric) const {
  const bool rel = options_.threshold_mode == ThresholdMode::rel;
  if (options_.mode == PlateauMode::min) {
    return metric < (rel ? best_ * (1 - options_.threshold) : best_ - options_.threshold);
  }
  return metric > (rel ? best_ * (options_.threshold + 1) : best_ + options_.threshold);
}

void ReduceLROnPlateau::step(double metric) {
  if (improves(metric)) {
    best_ = metric;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  if (cooldown_left_ > 0) {
    --cooldown_left_;
    bad_epochs_ = 0;  // epochs in cooldown do not count
  }
  if (bad_epochs_ <= options_.patience) return;
  for (std::size_t g = 0; g < optimizer_.group_count(); ++g) {
    const double old_lr = optimizer_.lr(g);
    const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
    if (old_lr - new_lr > options_.eps) optimizer_.set_lr(g, new_lr);
  }
  cooldown_left_ = options_.cooldown;
  bad_epochs_ = 0;
}

}  // namespace tg::nn
