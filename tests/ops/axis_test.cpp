// An axis on a scalar, as PyTorch: 0 and -1 name its one element (the values against PyTorch are
// in tests/reference/matmul_loss.json); any other axis is an error naming the op and the caller.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>

#include "ops/everyday.h"
#include "tapegrad.h"
#include "tests/expect_error.h"

namespace tg {
namespace {

using test_support::expect_error_containing;

const std::map<std::string, std::function<Tensor(const Tensor&, std::int64_t)>>& axis_ops() {
  static const std::map<std::string, std::function<Tensor(const Tensor&, std::int64_t)>> ops = {
      {"sum", [](const Tensor& x, std::int64_t a) { return sum(x, a, true); }},
      {"mean", [](const Tensor& x, std::int64_t a) { return mean(x, a); }},
      {"max", [](const Tensor& x, std::int64_t a) { return max(x, a); }},
      {"logsumexp", [](const Tensor& x, std::int64_t a) { return logsumexp(x, a); }},
      {"softmax", [](const Tensor& x, std::int64_t a) { return softmax(x, a); }},
      {"log_softmax", [](const Tensor& x, std::int64_t a) { return log_softmax(x, a); }},
      {"argmax", [](const Tensor& x, std::int64_t a) { return argmax(x, a, true); }},
      {"argmin", [](const Tensor& x, std::int64_t a) { return argmin(x, a); }},
      {"amax", [](const Tensor& x, std::int64_t a) { return amax(x, a); }},
      {"amin", [](const Tensor& x, std::int64_t a) { return amin(x, a); }},
      {"min", [](const Tensor& x, std::int64_t a) { return min(x, a); }},
      {"var", [](const Tensor& x, std::int64_t a) { return var(x, a); }},
      {"std", [](const Tensor& x, std::int64_t a) { return std(x, a); }},
      {"prod", [](const Tensor& x, std::int64_t a) { return prod(x, a); }},
      {"cumsum", [](const Tensor& x, std::int64_t a) { return cumsum(x, a); }},
      {"norm", [](const Tensor& x, std::int64_t a) { return norm(x, 2.0, a); }},
      {"transpose", [](const Tensor& x, std::int64_t a) { return transpose(x, a, 0); }},
      {"gather",
       [](const Tensor& x, std::int64_t a) { return gather(x, a, int64_tensor({0}, {})); }},
      {"index_select",
       [](const Tensor& x, std::int64_t a) { return index_select(x, a, int64_tensor({0})); }}};
  return ops;
}

TEST(ScalarAxis, ZeroAndMinusOneGiveAScalarAndOtherAxesAreErrors) {
  const Tensor x = full({}, -1.5, f64);
  for (const auto& [op, call] : axis_ops()) {
    for (const std::int64_t axis : {0, -1}) {
      const Tensor y = call(x, axis);
      EXPECT_EQ(y.rank(), 0) << op << " axis " << axis;
    }
    for (const std::int64_t axis : {1, -2}) {
      expect_error_containing([&] { call(x, axis); }, op);
      expect_error_containing([&] { call(x, axis); }, "axis " + std::to_string(axis));
    }
  }
  expect_error_containing([&] { sum(x, 1); }, "axis_test.cpp:" + std::to_string(__LINE__));
}

TEST(ScalarAxis, GradientsFlowThroughTheOneElement) {
  const Tensor x = full({}, 0.5, f64).requires_grad(true);
  EXPECT_EQ(grad(cumsum(x, 0) * 3.0, {x})[0].item(), 3.0);
  EXPECT_EQ(grad(softmax(x, -1), {x})[0].item(), 0.0);
  EXPECT_EQ(grad(sum(x, -1, true), {x})[0].rank(), 0);
}

}  // namespace
}  // namespace tg
