// Bad input raises a tg::Error whose message names the op, the shapes and what was expected.
#include <gtest/gtest.h>

#include <cmath>

#include "tapegrad.h"

namespace tg {
namespace {

// Runs `call` and checks that it throws a tg::Error containing every one of `fragments`.
template <class Call>
void expect_error(Call call, std::initializer_list<const char*> fragments) {
  try {
    call();
    ADD_FAILURE() << "expected a tg::Error";
  } catch (const Error& e) {
    for (const char* fragment : fragments) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
          << "message: " << e.what() << "\nmissing: " << fragment;
    }
  }
}

TEST(Errors, ShapeAndDtypeMismatchesNameTheOpAndBothOperands) {
  expect_error([] { add(ones({2, 3}), ones({4})); }, {"add", "[2, 3]", "[4]"});
  expect_error([] { mul(ones({2}), ones({2}, f64)); },
               {"mul", "dtype mismatch", "float32", "float64"});
  expect_error(
      [] {
        matmul(ones({2, 3}), ones({4, 5}));
      },
      {"matmul", "[2, 3]", "[4, 5]", "3 vs 4"});
  expect_error([] { matmul(ones({2, 2, 3}), ones({3, 3, 1})); }, {"matmul", "batch"});
  expect_error([] { matmul(full({}, 1.0), ones({3, 1})); }, {"matmul", "at least 1-D", "[3, 1]"});
  expect_error([] { reshape(ones({2, 3}), {4}); }, {"reshape", "[2, 3]", "[4]"});
  expect_error([] { concat({ones({2, 3}), ones({3, 3})}, 1); }, {"concat", "[3, 3]", "[2, 3]"});
  expect_error([] { exp(int64_tensor({1})); }, {"exp", "int64"});
  expect_error([] { mse_loss(ones({2}), ones({3})); }, {"mse_loss", "[2]", "[3]"});
}

TEST(Errors, AxesAndRangesAreChecked) {
  expect_error([] { sum(ones({2, 3}), 2); }, {"sum", "axis 2", "rank 2"});
  expect_error([] { softmax(ones({2, 3}), -3); }, {"softmax", "axis -3"});
  expect_error([] { softmax(full({}, 1.0), 1); }, {"softmax", "axis 1", "scalar"});
  expect_error([] { slice(ones({2, 3}), 1, 2, 4); }, {"slice", "[2, 4)", "size 3"});
  expect_error([] { permute(ones({2, 3}), {0, 0}); }, {"permute", "twice"});
  expect_error([] { max(ones({2, 0}), 1); }, {"max", "size 0"});
  expect_error(
      [] {
        index_select(ones({3, 2}), 0, int64_tensor({0, 3}));
      },
      {"index_select", "index 3", "size 3"});
  expect_error([] { index_select(ones({3, 2}), 0, ones({2})); }, {"index_select", "int64"});
  // lo > hi is not an error (PyTorch gives hi everywhere); a NaN bound is.
  expect_error([] { clamp(ones({2}), NAN, 1.0); }, {"clamp", "numbers"});
}

TEST(Errors, LossLabelsAreChecked) {
  expect_error(
      [] {
        cross_entropy(ones({2, 3}), int64_tensor({0, 3}));
      },
      {"cross_entropy", "label 3", "sample 1", "3 classes"});
  expect_error(
      [] {
        cross_entropy(ones({2, 3}), int64_tensor({0}));
      },
      {"cross_entropy", "[2]", "[1]"});
  expect_error([] { nll_loss(ones({2, 3}), int64_tensor({-1, 0})); }, {"nll_loss", "label -1"});
  expect_error([] { cross_entropy(ones({3}), int64_tensor({0})); }, {"cross_entropy", "[N, C]"});
}

TEST(Errors, BackwardRuleReturningAWrongShapeIsCaughtByTheEngine) {
  static const Op<> bad_rule{
      "bad_rule", "dx = (wrong shape)",
      [](ForwardContext& ctx, const NoAttrs&) { return ctx.input(0).detach().copy(); },
      [](BackwardContext& ctx, const NoAttrs&) {
        ctx.set_grad(0, ones({5}, ctx.input(0).dtype()));
      }};
  Tensor x = ones({2, 3}).requires_grad(true);
  expect_error([&] { sum(bad_rule({}, SourceLocation::current(), x)).backward(); },
               {"backward of 'bad_rule'", "shape [5]", "input 0 of shape [2, 3]"});
  static const Op<> bad_dtype{
      "bad_dtype", "dx = (wrong dtype)",
      [](ForwardContext& ctx, const NoAttrs&) { return ctx.input(0).detach().copy(); },
      [](BackwardContext& ctx, const NoAttrs&) {
        ctx.set_grad(0, ones({2, 3}, f64));
      }};
  expect_error([&] { sum(bad_dtype({}, SourceLocation::current(), x)).backward(); },
               {"backward of 'bad_dtype'", "float64 gradient", "float32"});
}

}  // namespace
}  // namespace tg
