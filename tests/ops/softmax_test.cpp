// Softmax: its backward rule s ⊙ (g − ⟨g, s⟩) against the explicit Jacobian diag(s) − s sᵀ, the
// values of the seed article's example, and stability at ±1e4.
#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <string>

#include "tapegrad.h"
#include "tools/gtest.h"

namespace tg {
namespace {

struct SoftmaxCase {
  Shape shape;
  std::int64_t axis;
};
std::ostream& operator<<(std::ostream& out, const SoftmaxCase& c) {
  return out << c.shape.str() << " axis " << c.axis;
}
std::string case_name(const ::testing::TestParamInfo<SoftmaxCase>& info) {
  std::string name;
  for (std::int64_t dim : info.param.shape) name += std::to_string(dim) + "x";
  name.back() = '_';
  return name + "axis" + std::to_string(info.param.axis);
}

class SoftmaxAlongAxis : public ::testing::TestWithParam<SoftmaxCase> {};

// diag(s) − s sᵀ for every slice along the axis, as a [numel, numel] matrix.
std::vector<double> explicit_jacobian(const Tensor& s, std::int64_t axis_in) {
  const int axis = normalize_axis(axis_in, s.rank(), "test", std::source_location::current());
  const AxisSplit split = split_at_axis(s.shape(), axis);
  const std::vector<double> v = s.to_vector();
  const std::int64_t n = s.numel();
  std::vector<double> j(std::size_t(n * n), 0.0);
  for (std::int64_t o = 0; o < split.outer; ++o) {
    for (std::int64_t i = 0; i < split.inner; ++i) {
      for (std::int64_t k = 0; k < split.dim; ++k) {
        for (std::int64_t l = 0; l < split.dim; ++l) {
          const std::int64_t row = (o * split.dim + k) * split.inner + i;
          const std::int64_t col = (o * split.dim + l) * split.inner + i;
          const double sk = v[std::size_t(row)], sl = v[std::size_t(col)];
          j[std::size_t(row * n + col)] = (k == l ? sk : 0.0) - sk * sl;
        }
      }
    }
  }
  return j;
}

TEST_P(SoftmaxAlongAxis, VjpEqualsCotangentTimesTheExplicitJacobian) {
  const auto [shape, axis] = GetParam();
  Generator gen(5);
  Tensor x = randn(shape, gen, f64).requires_grad(true);
  const Tensor g = randn(shape, gen, f64);  // a random cotangent, never sum()
  const Tensor s = softmax(x, axis);
  const Tensor vjp = grad(s, {x}, g)[0];
  const std::vector<double> j = explicit_jacobian(s, axis);
  const std::vector<double> gv = g.to_vector();
  const std::int64_t n = x.numel();
  double worst = 0;
  for (std::int64_t col = 0; col < n; ++col) {
    double expected = 0;
    for (std::int64_t row = 0; row < n; ++row)
      expected += gv[std::size_t(row)] * j[std::size_t(row * n + col)];
    worst = std::max(worst, std::abs(vjp.to_vector()[std::size_t(col)] - expected));
  }
  EXPECT_LT(worst, 1e-12);
}

TEST_P(SoftmaxAlongAxis, PassesGradcheckAndSlicesSumToOne) {
  const auto [shape, axis] = GetParam();
  Generator gen(9);
  const Tensor x = randn(shape, gen, f64);
  EXPECT_GRADCHECK([axis = axis](const auto& in) { return softmax(in[0], axis); }, {x});
  EXPECT_GRADCHECK([axis = axis](const auto& in) { return log_softmax(in[0], axis); }, {x});
  const Tensor totals = sum(softmax(x, axis), axis);
  for (double t : totals.to_vector()) EXPECT_NEAR(t, 1.0, 1e-15);
}

TEST_P(SoftmaxAlongAxis, HugeInputsGiveFiniteOutputsAndGradients) {
  const auto [shape, axis] = GetParam();
  for (const DType dtype : {f32, f64}) {
    Generator gen(13);
    std::vector<double> v = randn(shape, gen, f64).to_vector();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = (i % 2 == 0 ? 1e4 : -1e4) + v[i];
    Tensor x = from_vector(v, shape, dtype).requires_grad(true);
    const Tensor s = softmax(x, axis);
    const Tensor ls = log_softmax(x, axis);
    const Tensor g = randn(shape, gen, dtype);
    const Tensor dx = grad(s, {x}, g)[0];
    const Tensor dlx = grad(ls, {x}, g)[0];
    for (const Tensor& t : {s, ls, dx, dlx}) {
      for (double value : t.to_vector()) EXPECT_TRUE(std::isfinite(value)) << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SoftmaxAlongAxis,
                         ::testing::Values(SoftmaxCase{{1}, 0}, SoftmaxCase{{3}, 0},
                                           SoftmaxCase{{5, 7}, 0}, SoftmaxCase{{5, 7}, 1},
                                           SoftmaxCase{{2, 3, 4}, 0}, SoftmaxCase{{2, 3, 4}, 1},
                                           SoftmaxCase{{2, 3, 4}, 2}),
                         case_name);

TEST(Softmax, SeedArticleExampleValues) {
  Tensor z = tensor({1, 2, 3}, f64).requires_grad(true);
  const Tensor s = softmax(z);
  EXPECT_NEAR(s.at({0}), 0.09003057, 1e-8);
  EXPECT_NEAR(s.at({1}), 0.24472847, 1e-8);
  EXPECT_NEAR(s.at({2}), 0.66524096, 1e-8);
  const Tensor j = jacobian([](const auto& in) { return softmax(in[0]); }, {z})[0];
  EXPECT_NEAR(j.at({0, 0}), 0.08192507, 1e-8);
  EXPECT_NEAR(j.at({0, 1}), -0.02203304, 1e-8);
  EXPECT_NEAR(j.at({0, 2}), -0.05989202, 1e-8);
  EXPECT_NEAR(j.at({1, 1}), 0.18483645, 1e-8);
  EXPECT_NEAR(j.at({2, 2}), 0.22269543, 1e-8);
  // The article's "derivative" s(1 − s) is only the diagonal: the off-diagonal terms are as large.
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(j.at({k, k}), s.at({k}) * (1 - s.at({k})), 1e-15);
  EXPECT_GT(std::abs(j.at({0, 2})), 0.05);
  // Every row of the Jacobian sums to zero: shifting all logits changes nothing.
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(j.at({k, 0}) + j.at({k, 1}) + j.at({k, 2}), 0.0, 1e-16);
}

TEST(Softmax, NaiveFormulaOverflowsWhereTheShiftedOneDoesNot) {
  const Tensor z = tensor({1000, 1001, 1002});
  const Tensor naive = exp(z) / sum(exp(z));
  EXPECT_TRUE(std::isnan(naive.at({0})));
  const Tensor s = softmax(z);
  EXPECT_NEAR(s.at({0}), 0.09003057, 1e-7);
  EXPECT_NEAR(s.at({2}), 0.66524096, 1e-7);
}

TEST(Softmax, LogSoftmaxAndLogsumexpAgreeWithTheirDefinitions) {
  Generator gen(21);
  const Tensor x = randn({4, 6}, gen, f64);
  const std::vector<double> ls = log_softmax(x, 1).to_vector();
  const std::vector<double> direct = log(softmax(x, 1)).to_vector();
  for (std::size_t i = 0; i < ls.size(); ++i) EXPECT_NEAR(ls[i], direct[i], 1e-14);
  const Tensor lse = logsumexp(x, 1);
  const Tensor naive = log(sum(exp(x), 1));
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(lse.at({i}), naive.at({i}), 1e-14);
  EXPECT_EQ(logsumexp(x, 1, true).shape(), Shape({4, 1}));
  const Tensor big = logsumexp(tensor({1e4, 1e4}), 0);
  EXPECT_NEAR(big.item(), 1e4 + std::log(2.0), 1e-2);
  EXPECT_EQ(logsumexp(zeros({2, 0}), 1).to_vector(), std::vector<double>({-INFINITY, -INFINITY}));
  EXPECT_EQ(softmax(zeros({0, 3}), 1).shape(), Shape({0, 3}));
}

}  // namespace
}  // namespace tg
