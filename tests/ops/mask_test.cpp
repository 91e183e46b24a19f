// Bool masks (ops/mask.cpp): every non-differentiable op replayed against PyTorch 1.13's exact
// answers in tests/reference/mask_values.json (scripts/make_mask_reference.py: NaN, ±inf, −0,
// denormals, int64 beyond 2^53, empty and broadcast shapes, in float32, float64, int64 and bool),
// and what the fixtures cannot say: the bool dtype itself, operators, errors, where's gradients
// around NaN, and safetensors. where, masked_fill and masked_select are registered: the registry
// tests and tests/reference/masks.json check their values and gradients.
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "../expect_error.h"
#include "tapegrad.h"

namespace tg {
namespace {

using nlohmann::json;
using test_support::expect_error_containing;

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- the fixture ----

const json& value_cases() {
  static const json cases = [] {
    std::ifstream in(std::string(TAPEGRAD_REFERENCE_DIR) + "/mask_values.json");
    return json::parse(in).at("cases");
  }();
  return cases;
}

double number(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
  if (!v.is_string()) return v.get<double>();
  const std::string s = v.get<std::string>();
  return s == "nan" ? kNaN : s == "inf" ? kInf : -kInf;
}

DType dtype_named(const std::string& name) {
  static const std::map<std::string, DType> dtypes = {
      {"float32", f32}, {"float64", f64}, {"int64", i64}, {"bool", b8}};
  return dtypes.at(name);
}

Tensor decode(const json& t) {
  const DType dtype = dtype_named(t.at("dtype"));
  const Shape shape(t.at("shape").get<std::vector<std::int64_t>>());
  if (dtype == i64) return int64_tensor(t.at("values").get<std::vector<std::int64_t>>(), shape);
  std::vector<double> values;
  for (const json& v : t.at("values")) values.push_back(number(v));
  return from_vector(values, shape, dtype);
}

Tensor call(const json& c, const std::vector<Tensor>& in) {
  using Binary = Tensor (*)(const Tensor&, const Tensor&, SourceLocation);
  using WithNumber = Tensor (*)(const Tensor&, double, SourceLocation);
  using Unary = Tensor (*)(const Tensor&, SourceLocation);
  static const std::map<std::string, std::pair<Binary, WithNumber>> comparisons = {
      {"eq", {eq, eq}}, {"ne", {ne, ne}}, {"lt", {lt, lt}},
      {"le", {le, le}}, {"gt", {gt, gt}}, {"ge", {ge, ge}}};
  static const std::map<std::string, Binary> logical = {
      {"logical_and", logical_and}, {"logical_or", logical_or}, {"logical_xor", logical_xor}};
  static const std::map<std::string, Unary> unary = {
      {"logical_not", logical_not}, {"isnan", isnan}, {"isinf", isinf}, {"isfinite", isfinite}};
  const std::string fn = c.at("fn");
  if (auto it = comparisons.find(fn); it != comparisons.end()) {
    return c.contains("scalar") ? it->second.second(in.at(0), number(c.at("scalar")), {})
                                : it->second.first(in.at(0), in.at(1), {});
  }
  if (auto it = logical.find(fn); it != logical.end()) return it->second(in.at(0), in.at(1), {});
  if (auto it = unary.find(fn); it != unary.end()) return it->second(in.at(0), {});
  if (fn == "sum") {
    return c.contains("axis")
               ? sum(in.at(0), c.at("axis").get<std::int64_t>(), c.at("keepdim").get<bool>())
               : sum(in.at(0));
  }
  if (fn == "cast") return cast(in.at(0), dtype_named(c.at("to")));
  if (fn == "to") return in.at(0).to(dtype_named(c.at("to")));
  if (fn == "where") return where(in.at(0), in.at(1), in.at(2));
  if (fn == "masked_fill") return masked_fill(in.at(0), in.at(1), number(c.at("value")));
  if (fn == "masked_select") return masked_select(in.at(0), in.at(1));
  fail("mask_values.json: no call for fn '{}'", fn);
}

// Same dtype, shape and values; NaN matches NaN and the sign of a zero must match too.
std::string differences(const Tensor& got, const Tensor& want) {
  if (got.dtype() != want.dtype() || !(got.shape() == want.shape())) {
    return fmt::format("got {} {}, expected {} {}", dtype_name(got.dtype()), got.shape().str(),
                       dtype_name(want.dtype()), want.shape().str());
  }
  if (want.dtype() == i64) {
    const std::int64_t* g = got.data<std::int64_t>();
    const std::int64_t* w = want.data<std::int64_t>();
    return std::equal(g, g + got.numel(), w) ? "" : "got " + got.str() + ", expected " + want.str();
  }
  const std::vector<double> g = got.to_vector();
  const std::vector<double> w = want.to_vector();
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool same = std::isnan(w[i]) ? std::isnan(g[i])
                                       : g[i] == w[i] && std::signbit(g[i]) == std::signbit(w[i]);
    if (!same) return fmt::format("element {}: got {}, expected {}", i, g[i], w[i]);
  }
  return "";
}

class MaskValues : public ::testing::TestWithParam<std::size_t> {};

TEST_P(MaskValues, MatchesPyTorch) {
  const json& c = value_cases().at(GetParam());
  std::vector<Tensor> inputs;
  for (const json& in : c.at("inputs")) inputs.push_back(decode(in));
  const Tensor want = decode(c.at("output"));
  std::string report;
  try {
    report = differences(call(c, inputs), want);
  } catch (const Error& e) {
    report = std::string("threw: ") + e.what();
  }
  EXPECT_EQ(report, "") << c.at("fn").get<std::string>() << ", " << c.at("case").get<std::string>()
                        << (c.contains("scalar") ? " (scalar " + c.at("scalar").dump() + ")" : "");
}

std::vector<std::size_t> case_indices() {
  std::vector<std::size_t> indices(value_cases().size());
  for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = i;
  return indices;
}

INSTANTIATE_TEST_SUITE_P(Fixture, MaskValues, ::testing::ValuesIn(case_indices()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           const json& c = value_cases().at(info.param);
                           std::string name = std::to_string(info.param) + "_" +
                                              c.at("fn").get<std::string>() + "_" +
                                              c.at("case").get<std::string>();
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(MaskFixture, CoversEveryOpInEveryDtype) {
  std::map<std::string, std::set<std::string>> dtypes;
  for (const json& c : value_cases()) dtypes[c.at("fn")].insert(c.at("inputs")[0].at("dtype"));
  for (const char* fn : {"eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
                         "logical_xor", "logical_not", "isnan", "isinf", "isfinite"}) {
    EXPECT_EQ(dtypes[fn].size(), 4u) << fn;
  }
}

// ---- the dtype ----

TEST(BoolDType, IsOneByteNamedBoolAndNeverRequiresGrad) {
  EXPECT_STREQ(dtype_name(b8), "bool");
  EXPECT_EQ(dtype_size(b8), 1u);
  EXPECT_FALSE(is_floating(b8));
  Tensor m = tensor({1, 0, 2}, b8);
  EXPECT_EQ(m.data<bool>()[2], true);
  EXPECT_EQ(m.at({1}), 0.0);
  expect_error_containing([&] { m.requires_grad(true); }, "only floating tensors can require grad");
  expect_error_containing([&] { (void)m.data<float>(); }, "tensor is bool, accessed as float32");
}

TEST(BoolDType, PrintsAsPyTorch) {
  EXPECT_EQ(tensor({1, 0, 1}, b8).str(), "tensor([ True, False,  True])");
  EXPECT_EQ(tensor({1, 1}, b8).str(), "tensor([True, True])");
  EXPECT_EQ(full({}, 1, b8).str(), "tensor(True)");
  EXPECT_EQ(from_vector({1, 0}, {2, 1}, b8).str(), "tensor([[ True],\n        [False]])");
}

TEST(BoolDType, SumCountsAsInt64AndMeanIsAnError) {
  const Tensor m = tensor({1, 0, 1, 1}, b8);
  EXPECT_EQ(sum(m).dtype(), i64);
  EXPECT_EQ(sum(m).item(), 3.0);
  EXPECT_EQ(sum(m).str(), "tensor(3, dtype=int64)");
  // PyTorch: "mean(): could not infer output dtype ... Got: Bool".
  expect_error_containing([&] { mean(m); },
                          "mean: expected a floating tensor (float32 or float64), got bool");
}

TEST(BoolDType, DifferentiableOpsRefuseIt) {
  const Tensor m = tensor({1, 0}, b8);
  expect_error_containing([&] { exp(m); },
                          "exp: expected a floating tensor (float32 or float64), got bool");
  expect_error_containing([&] { add(m, m); },
                          "add: expected floating tensors (float32 or float64), got bool");
  expect_error_containing([&] { softmax(m); }, "got bool");
  expect_error_containing([&] { cast(tensor({1.0}), b8); },
                          "cast: can only convert to float32 or float64, not bool");
}

TEST(BoolDType, FactoriesMakeMasksButNoRangesOrDraws) {
  EXPECT_EQ(zeros({2}, b8).to_vector(), (std::vector<double>{0, 0}));
  EXPECT_EQ(full({2}, 0.5, b8).to_vector(), (std::vector<double>{1, 1}));  // bool(0.5)
  EXPECT_EQ(ones_like(zeros({1}, b8)).dtype(), b8);
  Generator generator(1);
  expect_error_containing([&] { arange(3, b8); }, "arange: cannot make bool values");
  expect_error_containing([&] { randn({2}, generator, b8); }, "randn: cannot make bool values");
  expect_error_containing([&] { rand({2}, generator, b8); }, "uniform: cannot make bool values");
}

// A mask in place of each floating operand of every registered op: an error naming the op and
// the dtype, or, from an op that only moves values (reshape, slice, masked_select), a bool result
// holding what the op makes of the mask's 0s and 1s.
TEST(BoolDType, EveryRegisteredOpRefusesAMaskOrMovesItsValues) {
  // cast makes numbers of a mask and sum counts it in int64, as in PyTorch.
  const std::map<std::string, DType> converts = {{"cast", f64}, {"sum", i64}};
  std::vector<std::string> problems;
  for (const OpRegistration& r : op_registry().ops()) {
    std::string op = r.name.substr(0, r.name.find_first_of("( "));
    if (op == "pow_integer") op = "pow";
    const std::vector<Tensor> sample = r.samples(f64).front().inputs;
    for (std::size_t i = 0; i < sample.size(); ++i) {
      if (!is_floating(sample[i].dtype())) continue;
      std::vector<Tensor> with_mask = sample;
      std::vector<Tensor> with_numbers = sample;
      with_mask[i] = sample[i] > 0.0;
      with_numbers[i] = cast(with_mask[i], f64);
      const std::string where = r.name + ", input " + std::to_string(i) + ": ";
      try {
        const Tensor y = r.function(with_mask);
        const Tensor want = r.function(with_numbers);
        if (y.dtype() != (converts.contains(op) ? converts.at(op) : b8) ||
            !(y.shape() == want.shape()) || y.to_vector() != want.to_vector()) {
          problems.push_back(where + "returned " + y.str() + " for " + want.str());
        }
      } catch (const Error& e) {
        const std::string message = e.what();
        if (message.find(op) == std::string::npos || message.find("bool") == std::string::npos) {
          problems.push_back(where + "error without the op or the dtype: " + message);
        }
      }
    }
  }
  EXPECT_TRUE(problems.empty()) << fmt::format("{}", fmt::join(problems, "\n"));
}

TEST(BoolDType, ConvertsBothWays) {
  const Tensor x = tensor({0.0, -0.0, 0.5, kNaN, -kInf});
  // bool(x): non-zero and NaN are true, ±0 false, as in PyTorch.
  EXPECT_EQ(x.to(b8).to_vector(), (std::vector<double>{0, 0, 1, 1, 1}));
  const Tensor m = tensor({1, 0}, b8);
  EXPECT_EQ(cast(m, f64).dtype(), f64);
  EXPECT_EQ(cast(m, f32).to_vector(), (std::vector<double>{1, 0}));
  EXPECT_EQ(m.to(i64).to_vector(), (std::vector<double>{1, 0}));
}

TEST(BoolDType, SafetensorsRoundTripAsBool) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("tapegrad_mask_" + std::to_string(::getpid()) + ".safetensors"))
                               .string();
  const Tensor m = tensor({{1, 0, 1}, {0, 0, 1}}, b8);
  nn::save_safetensors(path, {{"mask", m}, {"x", tensor({1.5})}});
  const nn::NamedTensors back = nn::load_safetensors(path);
  std::filesystem::remove(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].second.dtype(), b8);
  EXPECT_EQ(back[0].second.shape(), m.shape());
  EXPECT_EQ(back[0].second.to_vector(), m.to_vector());

  // The same file with the mask's byte for element 1 set to 2, which no C++ bool may hold.
  const std::string header = R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})";
  std::vector<std::byte> bytes(8 + header.size() + 3);
  const std::uint64_t length = header.size();
  std::memcpy(bytes.data(), &length, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  bytes[8 + header.size() + 1] = std::byte{2};
  expect_error_containing([&] { nn::parse_safetensors(bytes, "bad.safetensors"); },
                          "BOOL tensor 'm' holds byte 2 at element 1 (expected 0 or 1)");
  bytes[8 + header.size() + 1] = std::byte{1};
  EXPECT_EQ(nn::parse_safetensors(bytes, "good.safetensors")[0].second.to_vector(),
            (std::vector<double>{0, 1, 0}));
}

// ---- comparisons and operators ----

TEST(Masks, OutputsNeverRequireGrad) {
  const Tensor x = tensor({-1.0, 2.0}, f64).requires_grad(true);
  for (const Tensor& m : {lt(x, 0.0), eq(x, x), isnan(x), logical_not(x), x > 0.0, 1.0 <= x}) {
    EXPECT_EQ(m.dtype(), b8);
    EXPECT_FALSE(m.requires_grad());
    EXPECT_TRUE(m.is_leaf());
  }
}

TEST(Masks, OperatorsAreTheNamedOps) {
  const Tensor x = tensor({-1.0, 0.0, 2.0, kNaN});
  const Tensor y = tensor({0.0, 0.0, 3.0, kNaN});
  const auto same = [](const Tensor& a, const Tensor& b) { return a.to_vector() == b.to_vector(); };
  EXPECT_TRUE(same(x == y, eq(x, y)));
  EXPECT_TRUE(same(x != y, ne(x, y)));
  EXPECT_TRUE(same(x < y, lt(x, y)));
  EXPECT_TRUE(same(x <= y, le(x, y)));
  EXPECT_TRUE(same(x > y, gt(x, y)));
  EXPECT_TRUE(same(x >= y, ge(x, y)));
  EXPECT_EQ((x > 0.0).to_vector(), (std::vector<double>{0, 0, 1, 0}));
  EXPECT_EQ((0.0 < x).to_vector(), (std::vector<double>{0, 0, 1, 0}));
  EXPECT_EQ((0.0 >= x).to_vector(), (std::vector<double>{1, 1, 0, 0}));
  EXPECT_EQ((x == 0).to_vector(), (std::vector<double>{0, 1, 0, 0}));
  EXPECT_EQ((2.0 != x).to_vector(), (std::vector<double>{1, 1, 0, 1}));
  const Tensor m = x > -0.5;
  const Tensor n = x < 1.0;
  EXPECT_EQ((m & n).to_vector(), (std::vector<double>{0, 1, 0, 0}));
  EXPECT_EQ((m | n).to_vector(), (std::vector<double>{1, 1, 1, 0}));
  EXPECT_EQ((m ^ n).to_vector(), (std::vector<double>{1, 0, 1, 0}));
  EXPECT_EQ((~m).to_vector(), (std::vector<double>{1, 0, 0, 1}));
}

TEST(Masks, Int64ComparesWithNumbersExactly) {
  // PyTorch compares an int64 tensor with a Python float in float32 (16777217 == 16777216.0 is
  // true there); tapegrad compares exactly, as PyTorch does with a Python int.
  const Tensor i = int64_tensor({16777217, (std::int64_t(1) << 53) + 1});
  EXPECT_EQ(eq(i, 16777216.0).to_vector(), (std::vector<double>{0, 0}));
  EXPECT_EQ(gt(i, 9007199254740992.0).to_vector(), (std::vector<double>{0, 1}));
  EXPECT_EQ(lt(i, kInf).to_vector(), (std::vector<double>{1, 1}));
  EXPECT_EQ(ne(i, kNaN).to_vector(), (std::vector<double>{1, 1}));
}

TEST(Masks, ErrorsNameTheOpTheDtypesAndTheCaller) {
  const Tensor a = tensor({1.0, 2.0});
  const Tensor m = tensor({1, 0}, b8);
  expect_error_containing([&] { eq(a, a.to(f64)); }, std::string(__FILE__));
  expect_error_containing([&] { eq(a, a.to(f64)); },
                          "dtype mismatch: float32 [2] and float64 [2] (convert one with .to())");
  expect_error_containing(
      [&] {
        lt(a, tensor({1.0, 2.0, 3.0}));
      },
      "shapes [2] and [3] do not broadcast");
  expect_error_containing([&] { logical_and(a, tensor({1.0, 2.0, 3.0})); }, "logical_and");
  expect_error_containing([&] { a& m; }, "operator&");
  expect_error_containing([&] { ~a; }, "expected bool masks, got float32 and float32");
  expect_error_containing([&] { where(a, a, a); }, std::string(__FILE__));
  expect_error_containing([&] { where(a, a, a); },
                          "the condition must be a bool mask, got float32 [2]");
  expect_error_containing([&] { where(m, a, a.to(f64)); },
                          "dtype mismatch: float32 [2] and float64 [2]");
  expect_error_containing([&] { where(m, a, tensor({1.0, 2.0, 3.0})); }, std::string(__FILE__));
  // PyTorch: float32 [nan, 2.] (promoted); and masked_fill truncates 0.5 to 0.
  expect_error_containing(
      [&] {
        where(m, kNaN, int64_tensor({1, 2}));
      },
      "nan is not a value of the int64 tensor it is selected with");
  expect_error_containing(
      [&] {
        masked_fill(int64_tensor({1, 2}), m, 0.5);
      },
      std::string(__FILE__));
  expect_error_containing([&] { masked_fill(m, m, 2.0); },
                          "2 is not a value of the bool tensor it is selected with");
  // The mask broadcasts to x, not x to the mask (PyTorch: the same error).
  expect_error_containing([&] { masked_fill(a, ones({3, 2}, b8), 0.0); }, std::string(__FILE__));
  expect_error_containing(
      [&] {
        masked_fill(a, ones({3, 2}, b8), 0.0);
      },
      "the mask's shape [3, 2] does not broadcast to the input's shape [2]");
  expect_error_containing([&] { masked_select(a, int64_tensor({1, 0})); }, std::string(__FILE__));
  expect_error_containing(
      [&] {
        masked_select(a, int64_tensor({1, 0}));
      },
      "the mask must be a bool mask, got int64 [2]");
}

// ---- gradients around NaN and inf ----

TEST(Masks, WhereSendsEachCotangentToItsBranchOnly) {
  // PyTorch: a.grad = [inf, 0], b.grad = [0, nan] for g = [inf, nan].
  const Tensor a = tensor({1.0, 2.0}, f64).requires_grad(true);
  const Tensor b = tensor({3.0, kNaN}, f64).requires_grad(true);
  const Tensor y = where(tensor({1, 0}, b8), a, b);
  EXPECT_TRUE(std::isnan(y.at({1})));
  y.backward(tensor({kInf, kNaN}, f64));
  EXPECT_EQ(a.grad().at({0}), kInf);
  EXPECT_EQ(a.grad().at({1}), 0.0);
  EXPECT_EQ(b.grad().at({0}), 0.0);
  EXPECT_TRUE(std::isnan(b.grad().at({1})));
}

TEST(Masks, WhereOfSqrtHasPyTorchsNaNGradientAndTheDoubleWhereDoesNot) {
  // PyTorch 1.13, x = [-1, 0, 4, 0.25], g = 1: where(x > 0, sqrt(x), 0) has gradient
  // [nan, nan, 0.25, 1] (sqrt's own rule, 0 / (2·sqrt(x))); with sqrt(where(x > 0, x, 1)) it is
  // [0, 0, 0.25, 1].
  Tensor x = tensor({-1.0, 0.0, 4.0, 0.25}, f64).requires_grad(true);
  const Tensor positive = x > 0.0;
  where(positive, sqrt(x), 0.0).backward(ones({4}, f64));
  const std::vector<double> naive = x.grad().to_vector();
  EXPECT_TRUE(std::isnan(naive[0]));
  EXPECT_TRUE(std::isnan(naive[1]));
  EXPECT_EQ(naive[2], 0.25);
  EXPECT_EQ(naive[3], 1.0);
  x.zero_grad();
  where(positive, sqrt(where(positive, x, 1.0)), 0.0).backward(ones({4}, f64));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0.0, 0.0, 0.25, 1.0}));
}

// Found by review: 1e40 used to become inf in a float32 tensor; PyTorch refuses it ("value cannot
// be converted to type float without overflow"), and so does tapegrad now.
TEST(Masks, AFillValuePastFloat32sRangeIsAnError) {
  const Tensor x = tensor({1.0, 2.0, 3.0});
  const Tensor m = gt(x, 1.5);
  test_support::expect_error_containing([&] { masked_fill(x, m, 1e40); }, "masked_fill: 1e+40");
  test_support::expect_error_containing([&] { where(m, x, -1e40); }, "where: -1e+40");
  test_support::expect_error_containing([&] { where(m, 1e39, x); }, "where: 1e+39");
  EXPECT_EQ(masked_fill(x, m, INFINITY).to_vector(), (std::vector<double>{1, INFINITY, INFINITY}));
  EXPECT_EQ(masked_fill(x, m, 3.4028234663852886e38).to_vector()[1], double(FLT_MAX));
  EXPECT_EQ(masked_fill(x.to(f64), m, 1e40).to_vector()[2], 1e40);
}

TEST(Masks, MaskedFillAndSelectGradients) {
  const Tensor x = tensor({{1.0, -2.0, 3.0}, {4.0, 5.0, -6.0}}, f64).requires_grad(true);
  const Tensor mask = tensor({1, 0, 1}, b8);
  const Tensor g = tensor({{0.5, 1.5, kInf}, {-1.0, 2.0, 3.0}}, f64);
  masked_fill(x, mask, kNaN).backward(g);
  // Filled positions get exactly 0, even under an infinite cotangent.
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0.0, 1.5, 0.0, 0.0, 2.0, 0.0}));
  const Tensor v = tensor({1.0, 2.0, 3.0}, f64).requires_grad(true);
  const Tensor picked = masked_select(v, tensor({{1, 0, 1}, {1, 1, 0}}, b8));
  EXPECT_EQ(picked.to_vector(), (std::vector<double>{1.0, 3.0, 1.0, 2.0}));
  picked.backward(tensor({10.0, 20.0, 30.0, 40.0}, f64));
  // v broadcast over the mask's rows: element 0 is picked twice.
  EXPECT_EQ(v.grad().to_vector(), (std::vector<double>{40.0, 40.0, 20.0}));
}

}  // namespace
}  // namespace tg
