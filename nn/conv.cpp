#include "nn/conv.h"

#include <fmt/format.h>

#include <cmath>

#include "nn/init.h"

namespace tg::nn {
namespace {

// PyTorch's tuple repr: "(3,)" for one number, "(3, 1)" for two.
std::string tuple1(std::int64_t v) {
  return fmt::format("({},)", v);
}
std::string tuple2(const Size2& s) {
  return fmt::format("({}, {})", s.h, s.w);
}
// A pooling size as PyTorch prints what it was given: one number when both are equal.
std::string size_or_pair(const Size2& s) {
  return s.h == s.w ? fmt::format("{}", s.h) : tuple2(s);
}
const char* mode_name(ConvPadding mode) {
  return mode == ConvPadding::same ? "same" : "valid";
}
const char* python_bool(bool b) {
  return b ? "True" : "False";
}

// Channel counts and groups as PyTorch's _ConvNd checks them.
void check_channels(const char* module, std::int64_t in_channels, std::int64_t out_channels,
                    std::int64_t groups) {
  if (in_channels <= 0 || out_channels <= 0) {
    fail("{}: expected positive channel counts, got in_channels = {}, out_channels = {}", module,
         in_channels, out_channels);
  }
  if (groups <= 0) fail("{}: groups must be a positive integer, got {}", module, groups);
  if (in_channels % groups != 0) {
    fail("{}: in_channels must be divisible by groups (in_channels = {}, groups = {})", module,
         in_channels, groups);
  }
  if (out_channels % groups != 0) {
    fail("{}: out_channels must be divisible by groups (out_channels = {}, groups = {})", module,
         out_channels, groups);
  }
}

void check_kernel(const char* module, std::int64_t h, std::int64_t w) {
  if (h <= 0 || w <= 0) fail("{}: expected a positive kernel size, got ({}, {})", module, h, w);
}

// kaiming_uniform_(a = √5) on the weight, U(±1/√fan_in) on the bias, fan_in from weight dim 1.
void initialise(Tensor& weight, Tensor* bias, Generator& generator) {
  init::kaiming_uniform_(weight, generator, std::sqrt(5.0));
  if (bias == nullptr) return;
  double fan_in = double(weight.shape()[1]);
  for (int d = 2; d < weight.rank(); ++d) fan_in *= double(weight.shape()[d]);
  const double bound = 1.0 / std::sqrt(fan_in);
  init::uniform_(*bias, generator, -bound, bound);
}

}  // namespace

// ---- Conv1d ----

Conv1d::Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
               const Conv1dOptions& options, bool bias, Generator& generator, DType dtype)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      options_(options) {
  check_channels("Conv1d", in_channels, out_channels, options.groups);
  check_kernel("Conv1d", kernel_size, 1);
  if (options.padding.mode == ConvPadding::same && options.stride != 1) {
    fail("Conv1d: padding='same' is not supported for strided convolutions (stride {})",
         options.stride);
  }
  Tensor w = empty({out_channels, in_channels / options.groups, kernel_size}, dtype);
  Tensor b = bias ? empty({out_channels}, dtype) : Tensor();
  initialise(w, bias ? &b : nullptr, generator);
  register_parameter("weight", weight, w);
  if (bias) register_parameter("bias", this->bias, b);
}

Tensor Conv1d::forward(const Tensor& input) {
  return conv1d(input, weight, bias, options_);
}

std::string Conv1d::describe() const {
  std::string s = fmt::format("Conv1d({}, {}, kernel_size={}, stride={}", in_channels_,
                              out_channels_, tuple1(kernel_size_), tuple1(options_.stride));
  if (options_.padding.mode) {
    s += fmt::format(", padding={}", mode_name(*options_.padding.mode));
  } else if (options_.padding.amount != 0) {
    s += fmt::format(", padding={}", tuple1(options_.padding.amount));
  }
  if (options_.dilation != 1) s += fmt::format(", dilation={}", tuple1(options_.dilation));
  if (options_.groups != 1) s += fmt::format(", groups={}", options_.groups);
  if (!bias.defined()) s += ", bias=False";
  return s + ")";
}

// ---- Conv2d ----

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size,
               const Conv2dOptions& options, bool bias, Generator& generator, DType dtype)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      options_(options) {
  check_channels("Conv2d", in_channels, out_channels, options.groups);
  check_kernel("Conv2d", kernel_size.h, kernel_size.w);
  if (options.padding.mode == ConvPadding::same &&
      (options.stride.h != 1 || options.stride.w != 1)) {
    fail("Conv2d: padding='same' is not supported for strided convolutions (stride {})",
         tuple2(options.stride));
  }
  Tensor w =
      empty({out_channels, in_channels / options.groups, kernel_size.h, kernel_size.w}, dtype);
  Tensor b = bias ? empty({out_channels}, dtype) : Tensor();
  initialise(w, bias ? &b : nullptr, generator);
  register_parameter("weight", weight, w);
  if (bias) register_parameter("bias", this->bias, b);
}

Tensor Conv2d::forward(const Tensor& input) {
  return conv2d(input, weight, bias, options_);
}

std::string Conv2d::describe() const {
  std::string s = fmt::format("Conv2d({}, {}, kernel_size={}, stride={}", in_channels_,
                              out_channels_, tuple2(kernel_size_), tuple2(options_.stride));
  const Size2& pad = options_.padding.amount;
  if (options_.padding.mode) {
    s += fmt::format(", padding={}", mode_name(*options_.padding.mode));
  } else if (pad.h != 0 || pad.w != 0) {
    s += fmt::format(", padding={}", tuple2(pad));
  }
  if (options_.dilation.h != 1 || options_.dilation.w != 1) {
    s += fmt::format(", dilation={}", tuple2(options_.dilation));
  }
  if (options_.groups != 1) s += fmt::format(", groups={}", options_.groups);
  if (!bias.defined()) s += ", bias=False";
  return s + ")";
}

// ---- ConvTranspose2d ----

ConvTranspose2d::ConvTranspose2d(std::int64_t in_channels, std::int64_t out_channels,
                                 Size2 kernel_size, const ConvTranspose2dOptions& options,
                                 bool bias, Generator& generator, DType dtype)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      options_(options) {
  check_channels("ConvTranspose2d", in_channels, out_channels, options.groups);
  check_kernel("ConvTranspose2d", kernel_size.h, kernel_size.w);
  Tensor w =
      empty({in_channels, out_channels / options.groups, kernel_size.h, kernel_size.w}, dtype);
  Tensor b = bias ? empty({out_channels}, dtype) : Tensor();
  initialise(w, bias ? &b : nullptr, generator);
  register_parameter("weight", weight, w);
  if (bias) register_parameter("bias", this->bias, b);
}

Tensor ConvTranspose2d::forward(const Tensor& input) {
  return conv_transpose2d(input, weight, bias, options_);
}

std::string ConvTranspose2d::describe() const {
  std::string s = fmt::format("ConvTranspose2d({}, {}, kernel_size={}, stride={}", in_channels_,
                              out_channels_, tuple2(kernel_size_), tuple2(options_.stride));
  const auto nonzero = [](const Size2& v) { return v.h != 0 || v.w != 0; };
  if (nonzero(options_.padding)) s += fmt::format(", padding={}", tuple2(options_.padding));
  if (options_.dilation.h != 1 || options_.dilation.w != 1) {
    s += fmt::format(", dilation={}", tuple2(options_.dilation));
  }
  if (nonzero(options_.output_padding)) {
    s += fmt::format(", output_padding={}", tuple2(options_.output_padding));
  }
  if (options_.groups != 1) s += fmt::format(", groups={}", options_.groups);
  if (!bias.defined()) s += ", bias=False";
  return s + ")";
}

// ---- pooling ----

MaxPool2d::MaxPool2d(Size2 kernel_size, const MaxPool2dOptions& options)
    : kernel_size_(kernel_size), options_(options) {
  check_kernel("MaxPool2d", kernel_size.h, kernel_size.w);
}

Tensor MaxPool2d::forward(const Tensor& input) {
  return max_pool2d(input, kernel_size_, options_);
}

std::string MaxPool2d::describe() const {
  return fmt::format("MaxPool2d(kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={})",
                     size_or_pair(kernel_size_),
                     size_or_pair(options_.stride.value_or(kernel_size_)),
                     size_or_pair(options_.padding), size_or_pair(options_.dilation),
                     python_bool(options_.ceil_mode));
}

AvgPool2d::AvgPool2d(Size2 kernel_size, const AvgPool2dOptions& options)
    : kernel_size_(kernel_size), options_(options) {
  check_kernel("AvgPool2d", kernel_size.h, kernel_size.w);
}

Tensor AvgPool2d::forward(const Tensor& input) {
  return avg_pool2d(input, kernel_size_, options_);
}

std::string AvgPool2d::describe() const {
  return fmt::format("AvgPool2d(kernel_size={}, stride={}, padding={})", size_or_pair(kernel_size_),
                     size_or_pair(options_.stride.value_or(kernel_size_)),
                     size_or_pair(options_.padding));
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size) : output_size_(output_size) {
  if (output_size.h < 0 || output_size.w < 0) {
    fail("AdaptiveAvgPool2d: expected output sizes >= 0, got {}", tuple2(output_size));
  }
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& input) {
  return adaptive_avg_pool2d(input, output_size_);
}

std::string AdaptiveAvgPool2d::describe() const {
  return fmt::format("AdaptiveAvgPool2d(output_size={})", size_or_pair(output_size_));
}

}  // namespace tg::nn
