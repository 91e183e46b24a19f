// The language-model ops (ops/language.cpp): PyTorch 1.13's answers (tests/reference/language.json,
// written by scripts/make_language_reference.py) replayed with the reference suite's tolerance,
// closed-form values, edge cases, sampling statistics and errors. The registry checks the
// gradients (gradcheck, float32, gradgradcheck) of every registered variant.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "ops/everyday.h"
#include "ops/language.h"
#include "tapegrad.h"
#include "tests/expect_error.h"
#include "tests/reference_fixture.h"
#include "tools/gtest.h"

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

constexpr const char* kFixture = "language.json";

// ---- the fixture ----

// The one place that maps a language.json call to tapegrad.
Tensor call_language(const json& call, const std::vector<Tensor>& in, Tensor* indices) {
  const std::string fn = call.at("fn");
  if (fn == "tril") return tril(in[0], call.at("diagonal").get<std::int64_t>());
  if (fn == "triu") return triu(in[0], call.at("diagonal").get<std::int64_t>());
  if (fn == "embedding") {
    const Tensor idx = int64_tensor(call.at("indices").get<std::vector<std::int64_t>>(),
                                    test_support::shape_of(call.at("indices_shape")));
    const json& padding = call.at("padding_idx");
    return embedding(idx, in[0],
                     padding.is_null() ? std::nullopt
                                       : std::optional<std::int64_t>(padding.get<std::int64_t>()));
  }
  if (fn == "layer_norm") {
    const bool has_weight = call.at("weight").get<bool>(), has_bias = call.at("bias").get<bool>();
    return layer_norm(in[0], call.at("normalized_shape").get<std::vector<std::int64_t>>(),
                      has_weight ? in[1] : Tensor(), has_bias ? in.back() : Tensor(),
                      number(call.at("eps")));
  }
  if (fn == "topk") {
    TopK r = topk(in[0], call.at("k").get<std::int64_t>(), call.at("axis").get<std::int64_t>(),
                  call.at("largest").get<bool>(), call.at("sorted").get<bool>());
    *indices = r.indices;
    return r.values;
  }
  throw Error("language.json: unknown fn " + fn);
}

std::string replay(const json& c) {
  Tensor indices;
  std::string report =
      replay_floating_op(c, [&](const json& call, const std::vector<Tensor>& inputs) {
        return call_language(call, inputs, &indices);
      });
  if (c.contains("indices") && report.empty()) {
    const std::vector<double> got = indices.to_vector();
    const std::vector<double> want = numbers(c.at("indices"));
    if (indices.dtype() != i64 || got != want) report += "indices differ from PyTorch's\n";
  }
  return report;
}

class LanguageReference : public ::testing::TestWithParam<std::size_t> {};

TEST_P(LanguageReference, MatchesPyTorch) {
  test_support::expect_case_matches(kFixture, GetParam(), replay);
}

INSTANTIATE_TEST_SUITE_P(Fixture, LanguageReference,
                         ::testing::ValuesIn(test_support::case_indices(kFixture)),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return test_support::case_test_name(kFixture, info.param);
                         });

// Every registered language op has fixture cases in both dtypes, and every case names one.
TEST(LanguageReferenceCoverage, EveryRegisteredOpHasCasesInBothDtypes) {
  std::map<std::string, std::set<std::string>> dtypes;
  for (const json& entry : fixture(kFixture).header.at("index")) {
    dtypes[entry[0].get<std::string>()].insert(entry[2].get<std::string>());
  }
  std::set<std::string> registered;
  for (const OpRegistration& op : op_registry().ops()) {
    for (const char* family : {"tril", "triu", "embedding", "layer_norm", "topk"}) {
      if (op.name.starts_with(family)) registered.insert(op.name);
    }
  }
  EXPECT_EQ(registered.size(), 14u);
  for (const std::string& name : registered) EXPECT_EQ(dtypes[name].size(), 2u) << name;
  for (const auto& [name, kinds] : dtypes) EXPECT_TRUE(registered.contains(name)) << name;
}

// ---- tril / triu ----

TEST(Triangle, KeepsTheBandAndMasksTheGradient) {
  const Tensor x = tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}, f64).requires_grad(true);
  EXPECT_EQ(tril(x).to_vector(), (std::vector<double>{1, 0, 0, 4, 5, 0}));
  EXPECT_EQ(tril(x, -1).to_vector(), (std::vector<double>{0, 0, 0, 4, 0, 0}));
  EXPECT_EQ(triu(x, 1).to_vector(), (std::vector<double>{0, 2, 3, 0, 0, 6}));
  EXPECT_EQ(triu(x, -1).to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  const Tensor g = tensor({{10.0, 20.0, 30.0}, {40.0, 50.0, 60.0}}, f64);
  EXPECT_EQ(grad(triu(x), {x}, g)[0].to_vector(), (std::vector<double>{10, 20, 30, 0, 50, 60}));
  // Diagonals past the corners, even the extremes of int64.
  EXPECT_EQ(tril(x, std::numeric_limits<std::int64_t>::max()).to_vector(), x.to_vector());
  EXPECT_EQ(tril(x, std::numeric_limits<std::int64_t>::min()).to_vector(),
            std::vector<double>(6, 0.0));
  EXPECT_EQ(triu(x, std::numeric_limits<std::int64_t>::min()).to_vector(), x.to_vector());
  EXPECT_EQ(triu(x, 3).to_vector(), std::vector<double>(6, 0.0));
}

TEST(Triangle, BoolBatchedAndEmpty) {
  const Tensor causal = tril(ones({2, 3, 3}, f64) > 0.0);
  EXPECT_EQ(causal.dtype(), b8);
  EXPECT_EQ(causal.shape(), (Shape{2, 3, 3}));
  EXPECT_EQ(causal.to_vector(), (std::vector<double>{1, 0, 0, 1, 1, 0, 1, 1, 1,  //
                                                     1, 0, 0, 1, 1, 0, 1, 1, 1}));
  EXPECT_EQ(triu(zeros({0, 4}, f64)).shape(), (Shape{0, 4}));
  EXPECT_EQ(triu(zeros({std::int64_t(1) << 40, 0}, f64)).shape(),
            (Shape{std::int64_t(1) << 40, 0}));
}

TEST(Triangle, Errors) {
  expect_error_at([&] { tril(ones({3}, f64)); }, "tril", __FILE__);
  expect_error_containing([&] { triu(ones({3}, f64)); }, "expected a tensor of rank >= 2");
}

// ---- embedding ----

TEST(Embedding, ReadsRowsAndSendsNoGradientToThePaddingRow) {
  const Tensor w = tensor({{0.0, 0.5}, {1.0, 1.5}, {2.0, 2.5}}, f64).requires_grad(true);
  const Tensor idx = int64_tensor({2, 0, 2, 1}, {2, 2});
  const Tensor y = embedding(idx, w, -1);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{2.0, 2.5, 0.0, 0.5, 2.0, 2.5, 1.0, 1.5}));
  const Tensor g = tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}, f64);
  const Tensor dw = grad(y, {w}, reshape(g, {2, 2, 2}))[0];
  EXPECT_EQ(dw.to_vector(), (std::vector<double>{3.0, 4.0, 7.0, 8.0, 0.0, 0.0}));
  const Tensor all = grad(embedding(idx, w), {w}, reshape(g, {2, 2, 2}))[0];
  EXPECT_EQ(all.to_vector(), (std::vector<double>{3.0, 4.0, 7.0, 8.0, 6.0, 8.0}));
  // The rule is itself differentiable: second order through a function of the weight.
  Generator gen(3);
  EXPECT_GRADGRADCHECK(
      [](const std::vector<Tensor>& in) {
        return embedding(int64_tensor({1, 1, 0}), in[0] * in[0], 2);
      },
      {randn({3, 2}, gen, f64)});
  EXPECT_EQ(embedding(int64_tensor({}, {0}), w).shape(), (Shape{0, 2}));
  EXPECT_EQ(embedding(int64_tensor({1}, {}), w).shape(), (Shape{2}));
}

TEST(Embedding, Errors) {
  const Tensor w = ones({3, 2}, f64);
  expect_error_at([&] { embedding(int64_tensor({0, 3}), w); }, "embedding", __FILE__);
  expect_error_containing(
      [&] {
        embedding(int64_tensor({0, 1, 3}), w);
      },
      "index 3 at position [2] is out of range for num_embeddings 3");
  expect_error_containing([&] { embedding(int64_tensor({-1}), w); }, "index -1 at position [0]");
  expect_error_containing([&] { embedding(int64_tensor({0}), w, 3); },
                          "padding_idx 3 is out of range for num_embeddings 3 (expected -3 to 2)");
  expect_error_containing([&] { embedding(int64_tensor({0}), w, -4); }, "padding_idx -4");
  expect_error_containing([&] { embedding(ones({2}, f64), w); }, "the indices must be int64");
  expect_error_containing([&] { embedding(int64_tensor({0}), ones({3}, f64)); },
                          "expected a floating weight [num_embeddings, embedding_dim]");
}

// ---- layer_norm ----

// The composed layer norm, for comparison.
Tensor composed_layer_norm(const Tensor& x, std::int64_t d, const Tensor& w, const Tensor& b,
                           double eps) {
  const Tensor rows = reshape(x, {-1, d});
  const Tensor centred = rows - mean(rows, -1, true);
  Tensor y = reshape(centred * rsqrt(mean(centred * centred, -1, true) + eps), x.shape());
  if (w.defined()) y = y * w;
  if (b.defined()) y = y + b;
  return y;
}

TEST(LayerNorm, FusedMatchesTheCompositionInFloat64) {
  Generator gen(41);
  for (const bool affine : {true, false}) {
    const Tensor x = randn({4, 3, 5}, gen, f64).requires_grad(true);
    const Tensor w =
        affine ? (randn({3, 5}, gen, f64) + 1.0).detach().requires_grad(true) : Tensor();
    const Tensor b = affine ? randn({3, 5}, gen, f64).requires_grad(true) : Tensor();
    const Tensor y = layer_norm(x, {3, 5}, w, b, 1e-3);
    const Tensor z = composed_layer_norm(x, 15, w, b, 1e-3);
    const Tensor g = randn({4, 3, 5}, gen, f64);
    std::vector<Tensor> wrt{x};
    if (affine) wrt.insert(wrt.end(), {w, b});
    const std::vector<Tensor> fused = grad(y, wrt, g);
    const std::vector<Tensor> composed = grad(z, wrt, g);
    const std::vector<double> yv = y.to_vector(), zv = z.to_vector();
    for (std::size_t k = 0; k < yv.size(); ++k) EXPECT_NEAR(yv[k], zv[k], 1e-12);
    for (std::size_t i = 0; i < wrt.size(); ++i) {
      const std::vector<double> a = fused[i].to_vector(), c = composed[i].to_vector();
      for (std::size_t k = 0; k < a.size(); ++k) {
        EXPECT_NEAR(a[k], c[k], 1e-12 * (1 + std::abs(c[k]))) << i << " " << k;
      }
    }
  }
}

TEST(LayerNorm, Float32StatisticsInDoubleKeepLargeOffsets) {
  // x = 1e4 + noise in float32: the float64 layer norm of the same float32 values is the answer.
  Generator gen(43);
  const Tensor x64 = (randn({3, 64}, gen, f64) * 0.01 + 1e4).to(f32).to(f64);
  const Tensor x = x64.to(f32).requires_grad(true);
  const Tensor y = layer_norm(x, {64});
  const Tensor want = layer_norm(x64, {64});
  const std::vector<double> a = y.to_vector(), b = want.to_vector();
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 2e-6 * (1 + std::abs(b[k])));
  const Tensor g = randn({3, 64}, gen, f64);
  const std::vector<double> dx = grad(y, {x}, g.to(f32))[0].to_vector();
  const Tensor x64g = x64.detach().requires_grad(true);
  const std::vector<double> dx64 = grad(layer_norm(x64g, {64}), {x64g}, g)[0].to_vector();
  double largest = 0;
  for (const double v : dx64) largest = std::max(largest, std::abs(v));
  for (std::size_t k = 0; k < dx.size(); ++k) EXPECT_NEAR(dx[k], dx64[k], 1e-5 * largest);
}

TEST(LayerNorm, ConstantRowAndEmptyInput) {
  const Tensor x = tensor({{2.0, 2.0, 2.0}}, f64).requires_grad(true);
  const Tensor y = layer_norm(x, {3});
  EXPECT_EQ(y.to_vector(), (std::vector<double>{0.0, 0.0, 0.0}));
  // dx = σ⁻¹·(g − mean g) with σ⁻¹ = eps^(−1/2).
  const std::vector<double> dx = grad(y, {x}, tensor({{1.0, 0.0, 2.0}}, f64))[0].to_vector();
  EXPECT_NEAR(dx[0], 0.0, 1e-9);
  EXPECT_NEAR(dx[1], -1.0 / std::sqrt(1e-5), 1e-9);
  EXPECT_NEAR(dx[2], 1.0 / std::sqrt(1e-5), 1e-9);
  const Tensor e = zeros({0, 3}, f64).requires_grad(true);
  const Tensor w = ones({3}, f64).requires_grad(true);
  const Tensor ye = layer_norm(e, {3}, w);
  EXPECT_EQ(ye.shape(), (Shape{0, 3}));
  EXPECT_EQ(grad(ye, {w}, zeros({0, 3}, f64))[0].to_vector(), (std::vector<double>{0, 0, 0}));
}

TEST(LayerNorm, Errors) {
  const Tensor x = ones({2, 3}, f64);
  expect_error_at([&] { layer_norm(x, {}); }, "layer_norm", __FILE__);
  expect_error_containing([&] { layer_norm(x, {}); },
                          "normalized_shape [] should be the input's last dimensions");
  expect_error_containing([&] { layer_norm(x, {2}); }, "normalized_shape [2] should be");
  expect_error_containing([&] { layer_norm(x, {1, 2, 3}); }, "got an input of shape [2, 3]");
  expect_error_containing([&] { layer_norm(x, {3}, ones({2}, f64)); },
                          "weight should be [3] float64 (normalized_shape, the input's dtype), "
                          "got [2] float64");
  expect_error_containing([&] { layer_norm(x, {3}, {}, ones({3}, f32)); },
                          "bias should be [3] float64");
  expect_error_containing([&] { layer_norm(x, {3}, {}, {}, -1.0); }, "expected eps >= 0");
  expect_error_containing([&] { layer_norm(ones({2, 3}, i64), {3}); }, "expected a floating input");
}

// ---- topk ----

std::vector<std::int64_t> int64s(const Tensor& t) {
  std::vector<std::int64_t> out;
  for (const double v : t.to_vector()) out.push_back(std::int64_t(v));
  return out;
}

TEST(TopK, LargestAndSmallestAlongEachAxis) {
  const Tensor x = tensor({{3.0, -1.0, 7.0, 0.5}, {2.0, 9.0, -4.0, 8.0}}, f64);
  const TopK r = topk(x, 2);
  EXPECT_EQ(r.values.to_vector(), (std::vector<double>{7.0, 3.0, 9.0, 8.0}));
  EXPECT_EQ(r.indices.dtype(), i64);
  EXPECT_EQ(int64s(r.indices), (std::vector<std::int64_t>{2, 0, 1, 3}));
  const TopK s = topk(x, 1, 0, false);
  EXPECT_EQ(s.values.shape(), (Shape{1, 4}));
  EXPECT_EQ(s.values.to_vector(), (std::vector<double>{2.0, -1.0, -4.0, 0.5}));
  EXPECT_EQ(int64s(s.indices), (std::vector<std::int64_t>{1, 0, 1, 0}));
}

TEST(TopK, TiesRankByPositionAndNaNIsLargest) {
  const Tensor x = tensor({1.0, 5.0, NAN, 5.0, 1.0, NAN}, f64);
  EXPECT_EQ(int64s(topk(x, 4).indices), (std::vector<std::int64_t>{2, 5, 1, 3}));
  EXPECT_EQ(int64s(topk(x, 3, 0, false).indices), (std::vector<std::int64_t>{0, 4, 1}));
  // Unsorted: the same positions, in increasing order.
  EXPECT_EQ(int64s(topk(x, 4, 0, true, false).indices), (std::vector<std::int64_t>{1, 2, 3, 5}));
}

TEST(TopK, GradientGoesToTheChosenPositions) {
  const Tensor x = tensor({{0.5, 2.0, -1.0}, {4.0, 3.0, 6.0}}, f64).requires_grad(true);
  const TopK r = topk(x, 2, 1);
  const Tensor g = tensor({{10.0, 20.0}, {30.0, 40.0}}, f64);
  const Tensor dx = grad(r.values, {x}, g)[0];
  EXPECT_EQ(dx.to_vector(), (std::vector<double>{20.0, 10.0, 0.0, 40.0, 0.0, 30.0}));
  Generator gen(5);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return topk(in[0], 3, 0).values; },
                   {randn({4, 3}, gen, f64)});
  EXPECT_GRADGRADCHECK(
      [](const std::vector<Tensor>& in) { return topk(in[0] * in[0], 2, -1, false).values; },
      {randn({3, 4}, gen, f64)});
}

TEST(TopK, EdgeSizes) {
  const Tensor x = tensor({{1.0, 2.0}, {3.0, 4.0}}, f64);
  EXPECT_EQ(topk(x, 0).values.shape(), (Shape{2, 0}));
  EXPECT_EQ(topk(zeros({0, 3}, f64), 2).values.shape(), (Shape{0, 2}));
  const TopK scalar = topk(full({}, 2.5, f64), 1);
  EXPECT_EQ(scalar.values.shape(), Shape{});
  EXPECT_EQ(scalar.values.item(), 2.5);
  EXPECT_EQ(scalar.indices.item(), 0.0);
  EXPECT_EQ(topk(x.to(f32), 1).values.dtype(), f32);
}

TEST(TopK, Errors) {
  const Tensor x = ones({2, 3}, f64);
  expect_error_at([&] { topk(x, 4); }, "topk", __FILE__);
  expect_error_containing([&] { topk(x, 4); }, "k = 4 is out of range for axis 1 of size 3");
  expect_error_containing([&] { topk(x, -1); }, "k = -1 is out of range");
  expect_error_containing([&] { topk(x, 1, 2); }, "axis 2 is out of range");
  expect_error_at([&] { topk(x, 1, 2); }, "topk", __FILE__);
  expect_error_containing([&] { topk(ones({3}, i64), 1); }, "expected a floating input");
  expect_error_at([&] { topk(full({}, 1.0, f64), 1, 1); }, "topk", __FILE__);
}

// ---- multinomial ----

// Pearson's statistic of observed counts against expected probabilities (zero-probability
// categories must be empty and are left out).
double chi_square(const std::vector<double>& counts, const std::vector<double>& p, double n) {
  double statistic = 0;
  for (std::size_t c = 0; c < p.size(); ++c) {
    if (p[c] == 0) {
      EXPECT_EQ(counts[c], 0.0) << "category " << c;
      continue;
    }
    const double expected = n * p[c];
    statistic += (counts[c] - expected) * (counts[c] - expected) / expected;
  }
  return statistic;
}

// χ² quantile at p = 0.001 for 3 degrees of freedom.
constexpr double kChiSquare3 = 16.266;

TEST(Multinomial, WithReplacementFollowsTheWeights) {
  // Unnormalised weights with a zero: 4 categories drawn, 3 degrees of freedom.
  const Tensor w = tensor({1.0, 2.0, 0.0, 3.0, 4.0}, f64);
  const std::vector<double> p{0.1, 0.2, 0.0, 0.3, 0.4};
  Generator gen(2024);
  constexpr std::int64_t n = 20000;
  const Tensor s = multinomial(w, n, gen, true);
  EXPECT_EQ(s.shape(), (Shape{n}));
  EXPECT_EQ(s.dtype(), i64);
  std::vector<double> counts(5);
  for (const std::int64_t c : int64s(s)) counts.at(std::size_t(c)) += 1;
  EXPECT_LT(chi_square(counts, p, double(n)), kChiSquare3);
  // float32 weights, rows drawn independently.
  const Tensor rows = multinomial(stack({w, w}).to(f32), n, gen, true);
  EXPECT_EQ(rows.shape(), (Shape{2, n}));
  std::vector<double> second(5);
  const std::vector<std::int64_t> all = int64s(rows);
  for (std::size_t k = std::size_t(n); k < all.size(); ++k) second.at(std::size_t(all[k])) += 1;
  EXPECT_LT(chi_square(second, p, double(n)), kChiSquare3);
}

TEST(Multinomial, WithoutReplacementDrawsDistinctCategoriesInSequence) {
  // 20,000 rows of the same weights, 2 draws each: the first draw follows p, the second
  // P(j) = Σᵢ pᵢ·pⱼ/(1 − pᵢ) over i ≠ j, as successive draws without replacement.
  const std::vector<double> p{0.1, 0.2, 0.0, 0.3, 0.4};
  constexpr std::int64_t n = 20000;
  std::vector<double> weights;
  for (std::int64_t r = 0; r < n; ++r) weights.insert(weights.end(), p.begin(), p.end());
  Generator gen(7);
  const std::vector<std::int64_t> s =
      int64s(multinomial(from_vector(weights, {n, 5}, f64), 2, gen, false));
  std::vector<double> first(5), second(5), q(5);
  for (std::size_t r = 0; r < std::size_t(n); ++r) {
    ASSERT_NE(s[2 * r], s[2 * r + 1]);
    first.at(std::size_t(s[2 * r])) += 1;
    second.at(std::size_t(s[2 * r + 1])) += 1;
  }
  for (std::size_t j = 0; j < 5; ++j) {
    for (std::size_t i = 0; i < 5; ++i) {
      if (i != j) q[j] += p[i] * p[j] / (1 - p[i]);
    }
  }
  EXPECT_LT(chi_square(first, p, double(n)), kChiSquare3);
  EXPECT_LT(chi_square(second, q, double(n)), kChiSquare3);
  // Every non-zero category, each once.
  const std::vector<std::int64_t> four =
      int64s(multinomial(tensor({1.0, 2.0, 0.0, 3.0, 4.0}, f64), 4, gen));
  EXPECT_EQ(std::set<std::int64_t>(four.begin(), four.end()), (std::set<std::int64_t>{0, 1, 3, 4}));
}

TEST(Multinomial, SubnormalWeightsWithoutReplacementNeverDrawAZeroWeight) {
  // E/w overflows to inf for w ~ 1e-310, where it would tie with a zero weight's key.
  constexpr std::int64_t n = 4000;
  std::vector<double> weights;
  for (std::int64_t r = 0; r < n; ++r) weights.insert(weights.end(), {0.0, 1e-310, 1e-310});
  Generator gen(5);
  const std::vector<std::int64_t> s =
      int64s(multinomial(from_vector(weights, {n, 3}, f64), 1, gen, false));
  std::int64_t ones = 0;
  for (std::int64_t c : s) {
    ASSERT_NE(c, 0);
    ones += c == 1;
  }
  EXPECT_NEAR(double(ones) / double(n), 0.5, 0.04);  // 5 standard deviations
  const std::vector<std::int64_t> both =
      int64s(multinomial(tensor({1e-320, 0.0, 1e-320}, f64), 2, gen));
  EXPECT_EQ(std::set<std::int64_t>(both.begin(), both.end()), (std::set<std::int64_t>{0, 2}));
}

TEST(Multinomial, SameSeedSameDrawsAndOneCategory) {
  const Tensor w = tensor({{0.5, 0.5, 1.0}, {0.0, 0.0, 2.0}}, f64);
  Generator a(11), b(11);
  EXPECT_EQ(multinomial(w, 6, a, true).to_vector(), multinomial(w, 6, b, true).to_vector());
  const std::vector<std::int64_t> only = int64s(multinomial(w, 5, a, true));
  for (std::size_t k = 5; k < 10; ++k) EXPECT_EQ(only[k], 2);
  EXPECT_EQ(multinomial(zeros({0, 3}, f64), 2, a).shape(), (Shape{0, 2}));
}

TEST(Multinomial, Errors) {
  Generator gen(1);
  const Tensor w = tensor({1.0, 0.0, 2.0}, f64);
  expect_error_at([&] { multinomial(w, 3, gen); }, "multinomial", __FILE__);
  expect_error_containing(
      [&] { multinomial(w, 3, gen); },
      "row 0 has 2 non-zero weights, too few for 3 samples without replacement");
  expect_error_containing([&] { multinomial(w, 4, gen); },
                          "cannot draw 4 samples without replacement from 3 categories");
  expect_error_containing([&] { multinomial(w, 0, gen, true); }, "expected num_samples > 0");
  expect_error_containing(
      [&] {
        multinomial(tensor({1.0, -0.5}, f64), 1, gen);
      },
      "weight -0.5 at row 0, category 1 is not a finite non-negative number");
  expect_error_containing([&] { multinomial(tensor({1.0, NAN}, f64), 1, gen); }, "weight nan");
  expect_error_containing([&] { multinomial(tensor({INFINITY, 1.0}, f64), 1, gen); }, "weight inf");
  expect_error_containing(
      [&] {
        multinomial(tensor({{1.0, 1.0}, {0.0, 0.0}}, f64), 1, gen);
      },
      "the weights of row 1 sum to 0");
  expect_error_containing(
      [&] {
        multinomial(ones({2, 2, 2}, f64), 1, gen);
      },
      "expected floating weights [C] or [N, C]");
  expect_error_containing([&] { multinomial(ones({3}, i64), 1, gen); },
                          "expected floating weights");
  expect_error_containing(
      [&] {
        multinomial(zeros({2, 0}, f64), 1, gen);
      },
      "expected at least one category");
  // A refused call draws nothing: the generator continues as a fresh one with the same seed.
  Generator fresh(1);
  EXPECT_EQ(multinomial(w, 2, gen).to_vector(), multinomial(w, 2, fresh).to_vector());
}

}  // namespace
}  // namespace tg
