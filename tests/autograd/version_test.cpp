// In-place writes to tensors an entry keeps for its rule are caught in backward (PyTorch's version
// counter), and reads never count as writes.
#include <gtest/gtest.h>

#include <utility>

#include "tapegrad.h"

namespace tg {
namespace {

// Runs `backward` and returns its error message, or "" when it does not throw.
template <class Backward>
std::string error_of(Backward backward) {
  try {
    backward();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

TEST(VersionCounter, MutableAccessBumpsAndReadsDoNot) {
  Tensor x = tensor({1.0, 2.0, 3.0}, f64);
  const std::uint64_t start = x.version();
  (void)std::as_const(x).data<double>();
  (void)x.to_vector();
  (void)x.str();
  (void)x.at({1});
  EXPECT_EQ(x.version(), start);
  x.data<double>()[0] = 5.0;
  EXPECT_EQ(x.version(), start + 1);
  (void)x.raw_data();
  EXPECT_EQ(x.version(), start + 2);
  // A tensor sharing the storage shares the count, as views do in PyTorch.
  Tensor view = x.detach();
  view.data<double>()[1] = 7.0;
  EXPECT_EQ(x.version(), start + 3);
}

TEST(VersionCounter, WritingASavedInputBeforeBackwardIsAnError) {
  Tensor x = tensor({1.0, 2.0, 3.0}, f64).requires_grad(true);
  const unsigned line = __LINE__ + 1;
  const Tensor loss = sum(x * x);
  x.data<double>()[0] = 100.0;  // the bug: gradients would be [200, 4, 6]
  const std::string message = error_of([&] { loss.backward(); });
  expect_contains(message, "backward of 'mul'");
  expect_contains(message, "input 0");
  expect_contains(message, "modified in place");
  expect_contains(message, "version_test.cpp:" + std::to_string(line));
  EXPECT_FALSE(x.grad().defined());
}

TEST(VersionCounter, WritingThroughADetachedViewIsCaughtToo) {
  Tensor x = tensor({1.0, 2.0}, f64).requires_grad(true);
  const Tensor loss = sum(exp(x));  // exp's rule reads its output
  Tensor out_view = x.detach();
  out_view.data<double>()[1] = 0.0;
  expect_contains(error_of([&] { loss.backward(); }), "backward of 'exp'");
}

TEST(VersionCounter, AnOptimizerStepBetweenTwoBackwardPassesOfARetainedGraphIsAnError) {
  Generator gen(3);
  nn::Linear layer(3, 2, true, gen);
  const Tensor input = randn({4, 3}, gen);
  nn::SGD optimizer(layer.parameters(), {.lr = 0.1});
  const Tensor loss = sum(layer.forward(input));
  loss.backward({}, {.retain_graph = true});
  optimizer.step();
  const std::string message = error_of([&] { loss.backward(); });
  expect_contains(message, "backward of 'linear'");
  expect_contains(message, "input 1");  // the weight
}

TEST(VersionCounter, ReusingTheIndexBufferOfAnEmbeddingBeforeBackwardIsAnError) {
  Tensor table = tensor({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}}, f64).requires_grad(true);
  Tensor indices = int64_tensor({0, 2, 2});
  const Tensor loss = sum(index_select(table, 0, indices));
  indices.data<std::int64_t>()[1] = 99;  // out of range for the rule that scatters rows back
  const std::string message = error_of([&] { loss.backward(); });
  expect_contains(message, "backward of 'index_select'");
  expect_contains(message, "input 1 (int64 [3])");
}

TEST(VersionCounter, ASavedResidualOfACustomOpIsChecked) {
  static const CustomOp scaled{
      "scaled", "dx = g ⊙ 2",
      [](ForwardContext& ctx) {
        const Tensor two = full(ctx.input(0).shape(), 2.0, f64);
        ctx.save(two, Residual::constant);
        return ctx.input(0) * two;
      },
      [](BackwardContext& ctx) { ctx.set_grad(0, ctx.grad_output() * ctx.saved(0)); }};
  Tensor x = tensor({1.0, 2.0}, f64).requires_grad(true);
  const Tensor y = scaled(x);
  Tape::current().entry(Tape::current().index_of(y)).saved[0].data<double>()[0] = 3.0;
  expect_contains(error_of([&] { sum(y).backward(); }), "saved residual 0");
}

TEST(VersionCounter, WritesAfterBackwardOrToUnsavedTensorsAreFine) {
  Tensor x = tensor({1.0, 2.0}, f64).requires_grad(true);
  const Tensor loss = sum(x * 3.0);
  loss.backward();
  x.data<double>()[0] = 10.0;  // the graph is done with x
  EXPECT_DOUBLE_EQ(x.grad().at({0}), 3.0);
  Tensor unrelated = zeros({2}, f64);
  const Tensor again = sum(x * x);
  unrelated.data<double>()[0] = 1.0;
  ASSERT_NO_THROW(again.backward());
  EXPECT_DOUBLE_EQ(x.grad().at({0}), 3.0 + 20.0);
}

TEST(VersionCounter, BackwardReadsOnlyAndSoDoesARetainedSecondPass) {
  Tensor x = tensor({0.5, -1.0}, f64).requires_grad(true);
  const Tensor loss = sum(softmax(x) * tensor({1.0, 3.0}, f64));
  const std::uint64_t before = x.version();
  loss.backward({}, {.retain_graph = true});
  ASSERT_NO_THROW(loss.backward());
  EXPECT_EQ(x.version(), before);
}

}  // namespace
}  // namespace tg
