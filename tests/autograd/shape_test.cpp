// Size arithmetic (issue 11 §1) and empty shapes (issue 10 §4).
//
// Sizes: a shape whose non-zero dims multiply past int64, a buffer past kMaxTensorBytes, and every
// op that derives a shape from its inputs' (broadcasting, reshape, matmul and its batch,
// reductions, concat, index_select, linear, the factories) must throw a tg::Error naming the op
// and the dims, or std::bad_alloc, before any memory is touched. These tests run under ASan: no
// test allocates more than a few bytes, so every bad_alloc here comes from the check, not the
// system. Empty tensors with huge dims must also come back at once, not after 2^62 empty steps.
//
// Empty shapes: values and gradients as PyTorch 1.13 gives them (float64; the cotangent of an
// output with n elements is 1, 2, …, n and the inputs are 0.5, 1, 1.5, …).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "autograd/allocator.h"
#include "tapegrad.h"

namespace tg {
namespace {

constexpr std::int64_t k31 = std::int64_t(1) << 31;
constexpr std::int64_t k40 = std::int64_t(1) << 40;
constexpr std::int64_t k60 = std::int64_t(1) << 60;
constexpr std::int64_t k62 = std::int64_t(1) << 62;

// Runs `call` and expects a tg::Error whose message contains every one of `words`.
void expect_error(const std::function<void()>& call, std::initializer_list<std::string> words) {
  try {
    call();
    ADD_FAILURE() << "expected a tg::Error mentioning " << *words.begin();
  } catch (const Error& e) {
    for (const std::string& word : words) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos)
          << "'" << word << "' missing from: " << e.what();
    }
  }
}

// Runs `call` and expects a std::bad_alloc that names the shape.
void expect_too_large(const std::function<void()>& call, const std::string& shape) {
  try {
    call();
    ADD_FAILURE() << "expected std::bad_alloc for " << shape;
  } catch (const std::bad_alloc& e) {
    EXPECT_NE(std::string(e.what()).find(shape), std::string::npos) << e.what();
  }
}

TEST(Sizes, ShapeRejectsDimsWhoseNonZeroProductOverflows) {
  expect_error(
      [] {
        Shape({k62, k62, 0});
      },
      {"Shape", "[4611686018427387904, 4611686018427387904, 0]"});
  expect_error([] { Shape({k62 + 1, 4}); }, {"Shape", "[4611686018427387905, 4]", "2^63 - 1"});
  expect_error([] { Shape({2, 3, -1}); }, {"Shape", "-1", "negative"});
  // An empty shape holds nothing, yet each shape derived from it by dropping its zero must fit.
  EXPECT_EQ(Shape({0, k31, k31}).numel(), 0);
  EXPECT_EQ(Shape({0, k31, k31}).without_axis(0).numel(), k62);
  EXPECT_EQ(Shape({std::numeric_limits<std::int64_t>::max(), 0, 1}).numel(), 0);

  Shape grown{k31, k31};
  expect_error([&] { grown.push_back(4, "unsqueeze"); },
               {"unsqueeze", "[2147483648, 2147483648, 4]"});
  EXPECT_EQ(grown.rank(), 2);
  grown.push_back(0);
  EXPECT_EQ(grown, (Shape{k31, k31, 0}));
  expect_error([&] { grown.with_dim(2, 4, "expand"); }, {"expand", "[2147483648, 2147483648, 4]"});
  expect_error([] { Shape({1, 1, 1, 1, 1, 1, 1, 1, 1}); }, {"Shape", "rank 9"});
}

TEST(Sizes, ByteCountsPastTheLimitAreBadAllocBeforeTheSystemIsAsked) {
  // 4·2^62 bytes wraps to 0 in 64 bits.
  expect_too_large([] { zeros({k62}); }, "[4611686018427387904]");
  expect_too_large([] { full({k62}, 1.0, f64); }, "[4611686018427387904]");
  expect_too_large([] { ones({k31, k31}); }, "[2147483648, 2147483648]");
  // Just past 1 TiB, without wrapping.
  const std::int64_t over = std::int64_t(kMaxTensorBytes / 8) + 1;
  expect_too_large([&] { empty({over}, f64); }, std::to_string(over));
  expect_too_large([&] { empty({over, 1}, i64); }, "int64");
  // The allocator itself: above its largest class (8 PiB once came back as a small block).
  EXPECT_THROW(detail::allocate_buffer(kMaxTensorBytes + 1), std::bad_alloc);
  EXPECT_THROW(detail::allocate_buffer(std::size_t(1) << 53), std::bad_alloc);
  EXPECT_THROW(detail::allocate_buffer(~std::size_t(0)), std::bad_alloc);
  void* block = detail::allocate_buffer(100);
  detail::release_buffer(block, 100);
}

TEST(Sizes, FactoriesCheckTheirCounts) {
  expect_error([] { arange(0.0, 1e300, 1e-300); }, {"arange", "2^63 - 1"});
  expect_error([] { arange(-1e308, 1e308, 1.0); }, {"arange"});
  expect_too_large([] { arange(0.0, 0x1p62); }, "[4611686018427387904]");
  expect_error([] { from_vector({}, {k62, k62, 0}); }, {"Shape"});
  EXPECT_EQ(from_vector({}, {k31, k31, 0}).shape(), (Shape{k31, k31, 0}));
  EXPECT_EQ(int64_tensor({}, {0, k62}).numel(), 0);
}

TEST(Sizes, ReshapeCannotPassItsCountCheckByWrapAround) {
  // (2^62 + 1)·4 wraps to 4: the shape itself is refused.
  expect_error([] { reshape(zeros({4}), {k62 + 1, 4}); }, {"[4611686018427387905, 4]"});
  expect_error([] { reshape(zeros({4}), {k62, 2, 2}); }, {"[4611686018427387904, 2, 2]"});
  EXPECT_EQ(reshape(zeros({0, 4}), {k62, 0}).shape(), (Shape{k62, 0}));
}

TEST(Sizes, BroadcastingChecksTheProductOfItsResult) {
  // Each operand is empty; the broadcast shape [2^62, 4, 0] is not a shape.
  const Tensor a = zeros({k62, 1, 0}, f64), b = zeros({1, 4, 0}, f64);
  expect_error([&] { add(a, b); }, {"add", "[4611686018427387904, 4, 0]"});
  expect_error([&] { mul(a, b); }, {"mul"});
  expect_error([&] { broadcast_to(zeros({1, 4, 0}), {k62, 4, 0}); }, {"Shape"});
}

TEST(Sizes, MatmulChecksItsProductAndBatch) {
  // [2^31, 0]·[0, 2^31] is 2^62 zeros: 2^64 bytes.
  expect_too_large([] { matmul(zeros({k31, 0}), zeros({0, k31})); }, "[2147483648, 2147483648]");
  expect_error(
      [] {
        matmul(zeros({k40, 1 << 20, 0}), zeros({0, 1 << 20}));
      },
      {"matmul", "[1099511627776, 1048576, 1048576]"});
  expect_error([] { matmul(zeros({1 << 20, 0}), zeros({k40, 0, 1 << 20})); }, {"matmul"});
  // A batch of 2^60 empty products comes back at once.
  const Tensor y = matmul(zeros({k60, 0, 3}, f64), zeros({3, 2}, f64));
  EXPECT_EQ(y.shape(), (Shape{k60, 0, 2}));
  EXPECT_EQ(matmul(zeros({k60, 3, 0}), zeros({k60, 0, 0})).shape(), (Shape{k60, 3, 0}));
}

TEST(Sizes, ReductionsOverHugeEmptyShapes) {
  // [0, 2^62, 4] is refused as a shape; [0, 2^31, 2^31] (a 93-byte safetensors file can declare
  // it) is a shape, but summing away its zero makes 2^62 floats.
  expect_error([] { zeros({0, k62, 4}); }, {"[0, 4611686018427387904, 4]"});
  const Tensor a = zeros({0, k31, k31});
  expect_too_large([&] { sum(a, 0); }, "[2147483648, 2147483648]");
  expect_too_large([&] { mean(a, 0, true); }, "[1, 2147483648, 2147483648]");
  EXPECT_EQ(sum(a, 1).shape(), (Shape{0, k31}));
  EXPECT_EQ(sum(a).item(), 0.0);
  EXPECT_TRUE(std::isnan(mean(a).item()));
}

TEST(Sizes, ShapeOpsOnHugeEmptyTensors) {
  const Tensor wide = zeros({k62, 0}, f64);
  EXPECT_EQ(slice(wide, 1, 0, 0).shape(), wide.shape());
  EXPECT_EQ(slice(wide, 0, 1, k62).shape(), (Shape{k62 - 1, 0}));
  EXPECT_EQ(slice(zeros({k60, 3, 0}), 1, 1, 2).shape(), (Shape{k60, 1, 0}));
  EXPECT_EQ(permute(zeros({k60, 0, 3}), {2, 0, 1}).shape(), (Shape{3, k60, 0}));
  EXPECT_EQ(transpose(wide).shape(), (Shape{0, k62}));
  EXPECT_EQ(index_select(wide, 1, int64_tensor({})).shape(), wide.shape());
  EXPECT_EQ(concat({wide, wide}, 1).shape(), wide.shape());

  // Growing an axis of an empty tensor can overflow the product of the others.
  expect_error(
      [] {
        index_select(zeros({1, k62, 0}), 0, int64_tensor({0, 0, 0, 0}));
      },
      {"index_select", "[4, 4611686018427387904, 0]"});
  expect_error([&] { concat({wide, wide}, 0); }, {"concat", "2^63 - 1"});
  expect_error(
      [] {
        concat({zeros({k60 / 2, 0, 8}), zeros({k60 / 2, 0, 8})}, 0);
      },
      {"concat", "[1152921504606846976, 0, 8]"});
  expect_error(
      [] {
        linear(zeros({k62, 0}), zeros({4, 0}));
      },
      {"linear", "[4611686018427387904, 4]"});
}

// ---- empty shapes: PyTorch's values and gradients ----

// 0.5, 1, 1.5, … in float64, requiring grad.
Tensor halves(const Shape& shape) {
  std::vector<double> values(std::size_t(shape.numel()));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.5 * double(i + 1);
  Tensor t = from_vector(values, shape, f64);
  t.requires_grad(true);
  return t;
}

// The gradients of `inputs` for the cotangent 1, 2, …, n of y.
std::vector<Tensor> vjp(const Tensor& y, const std::vector<Tensor>& inputs) {
  std::vector<double> seed(std::size_t(y.numel()));
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = double(i + 1);
  return grad(y, inputs, from_vector(seed, y.shape(), f64));
}

void expect_tensor(const Tensor& t, const Shape& shape, const std::vector<double>& values) {
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), shape);
  EXPECT_EQ(t.to_vector(), values) << t;
}

std::vector<double> zeros_of(std::size_t n) {
  return std::vector<double>(n, 0.0);
}

TEST(EmptyShapes, LinearWithNoInputFeaturesIsTheBiasRepeated) {
  const Tensor x = halves({3, 0}), w = halves({2, 0}), b = halves({2});
  const Tensor y = linear(x, w, b);
  expect_tensor(y, {3, 2}, {0.5, 1, 0.5, 1, 0.5, 1});
  const auto g = vjp(y, {x, w, b});
  expect_tensor(g[0], {3, 0}, {});
  expect_tensor(g[1], {2, 0}, {});
  expect_tensor(g[2], {2}, {9, 12});

  const Tensor x3 = halves({2, 3, 0});
  const Tensor y3 = linear(x3, w, b);
  expect_tensor(y3, {2, 3, 2}, {0.5, 1, 0.5, 1, 0.5, 1, 0.5, 1, 0.5, 1, 0.5, 1});
  const auto g3 = vjp(y3, {x3, w, b});
  expect_tensor(g3[0], {2, 3, 0}, {});
  expect_tensor(g3[1], {2, 0}, {});
  expect_tensor(g3[2], {2}, {36, 42});

  const Tensor y3_no_bias = linear(x3, w);
  expect_tensor(y3_no_bias, {2, 3, 2}, zeros_of(12));
  const auto g3_no_bias = vjp(y3_no_bias, {x3, w});
  expect_tensor(g3_no_bias[0], {2, 3, 0}, {});
  expect_tensor(g3_no_bias[1], {2, 0}, {});

  const Tensor x1 = halves({0});
  const Tensor y1 = linear(x1, w, b);
  expect_tensor(y1, {2}, {0.5, 1});
  const auto g1 = vjp(y1, {x1, w, b});
  expect_tensor(g1[0], {0}, {});
  expect_tensor(g1[2], {2}, {1, 2});
}

TEST(EmptyShapes, LinearWithNoOutputsOrNoRows) {
  const Tensor x = halves({3, 4});
  const Tensor w0 = halves({0, 4}), b0 = halves({0});
  const Tensor y = linear(x, w0, b0);
  expect_tensor(y, {3, 0}, {});
  const auto g = vjp(y, {x, w0, b0});
  expect_tensor(g[0], {3, 4}, zeros_of(12));
  expect_tensor(g[1], {0, 4}, {});
  expect_tensor(g[2], {0}, {});

  const Tensor w = halves({2, 4}), b = halves({2});
  for (const Shape& shape : {Shape{0, 4}, Shape{2, 0, 4}}) {
    const Tensor xe = halves(shape);
    const Tensor ye = linear(xe, w, b);
    expect_tensor(ye, shape.with_dim(shape.rank() - 1, 2), {});
    const auto ge = vjp(ye, {xe, w, b});
    expect_tensor(ge[0], shape, {});
    expect_tensor(ge[1], {2, 4}, zeros_of(8));
    expect_tensor(ge[2], {2}, {0, 0});
    const auto ge_no_bias = vjp(linear(xe, w), {xe, w});
    expect_tensor(ge_no_bias[1], {2, 4}, zeros_of(8));
  }
}

TEST(EmptyShapes, MatmulOverAnEmptyInnerDimensionIsZeros) {
  struct Case {
    Shape a, b, y;
  };
  for (const Case& c : {Case{{3, 0}, {0, 2}, {3, 2}}, Case{{2, 3, 0}, {2, 0, 2}, {2, 3, 2}},
                        Case{{2, 3, 0}, {0, 2}, {2, 3, 2}}, Case{{3, 0}, {2, 0, 2}, {2, 3, 2}}}) {
    SCOPED_TRACE(c.a.str() + " · " + c.b.str());
    const Tensor a = halves(c.a), b = halves(c.b);
    const Tensor y = matmul(a, b);
    expect_tensor(y, c.y, zeros_of(std::size_t(c.y.numel())));
    const auto g = vjp(y, {a, b});
    expect_tensor(g[0], c.a, {});
    expect_tensor(g[1], c.b, {});
  }
}

TEST(EmptyShapes, MatmulWithAnEmptyOuterDimensionOrBatch) {
  struct Case {
    Shape a, b, y;
  };
  for (const Case& c : {Case{{0, 4}, {4, 2}, {0, 2}}, Case{{3, 4}, {4, 0}, {3, 0}},
                        Case{{0, 3, 4}, {4, 2}, {0, 3, 2}}, Case{{3, 4}, {0, 4, 2}, {0, 3, 2}},
                        Case{{0, 3, 4}, {0, 4, 2}, {0, 3, 2}}, Case{{2, 0, 4}, {4, 2}, {2, 0, 2}},
                        Case{{2, 3, 4}, {2, 4, 0}, {2, 3, 0}}}) {
    SCOPED_TRACE(c.a.str() + " · " + c.b.str());
    const Tensor a = halves(c.a), b = halves(c.b);
    const Tensor y = matmul(a, b);
    expect_tensor(y, c.y, {});
    const auto g = vjp(y, {a, b});
    expect_tensor(g[0], c.a, zeros_of(std::size_t(c.a.numel())));
    expect_tensor(g[1], c.b, zeros_of(std::size_t(c.b.numel())));
  }
}

TEST(EmptyShapes, ConcatWithEmptyPieces) {
  const Tensor a = halves({2, 3}), e = halves({0, 3}), c = halves({1, 3});
  const Tensor y = concat({a, e, c});
  expect_tensor(y, {3, 3}, {0.5, 1, 1.5, 2, 2.5, 3, 0.5, 1, 1.5});
  const auto g = vjp(y, {a, e, c});
  expect_tensor(g[0], {2, 3}, {1, 2, 3, 4, 5, 6});
  expect_tensor(g[1], {0, 3}, {});
  expect_tensor(g[2], {1, 3}, {7, 8, 9});

  const Tensor left = halves({2, 0}), right = halves({2, 2});
  const Tensor y1 = concat({left, right}, 1);
  expect_tensor(y1, {2, 2}, {0.5, 1, 1.5, 2});
  const auto g1 = vjp(y1, {left, right});
  expect_tensor(g1[0], {2, 0}, {});
  expect_tensor(g1[1], {2, 2}, {1, 2, 3, 4});

  // PyTorch lets a [0] tensor join a concatenation of any rank, as nothing.
  const Tensor start = halves({0});
  const Tensor y2 = concat({start, c, start}, -1);
  expect_tensor(y2, {1, 3}, {0.5, 1, 1.5});
  const auto g2 = vjp(y2, {start, c});
  expect_tensor(g2[0], {0}, {});
  expect_tensor(g2[1], {1, 3}, {1, 2, 3});
  expect_tensor(concat({start, start}), {0}, {});
  expect_error([&] { concat({start, c, halves({3})}); }, {"concat", "tensor 2", "[3]"});
}

TEST(EmptyShapes, ShapeOpsKeepEmptyDimensionsAndTheirGradients) {
  const Tensor x = halves({3, 0, 2});
  const Tensor p = permute(x, {2, 0, 1});
  expect_tensor(p, {2, 3, 0}, {});
  expect_tensor(vjp(p, {x})[0], {3, 0, 2}, {});
  expect_tensor(transpose(x, 0, 1), {0, 3, 2}, {});
  const Tensor r = reshape(x, {0, 6});
  expect_tensor(r, {0, 6}, {});
  expect_tensor(vjp(r, {x})[0], {3, 0, 2}, {});

  const Tensor m = halves({3, 4});
  const Tensor s = slice(m, 1, 2, 2);
  expect_tensor(s, {3, 0}, {});
  expect_tensor(vjp(s, {m})[0], {3, 4}, zeros_of(12));

  const Tensor picked = index_select(m, 0, int64_tensor({}));
  expect_tensor(picked, {0, 4}, {});
  expect_tensor(vjp(picked, {m})[0], {3, 4}, zeros_of(12));
  const Tensor from_empty = halves({0, 4});
  const Tensor columns = index_select(from_empty, 1, int64_tensor({3, 3}));
  expect_tensor(columns, {0, 2}, {});
  expect_tensor(vjp(columns, {from_empty})[0], {0, 4}, {});
}

TEST(EmptyShapes, SecondOrderThroughEmptyProducts) {
  // d/dx of ⟨∂L/∂W, v⟩ for L = Σ linear(x, W, b)² with in_features 0: every piece is empty or
  // zero, and the graph of the gradient must still build.
  const Tensor x = halves({3, 0}), w = halves({2, 0}), b = halves({2});
  const Tensor loss = sum(pow(linear(x, w, b), 2.0));
  EXPECT_EQ(loss.item(), 3 * (0.25 + 1.0));
  const auto first = grad(loss, {b, x}, {}, BackwardOptions{false, true});
  expect_tensor(first[0], {2}, {3, 6});
  const auto second = grad(sum(first[0]), {b});
  expect_tensor(second[0], {2}, {6, 6});
}

TEST(Sizes, RunTimeShapesFromAVectorOfDims) {
  const std::vector<std::int64_t> dims{2, 0, 3};
  EXPECT_EQ(zeros(dims).shape(), Shape({2, 0, 3}));
  EXPECT_EQ(from_vector({1, 2, 3, 4}, std::vector<std::int64_t>{2, 2}).at({1, 0}), 3.0);
  const std::vector<std::int64_t> negative{2, -1};
  EXPECT_THROW(zeros(negative), Error);
}

}  // namespace
}  // namespace tg
