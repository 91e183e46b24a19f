// The everyday ops of ops/everyday.h: values against PyTorch 1.13's (worked out by hand or printed
// by torch), errors with their messages, and every registered op through the registry's checks
// (gradcheck in float64 and of the float32 rule, the reference Jacobian, gradgradcheck) plus
// fused first-order rules against the composed ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>

#include "../expect_error.h"
#include "ops/everyday.h"
#include "tapegrad.h"

namespace tg {
namespace {

using test_support::expect_error_at;
using test_support::expect_error_containing;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::int64_t> ints(const Tensor& t) {
  EXPECT_EQ(t.dtype(), i64);
  const std::int64_t* p = t.data<std::int64_t>();
  return {p, p + t.numel()};
}

void expect_values(const Tensor& t, const std::vector<double>& want, double tolerance = 1e-12) {
  const std::vector<double> got = t.to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i << ": " << got[i];
    } else {
      EXPECT_NEAR(got[i], want[i], tolerance * (1 + std::abs(want[i]))) << "element " << i;
    }
  }
}

// The gradient of sum(f(x) ⊙ weights) with respect to x.
Tensor gradient(const std::function<Tensor(const Tensor&)>& f, const Tensor& x_value,
                const Tensor& weights = {}) {
  const Tensor x = x_value.detach().copy().requires_grad(true);
  const Tensor y = f(x);
  return grad(weights.defined() ? sum(y * weights) : sum(y), {x})[0];
}

// ---- indexing ----

TEST(Everyday, ArgmaxAndArgminTakeTheFirstTieAndNaNAsPyTorch) {
  const Tensor x = tensor({{1, 3, 3, 0}, {2, kNaN, 5, kNaN}, {-1, -1, 4, -1}}, f64);
  EXPECT_EQ(ints(argmax(x, 1)), (std::vector<std::int64_t>{1, 1, 2}));
  EXPECT_EQ(ints(argmin(x, 1)), (std::vector<std::int64_t>{3, 1, 0}));
  EXPECT_EQ(ints(argmax(x, 0)), (std::vector<std::int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(ints(argmin(x, -2)), (std::vector<std::int64_t>{2, 1, 0, 1}));
  EXPECT_EQ(argmax(x, 1, true).shape(), Shape({3, 1}));
  EXPECT_EQ(ints(argmax(x)), std::vector<std::int64_t>{5});
  EXPECT_EQ(argmax(x).rank(), 0);
  EXPECT_EQ(ints(argmin(tensor({4, -2, 7, -2}))), std::vector<std::int64_t>{1});
  EXPECT_EQ(ints(argmax(full({}, 3.0))), std::vector<std::int64_t>{0});
  EXPECT_EQ(argmax(zeros({0, 3}), 1).shape(), Shape({0}));
}

TEST(Everyday, ArgmaxErrorsNameTheCaller) {
  expect_error_at([] { argmax(zeros({2, 0}), 1); }, "argmax", __FILE__);
  expect_error_containing(
      [] {
        argmin(zeros({2, 0}), -1);
      },
      "cannot reduce over axis 1 of size 0 (shape [2, 0])");
  expect_error_containing(
      [] {
        argmax(zeros({2, 3}), 2);
      },
      "axis 2 is out of range for a tensor of rank 2 (expected -2 to 1)");
  expect_error_containing([] { argmax(int64_tensor({1, 2}), 0); }, "expected a floating tensor");
}

TEST(Everyday, SliceWithAStepIsPythons) {
  const Tensor x = arange(0.0, 7.0, 1.0, f64);
  expect_values(slice(x, 0, 1, 6, 2), {1, 3, 5});
  expect_values(slice(x, 0, -3, kEnd, 1), {4, 5, 6});
  expect_values(slice(x, 0, -100, 100, 3), {0, 3, 6});
  expect_values(slice(x, 0, -2, -5, 1), {});
  expect_values(slice(x, 0, 5, 2, 2), {});
  expect_values(slice(x, 0, 2, -1, 10), {2});
  const Tensor m = reshape(arange(0.0, 12.0, 1.0, f64), Shape{3, 4});
  const Tensor s = slice(m, -1, 0, kEnd, 3);
  EXPECT_EQ(s.shape(), Shape({3, 2}));
  expect_values(s, {0, 3, 4, 7, 8, 11});
  // The gradient lands at the picked positions only.
  expect_values(gradient([](const Tensor& v) { return slice(v, 0, 1, kEnd, 3); }, x),
                {0, 1, 0, 0, 1, 0, 0});
  expect_error_containing([&] { slice(x, 0, 0, 3, 0); }, "slice: ");
  expect_error_containing([&] { slice(x, 0, 0, 3, -1); }, "step must be positive, got -1");
}

TEST(Everyday, NarrowTakesANegativeStartAndRefusesRangesPastTheEnd) {
  const Tensor x = arange(0.0, 5.0, 1.0, f64);
  expect_values(narrow(x, 0, 1, 3), {1, 2, 3});
  expect_values(narrow(x, 0, -2, 2), {3, 4});
  expect_values(narrow(x, -1, 5, 0), {});
  expect_error_containing([&] { narrow(x, 0, 3, 3); },
                          "start 3 and length 3 do not fit axis 0 of size 5");
  expect_error_containing([&] { narrow(x, 0, -6, 1); }, "narrow: ");
}

TEST(Everyday, GatherScatterAddAndIndexAddMatchPyTorch) {
  const Tensor x = tensor({{1, 2, 3}, {4, 5, 6}}, f64);
  // torch.gather(x, 1, [[2, 0], [1, 1]]) = [[3, 1], [5, 5]]
  const Tensor picked = gather(x, 1, int64_tensor({2, 0, 1, 1}, {2, 2}));
  EXPECT_EQ(picked.shape(), Shape({2, 2}));
  expect_values(picked, {3, 1, 5, 5});
  // torch.gather(x, 0, [[1, 0, 1]]) = [[4, 2, 6]]
  expect_values(gather(x, 0, int64_tensor({1, 0, 1}, {1, 3})), {4, 2, 6});
  // Repeated indices accumulate: torch.zeros(2, 3).scatter_add(1, [[0, 0], [2, 1]], [[1, 2],
  // [3, 4]]) = [[3, 0, 0], [0, 4, 3]]
  const Tensor summed = scatter_add(zeros({2, 3}, f64), 1, int64_tensor({0, 0, 2, 1}, {2, 2}),
                                    tensor({{1, 2}, {3, 4}}, f64));
  expect_values(summed, {3, 0, 0, 0, 4, 3});
  // x.index_add(1, [2, 2], [[10, 20], [30, 40]]) = [[1, 2, 33], [4, 5, 76]]
  expect_values(index_add(x, 1, int64_tensor({2, 2}), tensor({{10, 20}, {30, 40}}, f64)),
                {1, 2, 33, 4, 5, 76});
  // gather's gradient adds up at repeated picks.
  expect_values(gradient(
                    [](const Tensor& v) {
                      return gather(v, 1, int64_tensor({2, 0, 1, 1}, {2, 2}));
                    },
                    x),
                {1, 0, 1, 0, 2, 0});
}

TEST(Everyday, IndexOutOfRangeIsAnErrorNamingOpAxisIndexAndSize) {
  const Tensor x = zeros({2, 4}, f64);
  expect_error_containing(
      [&] {
        gather(x, 1, int64_tensor({0, 4}, {1, 2}));
      },
      "index 4 at position [0, 1] of the index is out of range for axis 1 of "
      "size 4");
  expect_error_containing([&] { gather(x, 1, int64_tensor({-1}, {1, 1})); }, "gather: ");
  expect_error_at(
      [&] {
        scatter_add(x, 0, int64_tensor({2}, {1, 1}), ones({1, 1}, f64));
      },
      "scatter_add", __FILE__);
  expect_error_containing(
      [&] {
        scatter_add(x, 0, int64_tensor({2}, {1, 1}), ones({1, 1}, f64));
      },
      "index 2 at position [0, 0] of the index is out of range for axis 0 of size 2");
  expect_error_containing(
      [&] {
        index_add(x, 1, int64_tensor({7}), ones({2, 1}, f64));
      },
      "index 7 at position [0] of the index is out of range for axis 1 of size 4");
  expect_error_containing(
      [&] {
        gather(x, 1, int64_tensor({0, 1}));
      },
      "the index must be int64 of the input's rank 2, got int64 [2]");
  expect_error_containing(
      [&] {
        gather(x, 1, int64_tensor({0, 0, 0}, {3, 1}));
      },
      "index shape [3, 1] is larger than the input's [2, 4] at dimension 0");
  expect_error_containing(
      [&] {
        scatter_add(x, 1, int64_tensor({0, 1}, {1, 2}), ones({2, 2}, f64));
      },
      "src has shape [2, 2], expected the index's shape [1, 2]");
  expect_error_containing(
      [&] {
        index_add(x, 1, int64_tensor({0}), ones({2, 2}, f64));
      },
      "src has shape [2, 2], expected [2, 1]");
}

// ---- views ----

TEST(Everyday, ViewsReshapeAsPyTorch) {
  const Tensor x = reshape(arange(0.0, 24.0, 1.0, f64), Shape{2, 3, 4});
  EXPECT_EQ(unsqueeze(x, 0).shape(), Shape({1, 2, 3, 4}));
  EXPECT_EQ(unsqueeze(x, -1).shape(), Shape({2, 3, 4, 1}));
  EXPECT_EQ(unsqueeze(x, 3).shape(), Shape({2, 3, 4, 1}));
  EXPECT_EQ(unsqueeze(full({}, 2.0), 0).shape(), Shape({1}));
  EXPECT_EQ(squeeze(zeros({1, 3, 1, 2})).shape(), Shape({3, 2}));
  EXPECT_EQ(squeeze(zeros({1, 3, 1}), -1).shape(), Shape({1, 3}));
  EXPECT_EQ(squeeze(zeros({1, 3, 1}), 1).shape(), Shape({1, 3, 1}));
  EXPECT_EQ(squeeze(full({}, 1.0), 0).shape(), Shape({}));
  EXPECT_EQ(flatten(x).shape(), Shape({24}));
  EXPECT_EQ(flatten(x, 1).shape(), Shape({2, 12}));
  EXPECT_EQ(flatten(x, 0, 1).shape(), Shape({6, 4}));
  EXPECT_EQ(flatten(full({}, 1.0)).shape(), Shape({1}));
  EXPECT_EQ(unflatten(x, 2, {2, 2}).shape(), Shape({2, 3, 2, 2}));
  EXPECT_EQ(unflatten(x, -1, {-1, 1}).shape(), Shape({2, 3, 4, 1}));
  EXPECT_EQ(reshape(x, {-1, 6}).shape(), Shape({4, 6}));
  EXPECT_EQ(reshape(x, std::vector<std::int64_t>{3, -1, 2}).shape(), Shape({3, 4, 2}));
  EXPECT_EQ(reshape(zeros({0, 3}), {3, -1}).shape(), Shape({3, 0}));
  expect_values(reshape(x, {-1}), x.to_vector());
  expect_values(expand(from_vector({1, 2}, {2, 1}, f64), {2, -1, 3}),
                {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
  EXPECT_EQ(expand(zeros({3, 1}), {0, 3, 4}).shape(), Shape({0, 3, 4}));
  const Tensor stacked = stack({tensor({1, 2}, f64), tensor({3, 4}, f64)}, 1);
  EXPECT_EQ(stacked.shape(), Shape({2, 2}));
  expect_values(stacked, {1, 3, 2, 4});
  EXPECT_EQ(stack({zeros({2, 3}), zeros({2, 3}), zeros({2, 3})}, -1).shape(), Shape({2, 3, 3}));
  EXPECT_EQ(stack({zeros({0})}).shape(), Shape({1, 0}));
}

TEST(Everyday, ViewErrorsSayWhatWasExpected) {
  const Tensor x = zeros({2, 3});
  expect_error_at([&] { reshape(x, {-1, -1}); }, "reshape", __FILE__);
  expect_error_containing(
      [&] {
        reshape(x, {-1, -1});
      },
      "only one dimension can be -1, got [-1, -1]");
  expect_error_containing(
      [&] {
        reshape(x, {4, -1});
      },
      "cannot infer the -1 in [4, -1] for 6 elements: the other dimensions' "
      "product 4 does not divide it");
  expect_error_containing([&] { reshape(zeros({0, 2}), {0, -1}); }, "is 0, so any size would do");
  expect_error_containing(
      [&] {
        reshape(x, {4, 2});
      },
      "cannot make [4, 2] (8 elements) of 6 elements");
  expect_error_containing([&] { reshape(x, {-2, 3}); }, "dimension -2 of [-2, 3] is negative");
  expect_error_containing([&] { unsqueeze(x, 3); },
                          "axis 3 is out of range for a tensor of rank 2 (expected -3 to 2)");
  expect_error_containing(
      [&] {
        flatten(zeros({2, 3, 4}), 2, 1);
      },
      "start axis 2 comes after end axis 1");
  expect_error_containing(
      [&] {
        unflatten(x, 1, {2, 2});
      },
      "cannot make [2, 2] (4 elements) of 3 elements");
  expect_error_containing([&] { stack({}); }, "stack: ");
  expect_error_containing(
      [&] {
        stack({zeros({2}), zeros({3})});
      },
      "tensor 1 is float32 [3], tensor 0 is float32 [2]");
  expect_error_containing([&] { expand(x, {3}); },
                          "[3] has fewer dimensions than the tensor's shape [2, 3]");
  expect_error_containing(
      [&] {
        expand(x, {4, 3});
      },
      "cannot expand [2, 3] to [4, 3]: size 4 at dimension 0 must be 2");
  expect_error_containing(
      [&] {
        expand(x, {-1, 2, 3});
      },
      "must be non-negative (a new leading dimension)");
}

// ---- statistics ----

TEST(Everyday, AmaxAndAminSplitTheGradientAmongTies) {
  const Tensor x = tensor({{3, 1, 3}, {-2, -2, 0}}, f64);
  expect_values(amax(x, 1), {3, 0});
  expect_values(amin(x, 1), {1, -2});
  expect_values(gradient([](const Tensor& v) { return amax(v, 1); }, x), {0.5, 0, 0.5, 0, 0, 1});
  expect_values(gradient([](const Tensor& v) { return amin(v, -1, true); }, x),
                {0, 1, 0, 0.5, 0.5, 0});
  // max and min send it to the first tie.
  expect_values(gradient([](const Tensor& v) { return min(v, 1); }, x), {0, 1, 0, 1, 0, 0});
  expect_values(min(x, 0), {-2, -2, 0});
  // A NaN makes the slice's value and its whole gradient NaN, as in PyTorch.
  const Tensor with_nan = tensor({1, kNaN, 2}, f64);
  expect_values(amax(with_nan, 0), {kNaN});
  expect_values(gradient([](const Tensor& v) { return amax(v, 0); }, with_nan), {kNaN, kNaN, kNaN});
  expect_error_at([] { amin(zeros({2, 0}), -1); }, "amin", __FILE__);
  expect_error_containing(
      [] {
        min(zeros({0, 2}), 0);
      },
      "cannot reduce over axis 0 of size 0 (shape [0, 2])");
}

TEST(Everyday, ProdGradientIsRightWithZeros) {
  // torch.prod([1, 0, 2, 3]).backward(): [0, 6, 0, 0]; two zeros: all 0.
  expect_values(prod(tensor({1, 0, 2, 3}, f64)), {0});
  expect_values(gradient([](const Tensor& v) { return prod(v); }, tensor({1, 0, 2, 3}, f64)),
                {0, 6, 0, 0});
  expect_values(gradient([](const Tensor& v) { return prod(v); }, tensor({1, 0, 2, 0}, f64)),
                {0, 0, 0, 0});
  expect_values(gradient([](const Tensor& v) { return prod(v, 0); }, tensor({2, 3, 4}, f64)),
                {12, 8, 6});
  expect_values(prod(zeros({2, 0}), 1), {1, 1});
  expect_values(prod(tensor({{1, 2}, {3, 4}}, f64), 0, true), {3, 8});
  // Second order at a zero: d²(x₀x₁x₂)/dx₁dx₂ = x₀, also where x₁ = x₂ = 0.
  const Tensor x = tensor({5, 0, 0}, f64).requires_grad(true);
  const Tensor first = grad(prod(x), {x}, {}, {.create_graph = true})[0];
  expect_values(grad(sum(slice(first, 0, 1, 2)), {x})[0], {0, 0, 5});
}

TEST(Everyday, VarStdCumsumAndNormMatchPyTorch) {
  const Tensor x = tensor({{1, 2, 4}, {3, 3, 3}}, f64);
  // torch.var(x, 1) = [2.3333, 0]; correction 0: [1.5556, 0]
  expect_values(var(x, 1), {7.0 / 3, 0});
  expect_values(var(x, 1, 0.0), {14.0 / 9, 0});
  // torch.var(x), torch.std(x), torch.var(x.flatten(), 0, unbiased=False)
  expect_values(var(x), {1.0666666666666669});
  expect_values(std(x, 1), {std::sqrt(7.0 / 3), 0});
  expect_values(std(x), {1.0327955589886446});
  expect_values(var(flatten(x), 0, 0.0), {0.8888888888888892});
  expect_values(var(tensor({2}, f64), 0), {kNaN});
  // std of a constant slice has gradient 0, as PyTorch's (not 0/0).
  expect_values(gradient([](const Tensor& v) { return std(v, 0); }, tensor({3, 3}, f64)), {0, 0});
  expect_values(cumsum(x, 1), {1, 3, 7, 3, 6, 9});
  expect_values(cumsum(x, 0), {1, 2, 4, 4, 5, 7});
  expect_values(gradient([](const Tensor& v) { return cumsum(v, -1); }, x,
                         tensor({{1, 10, 100}, {1, 2, 3}}, f64)),
                {111, 110, 100, 6, 5, 3});
  expect_values(norm(tensor({3, -4}, f64)), {5});
  expect_values(norm(tensor({3, -4}, f64), 1), {7});
  expect_values(norm(tensor({3, -4}, f64), INFINITY), {4});
  expect_values(norm(x, 2, 1, true), {std::sqrt(21.0), std::sqrt(27.0)});
  // At 0 the 2-norm's gradient is 0, the 1-norm's sgn(0) = 0, the ∞-norm's 0.
  for (const double p : {1.0, 2.0, double(INFINITY)}) {
    expect_values(gradient([p](const Tensor& v) { return norm(v, p); }, zeros({3}, f64)),
                  {0, 0, 0});
  }
  expect_values(
      gradient([](const Tensor& v) { return norm(v, INFINITY); }, tensor({-2, 1, 2}, f64)),
      {-0.5, 0, 0.5});
  expect_error_containing([&] { norm(x, 3.0); }, "p = 3 is not supported: expected 1, 2 or inf");
}

// ---- activations and losses ----

TEST(Everyday, ActivationsMatchPyTorch) {
  expect_values(sign(tensor({-2, -0.0, 0, 3, kNaN}, f64)), {-1, 0, 0, 1, 0});
  expect_values(rsqrt(tensor({4, 0.25}, f64)), {0.5, 2});
  expect_values(square(tensor({-3, 0.5}, f64)), {9, 0.25});
  // torch.nn.functional.silu / gelu / elu at these points.
  expect_values(silu(tensor({-1, 0, 2}, f64)), {-0.2689414213699951, 0, 1.7615941559557649});
  expect_values(gelu(tensor({-1, 0.5, 2}, f64)),
                {-0.15865525393145707, 0.34573123063700656, 1.9544997361036416});
  expect_values(gelu(tensor({-1, 0.5, 2}, f64), GeluApproximate::tanh),
                {-0.15880800939172324, 0.34571400982514394, 1.9545976940871754});
  expect_values(elu(tensor({-1, 0, 2}, f64), 1.5), {-0.9481808382428366, 0, 2});
  expect_values(gradient([](const Tensor& v) { return elu(v, 1.5); }, tensor({-1, 0, 800}, f64)),
                {1.5 * std::exp(-1.0), 1.5, 1});
  expect_values(hardtanh(tensor({-3, -1, 0.5, 1, 2}, f64)), {-1, -1, 0.5, 1, 1});
  // Gradient 0 at the bounds (PyTorch's hardtanh_backward); clamp would pass it.
  expect_values(
      gradient([](const Tensor& v) { return hardtanh(v); }, tensor({-3, -1, 0.5, 1, 2}, f64)),
      {0, 0, 1, 0, 0});
  expect_error_containing([] { hardtanh(zeros({1}), 1, -1); },
                          "expected low <= high, got low = 1, high = -1");
}

TEST(Everyday, RegressionLossesMatchPyTorch) {
  const Tensor a = tensor({0.5, 2, -1, 3}, f64);
  const Tensor b = tensor({0, 0, 0, 3}, f64);
  // F.l1_loss, F.smooth_l1_loss(beta=1), F.huber_loss(delta=2) on these.
  expect_values(l1_loss(a, b), {0.875});
  expect_values(l1_loss(a, b, Reduction::none), {0.5, 2, 1, 0});
  expect_values(smooth_l1_loss(a, b, Reduction::none), {0.125, 1.5, 0.5, 0});
  expect_values(smooth_l1_loss(a, b, Reduction::sum, 0.0), {3.5});
  expect_values(huber_loss(a, b, Reduction::none, 2.0), {0.125, 2, 0.5, 0});
  expect_values(gradient([&](const Tensor& v) { return l1_loss(v, b, Reduction::sum); }, a),
                {1, 1, -1, 0});
  expect_values(gradient([&](const Tensor& v) { return huber_loss(v, b, Reduction::sum, 2.0); }, a),
                {0.5, 2, -1, 0});
  // F.kl_div(log p, q): Σ q (log q − log p); 0 where q = 0.
  const Tensor logp = log(tensor({{0.25, 0.75}, {0.5, 0.5}}, f64));
  const Tensor q = tensor({{0.5, 0.5}, {0, 1}}, f64);
  const double row0 = 0.5 * std::log(0.5 / 0.25) + 0.5 * std::log(0.5 / 0.75);
  const double row1 = std::log(2.0);
  expect_values(kl_div(logp, q, KlReduction::batchmean), {(row0 + row1) / 2});
  expect_values(kl_div(logp, q, KlReduction::mean), {(row0 + row1) / 4});
  const Tensor r = tensor({{0.5, 0.5}, {0.25, 0.75}}, f64);
  const double row1_r = 0.25 * std::log(0.25 / 0.5) + 0.75 * std::log(0.75 / 0.5);
  expect_values(kl_div(logp, log(r), KlReduction::sum, true), {row0 + row1_r});
  // The target's gradient where it is 0 is 0 (PyTorch: NaN, from 0 · log 0).
  expect_values(gradient([&](const Tensor& t) { return kl_div(logp, t, KlReduction::sum); }, q),
                {1 + std::log(0.5 / 0.25), 1 + std::log(0.5 / 0.75), 0, 1 + std::log(2.0)});
  expect_error_containing([&] { smooth_l1_loss(a, b, Reduction::mean, -1); },
                          "beta must be finite and >= 0, got -1");
}

// A composite reports an inner op's error as its own, at the caller's line, without the inner
// op's name.
TEST(Everyday, CompositeErrorsNameTheOpCalled) {
  const auto expect_own_error = [](const std::function<void()>& call, const std::string& op,
                                   const std::string& inner) {
    try {
      call();
      ADD_FAILURE() << op << ": no error";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_TRUE(message.starts_with(op + ": ")) << message;
      EXPECT_NE(message.find(" (at " __FILE__ ":"), std::string::npos) << message;
      EXPECT_EQ(message.find(" (at ", message.find(" (at ") + 1), std::string::npos) << message;
      EXPECT_EQ(message.find(inner + ":"), std::string::npos) << message;
    }
  };
  expect_own_error([] { kl_div(zeros({3, 4}, f64), zeros({3, 7}, f64)); }, "kl_div", "sub");
  expect_own_error([] { square(int64_tensor({1, 2})); }, "square", "pow");
  expect_own_error([] { amin(int64_tensor({1, 2}), 0); }, "amin", "amax");
}

// ---- factories ----

TEST(Everyday, FactoriesMatchPyTorch) {
  expect_values(eye(2, 3, f64), {1, 0, 0, 0, 1, 0});
  EXPECT_EQ(eye(3).shape(), Shape({3, 3}));
  EXPECT_EQ(eye(2, i64).dtype(), i64);
  // torch.linspace(0, 1, 5), and (-1, 1, 4) and (0, 1, 7) in float32, to the bit.
  expect_values(linspace(0, 1, 5, f64), {0, 0.25, 0.5, 0.75, 1});
  EXPECT_EQ(linspace(-1, 1, 4).to_vector(),
            (std::vector<double>{-1.0, -0.3333333134651184, 0.3333333134651184, 1.0}));
  EXPECT_EQ(linspace(0, 1, 7).to_vector(),
            (std::vector<double>{0.0, 0.1666666716337204, 0.3333333432674408, 0.5,
                                 0.6666666269302368, 0.8333333134651184, 1.0}));
  expect_values(linspace(2, 3, 1, f64), {2});
  EXPECT_EQ(linspace(2, 3, 0).numel(), 0);
  Generator gen(7);
  const Tensor r = rand({1000}, gen, f64);
  const std::vector<double> rv = r.to_vector();
  EXPECT_TRUE(std::all_of(rv.begin(), rv.end(), [](double v) { return v >= 0 && v < 1; }));
  const std::vector<std::int64_t> draws = ints(randint(-3, 4, {2000}, gen));
  EXPECT_EQ(std::set<std::int64_t>(draws.begin(), draws.end()),
            (std::set<std::int64_t>{-3, -2, -1, 0, 1, 2, 3}));
  std::vector<std::int64_t> perm = ints(randperm(50, gen));
  EXPECT_NE(perm, ints(arange(0.0, 50.0, 1.0, i64)));
  std::sort(perm.begin(), perm.end());
  EXPECT_EQ(perm, ints(arange(0.0, 50.0, 1.0, i64)));
  Generator a(3), b(3);
  EXPECT_EQ(ints(randperm(20, a)), ints(randperm(20, b)));
  const Tensor like = zeros({2, 3}, f64);
  expect_values(full_like(like, 2.5), std::vector<double>(6, 2.5));
  EXPECT_EQ(rand_like(like, gen).dtype(), f64);
  EXPECT_EQ(randn_like(like, gen).shape(), Shape({2, 3}));
  EXPECT_EQ(randint_like(like, 0, 2, gen).dtype(), f64);
  expect_error_containing([&] { randint(3, 3, {2}, gen); }, "expected low < high, got [3, 3)");
  expect_error_containing([&] { randperm(-1, gen); }, "randperm: ");
  expect_error_containing([] { eye(-1); }, "expected non-negative sizes, got -1 x -1");
  expect_error_containing([] { linspace(0, 1, 3, i64); }, "expected float32 or float64");
}

}  // namespace
}  // namespace tg
