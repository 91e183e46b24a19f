#include <gtest/gtest.h>

#include <cmath>

#include "tapegrad.h"

namespace tg {
namespace {

// f(x) = Σ xᵢ³ + x₀x₁ + Σ tanh(x): H = diag(6x − 2 tanh(x)(1 − tanh²x)) + the x₀x₁ coupling.
Tensor cubic(const Tensor& x) {
  return sum(pow(x, 3.0)) + sum(slice(x, 0, 0, 1) * slice(x, 0, 1, 2)) + sum(tanh(x));
}

double hessian_entry(const std::vector<double>& x, std::size_t i, std::size_t j) {
  double h =
      (i == j) ? 6 * x[i] - 2 * std::tanh(x[i]) * (1 - std::tanh(x[i]) * std::tanh(x[i])) : 0;
  if ((i == 0 && j == 1) || (i == 1 && j == 0)) h += 1;
  return h;
}

TEST(Functional, HessianMatchesTheClosedForm) {
  const Tensor x = tensor({0.5, -1.0, 2.0}, f64);
  const Tensor h = hessian(cubic, x);
  ASSERT_EQ(h.shape(), Shape({3, 3}));
  const std::vector<double> v = x.to_vector();
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      EXPECT_NEAR(h.at({i, j}), hessian_entry(v, std::size_t(i), std::size_t(j)), 1e-12);
    }
  }
  EXPECT_THROW(hessian([](const Tensor& t) { return t * 2.0; }, x), Error);
}

TEST(Functional, HessianVectorProductByDoubleBackward) {
  const Tensor x = tensor({0.5, -1.0, 2.0}, f64);
  const Tensor v = tensor({1.0, 2.0, -0.5}, f64);
  const Tensor hv = hvp(cubic, x, v);
  const std::vector<double> xs = x.to_vector(), vs = v.to_vector();
  for (std::size_t i = 0; i < 3; ++i) {
    double expected = 0;
    for (std::size_t j = 0; j < 3; ++j) expected += hessian_entry(xs, i, j) * vs[j];
    EXPECT_NEAR(hv.at({std::int64_t(i)}), expected, 1e-12);
  }
  EXPECT_FALSE(x.requires_grad());  // the caller's tensor is untouched
  EXPECT_THROW(hvp(cubic, x, tensor({1.0}, f64)), Error);
}

TEST(Functional, JacobianVectorProductByTheDoubleVjpTrick) {
  Generator gen(8);
  const Tensor x = randn({2, 3}, gen, f64);
  const Tensor u = randn({2, 3}, gen, f64);
  const auto f = [](const Tensor& t) { return softmax(t * t, 1); };
  const Tensor ju = jvp(f, x, u);
  const Tensor j = jacobian([&](const auto& in) { return f(in[0]); }, {x})[0];
  const Tensor expected = reshape(matmul(j, reshape(u, {6, 1})), {2, 3});
  for (std::int64_t r = 0; r < 2; ++r) {
    for (std::int64_t c = 0; c < 3; ++c) EXPECT_NEAR(ju.at({r, c}), expected.at({r, c}), 1e-14);
  }
}

}  // namespace
}  // namespace tg
