// batch_norm, group_norm, instance_norm and dropout2d (ops/norm.cpp): PyTorch 1.13's answers
// (tests/reference/norm.json, written by scripts/make_norm_reference.py) replayed with the
// reference suite's tolerance, the running statistics PyTorch leaves after each training call,
// closed-form values, edge cases and errors. The registry checks the gradients (gradcheck,
// float32, gradgradcheck) of every registered variant.
#include <gtest/gtest.h>

#include <fmt/ranges.h>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "ops/everyday.h"
#include "ops/norm.h"
#include "tapegrad.h"
#include "tests/expect_error.h"
#include "tests/reference_fixture.h"

namespace tg {
namespace {

using nlohmann::json;
using test_support::dtype_named;
using test_support::expect_error_at;
using test_support::expect_error_containing;
using test_support::fixture;
using test_support::fixture_case;
using test_support::number;
using test_support::numbers;
using test_support::replay_floating_op;
using test_support::rtol;

// ---- the fixture (tests/reference/norm.json) ----

Tensor per_channel(const json& values, DType dtype) {
  if (values.is_null()) return {};
  return from_vector(numbers(values), {std::int64_t(values.size())}, dtype);
}

struct Call {
  Tensor output;
  Tensor running_mean;  // after the call
  Tensor running_var;
};

// The one place that maps a norm.json call to tapegrad.
Call call_norm(const json& call, const std::vector<Tensor>& in) {
  const DType dtype = in.at(0).dtype();
  const std::string fn = call.at("fn");
  const Tensor weight = in.size() > 1 ? in[1] : Tensor();
  const Tensor bias = in.size() > 2 ? in[2] : Tensor();
  Call out;
  if (fn == "group_norm") {
    out.output = group_norm(in[0], call.at("num_groups").get<std::int64_t>(), weight, bias,
                            number(call.at("eps")));
  } else if (fn == "dropout2d") {
    Generator generator(call.at("seed").get<std::uint64_t>());
    out.output = dropout2d(in[0], number(call.at("p")), call.at("training").get<bool>(), generator);
  } else {
    out.running_mean = per_channel(call.at("running_mean"), dtype);
    out.running_var = per_channel(call.at("running_var"), dtype);
    const double momentum = number(call.at("momentum"));
    const double eps = number(call.at("eps"));
    out.output = fn == "batch_norm"
                     ? batch_norm(in[0], out.running_mean, out.running_var, weight, bias,
                                  call.at("training").get<bool>(), momentum, eps)
                     : instance_norm(in[0], out.running_mean, out.running_var, weight, bias,
                                     call.at("use_input_stats").get<bool>(), momentum, eps);
  }
  return out;
}

// The running statistics after a training call: PyTorch computes the unbiased variance and the
// blend in its own precision; a few ulps of the value and of the blended terms.
std::string compare_running(const std::string& what, const Tensor& got, const json& expected,
                            DType dtype) {
  if (expected.is_null()) return got.defined() ? "" : what + ": missing\n";
  const std::vector<double> want = numbers(expected);
  const std::vector<double> have = got.to_vector();
  std::string report;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double tolerance = 4 * rtol(dtype) * (std::abs(want[i]) + 1.0);
    if (!(std::abs(have.at(i) - want[i]) <= tolerance)) {
      report += fmt::format("{} [{}]: expected {}, got {}\n", what, i, want[i], have[i]);
    }
  }
  return report;
}

// The shared replay (output, VJPs, second order), and the running statistics the call left.
std::string replay(const json& c) {
  Call result;
  std::string report =
      replay_floating_op(c, [&](const json& call, const std::vector<Tensor>& inputs) {
        result = call_norm(call, inputs);
        return result.output;
      });
  if (c.contains("running_after")) {
    const DType dtype = dtype_named(c.at("dtype"));
    report += compare_running("running_mean", result.running_mean, c.at("running_after")[0], dtype);
    report += compare_running("running_var", result.running_var, c.at("running_after")[1], dtype);
  }
  return report;
}

class NormReference : public ::testing::TestWithParam<std::size_t> {};

TEST_P(NormReference, MatchesPyTorch) {
  test_support::expect_case_matches("norm.json", GetParam(), replay);
}

INSTANTIATE_TEST_SUITE_P(Fixture, NormReference,
                         ::testing::ValuesIn(test_support::case_indices("norm.json")),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return test_support::case_test_name("norm.json", info.param);
                         });

// Every registered norm op has a fixture case in both dtypes, and every case names one.
TEST(NormReferenceCoverage, EveryRegisteredNormOpHasCasesInBothDtypes) {
  std::map<std::string, std::set<std::string>> dtypes;
  for (const json& entry : fixture("norm.json").header.at("index")) {
    dtypes[entry[0].get<std::string>()].insert(entry[2].get<std::string>());
  }
  ASSERT_FALSE(dtypes.empty()) << "tests/reference/norm.json is missing or empty";
  std::set<std::string> registered;
  for (const OpRegistration& op : op_registry().ops()) {
    for (const char* family : {"batch_norm", "group_norm", "instance_norm", "dropout2d"}) {
      if (op.name.starts_with(family)) registered.insert(op.name);
    }
  }
  EXPECT_EQ(registered.size(), 12u);
  for (const std::string& name : registered) EXPECT_EQ(dtypes[name].size(), 2u) << name;
  for (const auto& [name, kinds] : dtypes) EXPECT_TRUE(registered.contains(name)) << name;
}

// ---- closed-form values ----

TEST(BatchNorm, TrainingNormalisesEachChannelAndUpdatesTheRunningStatistics) {
  // Channel 0: 1, 3 (mean 2, biased var 1, unbiased 2); channel 1: 4, 4 (var 0).
  const Tensor x = tensor({{1, 4}, {3, 4}}, f64);
  Tensor rm = tensor({0.5, -1}, f64);
  Tensor rv = tensor({1, 3}, f64);
  const std::uint64_t version = rm.version();
  const Tensor y = batch_norm(x, rm, rv, {}, {}, true, 0.25, 0.0);
  const std::vector<double> got = y.to_vector();
  EXPECT_DOUBLE_EQ(got[0], -1.0);
  EXPECT_DOUBLE_EQ(got[2], 1.0);
  EXPECT_TRUE(std::isnan(got[1]));  // 0 / √0 with eps = 0, as PyTorch
  EXPECT_DOUBLE_EQ(rm.at({0}), 0.75 * 0.5 + 0.25 * 2);
  EXPECT_DOUBLE_EQ(rm.at({1}), 0.75 * -1 + 0.25 * 4);
  EXPECT_DOUBLE_EQ(rv.at({0}), 0.75 * 1 + 0.25 * 2);  // unbiased: 2, not 1
  EXPECT_DOUBLE_EQ(rv.at({1}), 0.75 * 3);
  EXPECT_GT(rm.version(), version);  // written in place, as an optimizer writes
  EXPECT_FALSE(rm.requires_grad());
}

TEST(BatchNorm, EvaluationUsesTheRunningStatisticsAsConstants) {
  const Tensor x = tensor({{1, 4}, {3, 5}}, f64).requires_grad(true);
  const Tensor rm = tensor({1, 2}, f64);
  const Tensor rv = tensor({4, 0.25}, f64);
  const Tensor w = tensor({2, 3}, f64);
  const Tensor b = tensor({0.5, -1}, f64);
  const Tensor y = batch_norm(x, rm, rv, w, b, false, 0.1, 0.0);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{0.5, 11, 2.5, 17}));
  EXPECT_EQ(rm.to_vector(), (std::vector<double>{1, 2}));  // unchanged
  const Tensor dx = grad(sum(y), {x})[0];
  EXPECT_EQ(dx.to_vector(), (std::vector<double>{1, 6, 1, 6}));  // w/σ, no batch coupling
}

TEST(BatchNorm, TrainingGradientFlowsThroughTheBatchStatistics) {
  // A normalised channel sums to 0 whatever x is, so the gradient of sum(y) is 0, which it is
  // only when the batch mean is differentiated (with the mean held constant it would be 1/σ).
  // The registry's gradcheck covers the variance's part.
  const Tensor x = tensor({{1, 4}, {3, 5}, {-2, 0.5}}, f64).requires_grad(true);
  const Tensor dx = grad(sum(batch_norm(x, {}, {}, {}, {}, true)), {x})[0];
  for (const double d : dx.to_vector()) EXPECT_NEAR(d, 0.0, 1e-12);
}

TEST(BatchNorm, LayoutsNCAndNCLAndNCHWAgree) {
  Generator gen(5);
  const Tensor x = uniform({3, 2, 2, 2}, gen, -1, 1, f64);
  const Tensor ncl = reshape(x, Shape{3, 2, 4});
  const Tensor a = batch_norm(x, {}, {}, {}, {}, true);
  const Tensor b = batch_norm(ncl, {}, {}, {}, {}, true);
  EXPECT_EQ(a.shape(), x.shape());
  EXPECT_EQ(a.to_vector(), b.to_vector());
  // [N, C] with N·L rows: the same statistics as [N, C, L] moved to rows.
  const Tensor rows = reshape(transpose(ncl, 1, 2), Shape{12, 2});
  const Tensor c = batch_norm(rows, {}, {}, {}, {}, true);
  const Tensor back = reshape(transpose(reshape(c, Shape{3, 4, 2}), 1, 2), Shape{3, 2, 2, 2});
  const std::vector<double> va = a.to_vector();
  const std::vector<double> vc = back.to_vector();
  for (std::size_t i = 0; i < va.size(); ++i) EXPECT_NEAR(va[i], vc[i], 1e-14);
}

TEST(BatchNorm, LargeOffsetKeepsItsDigits) {
  // Two-pass statistics: a one-pass E[x²] − E[x]² would lose every digit at 1e8 ± 1 in float64.
  const Tensor x = from_vector({1e8 + 1, 1e8 - 1, 1e8 + 1, 1e8 - 1}, {4, 1}, f64);
  const Tensor y = batch_norm(x, {}, {}, {}, {}, true, 0.1, 0.0);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{1, -1, 1, -1}));
  const Tensor x32 = from_vector({1e4 + 1, 1e4 - 1, 1e4 + 1, 1e4 - 1}, {4, 1}, f32);
  EXPECT_EQ(batch_norm(x32, {}, {}, {}, {}, true, 0.1, 0.0).to_vector(),
            (std::vector<double>{1, -1, 1, -1}));
}

TEST(BatchNorm, EmptyBatchGivesAnEmptyOutputAndLeavesTheRunningStatistics) {
  const Tensor x = zeros({0, 2, 3}, f64).requires_grad(true);
  Tensor rm = tensor({0.5, 1}, f64);
  Tensor rv = tensor({2, 3}, f64);
  const Tensor w = tensor({1, 2}, f64).requires_grad(true);
  const Tensor y = batch_norm(x, rm, rv, w, {}, true);
  EXPECT_EQ(y.shape(), (Shape{0, 2, 3}));
  EXPECT_EQ(rm.to_vector(), (std::vector<double>{0.5, 1}));
  EXPECT_EQ(rv.to_vector(), (std::vector<double>{2, 3}));
  const std::vector<Tensor> g = grad(sum(y), {x, w});
  EXPECT_EQ(g[0].shape(), (Shape{0, 2, 3}));
  EXPECT_EQ(g[1].to_vector(), (std::vector<double>{0, 0}));
  EXPECT_EQ(batch_norm(zeros({3, 0}, f32), {}, {}, {}, {}, true).shape(), (Shape{3, 0}));
}

TEST(BatchNorm, NonFiniteValuesPropagateWithinTheirChannel) {
  const Tensor x = tensor({{INFINITY, 1}, {0, 2}, {1, 3}}, f64);
  const std::vector<double> y = batch_norm(x, {}, {}, {}, {}, true).to_vector();
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[2]) && std::isnan(y[4]));
  EXPECT_TRUE(std::isfinite(y[1]) && std::isfinite(y[3]) && std::isfinite(y[5]));
}

TEST(BatchNorm, Errors) {
  const Tensor x = ones({2, 3}, f64);
  const Tensor c3 = ones({3}, f64);
  expect_error_at(
      [&] {
        batch_norm(ones({1, 3}, f64), {}, {}, {}, {}, true);
      },
      "batch_norm", __FILE__);
  expect_error_containing(
      [&] {
        batch_norm(ones({1, 3}, f64), {}, {}, {}, {}, true);
      },
      "Expected more than 1 value per channel when training, got input "
      "size [1, 3]");
  expect_error_containing(
      [&] {
        batch_norm(ones({1, 3, 1, 1}, f64), {}, {}, {}, {}, true);
      },
      "Expected more than 1 value per channel");
  // One sample with several positions is fine.
  EXPECT_EQ(batch_norm(ones({1, 3, 2}, f64), {}, {}, {}, {}, true).shape(), (Shape{1, 3, 2}));
  expect_error_containing([&] { batch_norm(x, {}, {}); }, "must be defined in evaluation mode");
  expect_error_containing([&] { batch_norm(x, ones({4}, f64), c3, {}, {}, true); },
                          "running_mean should be [3] for an input [2, 3], got [4]");
  expect_error_containing([&] { batch_norm(x, c3, c3, ones({2}, f64), {}, true); },
                          "weight should be [3]");
  expect_error_containing([&] { batch_norm(x, c3, c3, {}, ones({3}, f32), true); },
                          "bias is float32 but the input is float64");
  expect_error_containing([&] { batch_norm(ones({3}, f64), c3, c3); }, "of rank 2 or more");
  expect_error_containing(
      [&] {
        batch_norm(ones({2, 3}, i64), {}, {}, {}, {}, true);
      },
      "expected a floating input");
  expect_error_containing([&] { batch_norm(x, c3, c3, {}, {}, false, 0.1, -1.0); },
                          "expected eps >= 0");
  expect_error_at([&] { batch_norm(x, c3, ones({2}, f64)); }, "batch_norm", __FILE__);
}

TEST(GroupNorm, NormalisesEachGroupOfEachSample) {
  // Sample 0, group 0: channels 0 and 1 = {1, 3}, {5, 7}: mean 4, var 5.
  const Tensor x = from_vector({1, 3, 5, 7, 2, 2, 2, 2}, {1, 4, 2}, f64);
  const Tensor w = tensor({1, 2, 1, 1}, f64);
  const Tensor b = tensor({0, 0, 0, 10}, f64);
  const std::vector<double> y = group_norm(x, 2, w, b, 0.0).to_vector();
  const double s = std::sqrt(5.0);
  EXPECT_DOUBLE_EQ(y[0], -3 / s);
  EXPECT_DOUBLE_EQ(y[1], -1 / s);
  EXPECT_DOUBLE_EQ(y[2], 2 * 1 / s);
  EXPECT_DOUBLE_EQ(y[3], 2 * 3 / s);
  EXPECT_TRUE(std::isnan(y[4]));  // a constant group with eps 0: 0/0, as PyTorch
  // With eps, a constant group is 0 (then the bias).
  const std::vector<double> z = group_norm(x, 2, w, b, 1e-5).to_vector();
  EXPECT_EQ(z[4], 0.0);
  EXPECT_EQ(z[7], 10.0);
}

TEST(GroupNorm, OneGroupPerChannelIsInstanceNormAndOneGroupIsLayerNormOverCHW) {
  Generator gen(9);
  const Tensor x = uniform({2, 3, 4}, gen, -1, 1, f64);
  const std::vector<double> a = group_norm(x, 3).to_vector();
  const std::vector<double> b = instance_norm(x).to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-14);
  const Tensor flat = reshape(x, Shape{2, 12});
  const Tensor centred = flat - mean(flat, 1, true);
  const Tensor layer = centred / sqrt(mean(centred * centred, 1, true) + 1e-5);
  const std::vector<double> c = group_norm(x, 1).to_vector();
  const std::vector<double> d = layer.to_vector();
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], d[i], 1e-14);
}

TEST(GroupNorm, Errors) {
  expect_error_at([&] { group_norm(ones({2, 3, 4}, f64), 2); }, "group_norm", __FILE__);
  expect_error_containing(
      [&] {
        group_norm(ones({2, 3, 4}, f64), 2);
      },
      "Expected number of channels in input to be divisible by num_groups, "
      "but got input of shape [2, 3, 4] and num_groups=2");
  expect_error_containing([&] { group_norm(ones({2, 4}, f64), 0); }, "num_groups=0");
  expect_error_containing([&] { group_norm(ones({2, 4}, f64), -2); }, "num_groups=-2");
  expect_error_containing(
      [&] {
        group_norm(ones({2, 4}, f64), 2, ones({2}, f64));
      },
      "weight should be [4]");
  expect_error_containing([&] { group_norm(ones({4}, f64), 2); }, "of rank 2 or more");
  EXPECT_EQ(group_norm(zeros({0, 4, 3}, f32), 2).shape(), (Shape{0, 4, 3}));
  // PyTorch's check: one value per group and sample ([1, 3, 1, 1] in 3 groups, [1, 4] in 4).
  for (const auto& [shape, groups] : {std::pair{Shape{1, 3, 1, 1}, 3}, {Shape{1, 4}, 4}}) {
    expect_error_containing([&] { group_norm(ones(shape, f64), groups); },
                            "Expected more than 1 value per channel when training");
  }
  EXPECT_EQ(group_norm(ones({1, 4}, f64), 2).shape(), (Shape{1, 4}));
}

TEST(InstanceNorm, RunningStatisticsAreTheBatchAverageOfTheUpdates) {
  // Channel 0: sample 0 {0, 2} (mean 1, unbiased var 2), sample 1 {4, 4} (mean 4, var 0).
  const Tensor x = from_vector({0, 2, 1, 1, 4, 4, 3, 5}, {2, 2, 2}, f64);
  Tensor rm = tensor({0, 1}, f64);
  Tensor rv = tensor({1, 1}, f64);
  instance_norm(x, rm, rv, {}, {}, true, 0.5);
  EXPECT_DOUBLE_EQ(rm.at({0}), 0.5 * 0 + 0.5 * (1 + 4) / 2);
  EXPECT_DOUBLE_EQ(rm.at({1}), 0.5 * 1 + 0.5 * (1 + 4) / 2);
  EXPECT_DOUBLE_EQ(rv.at({0}), 0.5 * 1 + 0.5 * (2 + 0) / 2);
  EXPECT_DOUBLE_EQ(rv.at({1}), 0.5 * 1 + 0.5 * (0 + 2) / 2);
  // use_input_stats false: the running statistics normalise.
  const std::vector<double> y = instance_norm(x, rm, rv, {}, {}, false, 0.5, 0.0).to_vector();
  EXPECT_DOUBLE_EQ(y[0], (0 - 1.25) / std::sqrt(1.0));
}

TEST(InstanceNorm, EmptyBatchLeavesTheRunningStatistics) {
  // PyTorch 1.13 averages zero updates and sets them to NaN; tapegrad leaves them.
  Tensor rm = tensor({0.5, 1}, f64);
  Tensor rv = tensor({2, 3}, f64);
  EXPECT_EQ(instance_norm(zeros({0, 2, 3}, f64), rm, rv).shape(), (Shape{0, 2, 3}));
  EXPECT_EQ(rm.to_vector(), (std::vector<double>{0.5, 1}));
  EXPECT_EQ(rv.to_vector(), (std::vector<double>{2, 3}));
}

TEST(InstanceNorm, Errors) {
  expect_error_at([&] { instance_norm(ones({2, 3, 1}, f64)); }, "instance_norm", __FILE__);
  expect_error_containing(
      [&] {
        instance_norm(ones({2, 3, 1}, f64));
      },
      "Expected more than 1 spatial element when training, got input size "
      "[2, 3, 1]");
  expect_error_containing(
      [&] {
        instance_norm(ones({2, 3, 2}, f64), {}, {}, {}, {}, false);
      },
      "Expected running_mean and running_var to be defined");
  expect_error_containing(
      [&] {
        instance_norm(ones({2, 3, 2}, f64), ones({2}, f64), ones({3}, f64));
      },
      "running_mean should be [3]");
}

TEST(Dropout2d, DropsWholeChannelsAndScalesTheRest) {
  Generator gen(3);
  const Tensor x = ones({4, 8, 3, 3}, f64).requires_grad(true);
  const Tensor y = dropout2d(x, 0.25, true, gen);
  const std::vector<double> v = y.to_vector();
  int dropped = 0;
  for (std::size_t channel = 0; channel < 32; ++channel) {
    const double first = v[channel * 9];
    EXPECT_TRUE(first == 0.0 || first == 1.0 / 0.75) << first;
    for (std::size_t k = 1; k < 9; ++k) EXPECT_EQ(v[channel * 9 + k], first);
    dropped += first == 0.0 ? 1 : 0;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, 32);
  // The gradient is the same mask.
  EXPECT_EQ(grad(sum(y), {x})[0].to_vector(), v);
  // The draws: one per (sample, channel), sample-major, from the generator.
  Generator again(3);
  for (std::size_t channel = 0; channel < 32; ++channel) {
    EXPECT_EQ(v[channel * 9] == 0.0, again.uniform() < 0.25) << channel;
  }
}

TEST(Dropout2d, EdgeProbabilitiesAndEvaluation) {
  Generator gen(3);
  const Tensor x = tensor({INFINITY, 1, -2, NAN}, f64);
  const Tensor x4 = reshape(x, Shape{1, 2, 2});
  EXPECT_EQ(dropout2d(x4, 0.0, true, gen).to_vector().size(), 4u);
  const std::vector<double> same = dropout2d(x4, 0.0, true, gen).to_vector();
  EXPECT_EQ(same[0], INFINITY);
  EXPECT_EQ(same[2], -2);
  EXPECT_EQ(dropout2d(x4, 0.9, false, gen).to_vector()[1], 1.0);  // evaluation: identity
  const std::vector<double> all = dropout2d(x4, 1.0, true, gen).to_vector();
  EXPECT_TRUE(std::isnan(all[0]));  // inf · 0, as PyTorch's input · 0
  EXPECT_EQ(all[1], 0.0);
  EXPECT_EQ(all[2], 0.0);
  EXPECT_TRUE(std::isnan(all[3]));
  // A float32 input is scaled by the float32 1/(1 − p), as PyTorch's noise.div_(1 − p).
  Generator g32(1);
  const std::vector<double> f = dropout2d(ones({64, 1, 1}, f32), 0.3, true, g32).to_vector();
  for (const double v : f) EXPECT_TRUE(v == 0.0 || v == double(1.0f / 0.7f)) << v;
  EXPECT_EQ(dropout2d(zeros({0, 3, 2}, f64), 0.5, true, gen).shape(), (Shape{0, 3, 2}));
}

TEST(Dropout2d, Errors) {
  Generator gen(1);
  expect_error_at([&] { dropout2d(ones({2, 3, 2}, f64), 1.5, true, gen); }, "dropout2d", __FILE__);
  expect_error_containing(
      [&] {
        dropout2d(ones({2, 3, 2}, f64), -0.1, true, gen);
      },
      "dropout probability has to be between 0 and 1, but got -0.1");
  expect_error_containing(
      [&] {
        dropout2d(ones({2, 3, 2}, f64), NAN, true, gen);
      },
      "dropout probability");
  expect_error_containing([&] { dropout2d(ones({3}, f64), 0.5, true, gen); }, "of rank 2 or more");
}

}  // namespace
}  // namespace tg
