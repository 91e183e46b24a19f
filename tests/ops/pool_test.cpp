// Pooling, padding and resampling (ops/pool.cpp, ops/resample.cpp): PyTorch 1.13's answers
// replayed from tests/reference/pool.json (scripts/make_pool_reference.py), closed-form values,
// edge cases and errors. The registry checks (gradcheck, gradgradcheck, float32, reference
// Jacobians) run these ops too.
#include <gtest/gtest.h>

#include <fmt/ranges.h>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad.h"
#include "tests/expect_error.h"
#include "tests/reference_fixture.h"

namespace tg {
namespace {

using nlohmann::json;
using test_support::expect_error_at;
using test_support::expect_error_containing;
using test_support::fixture;
using test_support::fixture_case;
using test_support::number;
using test_support::replay_floating_op;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Size2 size2(const json& v) {
  return Size2{v.at(0).get<std::int64_t>(), v.at(1).get<std::int64_t>()};
}

// The tapegrad call of a fixture case.
Tensor call_pool(const json& c, const Tensor& x) {
  const std::string fn = c.at("fn");
  if (fn == "max_pool2d") {
    MaxPool2dOptions o{.stride = {},
                       .padding = size2(c.at("padding")),
                       .dilation = size2(c.at("dilation")),
                       .ceil_mode = c.at("ceil_mode").get<bool>()};
    if (!c.at("stride").is_null()) o.stride = size2(c.at("stride"));
    return max_pool2d(x, size2(c.at("kernel")), o);
  }
  if (fn == "max_pool1d") {
    MaxPool1dOptions o{.stride = {},
                       .padding = c.at("padding").get<std::int64_t>(),
                       .dilation = c.at("dilation").get<std::int64_t>(),
                       .ceil_mode = c.at("ceil_mode").get<bool>()};
    if (!c.at("stride").is_null()) o.stride = c.at("stride").get<std::int64_t>();
    return max_pool1d(x, c.at("kernel").get<std::int64_t>(), o);
  }
  if (fn == "avg_pool2d") {
    AvgPool2dOptions o{.stride = {},
                       .padding = size2(c.at("padding")),
                       .ceil_mode = c.at("ceil_mode").get<bool>(),
                       .count_include_pad = c.at("count_include_pad").get<bool>(),
                       .divisor_override = {}};
    if (!c.at("stride").is_null()) o.stride = size2(c.at("stride"));
    if (!c.at("divisor_override").is_null()) {
      o.divisor_override = c.at("divisor_override").get<std::int64_t>();
    }
    return avg_pool2d(x, size2(c.at("kernel")), o);
  }
  if (fn == "adaptive_avg_pool2d") return adaptive_avg_pool2d(x, size2(c.at("output_size")));
  if (fn == "adaptive_max_pool2d") return adaptive_max_pool2d(x, size2(c.at("output_size")));
  if (fn == "pad") {
    const std::string mode = c.at("mode");
    const PadMode m = mode == "reflect"     ? PadMode::reflect
                      : mode == "replicate" ? PadMode::replicate
                                            : PadMode::constant;
    return pad(x, c.at("pads").get<std::vector<std::int64_t>>(), m, number(c.at("value")));
  }
  if (fn == "interpolate") {
    InterpolateOptions o;
    o.mode = c.at("mode") == "bilinear" ? InterpolateMode::bilinear : InterpolateMode::nearest;
    o.align_corners = c.at("align_corners").get<bool>();
    if (!c.at("size").is_null()) o.size = size2(c.at("size"));
    if (!c.at("scale_factor").is_null()) {
      o.scale_factor = std::array<double, 2>{number(c.at("scale_factor").at(0)),
                                             number(c.at("scale_factor").at(1))};
    }
    return interpolate(x, o);
  }
  fail("pool.json: no tapegrad call for fn '{}'", fn);
}

struct Case {
  std::size_t index;
  std::string op, name, dtype;
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << c.op << " / " << c.name << " / " << c.dtype;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  try {
    const json& index = fixture("pool.json").header.at("index");
    for (std::size_t i = 0; i < index.size(); ++i) {
      out.push_back({i, index[i].at(0), index[i].at(1), index[i].at(2)});
    }
  } catch (const std::exception&) {
    // PoolReference.FixtureCoversEveryRegisteredOp then fails with the reason.
  }
  return out;
}

class PoolReference : public ::testing::TestWithParam<Case> {};

TEST_P(PoolReference, MatchesPyTorch) {
  const Case& c = GetParam();
  std::string report;
  try {
    report = replay_floating_op(
        fixture_case("pool.json", c.index),
        [](const json& call, const std::vector<Tensor>& in) { return call_pool(call, in.at(0)); });
  } catch (const Error& e) {
    report = std::string("threw: ") + e.what();
  }
  EXPECT_TRUE(report.empty()) << c.op << ", case '" << c.name << "', " << c.dtype << ":\n"
                              << report;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PoolReference, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string name = std::to_string(info.index) + "_" + info.param.op +
                                              "_" + info.param.name + "_" + info.param.dtype;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

// Every op of this family the registry holds has a case in both dtypes.
TEST(PoolReferenceCoverage, EveryRegisteredPoolOpHasCasesInBothDtypes) {
  std::map<std::string, std::set<std::string>> dtypes;
  for (const Case& c : cases()) dtypes[c.op].insert(c.dtype);
  ASSERT_FALSE(dtypes.empty());
  int family = 0;
  for (const OpRegistration& op : op_registry().ops()) {
    const std::string& n = op.name;
    const bool ours = n.starts_with("max_pool") || n.starts_with("avg_pool2d") ||
                      n.starts_with("adaptive_") || n.starts_with("pad(") ||
                      n.starts_with("interpolate");
    if (!ours) continue;
    ++family;
    EXPECT_EQ(dtypes[n].size(), 2u) << n << " has no fixture case in both dtypes";
  }
  EXPECT_GE(family, 18);
  for (const auto& [op, kinds] : dtypes) {
    EXPECT_NO_THROW(op_registry().find(op)) << op << " is in pool.json but not registered";
  }
}

// ---- closed-form values ----

Tensor t4(std::vector<double> values, Shape shape, DType dtype = f64) {
  return from_vector(values, shape, dtype).requires_grad(true);
}

TEST(MaxPool, ValuesAndFirstArgmaxOnTies) {
  for (DType dtype : {f64, f32}) {
    const Tensor x = t4({1, 3, 3, 0, 2, 2, 4, 4, -1, -1, -1, -1, 5, 5, 5, 5}, {1, 1, 4, 4}, dtype);
    const Tensor y = max_pool2d(x, 2);
    EXPECT_EQ(y.to_vector(), (std::vector<double>{3, 4, 5, 5}));
    const Tensor g = grad(y, {x}, from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, dtype))[0];
    // Each window's first maximum (row-major) takes its cotangent.
    EXPECT_EQ(g.to_vector(), (std::vector<double>{0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0}));
  }
}

TEST(MaxPool, NaNWinsAndTheLastNaNTakesTheGradient) {
  const Tensor x = t4({1, kNaN, 2, kNaN}, {1, 1, 1, 4});
  const Tensor y = max_pool2d(x, Size2{1, 4});
  EXPECT_TRUE(std::isnan(y.to_vector()[0]));
  EXPECT_EQ(grad(y, {x}, ones({1, 1, 1, 1}, f64))[0].to_vector(),
            (std::vector<double>{0, 0, 0, 1}));
}

TEST(MaxPool, OverlappingWindowsAccumulate) {
  const Tensor x = t4({0, 9, 1, 2, 3}, {1, 1, 5});
  const Tensor y = max_pool1d(x, 3, {.stride = 1});
  EXPECT_EQ(y.to_vector(), (std::vector<double>{9, 9, 3}));
  EXPECT_EQ(grad(y, {x}, from_vector({1, 10, 100}, {1, 1, 3}, f64))[0].to_vector(),
            (std::vector<double>{0, 11, 0, 0, 100}));
}

TEST(MaxPool, NegativeInputsNeverPickThePadding) {
  const Tensor x = t4({-5, -4, -3, -2}, {1, 1, 2, 2});
  const Tensor y = max_pool2d(x, 3, {.stride = 1, .padding = 1});
  EXPECT_EQ(y.to_vector(), (std::vector<double>{-2, -2, -2, -2}));
  const Tensor ninf = t4({-kInf, -kInf, -kInf, -kInf}, {1, 1, 2, 2});
  const Tensor z = max_pool2d(ninf, 3, {.stride = 1, .padding = 1});
  EXPECT_EQ(z.to_vector(), (std::vector<double>(4, -kInf)));
  EXPECT_EQ(grad(sum(z), {ninf})[0].to_vector(), (std::vector<double>{4, 0, 0, 0}));
}

TEST(MaxPool, CeilModeLastWindowHangsOffTheEnd) {
  const Tensor x = t4({0, 1, 2, 3, 4}, {1, 1, 5});
  EXPECT_EQ(max_pool1d(x, 2, {.stride = {}, .ceil_mode = true}).to_vector(),
            (std::vector<double>{1, 3, 4}));
  EXPECT_EQ(max_pool1d(x, 2).to_vector(), (std::vector<double>{1, 3}));
  // PyTorch's rule: a window starting in the right padding is dropped (5 + 1 padding, stride 2:
  // 4 windows would start at 5, past the input and its left padding).
  EXPECT_EQ(max_pool1d(x, 2, {.stride = 2, .padding = 1, .ceil_mode = true}).shape(),
            (Shape{1, 1, 3}));
}

TEST(MaxPool, EmptyBatchAndKernelAsLargeAsTheInput) {
  const Tensor e = zeros({0, 3, 4, 4}, f64).requires_grad(true);
  const Tensor y = max_pool2d(e, 2);
  EXPECT_EQ(y.shape(), (Shape{0, 3, 2, 2}));
  EXPECT_EQ(grad(sum(y), {e})[0].shape(), (Shape{0, 3, 4, 4}));
  const Tensor x = t4({1, 7, 3, 2, 5, 6}, {1, 1, 2, 3});
  EXPECT_EQ(max_pool2d(x, Size2{2, 3}).to_vector(), (std::vector<double>{7}));
  EXPECT_EQ(adaptive_max_pool2d(x, 1).to_vector(), (std::vector<double>{7}));
}

TEST(MaxPool, SecondOrderIsZeroAndTheRuleIsLinearInG) {
  const Tensor x = t4({1, 4, 2, 3}, {1, 1, 2, 2});
  const Tensor g = from_vector({2.5}, {1, 1, 1, 1}, f64).requires_grad(true);
  const Tensor dx = grad(max_pool2d(x, 2), {x}, g, {.create_graph = true})[0];
  EXPECT_EQ(dx.to_vector(), (std::vector<double>{0, 2.5, 0, 0}));
  // d⟨dx, v⟩/dg = v at the arg-max (a gather).
  const Tensor v = from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, f64);
  EXPECT_EQ(grad(sum(dx * v), {g})[0].to_vector(), (std::vector<double>{2}));
}

TEST(AdaptivePool, WindowsFloorToCeil) {
  // n = 5 into 3: windows [0, 2), [1, 4), [3, 5).
  const Tensor x = t4({1, 2, 3, 4, 5}, {1, 1, 1, 5});
  EXPECT_EQ(adaptive_avg_pool2d(x, Size2{1, 3}).to_vector(), (std::vector<double>{1.5, 3, 4.5}));
  EXPECT_EQ(adaptive_max_pool2d(x, Size2{1, 3}).to_vector(), (std::vector<double>{2, 4, 5}));
  const Tensor empty_out = adaptive_avg_pool2d(x, Size2{0, 3});
  EXPECT_EQ(empty_out.shape(), (Shape{1, 1, 0, 3}));
  EXPECT_EQ(grad(sum(empty_out), {x})[0].to_vector(), (std::vector<double>(5, 0.0)));
}

TEST(AvgPool, DivisorOptions) {
  const Tensor x = t4({1, 2, 3, 4}, {1, 1, 2, 2});
  // padding 1, kernel 2, stride 2: windows of 1 input each; 4 with the padding.
  EXPECT_EQ(avg_pool2d(x, 2, {.stride = {}, .padding = 1, .divisor_override = {}}).to_vector(),
            (std::vector<double>{0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(
      avg_pool2d(x, 2,
                 {.stride = {}, .padding = 1, .count_include_pad = false, .divisor_override = {}})
          .to_vector(),
      (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(avg_pool2d(x, 2, {.stride = {}, .divisor_override = 2}).to_vector(),
            (std::vector<double>{5}));
  const Tensor g = grad(avg_pool2d(x, 2, {.stride = {}, .divisor_override = -2}), {x})[0];
  EXPECT_EQ(g.to_vector(), (std::vector<double>(4, -0.5)));
}

TEST(AvgPool, InfAndNaNPropagateWithinTheirWindowsOnly) {
  const Tensor x = t4({kInf, 1, 2, 3, kNaN, 1, 2, 3}, {1, 1, 2, 4});
  const std::vector<double> y = avg_pool2d(x, Size2{1, 2}).to_vector();
  EXPECT_EQ(y[0], kInf);
  EXPECT_EQ(y[1], 2.5);
  EXPECT_TRUE(std::isnan(y[2]));
  EXPECT_EQ(y[3], 2.5);
}

TEST(PoolTwiceDifferentiable, AvgPoolAdjointIsAvgPoolAgain) {
  const Tensor x = t4({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor g = from_vector({1, -1, 2, 0.5}, {1, 1, 2, 2}, f64).requires_grad(true);
  const Tensor dx = grad(avg_pool2d(x, 2, {.stride = 1, .divisor_override = {}}), {x}, g,
                         {.create_graph = true})[0];
  EXPECT_EQ(dx.to_vector(),
            (std::vector<double>{0.25, 0, -0.25, 0.75, 0.625, -0.125, 0.5, 0.625, 0.125}));
  const Tensor v = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, f64);
  // d⟨dx, v⟩/dg = avg_pool2d(v).
  EXPECT_EQ(grad(sum(dx * v), {g})[0].to_vector(), (std::vector<double>{3, 4, 6, 7}));
}

TEST(PoolThreads, LargeBatchMatchesPlaneByPlane) {
  Generator gen(5);
  const Tensor x = randn({64, 32, 8, 8}, gen, f32).requires_grad(true);
  const Tensor y = max_pool2d(x, 2);
  const Tensor a = avg_pool2d(x, 2);
  const Tensor first = slice(slice(x, 0, 63, 64), 1, 31, 32);
  EXPECT_EQ(slice(slice(y, 0, 63, 64), 1, 31, 32).to_vector(), max_pool2d(first, 2).to_vector());
  EXPECT_EQ(slice(slice(a, 0, 63, 64), 1, 31, 32).to_vector(), avg_pool2d(first, 2).to_vector());
  EXPECT_EQ(grad(sum(y), {x})[0].to_vector().size(), std::size_t(64 * 32 * 64));
}

// ---- errors: op, shapes, the caller's line ----

TEST(PoolErrors, NameTheOpTheShapesAndTheCaller) {
  const Tensor x = zeros({1, 2, 3, 3}, f64);
  const std::string file = __FILE__;
  expect_error_at([&] { max_pool2d(zeros({2, 3, 3}, f64), 2); }, "max_pool2d", file);
  expect_error_at([&] { max_pool2d(x, 0); }, "max_pool2d", file);
  expect_error_at([&] { max_pool2d(x, 2, {.stride = 0}); }, "max_pool2d", file);
  expect_error_at([&] { max_pool2d(x, 2, {.stride = {}, .dilation = 0}); }, "max_pool2d", file);
  expect_error_at([&] { max_pool2d(x, 2, {.stride = {}, .padding = 2}); }, "max_pool2d", file);
  expect_error_at([&] { max_pool2d(x, 4); }, "max_pool2d", file);
  expect_error_at([&] { max_pool2d(zeros({1, 0, 3, 3}, f64), 2); }, "max_pool2d", file);
  expect_error_at([&] { max_pool2d(zeros({1, 1, 3, 3}, i64), 2); }, "max_pool2d", file);
  expect_error_at([&] { max_pool1d(x, 2); }, "max_pool1d", file);
  expect_error_at(
      [&] {
        max_pool1d(zeros({1, 1, 3}, f64), 2, {.stride = {}, .padding = 2});
      },
      "max_pool1d", file);
  expect_error_at([&] { max_pool1d(zeros({1, 1, 3}, f64), 5); }, "max_pool1d", file);
  expect_error_at([&] { avg_pool2d(x, 2, {.stride = {}, .divisor_override = 0}); }, "avg_pool2d",
                  file);
  expect_error_at(
      [&] {
        avg_pool2d(x, 2, {.stride = {}, .padding = Size2{1, 2}, .divisor_override = {}});
      },
      "avg_pool2d", file);
  expect_error_at([&] { adaptive_avg_pool2d(x, Size2{-1, 2}); }, "adaptive_avg_pool2d", file);
  expect_error_at([&] { adaptive_max_pool2d(zeros({3, 3}, f64), 2); }, "adaptive_max_pool2d", file);
  expect_error_containing([&] { max_pool2d(x, 4); }, "output size is too small");
  expect_error_containing([&] { max_pool2d(x, 2, {.stride = {}, .padding = 2}); },
                          "at most half the kernel");
  expect_error_containing([&] { max_pool2d(zeros({2, 3, 3}, f64), 2); }, "[2, 3, 3]");
  // A window wholly in the padding (PyTorch: −inf with an index outside the input).
  expect_error_containing(
      [&] {
        max_pool2d(zeros({1, 1, 1, 1}, f64), 2, {.stride = 1, .padding = 1, .dilation = 2});
      },
      "covers only padding");
  // Sizes that overflow int64 are errors, never wrapped.
  expect_error_at(
      [&] {
        max_pool2d(x, std::numeric_limits<std::int64_t>::max(),
                   {.stride = {}, .padding = (std::int64_t(1) << 62) - 1});
      },
      "max_pool2d", file);
}

}  // namespace
}  // namespace tg
