// Forward values and edge cases of the ops; their gradients are checked by registry_test.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "tapegrad.h"

namespace tg {
namespace {

std::vector<double> values(const Tensor& t) {
  return t.to_vector();
}

TEST(Elementwise, ArithmeticBroadcastsAndHasScalarForms) {
  const Tensor a = tensor({{1, 2, 3}, {4, 5, 6}}, f64);
  const Tensor b = tensor({10, 20, 30}, f64);
  EXPECT_EQ(values(a + b), std::vector<double>({11, 22, 33, 14, 25, 36}));
  EXPECT_EQ(values(b - a), std::vector<double>({9, 18, 27, 6, 15, 24}));
  EXPECT_EQ(values(a * reshape(tensor({2, 3}, f64), {2, 1})),
            std::vector<double>({2, 4, 6, 12, 15, 18}));
  EXPECT_EQ(values(b / a), std::vector<double>({10, 10, 10, 2.5, 4, 5}));
  EXPECT_EQ(values(2.0 - b), std::vector<double>({-8, -18, -28}));
  EXPECT_EQ(values(b / 10.0), std::vector<double>({1, 2, 3}));
  EXPECT_EQ(values(60.0 / b), std::vector<double>({6, 3, 2}));
  EXPECT_EQ(values(-b + 1.0), std::vector<double>({-9, -19, -29}));
  EXPECT_EQ((reshape(tensor({1, 2}), {2, 1}) + tensor({10, 20, 30})).shape(), Shape({2, 3}));
}

TEST(Unary, ValuesAndKinks) {
  const Tensor x = tensor({-2, 0, 3}, f64);
  EXPECT_EQ(values(relu(x)), std::vector<double>({0, 0, 3}));
  EXPECT_EQ(values(abs(x)), std::vector<double>({2, 0, 3}));
  EXPECT_EQ(values(clamp(x, -1, 1)), std::vector<double>({-1, 0, 1}));
  EXPECT_EQ(values(pow(x, 2.0)), std::vector<double>({4, 0, 9}));
  EXPECT_NEAR(sigmoid(x).at({0}), 1 / (1 + std::exp(2.0)), 1e-15);
  EXPECT_EQ(sigmoid(tensor({-1000, 1000})).to_vector(), std::vector<double>({0, 1}));
  EXPECT_NEAR(tanh(x).at({2}), std::tanh(3.0), 1e-15);
  // At the kinks the gradients are those of PyTorch: 0 for relu and abs at 0.
  Tensor k = tensor({0.0}, f64).requires_grad(true);
  EXPECT_EQ(grad(sum(relu(k)), {k})[0].item(), 0.0);
  EXPECT_EQ(grad(sum(abs(k)), {k})[0].item(), 0.0);
  EXPECT_EQ(grad(sum(clamp(k, 0.0, 1.0)), {k})[0].item(), 1.0);
  EXPECT_TRUE(std::isinf(grad(sum(sqrt(k)), {k})[0].item()));
  EXPECT_TRUE(std::isnan(log(tensor({-1.0})).item()));
}

TEST(Reduce, SumMeanMaxAlongAxes) {
  const Tensor x = tensor({{1, 5, 3}, {4, 2, 6}}, f64);
  EXPECT_EQ(sum(x).item(), 21.0);
  EXPECT_EQ(mean(x).item(), 3.5);
  EXPECT_EQ(values(sum(x, 0)), std::vector<double>({5, 7, 9}));
  EXPECT_EQ(values(sum(x, -1)), std::vector<double>({9, 12}));
  EXPECT_EQ(sum(x, 1, true).shape(), Shape({2, 1}));
  EXPECT_EQ(values(mean(x, 1)), std::vector<double>({3, 4}));
  EXPECT_EQ(values(max(x, 0)), std::vector<double>({4, 5, 6}));
  EXPECT_EQ(values(max(x, 1)), std::vector<double>({5, 6}));
  EXPECT_EQ(sum(zeros({2, 0}), 1).to_vector(), std::vector<double>({0, 0}));
  // A tie sends the whole gradient to the first arg-max.
  Tensor t = tensor({3, 7, 7, 1}, f64).requires_grad(true);
  EXPECT_EQ(values(grad(max(t, 0), {t})[0]), std::vector<double>({0, 1, 0, 0}));
  EXPECT_TRUE(std::isnan(max(tensor({1.0, NAN, 2.0}), 0).item()));
  EXPECT_EQ(values(sum_to(ones({2, 3, 4}), {3, 1})), std::vector<double>({8, 8, 8}));
  EXPECT_EQ(values(broadcast_to(tensor({1, 2}), {2, 2})), std::vector<double>({1, 2, 1, 2}));
}

TEST(Shape, ReshapePermuteSliceConcatIndexSelect) {
  const Tensor x = arange(0.0, 24.0, 1.0, f64);
  const Tensor cube = reshape(x, {2, 3, 4});
  EXPECT_EQ(cube.raw_data(), x.raw_data());  // a reshape shares storage
  const Tensor p = permute(cube, {2, 0, 1});
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(p.at({1, 1, 2}), cube.at({1, 2, 1}));
  EXPECT_EQ(values(transpose(tensor({{1, 2, 3}, {4, 5, 6}}))),
            std::vector<double>({1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(values(slice(cube, 2, 1, 3)),
            std::vector<double>({1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}));
  EXPECT_EQ(slice(cube, 0, 1, 1).shape(), Shape({0, 3, 4}));
  const Tensor joined = concat({reshape(tensor({1, 2}), {2, 1}), tensor({{3, 4}, {5, 6}})}, 1);
  EXPECT_EQ(values(joined), std::vector<double>({1, 3, 4, 2, 5, 6}));
  const Tensor table = tensor({{0, 1}, {10, 11}, {20, 21}}, f64).requires_grad(true);
  const Tensor rows = index_select(table, 0, int64_tensor({2, 0, 2}));
  EXPECT_EQ(values(rows), std::vector<double>({20, 21, 0, 1, 20, 21}));
  // Repeated rows accumulate their gradients, as an embedding's must.
  EXPECT_EQ(values(grad(sum(rows), {table})[0]), std::vector<double>({1, 1, 0, 0, 2, 2}));
}

TEST(Matmul, TwoDimensionalAndBatched) {
  const Tensor a = tensor({{1, 2}, {3, 4}}, f64);
  const Tensor b = tensor({{5, 6}, {7, 8}}, f64);
  EXPECT_EQ(values(matmul(a, b)), std::vector<double>({19, 22, 43, 50}));
  const Tensor batch = reshape(concat({a, b}), {2, 2, 2});
  EXPECT_EQ(values(matmul(batch, a)), std::vector<double>({7, 10, 15, 22, 23, 34, 31, 46}));
  EXPECT_EQ(values(matmul(batch, batch)), std::vector<double>({7, 10, 15, 22, 67, 78, 91, 106}));
  Tensor w = tensor({{1, 0}, {0, 1}}, f64).requires_grad(true);
  // The 2-D operand's gradient is summed over the batch.
  EXPECT_EQ(values(grad(sum(matmul(batch, w)), {w})[0]), std::vector<double>({16, 16, 20, 20}));
}

TEST(Elementwise, MaximumAndMinimumSplitTiesAndPropagateNaN) {
  Tensor a = tensor({1.0, 5.0, 3.0}, f64).requires_grad(true);
  Tensor b = tensor({2.0, 4.0, 3.0}, f64).requires_grad(true);
  EXPECT_EQ(values(maximum(a, b)), std::vector<double>({2, 5, 3}));
  EXPECT_EQ(values(minimum(a, b)), std::vector<double>({1, 4, 3}));
  const std::vector<Tensor> g = grad(sum(maximum(a, b)), {a, b});
  EXPECT_EQ(values(g[0]), std::vector<double>({0, 1, 0.5}));
  EXPECT_EQ(values(g[1]), std::vector<double>({1, 0, 0.5}));
  // Broadcast against a scalar: the scalar's gradient sums the steps it won.
  Tensor floor = full({}, 2.5, f64).requires_grad(true);
  EXPECT_EQ(grad(sum(maximum(a, floor)), {floor})[0].item(), 1.0);
  const Tensor with_nan = tensor({NAN, 1.0}, f64);
  EXPECT_TRUE(std::isnan(maximum(with_nan, tensor({0.0, 0.0}, f64)).at({0})));
  EXPECT_TRUE(std::isnan(minimum(tensor({0.0, 0.0}, f64), with_nan).at({0})));
}

TEST(Elementwise, SoftplusAndLog1pStayAccurateAtTheExtremes) {
  const Tensor x = tensor({-1000.0, -30.0, 0.0, 30.0, 1000.0}, f64);
  const std::vector<double> y = values(softplus(x));
  EXPECT_EQ(y[0], 0.0);
  EXPECT_NEAR(y[1], std::exp(-30.0) - std::exp(-60.0) / 2, 1e-28);  // ln(1 + ε) = ε − ε²/2
  EXPECT_NEAR(y[2], std::log(2.0), 1e-15);
  EXPECT_NEAR(y[3], 30.0, 1e-12);
  EXPECT_EQ(y[4], 1000.0);
  EXPECT_EQ(values(softplus(tensor({-1000.0, 1000.0}, f32))), std::vector<double>({0.0, 1000.0}));
  // ln(1 + 1e-12) is 1e-12 − 5e-25: log(1 + x) would lose almost every digit.
  EXPECT_NEAR(log1p(tensor({1e-12}, f64)).item(), 1e-12 - 5e-25, 1e-28);
  EXPECT_EQ(values(leaky_relu(tensor({-2.0, 3.0}, f64), 0.1)), std::vector<double>({-0.2, 3.0}));
}

// Found by fuzz_ops: an empty batch times a matrix gave a batch of one and read out of bounds.
TEST(Matmul, EmptyBatchGivesEmptyProductAndZeroGradient) {
  const Tensor none = zeros({0, 3, 3}, f64);
  Tensor w = ones({3, 2}, f64).requires_grad(true);
  EXPECT_EQ(matmul(none, w).shape(), (Shape{0, 3, 2}));
  EXPECT_EQ(matmul(transpose(w, 0, 1), zeros({0, 3, 4}, f64)).shape(), (Shape{0, 2, 4}));
  EXPECT_EQ(values(grad(sum(matmul(none, w)), {w})[0]), std::vector<double>(6, 0.0));
}

TEST(Losses, CrossEntropyValueAndGradientIsSoftmaxMinusOnehotOverN) {
  Tensor logits = tensor({{1, 2, 3}, {1, 1, 1}}, f64).requires_grad(true);
  const Tensor labels = int64_tensor({2, 0});
  const Tensor loss = cross_entropy(logits, labels);
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(loss.item(), ((lse - 3) + std::log(3.0)) / 2, 1e-14);
  loss.backward();
  const std::vector<double> s = softmax(logits.detach(), 1).to_vector();
  const std::vector<double> onehot = {0, 0, 1, 1, 0, 0};
  for (std::size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(logits.grad().to_vector()[i], (s[i] - onehot[i]) / 2, 1e-15);
  EXPECT_NEAR(cross_entropy(logits, labels, Reduction::sum).item(), 2 * loss.item(), 1e-14);
  EXPECT_EQ(cross_entropy(logits, labels, Reduction::none).shape(), Shape({2}));
  EXPECT_NEAR(nll_loss(log_softmax(logits, 1), labels).item(), loss.item(), 1e-14);
}

TEST(Losses, CrossEntropyStaysFiniteAndAccurateForHugeLogits) {
  for (const DType dtype : {f32, f64}) {
    Tensor logits = tensor({{1e4, 0, -1e4}}, dtype).requires_grad(true);
    const Tensor loss = cross_entropy(logits, int64_tensor({1}));
    EXPECT_NEAR(loss.item(), 1e4, 1e-2);
    loss.backward();
    // softmax − onehot = [1, −1, 0] exactly, where a softmax-then-log chain would give 0 or NaN.
    EXPECT_EQ(logits.grad().to_vector(), std::vector<double>({1, -1, 0}));
  }
}

TEST(Losses, MeanSquaredError) {
  const Tensor a = tensor({1, 2, 3}, f64);
  const Tensor b = tensor({1, 0, 0}, f64);
  EXPECT_NEAR(mse_loss(a, b).item(), 13.0 / 3, 1e-15);
  EXPECT_EQ(mse_loss(a, b, Reduction::sum).item(), 13.0);
  EXPECT_EQ(values(mse_loss(a, b, Reduction::none)), std::vector<double>({0, 4, 9}));
}

}  // namespace
}  // namespace tg
