// A tiny interpreter: bytes choose leaf tensors, then ops on the top of a stack, then a
// backward pass. Dimensions are mostly small but also zero or huge, values include ±inf, NaN,
// denormals and ±3e38, reshapes use −1, and custom ops misuse their contexts. Invalid
// combinations must raise tg::Error, sizes too large must raise std::bad_alloc (memory_budget.cpp
// caps the heap at 64 MiB); nothing may crash, read out of bounds or hit undefined behaviour.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <new>
#include <span>
#include <vector>

#include "tapegrad.h"

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSpecialValues[] = {kInf,
                                     -kInf,
                                     std::numeric_limits<double>::quiet_NaN(),
                                     std::numeric_limits<double>::denorm_min(),
                                     -1e-310,
                                     1e-40,  // a float32 denormal
                                     3e38,
                                     -3e38,
                                     1e308,
                                     -0.0,
                                     std::numeric_limits<double>::max(),
                                     std::numeric_limits<double>::min(),
                                     88.8,  // exp overflows float32 just above
                                     -745.2,
                                     1e-8,
                                     0.5};

constexpr std::int64_t kHugeDims[] = {std::int64_t(1) << 31,
                                      (std::int64_t(1) << 32) + 1,
                                      std::int64_t(1) << 40,
                                      std::int64_t(1) << 62,
                                      3037000500,  // squared, just past 2^63
                                      std::numeric_limits<std::int64_t>::max(),
                                      1 << 16,
                                      1 << 20};

class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool more() const { return at_ < size_; }
  std::uint8_t next() { return at_ < size_ ? data_[at_++] : 0; }
  std::int64_t small(int n) { return std::int64_t(next() % n); }
  std::int64_t axis() { return std::int64_t(std::int8_t(next()) % 4); }  // out of range too
  // Mostly below 5; one draw in eight is huge.
  std::int64_t dim() {
    const std::uint8_t b = next();
    return b < 224 ? b % 5 : kHugeDims[b % std::size(kHugeDims)];
  }
  // A dimension for reshape: −1 (inferred) or −2 (invalid) as well.
  std::int64_t reshape_dim() {
    const std::uint8_t b = next();
    return b < 32 ? -1 - b % 2 : dim();
  }
  // Mostly in [−4, 4]; one draw in sixteen is special.
  double value() {
    const std::uint8_t b = next();
    return b < 240 ? (double(b) - 128.0) / 32.0 : kSpecialValues[b % std::size(kSpecialValues)];
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

constexpr std::int64_t kMaxFootprint = 4096;

// The product of the non-zero dimensions, saturating: an empty tensor can still make a huge
// product with another operand.
std::int64_t footprint(const tg::Shape& shape) {
  std::int64_t product = 1;
  for (std::int64_t d : shape) {
    if (__builtin_mul_overflow(product, std::max<std::int64_t>(d, 1), &product)) {
      return std::numeric_limits<std::int64_t>::max();
    }
  }
  return product;
}

tg::Tensor leaf(Bytes& in) {
  std::vector<std::int64_t> dims(std::size_t(in.small(4)));
  for (std::int64_t& d : dims) d = in.dim();
  const tg::Shape shape{std::span<const std::int64_t>(dims)};
  const tg::DType dtype = in.next() % 2 ? tg::f32 : tg::f64;
  // Too large to fill from the input: one value, if it can be allocated at all.
  if (footprint(shape) > kMaxFootprint)
    return tg::full(shape, in.value(), dtype).requires_grad(true);
  std::vector<double> values(std::size_t(shape.numel()));
  for (double& v : values) v = in.value();
  return tg::from_vector(values, shape, dtype).requires_grad(true);
}

// What the next custom op does wrong; its functions are plain function pointers, so they read
// it from here.
struct Misuse {
  std::int64_t kind = 0;
  std::size_t index = 0;
};
Misuse misuse;

struct Misbehaving {
  static tg::Tensor forward(tg::ForwardContext& ctx) {
    switch (misuse.kind) {
      case 0:
        return tg::Tensor();
      case 1:
        return ctx.input(misuse.index) * 2.0;
      case 2:
        for (std::size_t i = 0; i < misuse.index; ++i) ctx.save(ctx.input(0));
        return ctx.input(0) * 2.0;
      default:
        ctx.save(ctx.input(0));
        return ctx.input(0) * ctx.input(1);
    }
  }
  static void backward(tg::BackwardContext& ctx) {
    switch (misuse.kind) {
      case 3:
        ctx.set_grad(0, ctx.saved(misuse.index));
        break;
      case 4:
        ctx.set_grad(misuse.index, ctx.grad_output());
        break;
      case 5:
        if (ctx.needs_grad(misuse.index)) ctx.set_grad(0, ctx.grad_output());
        break;
      case 6:
        ctx.set_grad(0, ctx.input(misuse.index) * ctx.grad_output());
        break;
      case 7:  // no gradient at all
        break;
      case 8:
        ctx.set_grad(0, tg::Tensor());
        break;
      case 9:
        ctx.set_grad(1, tg::sum(ctx.grad_output()));
        break;
      default:
        ctx.set_grad(0, ctx.grad_output() * ctx.input(1));
        ctx.set_grad(1, ctx.grad_output() * ctx.saved(0));
    }
  }
};

const tg::CustomOp misbehaving{"misbehaving", "dx = g ⊙ y, dy = g ⊙ x (unless misused)",
                               Misbehaving::forward, Misbehaving::backward};

tg::Tensor apply(Bytes& in, const tg::Tensor& a, const tg::Tensor& b) {
  switch (in.small(33)) {
    case 0:
      return a + b;
    case 1:
      return a - b;
    case 2:
      return a * b;
    case 3:
      return a / b;
    case 4:
      return tg::exp(a);
    case 5:
      return tg::log(a);
    case 6:
      return tg::sqrt(a);
    case 7:
      return tg::tanh(a);
    case 8:
      return tg::sigmoid(a);
    case 9:
      return tg::relu(a) + tg::abs(b);
    case 10:
      return tg::clamp(a, in.value(), in.value());
    case 11:
      return tg::pow(a, in.value());
    case 12:
      return tg::sum(a, in.axis(), in.next() % 2);
    case 13:
      return tg::mean(a, in.axis(), in.next() % 2);
    case 14:
      return tg::max(a, in.axis(), in.next() % 2);
    case 15:
      return tg::logsumexp(a, in.axis(), in.next() % 2);
    case 16:
      return tg::softmax(a, in.axis());
    case 17:
      return tg::log_softmax(a, in.axis());
    case 18:
      return tg::reshape(a, {in.reshape_dim(), in.reshape_dim()});
    case 19:
      return tg::transpose(a, in.axis(), in.axis());
    case 20:
      return tg::slice(a, in.axis(), in.small(4) - 1, in.small(5));
    case 21:
      return tg::concat({a, b}, in.axis());
    case 22:
      return tg::index_select(a, in.axis(), tg::int64_tensor({in.small(5) - 1, in.small(4)}));
    case 23:
      return tg::matmul(a, b);
    case 24:
      return tg::cross_entropy(a, tg::int64_tensor({in.small(4), in.small(4)}));
    case 25:
      return tg::maximum(a, b);
    case 26:
      return tg::minimum(a, b);
    case 27:
      return tg::softplus(a) + tg::log1p(b);
    case 28:
      return tg::leaky_relu(a, in.value());
    case 29:
      return tg::sin(a) * tg::cos(b);
    case 31:
      return tg::reshape(a, {in.reshape_dim(), in.reshape_dim(), in.reshape_dim()});
    case 32: {
      misuse = {in.small(11), std::size_t(in.small(12))};
      tg::Tensor y = misbehaving(a, b);
      tg::sum(y).backward();
      return y;
    }
    default:
      return tg::mse_loss(a, b.to(a.dtype()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  std::vector<tg::Tensor> stack;
  // Too large, or a shape whose size overflows: the expected ways for a leaf or an op to fail.
  const auto expected = [](auto&& step) {
    try {
      step();
    } catch (const tg::Error&) {
    } catch (const std::bad_alloc&) {
    }
  };
  expected([&] { stack = {leaf(in), leaf(in)}; });
  if (stack.empty()) return 0;
  while (in.more() && stack.size() < 64) {
    const tg::Tensor& a = stack[stack.size() - 1 - std::size_t(in.small(2))];
    const tg::Tensor& b = stack[stack.size() - 1 - std::size_t(in.small(2))];
    expected([&] {
      tg::Tensor result = apply(in, a, b);
      // Concatenation and broadcasting can grow sizes geometrically over 64 steps; what matters
      // here is which ops meet, not their size, so large results are not kept. An empty tensor
      // counts its other dimensions: [49152, 0] times [0, 12288] is a 600-million-element zero.
      if (footprint(result.shape()) <= kMaxFootprint) stack.push_back(std::move(result));
    });
  }
  expected([&] { tg::sum(stack.back()).backward(); });
  return 0;
}
