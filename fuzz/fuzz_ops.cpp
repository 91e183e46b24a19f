// A tiny interpreter: bytes choose small leaf tensors, then ops on the top of a stack, then a
// backward pass. Invalid combinations must raise tg::Error; nothing may crash, read out of
// bounds or hit undefined behaviour.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tapegrad.h"

namespace {

class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool more() const { return at_ < size_; }
  std::uint8_t next() { return at_ < size_ ? data_[at_++] : 0; }
  std::int64_t small(int n) { return std::int64_t(next() % n); }
  std::int64_t axis() { return std::int64_t(std::int8_t(next()) % 4); }  // out of range too
  double value() { return (double(next()) - 128.0) / 32.0; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

tg::Tensor leaf(Bytes& in) {
  tg::Shape shape;
  const std::int64_t rank = in.small(4);
  for (std::int64_t d = 0; d < rank; ++d) shape.push_back(in.small(4));
  std::vector<double> values(std::size_t(shape.numel()));
  for (double& v : values) v = in.value();
  const tg::DType dtype = in.next() % 2 ? tg::f32 : tg::f64;
  return tg::from_vector(values, shape, dtype).requires_grad(true);
}

tg::Tensor apply(Bytes& in, const tg::Tensor& a, const tg::Tensor& b) {
  switch (in.small(31)) {
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
      return tg::reshape(a, {in.small(5), in.small(5)});
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
    default:
      return tg::mse_loss(a, b.to(a.dtype()));
  }
}

constexpr std::int64_t kMaxFootprint = 4096;

std::int64_t footprint(const tg::Tensor& t) {
  std::int64_t product = 1;
  for (int d = 0; d < t.rank(); ++d) product *= std::max<std::int64_t>(t.shape()[d], 1);
  return product;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  std::vector<tg::Tensor> stack = {leaf(in), leaf(in)};
  while (in.more() && stack.size() < 64) {
    const tg::Tensor& a = stack[stack.size() - 1 - std::size_t(in.small(2))];
    const tg::Tensor& b = stack[stack.size() - 1 - std::size_t(in.small(2))];
    try {
      tg::Tensor result = apply(in, a, b);
      // Concatenation and broadcasting can grow sizes geometrically over 64 steps; what matters
      // here is which ops meet, not their size, so large results are not kept. An empty tensor
      // counts its other dimensions: [49152, 0] times [0, 12288] is a 600-million-element zero.
      if (footprint(result) <= kMaxFootprint) stack.push_back(std::move(result));
    } catch (const tg::Error&) {
    }
  }
  try {
    const tg::Tensor& y = stack.back();
    tg::sum(y).backward();
  } catch (const tg::Error&) {
  }
  return 0;
}
