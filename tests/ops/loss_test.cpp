// cross_entropy and nll_loss options where the registry and the PyTorch fixtures cannot say it:
// closed-form values of ignore_index, weight and label smoothing, the edge cases PyTorch answers
// with NaN, and the errors (op, label, position, caller's line).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops/everyday.h"
#include "tapegrad.h"
#include "tests/expect_error.h"

namespace tg {
namespace {

using test_support::expect_error_containing;

// −log softmax(row)[y], in double.
double nll_of(const std::vector<double>& row, std::size_t y) {
  double sum = 0;
  for (const double v : row) sum += std::exp(v);
  return std::log(sum) - row[y];
}

TEST(ClassLoss, IgnoredLabelsLeaveTheMeanAndTheWeightedMeanDividesByTheirWeights) {
  const std::vector<std::vector<double>> rows = {
      {0.5, -1.0, 2.0}, {1.5, 0.25, -0.5}, {0.0, 1.0, 3.0}};
  const Tensor x = from_vector({0.5, -1.0, 2.0, 1.5, 0.25, -0.5, 0.0, 1.0, 3.0}, {3, 3}, f64);
  const Tensor labels = int64_tensor({2, -100, 0});
  const double l0 = nll_of(rows[0], 2), l2 = nll_of(rows[2], 0);
  EXPECT_NEAR(cross_entropy(x, labels, CrossEntropyOptions{}).item(), (l0 + l2) / 2, 1e-14);
  EXPECT_NEAR(cross_entropy(x, labels, {.reduction = Reduction::sum}).item(), l0 + l2, 1e-14);
  const Tensor none = cross_entropy(x, labels, {.reduction = Reduction::none});
  EXPECT_NEAR(none.at({0}), l0, 1e-14);
  EXPECT_EQ(none.at({1}), 0.0);
  EXPECT_NEAR(none.at({2}), l2, 1e-14);
  // Class weights [1, 2, 4]: labels 2 and 0 weigh 4 and 1.
  const Tensor w = from_vector({1.0, 2.0, 4.0}, {3}, f64);
  EXPECT_NEAR(cross_entropy(x, labels, {.weight = w}).item(), (4 * l0 + l2) / 5, 1e-14);
  // A different ignore_index: label 0 is ignored, -100 is then out of range.
  EXPECT_NEAR(cross_entropy(x, int64_tensor({2, 0, 0}), {.ignore_index = 0}).item(), l0, 1e-14);
  expect_error_containing([&] { cross_entropy(x, labels, {.ignore_index = 0}); }, "label -100");
}

TEST(ClassLoss, LabelSmoothingIsPyTorchsMixture) {
  const std::vector<double> row = {0.5, -1.0, 2.0};
  const Tensor x = from_vector(row, {1, 3}, f64);
  double spread = 0;  // Σ_c −w_c log p_c with w = [1, 2, 4]
  const std::vector<double> w = {1, 2, 4};
  for (std::size_t c = 0; c < 3; ++c) spread += w[c] * nll_of(row, c);
  const Tensor weight = from_vector(w, {3}, f64);
  // (1 − ε)·w_y·ℓ_y / w_y + ε/C · spread / w_y, as PyTorch's mean.
  const double expected = 0.8 * nll_of(row, 1) + 0.2 / 3 * spread / 2;
  EXPECT_NEAR(
      cross_entropy(x, int64_tensor({1}), {.label_smoothing = 0.2, .weight = weight}).item(),
      expected, 1e-14);
}

TEST(ClassLoss, EveryLabelIgnoredIsNaNWithAZeroGradientAsPyTorch) {
  for (const double smoothing : {0.0, 0.2}) {
    const Tensor x = tensor({{0.5, 1.0}, {2.0, -1.0}}, f64).requires_grad(true);
    const Tensor loss =
        cross_entropy(x, int64_tensor({-100, -100}), {.label_smoothing = smoothing});
    EXPECT_TRUE(std::isnan(loss.item()));
    EXPECT_EQ(grad(loss, {x})[0].to_vector(), std::vector<double>(4, 0.0));
  }
  // Labels whose weights sum to 0: 0/0 in the value and the gradient, as PyTorch.
  const Tensor x = tensor({{0.5, 1.0}}, f64).requires_grad(true);
  const Tensor loss = cross_entropy(x, int64_tensor({0}), {.weight = tensor({0.0, 1.0}, f64)});
  EXPECT_TRUE(std::isnan(loss.item()));
  EXPECT_TRUE(std::isnan(grad(loss, {x})[0].to_vector()[0]));
}

TEST(ClassLoss, UnbatchedScoresTakeAScalarLabel) {
  const Tensor x = tensor({0.5, -1.0, 2.0}, f64);
  const Tensor loss = cross_entropy(x, int64_tensor({1}, {}), {.reduction = Reduction::none});
  EXPECT_EQ(loss.rank(), 0);
  EXPECT_NEAR(loss.item(), nll_of({0.5, -1.0, 2.0}, 1), 1e-14);
  EXPECT_NEAR(nll_loss(log_softmax(x, 0), int64_tensor({1}, {}), NllLossOptions{}).item(),
              loss.item(), 1e-14);
}

TEST(ClassLoss, TheReductionOverloadsAreTheDefaultOptions) {
  Generator gen(5);
  const Tensor x = uniform({4, 3, 2}, gen, -2, 2, f64);
  const Tensor labels = int64_tensor({0, 2, 1, 1, 2, 0, 1, 0}, {4, 2});
  for (const Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    EXPECT_EQ(cross_entropy(x, labels, r).to_vector(),
              cross_entropy(x, labels, {.reduction = r}).to_vector());
    EXPECT_EQ(nll_loss(x, labels, r).to_vector(),
              nll_loss(x, labels, {.reduction = r}).to_vector());
  }
}

TEST(ClassLoss, ErrorsNameTheOpTheLabelItsPositionAndTheCaller) {
  const Tensor x = ones({2, 3, 2}, f64);
  const Tensor labels = int64_tensor({0, 1, 3, 0}, {2, 2});
  const int line = __LINE__ + 1;
  const auto bad_label = [&] { cross_entropy(x, labels, CrossEntropyOptions{}); };
  for (const char* part : {"cross_entropy", "label 3", "[1, 0]", "3 classes"}) {
    expect_error_containing(bad_label, part);
  }
  expect_error_containing(bad_label, "loss_test.cpp:" + std::to_string(line));
  expect_error_containing(
      [&] {
        nll_loss(x, int64_tensor({0, 1}), NllLossOptions{});
      },
      "expected int64 labels of shape [2, 2]");
  expect_error_containing(
      [&] {
        cross_entropy(x, int64_tensor({0, 0, 0, 0}, {2, 2}), {.weight = ones({2}, f64)});
      },
      "weight of shape [3]");
  expect_error_containing(
      [&] {
        cross_entropy(x, int64_tensor({0, 0, 0, 0}, {2, 2}), {.label_smoothing = 1.5});
      },
      "label_smoothing must be in [0, 1]");
  expect_error_containing(
      [&] { cross_entropy(ones({}, f64), int64_tensor({0}, {}), CrossEntropyOptions{}); },
      "got a scalar");
  // No gradient for the weights, as PyTorch: asking for one is an error, not a silent zero.
  const Tensor w = ones({3}, f64).requires_grad(true);
  const Tensor loss = cross_entropy(x, int64_tensor({0, 0, 0, 0}, {2, 2}), {.weight = w});
  expect_error_containing([&] { grad(loss, {w}); },
                          "no gradient with respect to the class weights");
}

}  // namespace
}  // namespace tg
