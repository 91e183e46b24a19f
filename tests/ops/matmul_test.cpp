// matmul's PyTorch rules where the registry and the fixtures cannot say it: the result shapes of
// every operand rank, the un-broadcast gradient against a closed form, and the errors (op, both
// shapes, what was expected, the caller's line).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tapegrad.h"
#include "tests/expect_error.h"

namespace tg {
namespace {

using test_support::expect_error_containing;

TEST(Matmul, ResultShapesFollowTorchMatmul) {
  const std::vector<std::tuple<Shape, Shape, Shape>> cases = {
      {{3}, {3}, {}},
      {{2, 3}, {3}, {2}},
      {{3}, {3, 2}, {2}},
      {{3}, {4, 3, 2}, {4, 2}},
      {{4, 2, 3}, {3}, {4, 2}},
      {{2, 1, 3, 4}, {5, 4, 6}, {2, 5, 3, 6}},
      {{1, 3, 4}, {5, 4, 2}, {5, 3, 2}},
      {{2, 3}, {4, 1, 3, 2}, {4, 1, 2, 2}},
      {{0, 2, 3}, {1, 3, 2}, {0, 2, 2}},
      {{0}, {0}, {}}};
  for (const auto& [sa, sb, expected] : cases) {
    EXPECT_EQ(matmul(ones(sa, f64), ones(sb, f64)).shape(), expected) << sa << " · " << sb;
  }
  EXPECT_EQ(matmul(ones({0}, f64), ones({0}, f64)).item(), 0.0);  // a dot product of nothing
}

TEST(Matmul, GradientsAreSummedOverBroadcastBatchDims) {
  Generator gen(3);
  const Tensor a = uniform({1, 2, 3}, gen, -1, 1, f64).requires_grad(true);
  const Tensor b = uniform({4, 3, 2}, gen, -1, 1, f64).requires_grad(true);
  const Tensor g = uniform({4, 2, 2}, gen, -1, 1, f64);
  const std::vector<Tensor> grads = grad(matmul(a, b), {a, b}, g);
  ASSERT_EQ(grads[0].shape(), a.shape());
  // da = Σ_batch g·bᵀ, each product as a plain 2-D matmul.
  Tensor expected = zeros({2, 3}, f64);
  for (std::int64_t i = 0; i < 4; ++i) {
    expected = expected + matmul(reshape(slice(g, 0, i, i + 1), {2, 2}),
                                 transpose(reshape(slice(b, 0, i, i + 1), {3, 2})));
  }
  const std::vector<double> got = grads[0].to_vector(), want = expected.to_vector();
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-14) << i;
  EXPECT_EQ(grads[1].shape(), b.shape());
}

TEST(Matmul, ErrorsNameTheOpBothShapesAndTheCaller) {
  const int line = __LINE__ + 1;
  const auto inner = [] { matmul(ones({2, 3}, f64), ones({4}, f64)); };
  for (const std::string& part :
       std::vector<std::string>{"matmul", "[2, 3] · [4]", "inner dims differ (3 vs 4)",
                                "the second's length", "matmul_test.cpp:" + std::to_string(line)}) {
    expect_error_containing(inner, part);
  }
  expect_error_containing(
      [] {
        matmul(ones({2, 2, 3}, f64), ones({3, 3, 2}, f64));
      },
      "batch dims [2] and [3] do not broadcast");
  expect_error_containing([] { matmul(ones({}, f64), ones({3}, f64)); }, "at least 1-D");
  expect_error_containing(
      [] {
        matmul(ones({2, 3}, f64), ones({3, 2}, f32));
      },
      "matmul: dtype mismatch");
}

TEST(Bmm, IsStrictlyThreeDimensionalWithoutBroadcasting) {
  EXPECT_EQ(bmm(ones({2, 3, 4}, f64), ones({2, 4, 5}, f64)).shape(), (Shape{2, 3, 5}));
  expect_error_containing(
      [] {
        bmm(ones({3, 4}, f64), ones({2, 4, 5}, f64));
      },
      "expected 3-D operands [b, m, k] and [b, k, n], got [3, 4] and [2, 4, 5]");
  expect_error_containing(
      [] {
        bmm(ones({1, 3, 4}, f64), ones({2, 4, 5}, f64));
      },
      "expected the second operand of shape [1, 4, n] (bmm does not broadcast)");
  expect_error_containing([] { bmm(ones({2, 3, 4}, f64), ones({2, 3, 5}, f64)); }, "[2, 4, n]");
}

}  // namespace
}  // namespace tg
