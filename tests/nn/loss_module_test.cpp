// The loss modules of nn/loss_module.h: each equals its loss op bitwise (value and gradient) and
// PyTorch 1.13's module with the same options (tests/reference/loss_modules.json, written by
// scripts/make_loss_module_reference.py), prints as PyTorch does, keeps its weight as a buffer
// and reports errors at the caller's line.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../expect_error.h"
#include "tapegrad.h"

namespace tg::nn {
namespace {

using json = nlohmann::json;
using test_support::expect_error_containing;

const json& fixture() {
  static const json parsed = [] {
    std::ifstream in(std::string(TAPEGRAD_REFERENCE_DIR) + "/loss_modules.json");
    if (!in) throw std::runtime_error("cannot read loss_modules.json");
    return json::parse(in);
  }();
  return parsed;
}

Reduction reduction_of(const json& options) {
  const std::string name = options.value("reduction", "mean");
  return name == "sum" ? Reduction::sum : name == "none" ? Reduction::none : Reduction::mean;
}

Tensor weight_of(const json& options) {
  if (!options.contains("weight")) return {};
  return from_vector(options.at("weight").get<std::vector<double>>(), {4}, f64);
}

CrossEntropyOptions cross_entropy_options(const json& o) {
  return {.reduction = reduction_of(o),
          .ignore_index = o.value("ignore_index", std::int64_t(-100)),
          .label_smoothing = o.value("label_smoothing", 0.0),
          .weight = weight_of(o)};
}

NllLossOptions nll_options(const json& o) {
  return {.reduction = reduction_of(o),
          .ignore_index = o.value("ignore_index", std::int64_t(-100)),
          .weight = weight_of(o)};
}

// The case's module, and the loss op it must equal.
struct Subject {
  std::shared_ptr<Loss> module;
  TensorFunction op;
};

Subject subject(const json& c) {
  const std::string name = c.at("module");
  const json& o = c.at("options");
  const Reduction r = reduction_of(o);
  if (name == "MSELoss") {
    return {std::make_shared<MSELoss>(MSELossOptions{r}),
            [=](const auto& in) { return mse_loss(in[0], in[1], r); }};
  }
  if (name == "L1Loss") {
    return {std::make_shared<L1Loss>(L1LossOptions{r}),
            [=](const auto& in) { return l1_loss(in[0], in[1], r); }};
  }
  if (name == "SmoothL1Loss") {
    const double beta = o.value("beta", 1.0);
    return {std::make_shared<SmoothL1Loss>(SmoothL1LossOptions{.reduction = r, .beta = beta}),
            [=](const auto& in) { return smooth_l1_loss(in[0], in[1], r, beta); }};
  }
  if (name == "BCEWithLogitsLoss") {
    return {std::make_shared<BCEWithLogitsLoss>(BCEWithLogitsLossOptions{r}),
            [=](const auto& in) { return binary_cross_entropy_with_logits(in[0], in[1], r); }};
  }
  if (name == "CrossEntropyLoss") {
    const CrossEntropyOptions options = cross_entropy_options(o);
    return {std::make_shared<CrossEntropyLoss>(options),
            [=](const auto& in) { return cross_entropy(in[0], in[1], options); }};
  }
  EXPECT_EQ(name, "NLLLoss");
  const NllLossOptions options = nll_options(o);
  return {std::make_shared<NLLLoss>(options),
          [=](const auto& in) { return nll_loss(in[0], in[1], options); }};
}

std::vector<Tensor> inputs_of(const json& c) {
  const Shape shape(c.at("shape").get<std::vector<std::int64_t>>());
  Tensor x = from_vector(c.at("input").get<std::vector<double>>(), shape, f64);
  const Tensor target = c.at("target_is_labels")
                            ? int64_tensor(c.at("target").get<std::vector<std::int64_t>>())
                            : from_vector(c.at("target").get<std::vector<double>>(), shape, f64);
  return {x.requires_grad(true), target};
}

void expect_close(const std::vector<double>& got, const json& want, const char* what) {
  const std::vector<double> expected = want.get<std::vector<double>>();
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], 1e-12 * (1 + std::abs(expected[i])))
        << what << " element " << i;
  }
}

TEST(LossModules, MatchPyTorchsModulesWithTheirOptions) {
  const json& cases = fixture().at("cases");
  ASSERT_EQ(cases.size(), 21u);
  for (const json& c : cases) {
    SCOPED_TRACE(c.dump().substr(0, 120));
    const std::vector<Tensor> in = inputs_of(c);
    Subject s = subject(c);
    const Tensor out = (*s.module)(in[0], in[1]);
    EXPECT_EQ(out.shape(), Shape(c.at("output_shape").get<std::vector<std::int64_t>>()));
    expect_close(out.to_vector(), c.at("output"), "output");
    const Tensor cotangent =
        from_vector(c.at("cotangent").get<std::vector<double>>(), out.shape(), f64);
    expect_close(grad(sum(out * cotangent), {in[0]})[0].to_vector(), c.at("grad_input"),
                 "gradient");
  }
}

TEST(LossModules, EqualTheirLossOpsBitwise) {
  for (const json& c : fixture().at("cases")) {
    SCOPED_TRACE(c.dump().substr(0, 120));
    const std::vector<Tensor> in = inputs_of(c);
    Subject s = subject(c);
    const Tensor module_out = s.module->forward(in[0], in[1]);
    const Tensor op_out = s.op(in);
    EXPECT_EQ(module_out.to_vector(), op_out.to_vector());
    const Tensor cotangent = full(op_out.shape(), 0.75, f64);
    EXPECT_EQ(grad(sum(module_out * cotangent), {in[0]})[0].to_vector(),
              grad(sum(op_out * cotangent), {in[0]})[0].to_vector());
  }
}

TEST(LossModules, PrintAsPyTorch) {
  std::ostringstream out;
  out << CrossEntropyLoss() << ' ' << NLLLoss() << ' ' << MSELoss() << ' ' << L1Loss() << ' '
      << SmoothL1Loss() << ' ' << BCEWithLogitsLoss();
  EXPECT_EQ(out.str(),
            "CrossEntropyLoss() NLLLoss() MSELoss() L1Loss() SmoothL1Loss() BCEWithLogitsLoss()");
}

TEST(LossModules, AWeightIsABufferAsInPyTorch) {
  EXPECT_TRUE(CrossEntropyLoss().state_dict().empty());
  CrossEntropyLoss weighted({.weight = tensor({1.0, 2.0, 0.5})});
  ASSERT_EQ(weighted.named_buffers().size(), 1u);
  EXPECT_EQ(weighted.named_buffers()[0].first, "weight");
  EXPECT_TRUE(weighted.parameters().empty());
  // to() converts the weight the loss uses: a float32 weight would not fit float64 logits.
  weighted.to(f64);
  EXPECT_EQ(weighted.named_buffers()[0].second.dtype(), f64);
  const Tensor logits = tensor({{1.0, 2.0, 3.0}, {0.5, 0.0, -1.0}}, f64);
  const Tensor labels = int64_tensor({1, 0});
  const Tensor weight = tensor({1.0, 2.0, 0.5}, f64);
  EXPECT_EQ(weighted(logits, labels).item(),
            cross_entropy(logits, labels, {.weight = weight}).item());
  NLLLoss nll({.weight = weight});
  EXPECT_EQ(nll.state_dict()[0].first, "weight");
}

TEST(LossModules, TakeTwoInputsAndAHolderCallsThem) {
  const Tensor x = tensor({{1.0, -2.0}}), t = tensor({{0.5, 0.5}});
  ModuleHolder<MSELoss> holder(MSELossOptions{.reduction = Reduction::sum});
  EXPECT_EQ(holder(x, t).item(), mse_loss(x, t, Reduction::sum).item());
  EXPECT_EQ(holder->forward(x, t).item(), 6.5);
  Module& as_module = *holder;
  expect_error_containing([&] { as_module(x); }, "MSELoss: a loss takes (input, target)");
}

TEST(LossModules, ErrorsNameTheCallersLine) {
  const Tensor x = tensor({{1.0, -2.0}}), t = tensor({{0.5, 0.5}});
  SmoothL1Loss negative_beta({.beta = -1.0});
  const std::string line = "loss_module_test.cpp:" + std::to_string(__LINE__ + 1);
  expect_error_containing([&] { negative_beta(x, t); }, line);
  CrossEntropyLoss criterion;
  const std::string next = "loss_module_test.cpp:" + std::to_string(__LINE__ + 1);
  expect_error_containing([&] { criterion(x, int64_tensor({5})); }, next);
}

}  // namespace
}  // namespace tg::nn
