#include "nn/init.h"

#include <cmath>

namespace tg::nn::init {
namespace {

struct Fans {
  double in;
  double out;
};

Fans fans(const Tensor& weight, const char* what) {
  if (weight.rank() < 2) {
    fail("{}: fan in and fan out need a weight of rank 2 or more, got shape {}", what,
         weight.shape().str());
  }
  double receptive = 1;
  for (int d = 2; d < weight.rank(); ++d) receptive *= double(weight.shape()[d]);
  return {double(weight.shape()[1]) * receptive, double(weight.shape()[0]) * receptive};
}

template <class Draw>
void fill(Tensor& tensor, const char* what, Draw draw) {
  dispatch_floating(tensor.dtype(), what, [&]<class T>() {
    T* data = tensor.data<T>();
    for (std::int64_t i = 0; i < tensor.numel(); ++i) data[i] = T(draw());
  });
}

double leaky_relu_gain(double a) {
  return std::sqrt(2.0 / (1.0 + a * a));
}

}  // namespace

void uniform_(Tensor& tensor, Generator& generator, double low, double high) {
  fill(tensor, "uniform_", [&] { return low + (high - low) * generator.uniform(); });
}

void normal_(Tensor& tensor, Generator& generator, double mean, double std) {
  fill(tensor, "normal_", [&] { return mean + std * generator.normal(); });
}

void xavier_uniform_(Tensor& weight, Generator& generator, double gain) {
  const Fans f = fans(weight, "xavier_uniform_");
  const double a = gain * std::sqrt(6.0 / (f.in + f.out));
  uniform_(weight, generator, -a, a);
}

void xavier_normal_(Tensor& weight, Generator& generator, double gain) {
  const Fans f = fans(weight, "xavier_normal_");
  normal_(weight, generator, 0.0, gain * std::sqrt(2.0 / (f.in + f.out)));
}

void kaiming_uniform_(Tensor& weight, Generator& generator, double a, FanMode mode) {
  const Fans f = fans(weight, "kaiming_uniform_");
  const double bound =
      leaky_relu_gain(a) * std::sqrt(3.0 / (mode == FanMode::fan_in ? f.in : f.out));
  uniform_(weight, generator, -bound, bound);
}

void kaiming_normal_(Tensor& weight, Generator& generator, double a, FanMode mode) {
  const Fans f = fans(weight, "kaiming_normal_");
  normal_(weight, generator, 0.0,
          leaky_relu_gain(a) / std::sqrt(mode == FanMode::fan_in ? f.in : f.out));
}

}  // namespace tg::nn::init
