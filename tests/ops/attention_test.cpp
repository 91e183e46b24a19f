// scaled_dot_product_attention (ops/attention.cpp): PyTorch's maths (tests/reference/
// attention.json, written by scripts/make_attention_reference.py) replayed with the reference
// suite's tolerance; the fused kernels held to the composition on every registered sample and on
// a [2, 4, 64, 32] causal case; second order through the composed rule; float32 with scores of
// ~1e4; the thread count; fully masked rows, no keys, no queries; errors. The registry checks the
// gradients (gradcheck, float32, reference Jacobian, gradgradcheck) of every registered variant.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "tapegrad.h"
#include "tests/expect_error.h"
#include "tests/reference_fixture.h"
#include "tools/gtest.h"

namespace tg {
namespace {

using nlohmann::json;
using test_support::expect_error_at;
using test_support::expect_error_containing;
using test_support::fixture;
using test_support::fixture_case;
using test_support::number;
using test_support::numbers;
using test_support::replay_floating_op;
using test_support::shape_of;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr const char* kOp = "scaled_dot_product_attention";

// ---- the fixture (tests/reference/attention.json) ----

Tensor call_attention(const json& call, const std::vector<Tensor>& in) {
  Generator generator(call.at("seed").get<std::uint64_t>());
  AttentionOptions options{.dropout_p = number(call.at("dropout_p")),
                           .is_causal = call.at("is_causal").get<bool>(),
                           .generator = &generator};
  if (!call.at("scale").is_null()) options.scale = number(call.at("scale"));
  if (const json& mask = call.at("mask"); !mask.is_null()) {
    const bool boolean = mask.at("dtype") == "bool";
    options.attn_mask = from_vector(numbers(mask.at("values")), shape_of(mask.at("shape")),
                                    boolean ? b8 : in[0].dtype());
  }
  return scaled_dot_product_attention(in[0], in[1], in[2], options);
}

class AttentionReference : public ::testing::TestWithParam<std::size_t> {};

TEST_P(AttentionReference, MatchesPyTorch) {
  test_support::expect_case_matches("attention.json", GetParam(), [](const json& c) {
    return replay_floating_op(c, call_attention);
  });
}

INSTANTIATE_TEST_SUITE_P(Fixture, AttentionReference,
                         ::testing::ValuesIn(test_support::case_indices("attention.json")),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return test_support::case_test_name("attention.json", info.param);
                         });

std::set<std::string> registered_variants() {
  std::set<std::string> names;
  for (const OpRegistration& op : op_registry().ops()) {
    if (op.name.starts_with(kOp)) names.insert(op.name);
  }
  return names;
}

TEST(AttentionReferenceCoverage, EveryRegisteredVariantHasCasesInBothDtypes) {
  std::map<std::string, std::set<std::string>> dtypes;
  for (const json& entry : fixture("attention.json").header.at("index")) {
    dtypes[entry[0].get<std::string>()].insert(entry[2].get<std::string>());
  }
  const std::set<std::string> registered = registered_variants();
  EXPECT_EQ(registered.size(), 6u);
  for (const std::string& name : registered) EXPECT_EQ(dtypes[name].size(), 2u) << name;
  for (const auto& [name, kinds] : dtypes) EXPECT_TRUE(registered.contains(name)) << name;
}

// ---- the fused kernels held to the composition ----

// The options of each registered variant (ops/attention.cpp's register_attention_ops), made for
// inputs of `dtype`.
std::map<std::string, std::function<AttentionOptions(DType)>> variant_options() {
  const auto bool_mask = [](Shape shape, std::vector<double> keep) {
    return [=](DType) { return AttentionOptions{.attn_mask = from_vector(keep, shape, b8)}; };
  };
  return {
      {kOp, [](DType) { return AttentionOptions{}; }},
      {std::string(kOp) + "(is_causal)", [](DType) { return AttentionOptions{.is_causal = true}; }},
      {std::string(kOp) + "(bool mask, a row fully masked)",
       bool_mask({3, 4}, {1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0})},
      {std::string(kOp) + "(key padding mask [B, 1, 1, S])",
       bool_mask({2, 1, 1, 4}, {1, 1, 1, 0, 1, 1, 0, 0})},
      {std::string(kOp) + "(float mask with -inf, scale 0.7)",
       [](DType dtype) {
         return AttentionOptions{
             .attn_mask = from_vector(
                 {0.5,  -kInf, -1.0, 0.0,   0.25, 0.0, -kInf, 2.0, 0.0,   0.0,   0.0,   -0.5,
                  -0.3, 1.0,   0.0,  -kInf, 0.0,  0.0, 0.0,   0.0, -kInf, -kInf, -kInf, -kInf},
                 {2, 3, 4}, dtype),
             .scale = 0.7};
       }},
  };
}

// The same attention by the composition: the mask made a float mask (0 or −inf for a bool mask
// or is_causal) that requires grad, which the op computes with differentiable ops.
Tensor composed(const Tensor& q, const Tensor& k, const Tensor& v, AttentionOptions options) {
  const std::int64_t l = q.shape()[q.rank() - 2], s = k.shape()[k.rank() - 2];
  Tensor mask = options.attn_mask;
  if (options.is_causal) mask = tril(ones({l, s}, f64) > 0.0);
  if (!mask.defined()) mask = zeros({l, s}, q.dtype());
  if (mask.dtype() == b8) mask = where(mask, 0.0, full(mask.shape(), -kInf, q.dtype()));
  options.attn_mask = mask.detach().copy().requires_grad(true);
  options.is_causal = false;
  return scaled_dot_product_attention(q, k, v, options);
}

void expect_near_all(const Tensor& got, const Tensor& want, double tolerance,
                     const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> a = got.to_vector(), b = want.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], tolerance * (1 + std::abs(b[i]))) << what << " [" << i << "]";
  }
}

// Forward values and the gradients of a random cotangent, fused and composed, within 1e-12.
void expect_fused_equals_composed(const std::vector<Tensor>& inputs,
                                  const AttentionOptions& options, const std::string& what) {
  std::vector<Tensor> in;
  for (const Tensor& x : inputs) in.push_back(x.detach().copy().requires_grad(true));
  const Tensor fused = scaled_dot_product_attention(in[0], in[1], in[2], options);
  const Tensor reference = composed(in[0], in[1], in[2], options);
  expect_near_all(fused, reference, 1e-12, what + ": output");
  Generator gen(23);
  const Tensor g = randn(fused.shape(), gen, f64);
  const std::vector<Tensor> a = grad(fused, in, g), b = grad(reference, in, g);
  for (std::size_t i = 0; i < 3; ++i) {
    expect_near_all(a[i], b[i], 1e-12, what + ": gradient of input " + std::to_string(i));
  }
}

TEST(AttentionFused, EqualsTheCompositionOnEveryRegisteredSample) {
  const auto options = variant_options();
  std::size_t checked = 0;
  for (const std::string& name : registered_variants()) {
    if (name.find("dropout") != std::string::npos) continue;  // the composition runs it
    ASSERT_TRUE(options.contains(name)) << name << " has no options in this test";
    for (const OpSample& s : op_registry().find(name).samples(f64)) {
      expect_fused_equals_composed(s.inputs, options.at(name)(f64), name + " on " + s.label);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 8u);
}

TEST(AttentionFused, EqualsTheCompositionOnACausal64By32Case) {
  Generator gen(31);
  const Shape shape{2, 4, 64, 32};
  expect_fused_equals_composed(
      {randn(shape, gen, f64), randn(shape, gen, f64), randn(shape, gen, f64)}, {.is_causal = true},
      "[2, 4, 64, 32] causal");
}

TEST(AttentionFused, IsOneRecordedOpThatKeepsNoProbabilities) {
  Tape tape;
  Generator gen(3);
  const Tensor q = randn({2, 3, 5, 4}, gen, f64).requires_grad(true);
  const Tensor y = scaled_dot_product_attention(q, q, q, {.is_causal = true});
  ASSERT_EQ(tape.size(), 1u);
  EXPECT_STREQ(tape.entries()[0].op, kOp);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 5, 4}));
}

// Second order runs the composed rule (dq depends on q, k, v through P).
TEST(AttentionFused, SecondOrderThroughTheComposedRule) {
  Generator gen(5);
  const std::vector<Tensor> in{randn({1, 2, 4, 3}, gen, f64), randn({1, 2, 5, 3}, gen, f64),
                               randn({1, 2, 5, 2}, gen, f64)};
  const Tensor keep =
      from_vector({1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1}, {4, 5}, b8);
  EXPECT_GRADGRADCHECK(
      [&](const auto& x) {
        return scaled_dot_product_attention(x[0], x[1], x[2], {.attn_mask = keep});
      },
      in);
  EXPECT_GRADGRADCHECK(
      [](const auto& x) {
        return scaled_dot_product_attention(x[0], x[1], x[2], {.is_causal = true, .scale = 0.4});
      },
      in);
  // ∇ of ⟨dq, w⟩ is nonzero: the create_graph gradient is on the graph.
  std::vector<Tensor> x;
  for (const Tensor& t : in) x.push_back(t.detach().copy().requires_grad(true));
  const Tensor y = scaled_dot_product_attention(x[0], x[1], x[2], {.is_causal = true});
  const std::vector<Tensor> first = grad(sum(y * y), x, {}, {.create_graph = true});
  ASSERT_TRUE(first[0].requires_grad());
  const std::vector<Tensor> second = grad(sum(first[0] * first[0]), x);
  EXPECT_GT(sum(abs(second[1])).item(), 1e-3);
}

TEST(AttentionFused, Float32ScoresOf1e4StayFiniteAndClose) {
  Generator gen(7);
  const Shape shape{2, 2, 16, 8};
  const Tensor q64 = uniform(shape, gen, -100.0, 100.0, f64);
  const Tensor k64 = uniform(shape, gen, -100.0, 100.0, f64);
  const Tensor v64 = randn(shape, gen, f64);
  const Tensor g = randn(shape, gen, f64);
  std::map<DType, std::vector<Tensor>> results;
  for (DType dtype : {f64, f32}) {
    std::vector<Tensor> in{q64.to(dtype).requires_grad(true), k64.to(dtype).requires_grad(true),
                           v64.to(dtype).requires_grad(true)};
    const Tensor y = scaled_dot_product_attention(in[0], in[1], in[2], {.is_causal = true});
    results[dtype] = grad(y, in, g.to(dtype));
    results[dtype].push_back(y);
  }
  // |scores| reach ~1e4 (the softmax is nearly one-hot): a float32 score is ~1e-3 off, so P
  // and everything after it agree to about that much relative to the terms (|v|, |g| ~ 1; dq and
  // dk are ~1e-15 where P is one-hot, so the floor is 1).
  for (std::size_t i = 0; i < 4; ++i) {
    const std::vector<double> a = results[f32][i].to_vector(), b = results[f64][i].to_vector();
    double scale = 0;
    for (double x : b) scale = std::max(scale, std::abs(x));
    for (std::size_t j = 0; j < a.size(); ++j) {
      ASSERT_TRUE(std::isfinite(a[j])) << i << " [" << j << "]";
      ASSERT_NEAR(a[j], b[j], 2e-2 * std::max(scale, 1.0)) << i << " [" << j << "]";
    }
  }
}

TEST(AttentionFused, ResultsDoNotDependOnTheThreadCount) {
  Generator gen(19);
  const Shape shape{4, 4, 64, 32};  // 16 heads · 64 · 64 · 64 multiply-adds: over the threshold
  const Tensor q = randn(shape, gen, f32).requires_grad(true);
  const Tensor k = randn(shape, gen, f32).requires_grad(true);
  const Tensor v = randn(shape, gen, f32).requires_grad(true);
  const Tensor g = randn(shape, gen, f32);
  const int threads = num_threads();
  detail::set_adapt_to_load(false);  // really 2 threads on a busy machine
  std::vector<std::vector<double>> runs;
  for (int t : {1, 2}) {
    set_num_threads(t);
    const Tensor y = scaled_dot_product_attention(q, k, v, {.is_causal = true});
    runs.push_back(y.to_vector());
    for (const Tensor& d : grad(y, {q, k, v}, g)) {
      const std::vector<double> values = d.to_vector();
      runs.back().insert(runs.back().end(), values.begin(), values.end());
    }
  }
  set_num_threads(threads);
  detail::set_adapt_to_load(true);
  EXPECT_EQ(runs[0], runs[1]);
}

// ---- conventions at the special points ----

TEST(Attention, AFullyMaskedRowGivesZeroAndNoGradient) {
  Generator gen(9);
  for (DType dtype : {f64, f32}) {
    const Tensor q = randn({2, 3, 4}, gen, dtype).requires_grad(true);
    const Tensor k = randn({2, 5, 4}, gen, dtype).requires_grad(true);
    const Tensor v = randn({2, 5, 2}, gen, dtype).requires_grad(true);
    // Query 1 of every batch keeps no key (bool), then sees only −inf (float).
    std::vector<double> keep(15, 1.0), bias(15, 0.0);
    for (int j = 0; j < 5; ++j) {
      keep[5 + j] = 0;
      bias[5 + j] = -kInf;
    }
    for (const Tensor& mask : {from_vector(keep, {3, 5}, b8), from_vector(bias, {3, 5}, dtype)}) {
      const Tensor y = scaled_dot_product_attention(q, k, v, {.attn_mask = mask});
      const std::vector<Tensor> d = grad(y, {q, k, v}, ones(y.shape(), dtype));
      for (std::int64_t b = 0; b < 2; ++b) {
        for (std::int64_t c = 0; c < 2; ++c) EXPECT_EQ(y.at({b, 1, c}), 0.0);
        for (std::int64_t c = 0; c < 4; ++c) EXPECT_EQ(d[0].at({b, 1, c}), 0.0);
        EXPECT_NE(y.at({b, 0, 0}), 0.0);  // the other rows attend
      }
      for (double x : d[1].to_vector()) EXPECT_TRUE(std::isfinite(x));
    }
  }
}

TEST(Attention, NoKeysGivesZerosAndNoQueriesGivesAnEmptyOutput) {
  for (const auto& [l, s] : {std::pair<std::int64_t, std::int64_t>{3, 0}, {0, 4}}) {
    const Tensor q = ones({2, l, 4}, f64).requires_grad(true);
    const Tensor k = ones({2, s, 4}, f64).requires_grad(true);
    const Tensor v = ones({2, s, 3}, f64).requires_grad(true);
    for (bool causal : {false, true}) {
      const Tensor y = scaled_dot_product_attention(q, k, v, {.is_causal = causal});
      EXPECT_EQ(y.shape(), (Shape{2, l, 3}));
      for (double x : y.to_vector()) EXPECT_EQ(x, 0.0);
      const std::vector<Tensor> d = grad(y, {q, k, v}, ones(y.shape(), f64));
      for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(d[i].shape(), (std::array{q, k, v}[i].shape()));
        for (double x : d[i].to_vector()) EXPECT_EQ(x, 0.0);
      }
    }
  }
}

TEST(Attention, ClosedFormWithEqualScores) {
  // q = 0: every score is 0, so each query averages the values it may see.
  const Tensor q = zeros({3, 2}, f64);
  const Tensor k = ones({3, 2}, f64);
  const Tensor v = from_vector({1, 2, 3}, {3, 1}, f64);
  const Tensor y = scaled_dot_product_attention(q, k, v, {.is_causal = true});
  EXPECT_EQ(y.to_vector(), (std::vector<double>{1.0, 1.5, 2.0}));
}

TEST(Attention, NoFeaturesAveragesTheValues) {
  // E = 0: every score is an empty sum, 0 (the default scale 1/√0 must not make it NaN), so each
  // query averages the values, as PyTorch 2; the weights are uniform.
  const Tensor q = zeros({2, 0}, f64);
  const Tensor v = from_vector({1, 2, 3, 5}, {2, 2}, f64);
  EXPECT_EQ(scaled_dot_product_attention(q, q, v).to_vector(),
            (std::vector<double>{2, 3.5, 2, 3.5}));
  EXPECT_EQ(scaled_dot_product_attention_weights(q, q).to_vector(),
            (std::vector<double>{0.5, 0.5, 0.5, 0.5}));
}

TEST(Attention, DropoutDrawsFromTheGeneratorAndScalesTheKeptWeights) {
  Generator gen(13);
  const Tensor q = randn({2, 3, 4}, gen, f64);
  const Tensor k = randn({2, 5, 4}, gen, f64);
  const Tensor v = randn({2, 5, 3}, gen, f64);
  Generator a(7), b(7);
  const Tensor ya = scaled_dot_product_attention(q, k, v, {.dropout_p = 0.5, .generator = &a});
  const Tensor yb = scaled_dot_product_attention(q, k, v, {.dropout_p = 0.5, .generator = &b});
  EXPECT_EQ(ya.to_vector(), yb.to_vector());  // the same generator state, the same mask
  const Tensor plain = scaled_dot_product_attention(q, k, v);
  EXPECT_NE(ya.to_vector(), plain.to_vector());
  // Averaged over many masks, dropout leaves the expectation: E[keep / (1 − p)] = 1.
  Tensor total = zeros(plain.shape(), f64);
  const int draws = 4000;
  for (int i = 0; i < draws; ++i) {
    total = total + scaled_dot_product_attention(q, k, v, {.dropout_p = 0.5, .generator = &a});
  }
  expect_near_all(total / double(draws), plain, 0.1, "mean over masks");
}

TEST(Attention, AFloatMaskThatRequiresGradGetsItsGradient) {
  Generator gen(17);
  const std::vector<Tensor> in{randn({2, 3, 2}, gen, f64), randn({2, 4, 2}, gen, f64),
                               randn({2, 4, 2}, gen, f64), randn({1, 3, 4}, gen, f64)};
  EXPECT_GRADCHECK(
      [](const auto& x) {
        return scaled_dot_product_attention(x[0], x[1], x[2], {.attn_mask = x[3]});
      },
      in);
}

// ---- errors ----

TEST(Attention, ErrorsNameTheOpAndTheShapes) {
  const Tensor q = zeros({2, 3, 5, 4}, f64);
  const Tensor k = zeros({2, 3, 6, 4}, f64);
  const Tensor v = zeros({2, 3, 6, 2}, f64);
  Generator gen(1);
  const auto call = [](const Tensor& a, const Tensor& b, const Tensor& c,
                       const AttentionOptions& o = {}) {
    return [=] { scaled_dot_product_attention(a, b, c, o); };
  };
  expect_error_at(call(q, zeros({2, 3, 6, 5}, f64), v), kOp, __FILE__);
  const std::vector<std::pair<std::function<void()>, std::string>> cases{
      {call(zeros({4}, f64), zeros({4}, f64), zeros({4}, f64)), "rank >= 2, got q [4] float64"},
      {call(q, zeros({2, 3, 6, 5}, f64), v), "expected k's last dim E = q's 4, got q [2, 3, 5, 4]"},
      {call(q, k, zeros({2, 3, 7, 2}, f64)), "expected v's dim -2 S = k's 6"},
      {call(q, zeros({2, 1, 6, 4}, f64), zeros({2, 1, 6, 2}, f64)),
       "equal leading dims (they do not broadcast), got q [2, 3, 5, 4] float64, k [2, 1, 6, 4]"},
      {call(q, zeros({3, 6, 4}, f64), zeros({3, 6, 2}, f64)), "of one rank >= 2"},
      {call(q, k.to(f32), v),
       "one floating dtype, got q [2, 3, 5, 4] float64, k [2, 3, 6, 4] "
       "float32"},
      {call(q.to(i64), k.to(i64), v.to(i64)), "one floating dtype"},
      {call(q, k, v, {.attn_mask = zeros({5, 6}, i64)}),
       "expected a bool attn_mask or a float one of q's dtype float64, got [5, 6] int64"},
      {call(q, k, v, {.attn_mask = zeros({5, 6}, f32)}), "got [5, 6] float32"},
      {call(q, k, v, {.attn_mask = zeros({5, 5}, f64)}),
       "attn_mask [5, 5] does not broadcast to [..., L, S] = [2, 3, 5, 6]"},
      {call(q, k, v, {.attn_mask = zeros({2, 2, 5, 6}, f64)}), "attn_mask [2, 2, 5, 6]"},
      {call(q, k, v, {.attn_mask = zeros({1, 2, 3, 5, 6}, f64)}), "attn_mask [1, 2, 3, 5, 6]"},
      {call(q, k, v, {.attn_mask = zeros({5, 6}, f64), .is_causal = true}),
       "is_causal and attn_mask cannot both be given"},
      {call(q, k, v, {.dropout_p = 0.1}), "dropout_p 0.1 needs options.generator"},
      {call(q, k, v, {.dropout_p = 1.0, .generator = &gen}), "expected dropout_p in [0, 1), got 1"},
      {call(q, k, v, {.dropout_p = -0.5, .generator = &gen}), "got -0.5"},
      {call(q, k, v, {.dropout_p = std::nan(""), .generator = &gen}), "got nan"},
      {call(Tensor(), k, v), "q, k and v must be defined tensors"},
  };
  for (const auto& [f, part] : cases) expect_error_containing(f, std::string(kOp) + ": ");
  for (const auto& [f, part] : cases) expect_error_containing(f, part);
}

}  // namespace
}  // namespace tg
