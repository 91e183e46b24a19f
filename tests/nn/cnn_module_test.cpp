// The CNN modules (nn/conv.h, nn/norm.h) against PyTorch 1.13's (tests/reference/cnn_modules.json,
// written by scripts/make_cnn_module_reference.py): repr, state_dict names, shapes and dtypes,
// outputs and gradients for given weights, BatchNorm's running statistics and
// num_batches_tracked after each training step and in evaluation. Then initialisation bounds,
// dtype conversion, save/load of BatchNorm buffers, Dropout2d and the constructors' errors.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tapegrad.h"
#include "tests/expect_error.h"
#include "tests/reference_fixture.h"

namespace tg::nn {
namespace {

using nlohmann::json;
using test_support::expect_error_containing;
using test_support::number;
using test_support::numbers;

const json& fixture() {
  static const json loaded = [] {
    std::ifstream in(std::string(TAPEGRAD_REFERENCE_DIR) + "/cnn_modules.json");
    return in ? json::parse(in) : json::object();
  }();
  return loaded;
}

Size2 size2(const json& v) {
  return {v.at(0).get<std::int64_t>(), v.at(1).get<std::int64_t>()};
}

// The one place that maps a fixture's module and options to tapegrad's.
std::shared_ptr<Module> make_module(const std::string& kind, const json& o, DType dtype) {
  Generator gen(0);  // every parameter is replaced by the fixture's
  const auto integer = [&](const char* key, std::int64_t fallback) {
    return o.contains(key) ? o.at(key).get<std::int64_t>() : fallback;
  };
  const auto pair = [&](const char* key, std::int64_t fallback) {
    return o.contains(key) ? size2(o.at(key)) : Size2(fallback);
  };
  const bool bias = o.value("bias", true);
  if (kind == "Conv1d") {
    return std::make_shared<Conv1d>(o.at("in"), o.at("out"), o.at("kernel_size"),
                                    Conv1dOptions{.stride = integer("stride", 1),
                                                  .padding = integer("padding", 0),
                                                  .dilation = integer("dilation", 1),
                                                  .groups = integer("groups", 1)},
                                    bias, gen, dtype);
  }
  if (kind == "Conv2d") {
    const Padding2d padding =
        o.contains("padding") && o.at("padding").is_string()
            ? Padding2d(o.at("padding") == "same" ? ConvPadding::same : ConvPadding::valid)
            : Padding2d(pair("padding", 0).h, pair("padding", 0).w);
    return std::make_shared<Conv2d>(o.at("in"), o.at("out"), size2(o.at("kernel_size")),
                                    Conv2dOptions{.stride = pair("stride", 1),
                                                  .padding = padding,
                                                  .dilation = pair("dilation", 1),
                                                  .groups = integer("groups", 1)},
                                    bias, gen, dtype);
  }
  if (kind == "ConvTranspose2d") {
    return std::make_shared<ConvTranspose2d>(
        o.at("in"), o.at("out"), size2(o.at("kernel_size")),
        ConvTranspose2dOptions{.stride = pair("stride", 1),
                               .padding = pair("padding", 0),
                               .output_padding = pair("output_padding", 0),
                               .groups = integer("groups", 1),
                               .dilation = pair("dilation", 1)},
        bias, gen, dtype);
  }
  const auto stride = [&]() -> std::optional<Size2> {
    if (!o.contains("stride")) return std::nullopt;
    return size2(o.at("stride"));
  };
  if (kind == "MaxPool2d") {
    return std::make_shared<MaxPool2d>(size2(o.at("kernel_size")),
                                       MaxPool2dOptions{.stride = stride(),
                                                        .padding = pair("padding", 0),
                                                        .dilation = pair("dilation", 1),
                                                        .ceil_mode = o.value("ceil_mode", false)});
  }
  if (kind == "AvgPool2d") {
    return std::make_shared<AvgPool2d>(
        size2(o.at("kernel_size")),
        AvgPool2dOptions{.stride = stride(),
                         .padding = pair("padding", 0),
                         .ceil_mode = o.value("ceil_mode", false),
                         .count_include_pad = o.value("count_include_pad", true),
                         .divisor_override = std::nullopt});
  }
  if (kind == "AdaptiveAvgPool2d") {
    return std::make_shared<AdaptiveAvgPool2d>(size2(o.at("output_size")));
  }
  if (kind == "BatchNorm1d" || kind == "BatchNorm2d") {
    const std::optional<double> momentum = !o.contains("momentum") ? std::optional<double>(0.1)
                                           : o.at("momentum").is_null()
                                               ? std::nullopt
                                               : std::optional<double>(number(o.at("momentum")));
    const double eps = o.contains("eps") ? number(o.at("eps")) : 1e-5;
    const bool affine = o.value("affine", true);
    const bool track = o.value("track_running_stats", true);
    if (kind == "BatchNorm1d") {
      return std::make_shared<BatchNorm1d>(o.at("num_features"), eps, momentum, affine, track,
                                           dtype);
    }
    return std::make_shared<BatchNorm2d>(o.at("num_features"), eps, momentum, affine, track, dtype);
  }
  if (kind == "GroupNorm") {
    return std::make_shared<GroupNorm>(o.at("num_groups"), o.at("num_channels"),
                                       o.contains("eps") ? number(o.at("eps")) : 1e-5,
                                       o.value("affine", true), dtype);
  }
  if (kind == "Dropout2d") return std::make_shared<Dropout2d>(number(o.at("p")));
  ADD_FAILURE() << "no module " << kind;
  return nullptr;
}

// Writes values into a tensor's storage (a parameter keeps its slot and its requires_grad).
void assign(Tensor t, const std::vector<double>& values) {
  ASSERT_EQ(std::size_t(t.numel()), values.size());
  dispatch_floating(t.dtype(), "assign", [&]<class T>() {
    T* p = t.data<T>();
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = T(values[i]);
    return 0;
  });
}

// |got − expected| ≤ rtol·(|expected| + max |expected|): the modules' sums are short (at most a
// few dozen terms), so an error of a few ulps of the largest term.
std::string compare(const std::string& what, const Tensor& got, const json& expected, DType dtype) {
  const std::vector<double> want = numbers(expected);
  if (!got.defined()) return what + ": no tensor\n";
  const std::vector<double> have = got.to_vector();
  if (have.size() != want.size()) {
    return fmt::format("{}: {} values, expected {}\n", what, have.size(), want.size());
  }
  double largest = 0;
  for (const double v : want) largest = std::isfinite(v) ? std::max(largest, std::abs(v)) : largest;
  const double rtol = dtype == f64 ? 1e-12 : 3e-6;
  std::string report;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = want[i];
    const double tolerance = rtol * (std::abs(e) + largest);
    const bool ok = std::isfinite(e) ? std::abs(have[i] - e) <= tolerance
                                     : (std::isnan(e) ? std::isnan(have[i]) : have[i] == e);
    if (!ok) {
      report += fmt::format("{} [{}]: expected {}, got {} (tolerance {:.3g})\n", what, i, e,
                            have[i], tolerance);
    }
  }
  return report;
}

std::string replay(const json& c) {
  const DType dtype = c.at("dtype") == "float64" ? f64 : f32;
  const std::shared_ptr<Module> module = make_module(c.at("module"), c.at("options"), dtype);
  if (!module) return "no module\n";
  std::string report;
  if (module->describe() != c.at("repr").get<std::string>()) {
    report += fmt::format("describe(): '{}', PyTorch's repr '{}'\n", module->describe(),
                          c.at("repr").get<std::string>());
  }
  const auto state = module->state_dict();
  const json& keys = c.at("state_dict");
  if (state.size() != keys.size()) report += "state_dict has another number of entries\n";
  for (std::size_t i = 0; i < std::min(state.size(), keys.size()); ++i) {
    const std::string want = fmt::format("{} {} {}", keys[i][0].get<std::string>(),
                                         Shape(keys[i][1].get<std::vector<std::int64_t>>()).str(),
                                         keys[i][2].get<std::string>());
    const std::string got = fmt::format("{} {} {}", state[i].first, state[i].second.shape().str(),
                                        dtype_name(state[i].second.dtype()));
    if (got != want) report += fmt::format("state_dict entry {}: {}, expected {}\n", i, got, want);
  }
  for (const auto& [name, parameter] : module->named_parameters()) {
    assign(parameter, numbers(c.at("parameters").at(name).at("values")));
  }
  for (const json& step : c.at("steps")) {
    module->train(step.at("mode") == "train");
    const Tensor x =
        from_vector(numbers(step.at("input").at("values")),
                    Shape(step.at("input").at("shape").get<std::vector<std::int64_t>>()), dtype)
            .requires_grad(true);
    const Tensor y = (*module)(x);
    const std::string mode = step.at("mode");
    report += compare(mode + " output", y, step.at("output").at("values"), dtype);
    if (!(y.shape() == Shape(step.at("output").at("shape").get<std::vector<std::int64_t>>()))) {
      report += mode + " output shape " + y.shape().str() + "\n";
    }
    std::vector<Tensor> wrt{x};
    std::vector<std::string> names{"input"};
    for (const auto& [name, parameter] : module->named_parameters()) {
      wrt.push_back(parameter);
      names.push_back(name);
    }
    const Tensor g = from_vector(numbers(step.at("cotangent")), y.shape(), dtype);
    const std::vector<Tensor> grads = grad(y, wrt, g);
    for (std::size_t i = 0; i < wrt.size(); ++i) {
      report += compare(mode + " gradient of " + names[i], grads[i], step.at("grads").at(names[i]),
                        dtype);
    }
    for (const auto& [name, buffer] : module->named_buffers()) {
      const json& want = step.at("buffers").at(name);
      if (buffer.dtype() == i64) {
        if (buffer.to_vector() != std::vector<double>{want.get<double>()}) {
          report += fmt::format("{} after {}: {}, expected {}\n", name, mode,
                                buffer.to_vector().at(0), want.get<double>());
        }
      } else {
        report += compare(name + " after " + mode, buffer, want, dtype);
      }
    }
    if (!report.empty()) break;
  }
  return report;
}

class CnnModuleReference : public ::testing::TestWithParam<std::size_t> {};

TEST_P(CnnModuleReference, MatchesPyTorch) {
  const json& c = fixture().at("cases").at(GetParam());
  std::string report;
  try {
    report = replay(c);
  } catch (const Error& e) {
    report = std::string("threw: ") + e.what() + "\n";
  }
  EXPECT_TRUE(report.empty()) << c.at("case").get<std::string>() << ", "
                              << c.at("dtype").get<std::string>() << ":\n"
                              << report;
}

std::vector<std::size_t> case_indices() {
  std::vector<std::size_t> out;
  if (!fixture().contains("cases")) return out;
  for (std::size_t i = 0; i < fixture().at("cases").size(); ++i) out.push_back(i);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixture, CnnModuleReference, ::testing::ValuesIn(case_indices()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           const json& c = fixture().at("cases").at(info.index);
                           std::string name = std::to_string(info.index) + "_" +
                                              c.at("case").get<std::string>() + "_" +
                                              c.at("dtype").get<std::string>();
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(CnnModuleReferenceFixture, HasEveryModule) {
  ASSERT_TRUE(fixture().contains("cases")) << "tests/reference/cnn_modules.json is unreadable";
  std::set<std::string> kinds;
  for (const json& c : fixture().at("cases")) kinds.insert(c.at("module").get<std::string>());
  EXPECT_EQ(kinds, (std::set<std::string>{"Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d",
                                          "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d",
                                          "BatchNorm2d", "GroupNorm", "Dropout2d"}));
}

// ---- initialisation ----

// Every value within ±bound, and spread over it (not all zero or tiny).
void expect_uniform_within(const Tensor& t, double bound, const std::string& what) {
  double largest = 0;
  for (const double v : t.to_vector()) {
    EXPECT_LE(std::abs(v), bound) << what;
    largest = std::max(largest, std::abs(v));
  }
  EXPECT_GT(largest, 0.5 * bound) << what;
}

TEST(CnnModules, ConvolutionsInitialiseAsPyTorchWithFanInFromWeightDimOne) {
  Generator gen(11);
  Conv2d conv(6, 8, {3, 2}, {.groups = 2}, true, gen);
  EXPECT_EQ(conv.weight.shape(), (Shape{8, 3, 3, 2}));
  expect_uniform_within(conv.weight, 1 / std::sqrt(3.0 * 3 * 2), "Conv2d weight");
  expect_uniform_within(conv.bias, 1 / std::sqrt(3.0 * 3 * 2), "Conv2d bias");
  Conv1d conv1(4, 5, 3, {}, true, gen, f64);
  EXPECT_EQ(conv1.weight.shape(), (Shape{5, 4, 3}));
  EXPECT_EQ(conv1.weight.dtype(), f64);
  expect_uniform_within(conv1.weight, 1 / std::sqrt(12.0), "Conv1d weight");
  expect_uniform_within(conv1.bias, 1 / std::sqrt(12.0), "Conv1d bias");
  // [in, out/groups, kh, kw]: fan_in = (out/groups)·kh·kw = 3·2·2, not in·kh·kw.
  ConvTranspose2d up(4, 6, 2, {.stride = 2, .groups = 2}, true, gen);
  EXPECT_EQ(up.weight.shape(), (Shape{4, 3, 2, 2}));
  expect_uniform_within(up.weight, 1 / std::sqrt(12.0), "ConvTranspose2d weight");
  expect_uniform_within(up.bias, 1 / std::sqrt(12.0), "ConvTranspose2d bias");
  EXPECT_EQ(up.bias.shape(), (Shape{6}));
  Conv2d no_bias(2, 2, 1, {}, false, gen);
  EXPECT_FALSE(no_bias.bias.defined());
  EXPECT_EQ(no_bias.named_parameters().size(), 1u);
  EXPECT_EQ(no_bias.describe(), "Conv2d(2, 2, kernel_size=(1, 1), stride=(1, 1), bias=False)");
  // The same generator state gives the same weights.
  Generator a(5);
  Generator b(5);
  EXPECT_EQ(Conv2d(2, 3, 3, {}, true, a).weight.to_vector(),
            Conv2d(2, 3, 3, {}, true, b).weight.to_vector());
}

TEST(CnnModules, NormalisationLayersStartAtOnesAndZeros) {
  BatchNorm2d bn(3);
  EXPECT_EQ(bn.weight.to_vector(), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(bn.bias.to_vector(), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(bn.running_mean.to_vector(), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(bn.running_var.to_vector(), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(bn.num_batches_tracked.dtype(), i64);
  EXPECT_EQ(bn.num_batches_tracked.shape(), Shape{});
  EXPECT_EQ(bn.num_batches_tracked.item(), 0);
  EXPECT_FALSE(bn.running_mean.requires_grad());
  EXPECT_EQ(bn.parameters().size(), 2u);  // the buffers are not parameters
  GroupNorm gn(2, 4);
  EXPECT_EQ(gn.weight.to_vector(), (std::vector<double>{1, 1, 1, 1}));
  EXPECT_EQ(gn.bias.to_vector(), (std::vector<double>{0, 0, 0, 0}));
}

// ---- BatchNorm's modes, dtype conversion, save and load ----

TEST(CnnModules, BatchNormCountsTrainingBatchesOnlyAndEvalDoesNotUpdate) {
  BatchNorm1d bn(2, 1e-5, std::nullopt);
  Generator gen(2);
  bn(uniform({4, 2}, gen, -1, 1));
  bn(uniform({4, 2}, gen, -1, 1));
  EXPECT_EQ(bn.num_batches_tracked.item(), 2);
  bn.eval();
  const std::vector<double> mean = bn.running_mean.to_vector();
  bn(uniform({4, 2}, gen, -1, 1));
  EXPECT_EQ(bn.num_batches_tracked.item(), 2);
  EXPECT_EQ(bn.running_mean.to_vector(), mean);
  // A failed training forward counts nothing.
  bn.train();
  expect_error_containing([&] { bn(ones({1, 2})); }, "Expected more than 1 value per channel");
  EXPECT_EQ(bn.num_batches_tracked.item(), 2);
  expect_error_containing([&] { bn(ones({2, 3})); }, "should be [3] for an input [2, 3], got [2]");
  expect_error_containing(
      [&] {
        bn(ones({2, 2, 2, 2}));
      },
      "BatchNorm1d: expected 2D or 3D input (got 4D input)");
  BatchNorm2d bn2(2);
  expect_error_containing(
      [&] {
        bn2(ones({2, 2, 2}));
      },
      "BatchNorm2d: expected 4D input (got 3D input)");
}

TEST(CnnModules, BatchNormWithoutRunningStatisticsUsesTheBatchInEvaluation) {
  BatchNorm2d bn(2, 1e-5, 0.1, true, false);
  EXPECT_TRUE(bn.named_buffers().empty());
  EXPECT_EQ(bn.describe(),
            "BatchNorm2d(2, eps=1e-05, momentum=0.1, affine=True, track_running_stats=False)");
  Generator gen(4);
  const Tensor x = uniform({2, 2, 2, 2}, gen, -1, 1, f32);
  const std::vector<double> train = bn(x).to_vector();
  bn.eval();
  EXPECT_EQ(bn(x).to_vector(), train);
}

TEST(CnnModules, ToFloat64ConvertsTheFloatingBuffersAndKeepsTheCounterInt64) {
  BatchNorm2d bn(2);
  Generator gen(6);
  bn(uniform({2, 2, 2, 2}, gen, -1, 1));
  const std::vector<double> mean = bn.running_mean.to_vector();
  bn.to(f64);
  EXPECT_EQ(bn.weight.dtype(), f64);
  EXPECT_EQ(bn.running_mean.dtype(), f64);
  EXPECT_EQ(bn.running_var.dtype(), f64);
  EXPECT_EQ(bn.num_batches_tracked.dtype(), i64);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1);
  EXPECT_EQ(bn.running_mean.to_vector(), mean);
  // Training in float64 updates the converted buffers.
  bn(uniform({2, 2, 2, 2}, gen, -1, 1, f64));
  EXPECT_EQ(bn.num_batches_tracked.item(), 2);
  EXPECT_NE(bn.running_mean.to_vector(), mean);
  Conv2d conv(1, 2, 3);
  conv.to(f64);
  EXPECT_EQ(conv.weight.dtype(), f64);
  EXPECT_EQ(conv(zeros({1, 1, 3, 3}, f64)).dtype(), f64);
}

TEST(CnnModules, SaveAndLoadATreeWithBatchNormBuffers) {
  Generator gen(8);
  const auto make = [&] {
    return std::make_shared<Sequential>(
        std::make_shared<Conv2d>(1, 2, 3, Conv2dOptions{}, true, gen),
        std::make_shared<BatchNorm2d>(2), std::make_shared<GroupNorm>(1, 2));
  };
  const auto saved = make();
  (*saved)(uniform({3, 1, 4, 4}, gen, -1, 1));
  (*saved)(uniform({3, 1, 4, 4}, gen, -1, 1));
  std::vector<std::string> names;
  for (const auto& [name, t] : saved->state_dict()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                             "1.running_mean", "1.running_var",
                                             "1.num_batches_tracked", "2.weight", "2.bias"}));
  const std::string path =
      (std::filesystem::temp_directory_path() / "tapegrad_cnn_module_test.safetensors").string();
  save(*saved, path);
  const auto loaded = make();
  load(*loaded, path);
  const auto want = saved->state_dict();
  const auto got = loaded->state_dict();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].second.to_vector(), want[i].second.to_vector()) << got[i].first;
    EXPECT_EQ(got[i].second.dtype(), want[i].second.dtype()) << got[i].first;
  }
  EXPECT_EQ(loaded->at<BatchNorm2d>(1)->num_batches_tracked.item(), 2);
  saved->eval();
  loaded->eval();
  const Tensor x = uniform({2, 1, 4, 4}, gen, -1, 1);
  EXPECT_EQ((*loaded)(x).to_vector(), (*saved)(x).to_vector());
  std::filesystem::remove(path);
}

// ---- Dropout2d ----

TEST(CnnModules, Dropout2dDropsChannelsInTrainingOnly) {
  Dropout2d drop(0.5, 3);
  EXPECT_EQ(drop.describe(), "Dropout2d(p=0.5, inplace=False)");
  const Tensor x = ones({4, 6, 2, 2});
  const std::vector<double> y = drop(x).to_vector();
  int zeros_seen = 0;
  for (std::size_t c = 0; c < 24; ++c) {
    for (std::size_t k = 1; k < 4; ++k) EXPECT_EQ(y[c * 4 + k], y[c * 4]);
    EXPECT_TRUE(y[c * 4] == 0 || y[c * 4] == 2);
    zeros_seen += y[c * 4] == 0 ? 1 : 0;
  }
  EXPECT_GT(zeros_seen, 0);
  EXPECT_LT(zeros_seen, 24);
  EXPECT_NE(drop(x).to_vector(), y);  // the generator moves on
  drop.eval();
  EXPECT_EQ(drop(x).to_vector(), x.to_vector());
  Dropout2d all(1.0);
  EXPECT_EQ(all(x).to_vector(), std::vector<double>(16 * 6, 0.0));
  expect_error_containing([] { Dropout2d(1.5); }, "between 0 and 1, but got 1.5");
}

// ---- describe() and constructor errors ----

TEST(CnnModules, DescribeAsPyTorchsRepr) {
  EXPECT_EQ(Conv2d(1, 16, 3, {.padding = 1}).describe(),
            "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
  EXPECT_EQ(Conv1d(2, 4, 5, {.padding = ConvPadding::valid}).describe(),
            "Conv1d(2, 4, kernel_size=(5,), stride=(1,), padding=valid)");
  EXPECT_EQ(BatchNorm2d(16).describe(),
            "BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  EXPECT_EQ(BatchNorm1d(4, 1e-3, std::nullopt, false).describe(),
            "BatchNorm1d(4, eps=0.001, momentum=None, affine=False, track_running_stats=True)");
  EXPECT_EQ(GroupNorm(2, 4).describe(), "GroupNorm(2, 4, eps=1e-05, affine=True)");
  EXPECT_EQ(MaxPool2d(2).describe(),
            "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
  EXPECT_EQ(AdaptiveAvgPool2d(1).describe(), "AdaptiveAvgPool2d(output_size=1)");
}

TEST(CnnModules, ConstructorErrors) {
  expect_error_containing([] { Conv2d(3, 4, 3, {.groups = 2}); },
                          "in_channels must be divisible by groups");
  expect_error_containing([] { Conv2d(4, 3, 3, {.groups = 2}); },
                          "out_channels must be divisible by groups");
  expect_error_containing([] { Conv2d(0, 3, 3); }, "expected positive channel counts");
  expect_error_containing([] { Conv2d(1, 3, {0, 3}); }, "expected a positive kernel size");
  expect_error_containing([] { Conv2d(1, 3, 3, {.stride = 2, .padding = ConvPadding::same}); },
                          "padding='same' is not supported for strided convolutions");
  expect_error_containing([] { Conv1d(1, 3, 3, {.groups = 0}); }, "groups must be a positive");
  expect_error_containing([] { ConvTranspose2d(3, 4, 2, {.groups = 3}); },
                          "out_channels must be divisible by groups");
  expect_error_containing([] { GroupNorm(3, 4); }, "num_channels must be divisible by num_groups");
  expect_error_containing([] { BatchNorm2d(0); }, "expected num_features > 0");
  expect_error_containing([] { BatchNorm2d(2, 1e-5, 1.5); }, "expected 0 <= momentum <= 1");
}

}  // namespace
}  // namespace tg::nn
