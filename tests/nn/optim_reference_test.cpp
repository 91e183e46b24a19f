// The optimizers' options, parameter groups and the schedules against torch.optim 1.13 itself:
// tests/reference/optim_*.json, written by scripts/make_optim_reference.py, replayed in float64
// to 1e-12 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tapegrad.h"

namespace tg::nn {
namespace {

using json = nlohmann::json;

const json& reference(const std::string& file) {
  static std::map<std::string, json> parsed;
  auto found = parsed.find(file);
  if (found == parsed.end()) {
    std::ifstream in(std::string(TAPEGRAD_REFERENCE_DIR) + "/" + file);
    if (!in) throw std::runtime_error("cannot read " + file);
    found = parsed.emplace(file, json::parse(in)).first;
  }
  return found->second;
}

std::vector<std::string> case_names(const std::string& file) {
  std::vector<std::string> names;
  for (const json& c : reference(file).at("cases")) names.push_back(c.at("name"));
  return names;
}

const json& find_case(const std::string& file, const std::string& name) {
  for (const json& c : reference(file).at("cases")) {
    if (c.at("name") == name) return c;
  }
  throw std::runtime_error("no case " + name + " in " + file);
}

std::string case_name(const testing::TestParamInfo<std::string>& info) {
  return info.param;
}

void expect_close(double got, double want, const std::string& what) {
  EXPECT_LE(std::abs(got - want), 1e-12 * std::abs(want))
      << what << ": got " << got << ", PyTorch " << want;
}

// The options of a case (torch's names), over `o`.
SGDOptions with(const json& j, SGDOptions o) {
  o.lr = j.value("lr", o.lr);
  o.momentum = j.value("momentum", o.momentum);
  o.dampening = j.value("dampening", o.dampening);
  o.weight_decay = j.value("weight_decay", o.weight_decay);
  o.nesterov = j.value("nesterov", o.nesterov);
  return o;
}

template <class AdamLike>
AdamLike with_adam(const json& j, AdamLike o) {
  o.lr = j.value("lr", o.lr);
  o.beta1 = j.value("beta1", o.beta1);
  o.beta2 = j.value("beta2", o.beta2);
  o.eps = j.value("eps", o.eps);
  o.weight_decay = j.value("weight_decay", o.weight_decay);
  o.amsgrad = j.value("amsgrad", o.amsgrad);
  return o;
}
AdamOptions with(const json& j, AdamOptions o) {
  return with_adam(j, o);
}
AdamWOptions with(const json& j, AdamWOptions o) {
  return with_adam(j, o);
}

RMSpropOptions with(const json& j, RMSpropOptions o) {
  o.lr = j.value("lr", o.lr);
  o.alpha = j.value("alpha", o.alpha);
  o.eps = j.value("eps", o.eps);
  o.weight_decay = j.value("weight_decay", o.weight_decay);
  o.momentum = j.value("momentum", o.momentum);
  o.centered = j.value("centered", o.centered);
  return o;
}

AdagradOptions with(const json& j, AdagradOptions o) {
  o.lr = j.value("lr", o.lr);
  o.lr_decay = j.value("lr_decay", o.lr_decay);
  o.weight_decay = j.value("weight_decay", o.weight_decay);
  o.initial_accumulator_value = j.value("initial_accumulator_value", o.initial_accumulator_value);
  o.eps = j.value("eps", o.eps);
  return o;
}

// The case's groups; a group without overrides is left without options, so it takes the
// defaults as in PyTorch.
template <class Optim, class Options>
std::unique_ptr<Optimizer> make(const json& c, const std::vector<Tensor>& parameters) {
  const Options defaults = with(c.at("defaults"), Options{});
  std::vector<ParamGroup<Options>> groups;
  for (const json& g : c.at("groups")) {
    ParamGroup<Options> group;
    for (std::size_t index : g.at("params")) group.params.push_back(parameters.at(index));
    if (!g.at("options").empty()) group.options = with(g.at("options"), defaults);
    groups.push_back(group);
  }
  return std::make_unique<Optim>(std::move(groups), defaults);
}

std::unique_ptr<Optimizer> make_optimizer(const json& c, const std::vector<Tensor>& parameters) {
  const std::string kind = c.at("kind");
  if (kind == "SGD") return make<SGD, SGDOptions>(c, parameters);
  if (kind == "Adam") return make<Adam, AdamOptions>(c, parameters);
  if (kind == "AdamW") return make<AdamW, AdamWOptions>(c, parameters);
  if (kind == "RMSprop") return make<RMSprop, RMSpropOptions>(c, parameters);
  if (kind == "Adagrad") return make<Adagrad, AdagradOptions>(c, parameters);
  throw std::runtime_error("no optimizer " + kind);
}

Shape shape_of(const json& dims) {
  const std::vector<std::int64_t> d = dims;
  return Shape(std::span<const std::int64_t>(d));
}

class OptimizerReference : public testing::TestWithParam<std::string> {};

TEST_P(OptimizerReference, SixStepsMatchTorchOptim) {
  const json& c = find_case("optim_optimizers.json", GetParam());
  std::vector<Tensor> parameters;
  for (std::size_t i = 0; i < c.at("initial").size(); ++i) {
    parameters.push_back(
        from_vector(c.at("initial")[i], shape_of(c.at("shapes")[i]), f64).requires_grad(true));
  }
  const std::unique_ptr<Optimizer> optimizer = make_optimizer(c, parameters);
  EXPECT_EQ(optimizer->group_count(), c.at("groups").size());
  for (std::size_t step = 0; step < c.at("steps").size(); ++step) {
    optimizer->zero_grad();
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      const json& g = c.at("grads")[step][i];
      if (g.is_null()) continue;
      sum(parameters[i] * from_vector(g, parameters[i].shape(), f64)).backward();
    }
    optimizer->step();
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      const std::vector<double> got = parameters[i].to_vector();
      const std::vector<double> want = c.at("steps")[step][i];
      for (std::size_t e = 0; e < want.size(); ++e) {
        expect_close(got[e], want[e], fmt::format("step {}, parameter {}[{}]", step + 1, i, e));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, OptimizerReference,
                         testing::ValuesIn(case_names("optim_optimizers.json")), case_name);

Anneal anneal_named(const std::string& name) {
  if (name == "cos") return Anneal::cos;
  if (name == "linear") return Anneal::linear;
  throw std::runtime_error("no anneal strategy " + name);
}

std::shared_ptr<LRScheduler> make_schedule(const json& s, Optimizer& optimizer) {
  const std::string kind = s.at("kind");
  if (kind == "LinearLR") {
    return std::make_shared<LinearLR>(optimizer, s.at("start_factor"), s.at("end_factor"),
                                      s.at("total_iters"));
  }
  if (kind == "StepLR")
    return std::make_shared<StepLR>(optimizer, s.at("step_size"), s.at("gamma"));
  if (kind == "CosineAnnealingLR") {
    return std::make_shared<CosineAnnealingLR>(optimizer, s.at("T_max"), s.at("eta_min"));
  }
  if (kind == "OneCycleLR") {
    return std::make_shared<OneCycleLR>(optimizer, s.at("max_lr"), s.at("total_steps"),
                                        s.at("pct_start"), anneal_named(s.at("anneal")),
                                        s.at("div_factor"), s.at("final_div_factor"));
  }
  if (kind == "SequentialLR") {
    std::vector<std::shared_ptr<LRScheduler>> schedules;
    for (const json& child : s.at("schedules"))
      schedules.push_back(make_schedule(child, optimizer));
    return std::make_shared<SequentialLR>(optimizer, schedules, s.at("milestones"));
  }
  throw std::runtime_error("no schedule " + kind);
}

ReduceLROnPlateauOptions plateau_options(const json& s) {
  return {
      .mode = s.at("mode") == "min" ? PlateauMode::min : PlateauMode::max,
      .factor = s.at("factor"),
      .patience = s.at("patience"),
      .threshold = s.at("threshold"),
      .threshold_mode = s.at("threshold_mode") == "rel" ? ThresholdMode::rel : ThresholdMode::abs,
      .cooldown = s.at("cooldown"),
      .min_lr = s.at("min_lr"),
      .eps = s.at("eps")};
}

class ScheduleReference : public testing::TestWithParam<std::string> {};

// SGD over two groups (lr 0.1 and 0.02): both rates after construction and after every step.
TEST_P(ScheduleReference, RatesMatchTorchForEveryStep) {
  const json& c = find_case("optim_schedules.json", GetParam());
  const Tensor w = zeros({1}, f64).requires_grad(true);
  const Tensor b = zeros({1}, f64).requires_grad(true);
  SGD sgd({{.params = {w}}, {.params = {b}, .options = SGDOptions{.lr = 0.02}}}, {.lr = 0.1});
  const json& spec = c.at("schedule");
  const bool plateau = spec.at("kind") == "ReduceLROnPlateau";
  std::shared_ptr<LRScheduler> schedule;
  std::unique_ptr<ReduceLROnPlateau> on_plateau;
  if (plateau) {
    on_plateau = std::make_unique<ReduceLROnPlateau>(sgd, plateau_options(spec));
  } else {
    schedule = make_schedule(spec, sgd);
  }
  const json& lrs = c.at("lrs");
  ASSERT_GE(lrs.size(), 31u);
  for (std::size_t step = 0; step < lrs.size(); ++step) {
    if (step > 0) {
      sgd.step();
      if (plateau) {
        on_plateau->step(c.at("metrics")[step - 1]);
      } else {
        schedule->step();
      }
    }
    for (std::size_t g = 0; g < 2; ++g) {
      expect_close(sgd.lr(g), lrs[step][g], fmt::format("step {}, group {}", step, g));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, ScheduleReference,
                         testing::ValuesIn(case_names("optim_schedules.json")), case_name);

}  // namespace
}  // namespace tg::nn
