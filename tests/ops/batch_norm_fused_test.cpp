// The fused training-mode batch_norm op (ops/batch_norm_fused.cpp) against the same normalisation
// composed in this file from public ops: values, gradients for random cotangents in both dtypes
// (float32 against the float64 composition), with and without weight and bias; the unrecorded
// statistics exactly; gradcheck and gradgradcheck; empty inputs, N·L = 1, inf/NaN, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "ops/batch_norm_fused.h"
#include "tapegrad.h"
#include "tests/expect_error.h"
#include "tools/gtest.h"

namespace tg {
namespace {

using detail::batch_norm_training;

enum class Affine { none, weight, bias, both };

bool has_weight(Affine a) {
  return a == Affine::weight || a == Affine::both;
}
bool has_bias(Affine a) {
  return a == Affine::bias || a == Affine::both;
}

// The composition: x̂ = (x − μ)·(σ² + eps)^(−1/2) over axes 0 and 2, then ·w + b.
Tensor composed(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const auto channel_mean = [](const Tensor& t) { return mean(mean(t, 2, true), 0, true); };
  const Tensor centred = x - channel_mean(x);
  Tensor y = centred * rsqrt(channel_mean(centred * centred) + eps);
  const Shape column{1, x.shape()[1], 1};
  if (w.defined()) y = y * reshape(w, column);
  if (b.defined()) y = y + reshape(b, column);
  return y;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// Every entry within `ulps` of T's epsilon times the reference's largest magnitude.
void expect_close(const Tensor& actual, const Tensor& expected, double ulps,
                  const std::string& what, double scale = 0) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  const double unit = actual.dtype() == f32 ? std::numeric_limits<float>::epsilon()
                                            : std::numeric_limits<double>::epsilon();
  const double tolerance = ulps * unit * std::max({max_abs(expected), scale, 1e-300});
  const std::vector<double> a = actual.to_vector(), e = expected.to_vector();
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double error = std::abs(a[i] - e[i]);
    if (!(error <= worst)) {
      worst = error;
      at = i;
    }
  }
  EXPECT_LE(worst, tolerance) << what << ": entry " << at << " is " << a[at] << ", expected "
                              << e[at] << " (tolerance " << tolerance << ")";
}

struct Case {
  Shape shape;
  DType dtype;
  Affine affine;
};
std::ostream& operator<<(std::ostream& out, const Case& c) {
  return out << c.shape.str() << " " << dtype_name(c.dtype) << " affine " << int(c.affine);
}

class BatchNormFused : public ::testing::TestWithParam<Case> {};

// Values and the gradients of x, w, b for a random cotangent, fused (in the case's dtype) against
// the composition in float64 on the same values; float64 also against the composition's rules.
TEST_P(BatchNormFused, MatchesTheComposition) {
  const Case& c = GetParam();
  Generator gen(7);
  const std::int64_t channels = c.shape[1];
  // An offset per channel of 3 times the spread, so the centring matters.
  const Tensor x64 = randn(c.shape, gen, f64) * 2.0 + 6.0;
  const Tensor w64 = randn({channels}, gen, f64) + 1.0;
  const Tensor b64 = randn({channels}, gen, f64);
  const Tensor g64 = randn(c.shape, gen, f64);
  const double eps = 1e-5;

  // The reference takes the case's dtype's roundings of the values, in float64.
  const Tensor x = x64.to(c.dtype).requires_grad(true);
  const Tensor w = has_weight(c.affine) ? w64.to(c.dtype).requires_grad(true) : Tensor();
  const Tensor b = has_bias(c.affine) ? b64.to(c.dtype).requires_grad(true) : Tensor();
  const Tensor g = g64.to(c.dtype);
  const detail::BatchNormTraining fused = batch_norm_training(x, w, b, eps, {});
  std::vector<Tensor> wrt{x};
  std::vector<std::string> names{"dx"};
  if (w.defined()) wrt.push_back(w), names.push_back("dw");
  if (b.defined()) wrt.push_back(b), names.push_back("db");
  const std::vector<Tensor> fused_grads = grad(sum(fused.y * g), wrt);

  std::vector<Tensor> rwrt;
  for (const Tensor& t : wrt) rwrt.push_back(t.detach().to(f64).detach().requires_grad(true));
  const Tensor rw = w.defined() ? rwrt[1] : Tensor();
  const Tensor rb = b.defined() ? rwrt.back() : Tensor();
  const Tensor ry = composed(rwrt[0], rw, rb, eps);
  const std::vector<Tensor> reference = grad(sum(ry * g.to(f64)), rwrt);

  // float64: ~1e-14 of the largest magnitude; float32: a few ulps of it (its inputs are the
  // float32 roundings of the float64 values, which are the reference's inputs too).
  const double ulps = c.dtype == f64 ? 64 : 8;
  EXPECT_EQ(fused.y.dtype(), c.dtype);
  expect_close(fused.y, ry.detach(), ulps, "y");
  // dx's entries are differences of terms of size w·σ⁻¹·|g| (they cancel to ~0 for M = 2): the
  // tolerance is on that scale.
  double inverse_std = 0;
  const std::vector<double> squares = fused.squares.to_vector();
  const double m = double(c.shape[0] * c.shape[2]);
  for (double s : squares) inverse_std = std::max(inverse_std, 1 / std::sqrt(s / m + eps));
  const double dx_scale = inverse_std * max_abs(g) * (w.defined() ? max_abs(w) : 1.0);
  for (std::size_t i = 0; i < wrt.size(); ++i) {
    const std::string& name = names[i];
    EXPECT_EQ(fused_grads[i].dtype(), c.dtype) << name;
    expect_close(fused_grads[i], reference[i], i == 0 ? 4 * ulps : ulps, name,
                 i == 0 ? dx_scale : 0.0);
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const Shape& shape :
       std::vector<Shape>{{4, 3, 5}, {64, 16, 64}, {2, 1, 1}, {7, 2, 1}, {1, 4, 9}, {3, 5, 17}}) {
    for (DType dtype : {f64, f32}) {
      for (Affine a : {Affine::none, Affine::weight, Affine::bias, Affine::both}) {
        out.push_back({shape, dtype, a});
      }
    }
  }
  return out;
}
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name;
  for (std::int64_t dim : info.param.shape) name += std::to_string(dim) + "x";
  name.back() = '_';
  const char* affine[] = {"none", "weight", "bias", "both"};
  return name + dtype_name(info.param.dtype) + "_" + affine[int(info.param.affine)];
}
INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormFused, ::testing::ValuesIn(cases()), case_name);

TEST(BatchNormFusedOp, IsOneRecordedOpNamedBatchNorm) {
  Tape tape;
  Generator gen(1);
  const Tensor x = randn({3, 2, 4}, gen, f64).requires_grad(true);
  const Tensor w = ones({2}, f64).requires_grad(true);
  const Tensor b = zeros({2}, f64).requires_grad(true);
  const detail::BatchNormTraining out = batch_norm_training(x, w, b, 1e-5, {});
  ASSERT_EQ(tape.size(), 1u);
  EXPECT_STREQ(tape.entries()[0].op, "batch_norm");
  EXPECT_EQ(tape.entries()[0].inputs.size(), 3u);
  EXPECT_FALSE(out.mean.requires_grad());
  EXPECT_FALSE(out.squares.requires_grad());
}

// The first-order rule under create_graph (composed) equals the fused one.
TEST(BatchNormFusedOp, ComposedRuleEqualsFusedRule) {
  Generator gen(3);
  for (DType dtype : {f64, f32}) {
    const Tensor x = (randn({5, 3, 6}, gen, f64) * 3.0 - 2.0).to(dtype).requires_grad(true);
    const Tensor w = randn({3}, gen, f64).to(dtype).requires_grad(true);
    const Tensor b = randn({3}, gen, f64).to(dtype).requires_grad(true);
    const Tensor g = randn({5, 3, 6}, gen, f64).to(dtype);
    const Tensor y1 = batch_norm_training(x, w, b, 1e-3, {}).y;
    const std::vector<Tensor> fused = grad(sum(y1 * g), {x, w, b});
    const Tensor y2 = batch_norm_training(x, w, b, 1e-3, {}).y;
    const std::vector<Tensor> composed_grads =
        grad(sum(y2 * g), {x, w, b}, {}, BackwardOptions{.create_graph = true});
    const double ulps = dtype == f64 ? 64 : 16;
    for (std::size_t i = 0; i < 3; ++i) {
      expect_close(fused[i], composed_grads[i].detach(), ulps, "input " + std::to_string(i));
    }
  }
}

TEST(BatchNormFusedOp, Gradcheck) {
  Generator gen(11);
  const Tensor x = randn({3, 2, 4}, gen, f64) + 1.5;
  const Tensor w = randn({2}, gen, f64);
  const Tensor b = randn({2}, gen, f64);
  EXPECT_GRADCHECK(
      [](const auto& in) { return batch_norm_training(in[0], in[1], in[2], 1e-5, {}).y; },
      {x, w, b});
  EXPECT_GRADCHECK([](const auto& in) { return batch_norm_training(in[0], {}, {}, 1e-5, {}).y; },
                   {x});
  EXPECT_GRADCHECK([](const auto& in) { return batch_norm_training(in[0], in[1], {}, 0.1, {}).y; },
                   {x, w});
  EXPECT_GRADCHECK([](const auto& in) { return batch_norm_training(in[0], {}, in[1], 0.0, {}).y; },
                   {x, b});
}

TEST(BatchNormFusedOp, Gradgradcheck) {
  Generator gen(13);
  const Tensor x = randn({2, 2, 3}, gen, f64) - 0.5;
  const Tensor w = randn({2}, gen, f64);
  const Tensor b = randn({2}, gen, f64);
  EXPECT_GRADGRADCHECK(
      [](const auto& in) { return batch_norm_training(in[0], in[1], in[2], 1e-5, {}).y; },
      {x, w, b});
  EXPECT_GRADGRADCHECK(
      [](const auto& in) { return batch_norm_training(in[0], {}, {}, 1e-5, {}).y; }, {x});
  EXPECT_GRADGRADCHECK(
      [](const auto& in) { return batch_norm_training(in[0], {}, in[1], 1e-2, {}).y; }, {x, b});
}

// Integers over M = 8 values per channel: the mean and the centred squares are exact in binary,
// so the statistics must be too, in both dtypes.
TEST(BatchNormFusedOp, StatisticsAreExact) {
  std::vector<double> values;
  for (int i = 0; i < 2 * 3 * 4; ++i) values.push_back(double((i * 7) % 11) - 3.0);
  for (DType dtype : {f64, f32}) {
    const Tensor x = from_vector(values, {2, 3, 4}, dtype);
    const detail::BatchNormTraining out = batch_norm_training(x, {}, {}, 1e-5, {});
    ASSERT_EQ(out.mean.shape(), Shape{3});
    ASSERT_EQ(out.squares.shape(), Shape{3});
    EXPECT_EQ(out.mean.dtype(), dtype);
    for (std::int64_t c = 0; c < 3; ++c) {
      double total = 0;
      for (int s = 0; s < 2; ++s)
        for (int l = 0; l < 4; ++l) total += values[std::size_t((s * 3 + c) * 4 + l)];
      const double mu = total / 8;
      double squares = 0;
      for (int s = 0; s < 2; ++s) {
        for (int l = 0; l < 4; ++l) {
          const double d = values[std::size_t((s * 3 + c) * 4 + l)] - mu;
          squares += d * d;
        }
      }
      EXPECT_EQ(out.mean.to_vector()[std::size_t(c)], mu) << c;
      EXPECT_EQ(out.squares.to_vector()[std::size_t(c)], squares) << c;
    }
  }
}

// Random values at an offset 1e4 times their spread: the double accumulation keeps float32's
// statistics and output to a few ulps of the float64 answer (float32 sums would lose digits).
TEST(BatchNormFusedOp, Float32StatisticsAccumulateInDouble) {
  Generator gen(17);
  const Tensor x64 = (randn({32, 2, 64}, gen, f64) + 1e4).to(f32).to(f64);
  const detail::BatchNormTraining f = batch_norm_training(x64.to(f32), {}, {}, 1e-5, {});
  const detail::BatchNormTraining d = batch_norm_training(x64, {}, {}, 1e-5, {});
  expect_close(f.mean, d.mean.to(f32).to(f64), 1, "mean");
  expect_close(f.squares, d.squares.to(f32).to(f64), 1, "squares");
  // y = (x − μ)·σ⁻¹: x − μ_f32 loses up to half an ulp of 1e4 against x's spread of ~1.
  expect_close(f.y, d.y, 1e4 * 2, "y");
}

// float32 values ±1e20 about their mean: Σ(x − μ)² = 4e40 is beyond float32 (squares is +inf, as
// the composition's), but the double statistics keep y and the gradients right (the composition's
// rsqrt(inf) = 0 gives y = 0); against the float64 composition.
TEST(BatchNormFusedOp, Float32BeyondTheRangeOfTheSquares) {
  const std::vector<double> values{1e20, -1e20, 3e20, -3e20, 2e20, 0.0, -2e20, 5e19};
  const Tensor x = from_vector(values, {2, 1, 4}, f32).requires_grad(true);
  const Tensor w = from_vector({1.5}, {1}, f32).requires_grad(true);
  const Tensor g = from_vector({0.5, -1, 2, 0.25, -0.75, 1, 0.125, -2}, {2, 1, 4}, f32);
  const detail::BatchNormTraining out = batch_norm_training(x, w, {}, 1e-5, {});
  EXPECT_EQ(out.squares.to_vector()[0], INFINITY);
  const std::vector<Tensor> grads = grad(sum(out.y * g), {x, w});

  const Tensor rx = x.detach().to(f64).requires_grad(true);
  const Tensor rw = w.detach().to(f64).requires_grad(true);
  const Tensor ry = composed(rx, rw, {}, 1e-5);
  const std::vector<Tensor> reference = grad(sum(ry * g.to(f64)), {rx, rw});
  expect_close(out.y, ry.detach(), 4, "y");
  expect_close(grads[0], reference[0], 16, "dx");
  expect_close(grads[1], reference[1], 8, "dw");
  EXPECT_GT(max_abs(grads[0]), 1e-22);  // of order w·σ⁻¹·|g| ≈ 1e-20, not flushed to 0
}

TEST(BatchNormFusedOp, ResultsDoNotDependOnTheThreadCount) {
  Generator gen(19);
  const Tensor x = randn({64, 32, 64}, gen, f32).requires_grad(true);
  const Tensor g = randn({64, 32, 64}, gen, f32);
  const int threads = num_threads();
  detail::set_adapt_to_load(false);  // really 2 threads on a busy machine
  std::vector<std::vector<double>> runs;
  for (int t : {1, 2}) {
    set_num_threads(t);
    const Tensor y = batch_norm_training(x, {}, {}, 1e-5, {}).y;
    runs.push_back(y.to_vector());
    const std::vector<double> dx = grad(sum(y * g), {x})[0].to_vector();
    runs.back().insert(runs.back().end(), dx.begin(), dx.end());
  }
  set_num_threads(threads);
  detail::set_adapt_to_load(true);
  EXPECT_EQ(runs[0], runs[1]);
}

TEST(BatchNormFusedOp, EmptyInputs) {
  for (const Shape& shape : std::vector<Shape>{{0, 3, 4}, {2, 3, 0}, {2, 0, 5}, {0, 0, 0}}) {
    SCOPED_TRACE(shape.str());
    const std::int64_t channels = shape[1];
    const Tensor x = zeros(shape, f64).requires_grad(true);
    const Tensor w = ones({channels}, f64).requires_grad(true);
    const Tensor b = ones({channels}, f64).requires_grad(true);
    const detail::BatchNormTraining out = batch_norm_training(x, w, b, 1e-5, {});
    EXPECT_EQ(out.y.shape(), shape);
    ASSERT_EQ(out.mean.shape(), Shape{channels});
    for (double v : out.mean.to_vector()) EXPECT_TRUE(std::isnan(v));
    for (double v : out.squares.to_vector()) EXPECT_EQ(v, 0.0);
    for (bool create_graph : {false, true}) {
      const Tensor y = batch_norm_training(x, w, b, 1e-5, {}).y;
      const std::vector<Tensor> grads =
          grad(sum(y), {x, w, b}, {}, BackwardOptions{.create_graph = create_graph});
      EXPECT_EQ(grads[0].shape(), shape);
      for (std::size_t i = 1; i < 3; ++i) {
        ASSERT_EQ(grads[i].shape(), Shape{channels});
        for (double v : grads[i].to_vector()) EXPECT_EQ(v, 0.0);
      }
    }
  }
}

// One value per channel: zero variance, x̂ = 0, y = b; dx = 0, dw = 0, db = Σg.
TEST(BatchNormFusedOp, OneValuePerChannel) {
  for (DType dtype : {f64, f32}) {
    const Tensor x = from_vector({5.0, -2.5, 1e30}, {1, 3, 1}, dtype).requires_grad(true);
    ASSERT_EQ(x.shape(), (Shape{1, 3, 1}));
    const Tensor w = tensor({2.0, 3.0, 4.0}, dtype).requires_grad(true);
    const Tensor b = tensor({0.5, -1.0, 7.0}, dtype).requires_grad(true);
    const detail::BatchNormTraining out = batch_norm_training(x, w, b, 1e-5, {});
    EXPECT_EQ(out.y.to_vector(), (std::vector<double>{0.5, -1.0, 7.0}));
    EXPECT_EQ(out.mean.to_vector(), x.to_vector());
    EXPECT_EQ(out.squares.to_vector(), (std::vector<double>{0, 0, 0}));
    const Tensor g = from_vector({1.0, 2.0, 3.0}, {1, 3, 1}, dtype);
    const std::vector<Tensor> grads = grad(sum(out.y * g), {x, w, b});
    EXPECT_EQ(grads[0].to_vector(), (std::vector<double>{0, 0, 0}));
    EXPECT_EQ(grads[1].to_vector(), (std::vector<double>{0, 0, 0}));
    EXPECT_EQ(grads[2].to_vector(), (std::vector<double>{1, 2, 3}));
  }
}

// inf or NaN in a channel makes that channel's outputs NaN (its mean is ±inf or NaN), as in the
// composition; the other channels are untouched.
TEST(BatchNormFusedOp, InfAndNanPropagatePerChannel) {
  for (DType dtype : {f64, f32}) {
    for (double bad : {INFINITY, -INFINITY, NAN}) {
      std::vector<double> v{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
      v[1] = bad;  // sample 0, channel 0
      const Tensor x = from_vector(v, {2, 2, 3}, dtype);
      const Tensor y = batch_norm_training(x, {}, {}, 1e-5, {}).y;
      const Tensor reference = composed(x.to(f64), {}, {}, 1e-5);
      const std::vector<double> a = y.to_vector(), e = reference.to_vector();
      for (std::size_t i = 0; i < a.size(); ++i) {
        const bool channel0 = (i / 3) % 2 == 0;
        EXPECT_EQ(std::isnan(a[i]), channel0) << i;
        EXPECT_EQ(std::isnan(e[i]), channel0) << i;
        if (!channel0) {
          EXPECT_NEAR(a[i], e[i], 1e-6) << i;
        }
      }
    }
  }
}

TEST(BatchNormFusedOp, Errors) {
  using test_support::expect_error_at;
  using test_support::expect_error_containing;
  const Tensor x = zeros({2, 3, 4}, f32);
  expect_error_at(
      [&] {
        batch_norm_training(zeros({2, 3}, f32), {}, {}, 1e-5, SourceLocation::current());
      },
      "batch_norm", __FILE__);
  expect_error_containing(
      [&] {
        batch_norm_training(zeros({2, 3}, f32), {}, {}, 1e-5, {});
      },
      "expected a floating input [N, C, L], got [2, 3]");
  expect_error_containing(
      [&] {
        batch_norm_training(zeros({2, 3, 4}, i64), {}, {}, 1e-5, {});
      },
      "expected a floating input");
  expect_error_containing(
      [&] { batch_norm_training(x, zeros({4}, f32), {}, 1e-5, SourceLocation::current()); },
      "weight should be [3] float32 for an input [2, 3, 4] float32, got [4] float32 (at ");
  expect_error_containing([&] { batch_norm_training(x, {}, zeros({3}, f64), 1e-5, {}); },
                          "bias should be [3] float32");
  expect_error_containing([&] { batch_norm_training(x, {}, {}, -1.0, {}); },
                          "expected eps >= 0, got -1");
  expect_error_containing([&] { batch_norm_training(Tensor(), {}, {}, 1e-5, {}); },
                          "the input is an undefined tensor");
}

}  // namespace
}  // namespace tg
