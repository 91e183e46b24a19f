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
// Every option is validated as PyTorch validates it (and NaN is rejected as well). Each optimizer
// takes one list of parameters or parameter groups with their own options and rates; schedules
// set every group's rate.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace tg::nn {

// A group of parameters with its own options, as torch.optim's param_groups (the usual use:
// weight decay off for biases and norms). A group without options takes the optimizer's
// defaults. Spell groups with designated initializers, {.params = …, .options = …}: a bare
// {{a}, {b}} would also read as a list of tensors.
template <class Options>
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<Options> options = std::nullopt;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update from the parameters' current grad(); parameters without a gradient are skipped.
  virtual void step() = 0;
  // As nn::zero_grad: drops the gradients (PyTorch 2's default), or zeroes them in place.
  void zero_grad(bool set_to_none = true);
  // The first group's learning rate (the only group's, when none were given).
  double lr() const { return lrs_.front(); }
  double lr(std::size_t group) const;
  // Sets every group's rate, or one group's.
  void set_lr(double lr);
  void set_lr(std::size_t group, double lr);
  std::size_t group_count() const { return lrs_.size(); }
  // Every group's parameters, group after group.
  const std::vector<Tensor>& parameters() const { return parameters_; }
  std::vector<Tensor> parameters(std::size_t group) const;
  // The per-parameter state (momenta, step counts) under torch.optim's names, "state.<i>.<name>"
  // with i the parameter's index ("state.0.exp_avg", "state.0.step"; counts as int64 scalars),
  // copies; a parameter not stepped yet has none. With the model's state_dict, what a checkpoint
  // needs to resume training exactly. Loading replaces the whole state: an entry this optimizer
  // (with its options) does not have, of another shape or dtype than its parameter, or a
  // parameter's state given in part (Adam's step without exp_avg; a plain Adam's state for an
  // amsgrad one) is an error, raised before anything changes.
  std::vector<std::pair<std::string, Tensor>> state_dict();
  void load_state_dict(const std::vector<std::pair<std::string, Tensor>>& state);

 protected:
  // Where parameter i's state lives: tensors (undefined until its first step) and counters.
  struct StateSlots {
    std::vector<std::pair<const char*, Tensor*>> tensors;
    std::vector<std::pair<const char*, std::int64_t*>> counters;
  };
  virtual StateSlots state_slots(std::size_t parameter) = 0;

  // Checks the groups (a parameter in two groups is an error, as in PyTorch; no parameter at
  // all is one too) and each group's lr; `name` heads every error message.
  Optimizer(const std::vector<std::vector<Tensor>>& groups, const std::vector<double>& lrs,
            const char* name);
  std::size_t group_of(std::size_t parameter) const { return group_of_[parameter]; }
  // use(i, parameter, gradient) for each parameter that has a gradient, in order.
  template <class Use>
  void for_each_gradient(Use&& use) {
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      const Tensor g = parameters_[i].grad();
      if (g.defined()) use(i, parameters_[i], g);
    }
  }
  double lr_of(std::size_t parameter) const { return lrs_[group_of_[parameter]]; }

  std::vector<Tensor> parameters_;

 private:
  friend class LRScheduler;
  // torch's group["initial_lr"]: the rates when the first schedule was attached, which every
  // later schedule starts from too (SequentialLR's do).
  const std::vector<double>& initial_lrs();

  const char* name_;
  std::vector<std::size_t> group_of_;
  std::vector<double> lrs_;
  std::vector<double> initial_lrs_;
};

// An optimizer whose groups each carry its kind of Options.
template <class Options>
class GroupedOptimizer : public Optimizer {
 protected:
  GroupedOptimizer(std::vector<ParamGroup<Options>> groups, const Options& defaults,
                   const char* name)
      : GroupedOptimizer(split(std::move(groups), defaults), name) {}
  // The options of parameter i's group (their lr is the optimizer's lr_of(i), which schedules
  // change).
  const Options& options_of(std::size_t parameter) const { return options_[group_of(parameter)]; }
  const std::vector<Options>& group_options() const { return options_; }

 private:
  struct Split {
    std::vector<std::vector<Tensor>> params;
    std::vector<Options> options;
    std::vector<double> lrs;
  };
  // Each group's parameters, options (the defaults where it has none) and lr.
  static Split split(std::vector<ParamGroup<Options>> groups, const Options& defaults) {
    Split out;
    for (ParamGroup<Options>& group : groups) {
      out.params.push_back(std::move(group.params));
      out.options.push_back(group.options.value_or(defaults));
      out.lrs.push_back(out.options.back().lr);
    }
    return out;
  }
  GroupedOptimizer(Split split, const char* name)
      : Optimizer(split.params, split.lrs, name), options_(std::move(split.options)) {}

  std::vector<Options> options_;
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
class SGD : public GroupedOptimizer<SGDOptions> {
 public:
  SGD(std::vector<Tensor> parameters, SGDOptions options);
  explicit SGD(std::vector<ParamGroup<SGDOptions>> groups, SGDOptions defaults = {});
  void step() override;

 protected:
  StateSlots state_slots(std::size_t parameter) override;

 private:
  std::vector<Tensor> momentum_;  // undefined until the parameter's first gradient
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
};

// AdamW's options: the same, with PyTorch's AdamW default λ = 0.01.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  bool amsgrad = false;
};

// Per parameter, with t its own count of steps that had a gradient:
// g ← ∇ + λp; m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
// p ← p − (lr / (1 − β₁ᵗ)) · m / (√v̂ / √(1 − β₂ᵗ) + ε), where v̂ = v, or with amsgrad the largest
// v so far (elementwise).
class Adam : public GroupedOptimizer<AdamOptions> {
 public:
  Adam(std::vector<Tensor> parameters, AdamOptions options);
  explicit Adam(std::vector<ParamGroup<AdamOptions>> groups, AdamOptions defaults = {});
  void step() override;
  // How many steps parameter i has been updated by (its t in the bias correction).
  std::int64_t steps(std::size_t parameter) const { return state_.at(parameter).steps; }

 protected:
  // decoupled: AdamW's p ← p(1 − lr·λ) instead of adding λp to the gradient.
  Adam(std::vector<ParamGroup<AdamOptions>> groups, const AdamOptions& defaults, bool decoupled);
  StateSlots state_slots(std::size_t parameter) override;

 private:
  struct State {
    Tensor m;  // all undefined until the parameter's first gradient
    Tensor v;
    Tensor v_max;  // amsgrad only
    std::int64_t steps = 0;
  };
  bool decoupled_;
  std::vector<State> state_;
};

// Adam with decoupled weight decay (Loshchilov and Hutter): p ← p(1 − lr·λ), then Adam's step
// without λ.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> parameters, AdamWOptions options = {});
  explicit AdamW(std::vector<ParamGroup<AdamWOptions>> groups, AdamWOptions defaults = {});
};

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
};

// g ← ∇ + λp; s ← αs + (1 − α)g²; centered: a ← αa + (1 − α)g and d ← √(s − a²) + ε, else
// d ← √s + ε; with momentum b ← μb + g/d and p ← p − lr·b, else p ← p − lr·g/d.
class RMSprop : public GroupedOptimizer<RMSpropOptions> {
 public:
  RMSprop(std::vector<Tensor> parameters, RMSpropOptions options = {});
  explicit RMSprop(std::vector<ParamGroup<RMSpropOptions>> groups, RMSpropOptions defaults = {});
  void step() override;

 protected:
  StateSlots state_slots(std::size_t parameter) override;

 private:
  struct State {
    Tensor square_avg;  // all undefined until the parameter's first gradient
    Tensor grad_avg;    // centered only
    Tensor momentum;    // momentum > 0 only
  };
  std::vector<State> state_;
};

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
};

// With t the parameter's own count of steps: g ← ∇ + λp; s ← s + g² (s starts at
// initial_accumulator_value); p ← p − lr/(1 + (t − 1)·lr_decay) · g/(√s + ε). A group's own
// initial_accumulator_value is used (PyTorch 1.13 fills every group's with the constructor's).
class Adagrad : public GroupedOptimizer<AdagradOptions> {
 public:
  Adagrad(std::vector<Tensor> parameters, AdagradOptions options = {});
  explicit Adagrad(std::vector<ParamGroup<AdagradOptions>> groups, AdagradOptions defaults = {});
  void step() override;

 protected:
  StateSlots state_slots(std::size_t parameter) override;

 private:
  struct State {
    Tensor sum;  // undefined until the parameter's first gradient
    std::int64_t steps = 0;
  };
  std::vector<State> state_;
};

class Module;

namespace detail {
struct WeightDecaySplit {
  std::vector<Tensor> decayed;
  std::vector<Tensor> not_decayed;
};
WeightDecaySplit split_for_weight_decay(const Module& module, bool exclude_embeddings);
}  // namespace detail

// nanoGPT's configure_optimizers groups: group 0 the module's parameters of rank ≥ 2 (matrices)
// with `decayed`, group 1 the rest (biases, norm weights) with the same options but weight_decay
// 0, each in parameters() order (a tied tensor once). With exclude_embeddings (the default, as
// "decay weights but not biases, norms and embeddings") a tensor held only by Embedding modules
// goes to group 1 too; a tied one that is also another module's weight (GPT's wte/lm_head) stays
// decayed, as the output projection it also is (nanoGPT, which excludes no embedding, decays it
// as well). A group may be empty.
template <class Options>
std::vector<ParamGroup<Options>> weight_decay_groups(const Module& module, Options decayed,
                                                     bool exclude_embeddings = true) {
  detail::WeightDecaySplit split = detail::split_for_weight_decay(module, exclude_embeddings);
  Options undecayed = decayed;
  undecayed.weight_decay = 0.0;
  std::vector<ParamGroup<Options>> groups;
  groups.push_back({.params = std::move(split.decayed), .options = decayed});
  groups.push_back({.params = std::move(split.not_decayed), .options = undecayed});
  return groups;
}

// torch.nn.utils.clip_grad_norm_: the norm of order norm_type (> 0, or INFINITY for the largest
// |gradient|) of all gradients together, as if concatenated; every gradient is then multiplied
// by min(1, max_norm / (norm + 1e-6)), always (so a norm equal to max_norm still shrinks by the
// 1e-6, and a NaN norm makes every gradient NaN, as in PyTorch), unless error_if_nonfinite
// rejects a NaN or infinite norm. Parameters without a gradient are skipped; with none, the
// norm is 0. Returns the norm before clipping. A negative or NaN max_norm is an error (PyTorch
// would flip the gradients' sign).
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm,
                      double norm_type = 2.0, bool error_if_nonfinite = false);

// A schedule sets every group's rate from the rate that group had when the first schedule was
// attached to the optimizer (torch's initial_lr).
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;
  // Call once per epoch (per batch for OneCycleLR), after the optimizer's steps.
  void step();
  std::int64_t epoch() const { return epoch_; }

 protected:
  // The rate at `epoch` of a group that started at base_lr.
  virtual double lr_at(std::int64_t epoch, double base_lr) const = 0;
  // Sets the rates to epoch 0's: for schedules that do not start at the base rate (torch's
  // schedulers take their first step in the constructor).
  void start();

 private:
  friend class SequentialLR;
  void apply(std::int64_t epoch);

  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  std::int64_t epoch_ = 0;
};

// lr = base · γ^⌊epoch / step_size⌋ (PyTorch's closed form); step_size > 0, γ ≥ 0.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(std::int64_t epoch, double base_lr) const override;

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
  double lr_at(std::int64_t epoch, double base_lr) const override;

 private:
  std::int64_t t_max_;
  double eta_min_;
};

// Warm-up: lr = base · (s + (e − s) · min(epoch, total_iters) / total_iters), from s·base at
// construction to e·base at total_iters, then constant. 0 < s ≤ 1, 0 ≤ e ≤ 1, total_iters > 0.
// (The closed form of PyTorch's recursive one: the same rates to rounding.)
class LinearLR : public LRScheduler {
 public:
  explicit LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
                    std::int64_t total_iters = 5);

 protected:
  double lr_at(std::int64_t epoch, double base_lr) const override;

 private:
  double start_factor_;
  double end_factor_;
  std::int64_t total_iters_;
};

enum class Anneal { cos, linear };

// Smith's one-cycle policy, stepped once per batch: from max_lr / div_factor up to max_lr over the
// first pct_start of total_steps, then down to max_lr / (div_factor · final_div_factor), by
// cosine or linear annealing, as PyTorch's two-phase schedule. Every group follows the same
// max_lr. Stepping past total_steps is an error. Momentum is not cycled (PyTorch's
// cycle_momentum = true also cycles β₁ or momentum between 0.85 and 0.95).
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps, double pct_start = 0.3,
             Anneal anneal = Anneal::cos, double div_factor = 25.0, double final_div_factor = 1e4);

 protected:
  double lr_at(std::int64_t epoch, double base_lr) const override;

 private:
  double max_lr_;
  std::int64_t total_steps_;
  double warmup_end_;  // PyTorch's first end_step, pct_start · total_steps − 1
  Anneal anneal_;
  double initial_lr_;
  double min_lr_;
};

// One schedule after another: schedules[0] until epoch milestones[0], then schedules[1] counted
// from 0 at that milestone, and so on (PyTorch's SequentialLR). The schedules must be built on
// the same optimizer, and only the SequentialLR is stepped.
class SequentialLR : public LRScheduler {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedules,
               std::vector<std::int64_t> milestones);

 protected:
  double lr_at(std::int64_t epoch, double base_lr) const override;

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedules_;
  std::vector<std::int64_t> milestones_;
};

enum class PlateauMode { min, max };
enum class ThresholdMode { rel, abs };

struct ReduceLROnPlateauOptions {
  PlateauMode mode = PlateauMode::min;
  double factor = 0.1;
  std::int64_t patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::rel;
  std::int64_t cooldown = 0;
  double min_lr = 0.0;
  double eps = 1e-8;
};

// Divides every group's rate by 1/factor (not below min_lr) once the metric has not improved for
// more than `patience` epochs, then waits `cooldown` epochs before counting again, as PyTorch's.
// Improving means beating the best so far by the threshold: best·(1 ∓ threshold) in rel mode,
// best ∓ threshold in abs mode. A change smaller than eps is not made. A NaN metric never
// improves. One min_lr for every group.
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  // Call once per epoch with the metric watched (a validation loss, say).
  void step(double metric);
  double best() const { return best_; }
  std::int64_t bad_epochs() const { return bad_epochs_; }

 private:
  bool improves(double metric) const;

  Optimizer& optimizer_;
  ReduceLROnPlateauOptions options_;
  double best_;
  std::int64_t bad_epochs_ = 0;
  std::int64_t cooldown_left_ = 0;
};

}  // namespace tg::nn
