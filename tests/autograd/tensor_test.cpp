#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "../expect_error.h"
#include "tapegrad.h"

namespace tg {
namespace {

TEST(Tensor, FactoriesFillShapeAndDtype) {
  const Tensor z = zeros({2, 3}, f64);
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.dtype(), f64);
  EXPECT_EQ(z.to_vector(), std::vector<double>(6, 0.0));
  EXPECT_EQ(ones({2}).to_vector(), std::vector<double>({1, 1}));
  EXPECT_EQ(full({3}, 2.5).to_vector(), std::vector<double>({2.5, 2.5, 2.5}));
  EXPECT_EQ(arange(4).to_vector(), std::vector<double>({0, 1, 2, 3}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25).to_vector(), std::vector<double>({1, 1.25, 1.5, 1.75}));
  const Tensor m = tensor({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(m.shape(), Shape({2, 3}));
  EXPECT_EQ(m.at({1, 2}), 6.0);
  EXPECT_EQ(int64_tensor({3, 1}).dtype(), i64);
  EXPECT_EQ(full({}, 7.0).rank(), 0);
  EXPECT_EQ(full({}, 7.0).item(), 7.0);
  EXPECT_THROW(from_vector({1, 2, 3}, {2, 2}), Error);
  EXPECT_THROW(tensor({{1, 2}, {3}}), Error);
}

TEST(Tensor, SeededRandomNumbersRepeatAndHaveTheRightMoments) {
  Generator a(42), b(42), c(43);
  EXPECT_EQ(randn({5}, a).to_vector(), randn({5}, b).to_vector());
  EXPECT_NE(randn({5}, a).to_vector(), randn({5}, c).to_vector());
  Generator gen(1);
  const std::vector<double> v = randn({20000}, gen, f64).to_vector();
  double mean = 0, square = 0;
  for (double x : v) mean += x / double(v.size());
  for (double x : v) square += (x - mean) * (x - mean) / double(v.size());
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(std::sqrt(square), 1.0, 0.03);
  for (double x : uniform({1000}, gen, -1.0, 3.0).to_vector()) {
    EXPECT_GE(x, -1.0);
    EXPECT_LT(x, 3.0);
  }
}

TEST(Tensor, CopiesShareValueAndGradient) {
  Tensor a = tensor({1, 2, 3}).requires_grad(true);
  Tensor b = a;
  b.data<float>()[0] = 10;
  EXPECT_EQ(a.at({0}), 10.0);
  sum(b * b).backward();
  EXPECT_EQ(a.grad().to_vector(), std::vector<double>({20, 4, 6}));
  const Tensor d = a.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.raw_data(), a.raw_data());
  const Tensor c = a.copy();
  EXPECT_NE(c.raw_data(), a.raw_data());
  EXPECT_EQ(c.to_vector(), a.to_vector());
}

TEST(Tensor, AnUndefinedTensorSaysSoWhenUsed) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  const auto& expect_message = test_support::expect_error_containing;
  const std::string undefined = ": the tensor is undefined (default-constructed or moved from)";
  expect_message([&] { (void)t.grad(); }, "Tensor::grad" + undefined);
  expect_message([&] { t.zero_grad(); }, "Tensor::zero_grad" + undefined);
  expect_message([&] { t.requires_grad(true); }, "Tensor::requires_grad" + undefined);
  expect_message([&] { (void)t.shape(); }, "Tensor::shape" + undefined);
  expect_message([&] { (void)t.dtype(); }, "Tensor::dtype" + undefined);
  expect_message([&] { (void)t.version(); }, "Tensor::version" + undefined);
  expect_message([&] { (void)t.detach(); }, "Tensor::detach" + undefined);
}

TEST(Tensor, ConversionAndElementAccess) {
  const Tensor x = tensor({1.5, -2.25});
  const Tensor y = x.to(f64);
  EXPECT_EQ(y.dtype(), f64);
  EXPECT_EQ(y.to_vector(), std::vector<double>({1.5, -2.25}));
  EXPECT_THROW(x.item(), Error);
  EXPECT_THROW(x.at({2}), Error);
  EXPECT_THROW(x.at({0, 0}), Error);
  EXPECT_THROW(x.data<double>(), Error);
  EXPECT_THROW(Tensor().shape(), Error);
  EXPECT_THROW(int64_tensor({1}).requires_grad(true), Error);
  // Values int64 cannot hold are refused rather than converted with undefined behaviour.
  EXPECT_EQ(tensor({2.9, -2.9}).to(i64).to_vector(), std::vector<double>({2, -2}));
  EXPECT_THROW(tensor({NAN}).to(i64), Error);
  EXPECT_THROW(full({1}, 1e30, i64), Error);
}

TEST(Tensor, PrintsLikePyTorch) {
  EXPECT_EQ(tensor({{0.09003057, 0.24472847, 0.66524096}}).str(),
            "tensor([[0.0900, 0.2447, 0.6652]])");
  EXPECT_EQ(tensor({1, 2, 3}).str(), "tensor([1., 2., 3.])");
  EXPECT_EQ(tensor({{1, -2}, {3, 4}}).str(), "tensor([[ 1., -2.],\n        [ 3.,  4.]])");
  EXPECT_EQ(tensor({0.5, 1.25}, f64).str(), "tensor([0.5000, 1.2500], dtype=float64)");
  EXPECT_EQ(tensor({1e-5, 1.0}).str(), "tensor([1.0000e-05, 1.0000e+00])");
  EXPECT_EQ(full({}, 3.5).str(), "tensor(3.5000)");
  EXPECT_EQ(int64_tensor({3, 10}).str(), "tensor([ 3, 10], dtype=int64)");
  Tensor x = tensor({1, 2}).requires_grad(true);
  EXPECT_EQ(x.str(), "tensor([1., 2.], requires_grad=true)");
  EXPECT_EQ((x * x).str(), "tensor([1., 4.], grad_fn=<mul>)");
  EXPECT_EQ(zeros({2, 1, 2}).str(), "tensor([[[0., 0.]],\n\n        [[0., 0.]]])");
  const std::string big = arange(2000).str();
  EXPECT_NE(big.find("0.,    1.,    2., ..., 1997., 1998., 1999."), std::string::npos) << big;
  EXPECT_EQ(Tensor().str(), "tensor(undefined)");
}

TEST(Shape, BroadcastsLikeNumPyAndNamesTheOpOnFailure) {
  EXPECT_EQ(broadcast_shapes({2, 1, 3}, {4, 1}, "op"), Shape({2, 4, 3}));
  EXPECT_EQ(broadcast_shapes({}, {3}, "op"), Shape({3}));
  try {
    broadcast_shapes({2, 3}, {4}, "add");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: shapes [2, 3] and [4] do not broadcast"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(Shape({1, 2, 3, 4, 5, 6, 7, 8, 9}), Error);
  EXPECT_THROW(Shape({-1}), Error);
}

}  // namespace
}  // namespace tg
