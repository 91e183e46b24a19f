// pad and interpolate (ops/resample.cpp): closed-form values, edge cases and errors. PyTorch's
// answers for every option are replayed from tests/reference/pool.json by pool_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tapegrad.h"
#include "tests/expect_error.h"

namespace tg {
namespace {

using test_support::expect_error_at;
using test_support::expect_error_containing;

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor leaf(std::vector<double> values, Shape shape, DType dtype = f64) {
  return from_vector(values, shape, dtype).requires_grad(true);
}

InterpolateOptions by_size(std::int64_t h, std::int64_t w, InterpolateMode mode,
                           bool align_corners = false) {
  InterpolateOptions o;
  o.size = Size2{h, w};
  o.mode = mode;
  o.align_corners = align_corners;
  return o;
}

TEST(Pad, ConstantPadsAndCrops) {
  for (DType dtype : {f64, f32}) {
    const Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3}, dtype);
    EXPECT_EQ(pad(x, {1, -1}, PadMode::constant, 9).to_vector(),
              (std::vector<double>{9, 1, 2, 9, 4, 5}));
    const Tensor y = pad(x, {0, 1, 1, 0}, PadMode::constant, -1);
    EXPECT_EQ(y.shape(), (Shape{3, 4}));
    EXPECT_EQ(y.to_vector(), (std::vector<double>{-1, -1, -1, -1, 1, 2, 3, -1, 4, 5, 6, -1}));
    // The gradient is g cropped back; the value gets none.
    const Tensor g = grad(sum(y * y), {x})[0];
    EXPECT_EQ(g.to_vector(), (std::vector<double>{2, 4, 6, 8, 10, 12}));
  }
  // A copied −0 stays −0; a NaN value fills as any other.
  EXPECT_TRUE(std::signbit(pad(leaf({-0.0}, {1}), {1, 0}).to_vector()[1]));
  EXPECT_TRUE(
      std::isnan(pad(leaf({1.0}, {1}), {1, 0}, PadMode::constant, std::nan("")).to_vector()[0]));
  // Crops only may leave a dimension empty (PyTorch).
  EXPECT_EQ(pad(zeros({2, 3}, f64), {-2, -1}).shape(), (Shape{2, 0}));
  // An empty dimension may be padded with a value.
  EXPECT_EQ(pad(zeros({2, 0}, f64), {1, 1}, PadMode::constant, 3).to_vector(),
            (std::vector<double>{3, 3, 3, 3}));
}

TEST(Pad, ReflectAndReplicate) {
  const Tensor x = leaf({1, 2, 3}, {1, 1, 3});
  EXPECT_EQ(pad(x, {2, 2}, PadMode::reflect).to_vector(),
            (std::vector<double>{3, 2, 1, 2, 3, 2, 1}));
  EXPECT_EQ(pad(x, {2, 1}, PadMode::replicate).to_vector(),
            (std::vector<double>{1, 1, 1, 2, 3, 3}));
  // Gradients add the mirrored and repeated positions back.
  EXPECT_EQ(grad(sum(pad(x, {2, 2}, PadMode::reflect)), {x})[0].to_vector(),
            (std::vector<double>{2, 3, 2}));
  EXPECT_EQ(grad(sum(pad(x, {2, 1}, PadMode::replicate)), {x})[0].to_vector(),
            (std::vector<double>{3, 1, 2}));
  // 2-D with 4 amounts on a 3-D input (unbatched), negative amounts crop.
  const Tensor m = leaf({1, 2, 3, 4}, {1, 2, 2});
  EXPECT_EQ(pad(m, {1, 0, 0, 1}, PadMode::reflect).to_vector(),
            (std::vector<double>{2, 1, 2, 4, 3, 4, 2, 1, 2}));
  EXPECT_EQ(pad(x, {-1, 1}, PadMode::replicate).to_vector(), (std::vector<double>{2, 3, 3}));
  // An empty batch is fine.
  EXPECT_EQ(pad(zeros({0, 2, 3}, f64), {1, 1}, PadMode::reflect).shape(), (Shape{0, 2, 5}));
}

TEST(Pad, NonFiniteValuesMoveAsTheyAre) {
  const Tensor x = leaf({kInf, -kInf}, {1, 1, 2});
  const std::vector<double> y = pad(x, {1, 1}, PadMode::replicate).to_vector();
  EXPECT_EQ(y, (std::vector<double>{kInf, kInf, -kInf, -kInf}));
  const std::vector<double> z = pad(x, {1, 0}, PadMode::constant, -kInf).to_vector();
  EXPECT_EQ(z, (std::vector<double>{-kInf, kInf, -kInf}));
}

TEST(Interpolate, NearestPicksPyTorchsSource) {
  const Tensor x = leaf({1, 2, 3}, {1, 1, 1, 3});
  // 3 → 5: src = ⌊o·0.6⌋ = 0, 0, 1, 1, 2.
  EXPECT_EQ(interpolate(x, by_size(1, 5, InterpolateMode::nearest)).to_vector(),
            (std::vector<double>{1, 1, 2, 2, 3}));
  // 3 → 2: src = ⌊o·1.5⌋ = 0, 1.
  EXPECT_EQ(interpolate(x, by_size(1, 2, InterpolateMode::nearest)).to_vector(),
            (std::vector<double>{1, 2}));
  InterpolateOptions o;
  o.scale_factor = std::array<double, 2>{1.0, 2.0};
  const Tensor y = interpolate(x, o);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(grad(sum(y), {x})[0].to_vector(), (std::vector<double>{2, 2, 2}));
}

TEST(Interpolate, BilinearHalfPixelAndAlignCorners) {
  const Tensor x = leaf({0, 4}, {1, 1, 1, 2});
  // Half-pixel: 2 → 4, src = max((o + ½)/2 − ½, 0) = 0, 0.25, 0.75, 1.25 (clamped taps).
  EXPECT_EQ(interpolate(x, by_size(1, 4, InterpolateMode::bilinear)).to_vector(),
            (std::vector<double>{0, 1, 3, 4}));
  // align_corners: src = o·(2 − 1)/(3 − 1) = 0, 0.5, 1.
  const Tensor y = interpolate(x, by_size(1, 3, InterpolateMode::bilinear, true));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{0, 2, 4}));
  EXPECT_EQ(grad(sum(y), {x})[0].to_vector(), (std::vector<double>{1.5, 1.5}));
  // One output with align_corners reads the corner.
  EXPECT_EQ(interpolate(x, by_size(1, 1, InterpolateMode::bilinear, true)).to_vector(),
            (std::vector<double>{0}));
}

TEST(Interpolate, InfNextToATapOfWeightZeroIsNaNAsPyTorch) {
  const Tensor x = leaf({kInf, 1, 2}, {1, 1, 1, 3});
  const std::vector<double> y =
      interpolate(x, by_size(1, 3, InterpolateMode::bilinear)).to_vector();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 1);
  EXPECT_EQ(y[2], 2);
}

TEST(Interpolate, EmptyBatch) {
  const Tensor x = zeros({0, 2, 3, 3}, f64).requires_grad(true);
  const Tensor y = interpolate(x, by_size(4, 5, InterpolateMode::bilinear));
  EXPECT_EQ(y.shape(), (Shape{0, 2, 4, 5}));
  EXPECT_EQ(grad(sum(y), {x})[0].shape(), (Shape{0, 2, 3, 3}));
}

TEST(ResampleErrors, NameTheOpTheShapesAndTheCaller) {
  const std::string file = __FILE__;
  const Tensor x = zeros({1, 2, 3}, f64);
  expect_error_at([&] { pad(x, {1}); }, "pad", file);
  expect_error_at([&] { pad(x, {1, 1, 1, 1, 1, 1, 1, 1}); }, "pad", file);
  expect_error_at([&] { pad(x, {3, 0}, PadMode::reflect); }, "pad", file);
  expect_error_at([&] { pad(x, {1, 1}, PadMode::reflect, 2.0); }, "pad", file);
  expect_error_at([&] { pad(zeros({3}, f64), {1, 1}, PadMode::replicate); }, "pad", file);
  expect_error_at([&] { pad(x, {1, 1, 1, 1, 1, 1}, PadMode::reflect); }, "pad", file);
  expect_error_at([&] { pad(x, {-2, -2}); }, "pad", file);
  expect_error_at([&] { pad(zeros({1, 0, 3}, f64), {1, 1}, PadMode::replicate); }, "pad", file);
  expect_error_at([&] { pad(zeros({2, 2}, f32), {1, 1}, PadMode::constant, 1e300); }, "pad", file);
  expect_error_at([&] { pad(zeros({2, 2}, i64), {1, 1}); }, "pad", file);
  expect_error_containing([&] { pad(x, {3, 0}, PadMode::reflect); }, "less than its size 3");
  // Crops larger than the dimension, even where the other side pads more (PyTorch crops first).
  expect_error_containing(
      [&] {
        pad(zeros({2, 2, 2, 1}, f64), {-2, 4, -1, 4});
      },
      "crops more than its size 1");
  expect_error_containing(
      [&] {
        pad(zeros({1, 1, 3, 3}, f64), {-(std::int64_t(1) << 62), std::int64_t(1) << 62});
      },
      "crops more than its size 3");
  EXPECT_EQ(pad(x, {-3, 4}).shape(), (Shape{1, 2, 4}));

  // Outputs past the 1 TiB a tensor may hold fail before any table is built.
  expect_error_containing(
      [&] {
        adaptive_max_pool2d(zeros({1, 1, 3, 3}, f64), {1 << 30, 1 << 30});
      },
      "exceeds the");
  expect_error_at(
      [&] {
        adaptive_avg_pool2d(zeros({1, 1, 3, 3}, f32), {std::int64_t(1) << 62, 1});
      },
      "adaptive_avg_pool2d", file);

  const Tensor img = zeros({1, 2, 3, 3}, f64);
  expect_error_at([&] { interpolate(x, by_size(2, 2, InterpolateMode::nearest)); }, "interpolate",
                  file);
  expect_error_at([&] { interpolate(img, InterpolateOptions{}); }, "interpolate", file);
  InterpolateOptions both = by_size(2, 2, InterpolateMode::nearest);
  both.scale_factor = std::array<double, 2>{2, 2};
  expect_error_at([&] { interpolate(img, both); }, "interpolate", file);
  expect_error_at([&] { interpolate(img, by_size(2, 2, InterpolateMode::nearest, true)); },
                  "interpolate", file);
  expect_error_at([&] { interpolate(img, by_size(0, 2, InterpolateMode::bilinear)); },
                  "interpolate", file);
  InterpolateOptions tiny;
  tiny.scale_factor = std::array<double, 2>{0.2, 1.0};
  expect_error_at([&] { interpolate(img, tiny); }, "interpolate", file);
  InterpolateOptions nan_factor;
  nan_factor.scale_factor = std::array<double, 2>{std::nan(""), 1.0};
  expect_error_at([&] { interpolate(img, nan_factor); }, "interpolate", file);
  expect_error_at(
      [&] {
        interpolate(zeros({1, 0, 3, 3}, f64), by_size(2, 2, InterpolateMode::nearest));
      },
      "interpolate", file);
  expect_error_containing([&] { interpolate(img, InterpolateOptions{}); },
                          "exactly one of size and scale_factor");
}

}  // namespace
}  // namespace tg
