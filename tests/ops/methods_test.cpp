// The Tensor methods of ops/methods.cpp: each gives bitwise its free function's value and
// gradients, records the caller's file (not ops/methods.cpp) on the tape, and its argument errors
// name the caller's line.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../expect_error.h"
#include "ops/everyday.h"
#include "tapegrad.h"

namespace tg {
namespace {

using test_support::expect_error_containing;
using In = std::vector<Tensor>;

struct MethodCase {
  const char* name;
  TensorFunction method;
  TensorFunction free;
  In inputs;
};

std::vector<MethodCase> method_cases() {
  Generator gen(7);
  const Tensor x = randn({3, 4}, gen, f64);
  const Tensor y = randn({3, 4}, gen, f64);
  const Tensor positive = uniform({3, 4}, gen, 0.5, 2.0, f64);
  const Tensor w = randn({4, 5}, gen, f64);
  const Tensor column = randn({3, 1, 4}, gen, f64);
  const Tensor rows = int64_tensor({2, 0, 2});
  const Tensor picks = int64_tensor({0, 3, 1, 1, 2, 0}, {3, 2});
  // Small integers, so that the comparisons meet ties.
  const Tensor rounded = from_vector({-1, 0, 2, 1, 1, -1, 0, 0, 2, -2, 1, 0}, {3, 4}, f64);
  const Tensor rounded_too = from_vector({0, 0, 1, 1, -1, -1, 2, 0, 2, 1, 1, 1}, {3, 4}, f64);
  return {
      {"add",
       [](const In& in) { return in[0].add(in[1]); },
       [](const In& in) { return add(in[0], in[1]); },
       {x, y}},
      {"sub",
       [](const In& in) { return in[0].sub(in[1]); },
       [](const In& in) { return sub(in[0], in[1]); },
       {x, y}},
      {"mul",
       [](const In& in) { return in[0].mul(in[1]); },
       [](const In& in) { return mul(in[0], in[1]); },
       {x, y}},
      {"div",
       [](const In& in) { return in[0].div(in[1]); },
       [](const In& in) { return div(in[0], in[1]); },
       {x, positive}},
      {"matmul",
       [](const In& in) { return in[0].matmul(in[1]); },
       [](const In& in) { return matmul(in[0], in[1]); },
       {x, w}},
      {"pow",
       [](const In& in) { return in[0].pow(3.0); },
       [](const In& in) { return pow(in[0], 3.0); },
       {x}},
      {"clamp",
       [](const In& in) { return in[0].clamp(-0.5, 0.5); },
       [](const In& in) { return clamp(in[0], -0.5, 0.5); },
       {x}},
      {"neg",
       [](const In& in) { return in[0].neg(); },
       [](const In& in) { return neg(in[0]); },
       {x}},
      {"exp",
       [](const In& in) { return in[0].exp(); },
       [](const In& in) { return exp(in[0]); },
       {x}},
      {"log",
       [](const In& in) { return in[0].log(); },
       [](const In& in) { return log(in[0]); },
       {positive}},
      {"sqrt",
       [](const In& in) { return in[0].sqrt(); },
       [](const In& in) { return sqrt(in[0]); },
       {positive}},
      {"abs",
       [](const In& in) { return in[0].abs(); },
       [](const In& in) { return abs(in[0]); },
       {x}},
      {"square",
       [](const In& in) { return in[0].square(); },
       [](const In& in) { return square(in[0]); },
       {x}},
      {"tanh",
       [](const In& in) { return in[0].tanh(); },
       [](const In& in) { return tanh(in[0]); },
       {x}},
      {"sigmoid",
       [](const In& in) { return in[0].sigmoid(); },
       [](const In& in) { return sigmoid(in[0]); },
       {x}},
      {"relu",
       [](const In& in) { return in[0].relu(); },
       [](const In& in) { return relu(in[0]); },
       {x}},
      {"softmax",
       [](const In& in) { return in[0].softmax(1); },
       [](const In& in) { return softmax(in[0], 1); },
       {x}},
      {"log_softmax",
       [](const In& in) { return in[0].log_softmax(0); },
       [](const In& in) { return log_softmax(in[0], 0); },
       {x}},
      {"sum",
       [](const In& in) { return in[0].sum(); },
       [](const In& in) { return sum(in[0]); },
       {x}},
      {"sum(axis)",
       [](const In& in) { return in[0].sum(1, true); },
       [](const In& in) { return sum(in[0], 1, true); },
       {x}},
      {"mean",
       [](const In& in) { return in[0].mean(); },
       [](const In& in) { return mean(in[0]); },
       {x}},
      {"mean(axis)",
       [](const In& in) { return in[0].mean(-2); },
       [](const In& in) { return mean(in[0], -2); },
       {x}},
      {"logsumexp",
       [](const In& in) { return in[0].logsumexp(1); },
       [](const In& in) { return logsumexp(in[0], 1); },
       {x}},
      {"max values",
       [](const In& in) { return std::get<0>(in[0].max(1)); },
       [](const In& in) { return max(in[0], 1); },
       {x}},
      {"max indices",
       [](const In& in) { return std::get<1>(in[0].max(1, true)); },
       [](const In& in) { return argmax(in[0], 1, true); },
       {x}},
      {"min values",
       [](const In& in) { return std::get<0>(in[0].min(0, true)); },
       [](const In& in) { return min(in[0], 0, true); },
       {x}},
      {"min indices",
       [](const In& in) { return std::get<1>(in[0].min(0)); },
       [](const In& in) { return argmin(in[0], 0); },
       {x}},
      {"amax",
       [](const In& in) { return in[0].amax(1); },
       [](const In& in) { return amax(in[0], 1); },
       {x}},
      {"amin",
       [](const In& in) { return in[0].amin(0, true); },
       [](const In& in) { return amin(in[0], 0, true); },
       {x}},
      {"argmax",
       [](const In& in) { return in[0].argmax(); },
       [](const In& in) { return argmax(in[0]); },
       {x}},
      {"argmax(axis)",
       [](const In& in) { return in[0].argmax(1); },
       [](const In& in) { return argmax(in[0], 1); },
       {x}},
      {"argmin",
       [](const In& in) { return in[0].argmin(); },
       [](const In& in) { return argmin(in[0]); },
       {x}},
      {"argmin(axis)",
       [](const In& in) { return in[0].argmin(0, true); },
       [](const In& in) { return argmin(in[0], 0, true); },
       {x}},
      {"reshape",
       [](const In& in) {
         return in[0].reshape({2, -1});
       },
       [](const In& in) {
         return reshape(in[0], {2, -1});
       },
       {x}},
      {"view",
       [](const In& in) { return in[0].view({-1}); },
       [](const In& in) { return reshape(in[0], {-1}); },
       {x}},
      {"flatten",
       [](const In& in) { return in[0].flatten(1); },
       [](const In& in) { return flatten(in[0], 1); },
       {column}},
      {"unsqueeze",
       [](const In& in) { return in[0].unsqueeze(-1); },
       [](const In& in) { return unsqueeze(in[0], -1); },
       {x}},
      {"squeeze",
       [](const In& in) { return in[0].squeeze(); },
       [](const In& in) { return squeeze(in[0]); },
       {column}},
      {"squeeze(axis)",
       [](const In& in) { return in[0].squeeze(1); },
       [](const In& in) { return squeeze(in[0], 1); },
       {column}},
      {"t",
       [](const In& in) { return in[0].t(); },
       [](const In& in) { return transpose(in[0], 0, 1); },
       {x}},
      {"transpose",
       [](const In& in) { return in[0].transpose(0, 2); },
       [](const In& in) { return transpose(in[0], 0, 2); },
       {column}},
      {"permute",
       [](const In& in) {
         return in[0].permute({2, 0, 1});
       },
       [](const In& in) {
         return permute(in[0], {2, 0, 1});
       },
       {column}},
      {"expand",
       [](const In& in) {
         return in[0].expand({2, 3, 5, 4});
       },
       [](const In& in) {
         return expand(in[0], {2, 3, 5, 4});
       },
       {column}},
      {"slice",
       [](const In& in) { return in[0].slice(1, -3, 4, 2); },
       [](const In& in) { return slice(in[0], 1, -3, 4, 2); },
       {x}},
      {"narrow",
       [](const In& in) { return in[0].narrow(0, 1, 2); },
       [](const In& in) { return narrow(in[0], 0, 1, 2); },
       {x}},
      {"index_select",
       [](const In& in) { return in[0].index_select(0, in[1]); },
       [](const In& in) { return index_select(in[0], 0, in[1]); },
       {x, rows}},
      {"gather",
       [](const In& in) { return in[0].gather(1, in[1]); },
       [](const In& in) { return gather(in[0], 1, in[1]); },
       {x, picks}},
      {"eq",
       [](const In& in) { return in[0].eq(in[1]); },
       [](const In& in) { return eq(in[0], in[1]); },
       {rounded, rounded_too}},
      {"ne",
       [](const In& in) { return in[0].ne(in[1]); },
       [](const In& in) { return ne(in[0], in[1]); },
       {rounded, rounded_too}},
      {"lt",
       [](const In& in) { return in[0].lt(in[1]); },
       [](const In& in) { return lt(in[0], in[1]); },
       {rounded, rounded_too}},
      {"le",
       [](const In& in) { return in[0].le(in[1]); },
       [](const In& in) { return le(in[0], in[1]); },
       {rounded, rounded_too}},
      {"gt",
       [](const In& in) { return in[0].gt(in[1]); },
       [](const In& in) { return gt(in[0], in[1]); },
       {rounded, rounded_too}},
      {"ge",
       [](const In& in) { return in[0].ge(in[1]); },
       [](const In& in) { return ge(in[0], in[1]); },
       {rounded, rounded_too}},
      {"eq(number)",
       [](const In& in) { return in[0].eq(1.0); },
       [](const In& in) { return eq(in[0], 1.0); },
       {rounded}},
      {"ne(number)",
       [](const In& in) { return in[0].ne(1.0); },
       [](const In& in) { return ne(in[0], 1.0); },
       {rounded}},
      {"lt(number)",
       [](const In& in) { return in[0].lt(0.0); },
       [](const In& in) { return lt(in[0], 0.0); },
       {rounded}},
      {"le(number)",
       [](const In& in) { return in[0].le(0.0); },
       [](const In& in) { return le(in[0], 0.0); },
       {rounded}},
      {"gt(number)",
       [](const In& in) { return in[0].gt(-1.0); },
       [](const In& in) { return gt(in[0], -1.0); },
       {rounded}},
      {"ge(number)",
       [](const In& in) { return in[0].ge(-1.0); },
       [](const In& in) { return ge(in[0], -1.0); },
       {rounded}},
      {"logical_not",
       [](const In& in) { return in[0].logical_not(); },
       [](const In& in) { return logical_not(in[0]); },
       {rounded}},
      {"isnan",
       [](const In& in) { return in[0].isnan(); },
       [](const In& in) { return isnan(in[0]); },
       {log(x)}},
      {"masked_fill",
       [](const In& in) { return in[0].masked_fill(in[1], -2.5); },
       [](const In& in) { return masked_fill(in[0], in[1], -2.5); },
       {x, gt(rounded, 0.0)}},
      {"masked_select",
       [](const In& in) { return in[0].masked_select(in[1]); },
       [](const In& in) { return masked_select(in[0], in[1]); },
       {x, gt(rounded, 0.0)}},
      {"clone",
       [](const In& in) { return in[0].clone(); },
       [](const In& in) { return cast(in[0], in[0].dtype()); },
       {x}},
  };
}

// Leaves that require grad, for each floating input.
In leaves(const In& inputs) {
  In out;
  for (const Tensor& t : inputs) {
    out.push_back(is_floating(t.dtype()) ? t.copy().requires_grad(true) : t);
  }
  return out;
}

// The gradients of ⟨f(inputs), cotangent⟩ with respect to every floating input.
In gradients(const TensorFunction& f, const In& inputs, const Tensor& cotangent) {
  const In in = leaves(inputs);
  In wrt;
  for (const Tensor& t : in) {
    if (t.requires_grad()) wrt.push_back(t);
  }
  return grad(sum(f(in) * cotangent), wrt);
}

TEST(TensorMethods, GiveTheFreeFunctionsValuesAndGradientsBitwise) {
  const std::vector<MethodCase> cases = method_cases();
  ASSERT_EQ(cases.size(), 64u);
  Generator gen(11);
  for (const MethodCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Tensor got = c.method(c.inputs), want = c.free(c.inputs);
    ASSERT_EQ(got.shape(), want.shape());
    ASSERT_EQ(got.dtype(), want.dtype());
    EXPECT_EQ(got.to_vector(), want.to_vector());
    if (!is_floating(got.dtype())) continue;
    const Tensor cotangent = randn(got.shape(), gen, f64);
    const In got_grads = gradients(c.method, c.inputs, cotangent);
    const In want_grads = gradients(c.free, c.inputs, cotangent);
    ASSERT_EQ(got_grads.size(), want_grads.size());
    for (std::size_t i = 0; i < got_grads.size(); ++i) {
      EXPECT_EQ(got_grads[i].to_vector(), want_grads[i].to_vector()) << "input " << i;
    }
  }
}

TEST(TensorMethods, RecordTheCallersFileNotTheirOwn) {
  for (const MethodCase& c : method_cases()) {
    SCOPED_TRACE(c.name);
    Tape tape;
    const Tensor out = c.method(leaves(c.inputs));
    if (!is_floating(out.dtype())) continue;  // argmax, argmin and masks are never recorded
    const std::int64_t entry = tape.index_of(out);
    ASSERT_GE(entry, 0);
    EXPECT_TRUE(std::string(tape.entry(entry).location.file_name()).ends_with("methods_test.cpp"))
        << tape.entry(entry).location.file_name();
  }
}

TEST(TensorMethods, RecordTheCallersLine) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad(true);
  const auto [y, line] = std::pair(x.exp().sum(), __LINE__);
  EXPECT_EQ(tape.entries().size(), 2u);
  for (const TapeEntryView& entry : tape.entries()) EXPECT_EQ(entry.location.line(), line);
  EXPECT_EQ(std::string(tape.entry(tape.index_of(y)).op), "sum");
}

std::string at_line(int line) {
  return "methods_test.cpp:" + std::to_string(line);
}

TEST(TensorMethods, ErrorsNameTheCallersLine) {
  const Tensor x = zeros({2, 3});
  expect_error_containing([&] { x.unsqueeze(3); }, at_line(__LINE__));
  expect_error_containing([&] { x.argmax(2); }, at_line(__LINE__));
  expect_error_containing([&] { x.reshape({4, -1}); }, at_line(__LINE__));
  expect_error_containing([&] { x.narrow(1, 2, 2); }, at_line(__LINE__));
  expect_error_containing([&] { zeros({1, 2, 3}).t(); }, at_line(__LINE__));
  expect_error_containing(
      [&] {
        zeros({1, 2, 3}).t();
      },
      "at most 2 dimensions, got shape [1, 2, 3]");
}

TEST(TensorMethods, LibtorchsIntrospectionSpellings) {
  const Tensor x = tensor({{1.5, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  EXPECT_EQ(x.dim(), 2);
  EXPECT_EQ(x.sizes(), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(zeros(x.sizes()).shape(), x.shape());
  EXPECT_EQ(x.numel(), 6);
  EXPECT_EQ(x.size(-1), 3);
  EXPECT_EQ(x.sum().item<float>(), 21.5f);
  EXPECT_EQ(int64_tensor({-7}).item<std::int64_t>(), -7);
  EXPECT_EQ(x.contiguous().impl(), x.impl());
}

TEST(TensorMethods, TOfAVectorOrAScalarIsItself) {
  const Tensor v = tensor({1.0, 2.0, 3.0});
  EXPECT_EQ(v.t().impl(), v.impl());
  const Tensor s = full({}, 2.0);
  EXPECT_EQ(s.t().impl(), s.impl());
}

TEST(TensorMethods, ViewSharesStorageAndCloneCopiesOnTheGraph) {
  const Tensor x = tensor({1.0, 2.0, 3.0, 4.0}, f64).requires_grad(true);
  EXPECT_EQ(x.view({2, 2}).raw_data(), std::as_const(x).raw_data());
  const Tensor c = x.clone();
  EXPECT_NE(std::as_const(c).raw_data(), std::as_const(x).raw_data());
  EXPECT_TRUE(c.requires_grad());
  EXPECT_EQ(grad(sum(c * c), {x})[0].to_vector(), (std::vector<double>{2, 4, 6, 8}));
  const Tensor labels = int64_tensor({3, 1});
  const Tensor labels_copy = labels.clone();
  EXPECT_EQ(labels_copy.dtype(), i64);
  EXPECT_NE(labels_copy.raw_data(), labels.raw_data());
  EXPECT_EQ(labels_copy.to_vector(), labels.to_vector());
}

}  // namespace
}  // namespace tg
