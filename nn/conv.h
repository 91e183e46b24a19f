#pragma once
// Convolution and pooling modules with PyTorch's names, parameter names, layouts, defaults and
// initialisation; their forwards are the ops of ops/conv.h and ops/pool.h.
#include <cstdint>
#include <optional>
#include <string>

#include "nn/module.h"
#include "ops/conv.h"
#include "ops/pool.h"

namespace tg::nn {

// torch.nn.Conv1d: weight [out, in/groups, k], bias [out], both U(−1/√fan_in, 1/√fan_in) with
// fan_in = (in/groups)·k (PyTorch's kaiming_uniform_(a = √5) and its bias bound). Input [N, C, L].
class Conv1d : public Module {
 public:
  Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
         const Conv1dOptions& options = {}, bool bias = true,
         Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& input) override;
  // "Conv1d(1, 4, kernel_size=(3,), stride=(1,), padding=(1,))", as PyTorch's repr.
  std::string describe() const override;
  const Conv1dOptions& options() const { return options_; }
  Tensor weight;
  Tensor bias;

 private:
  std::int64_t in_channels_;
  std::int64_t out_channels_;
  std::int64_t kernel_size_;
  Conv1dOptions options_;
};

// torch.nn.Conv2d: weight [out, in/groups, kh, kw], bias [out], initialised as Conv1d with
// fan_in = (in/groups)·kh·kw. Input [N, C, H, W]. padding="same" needs stride 1, as PyTorch.
class Conv2d : public Module {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size,
         const Conv2dOptions& options = {}, bool bias = true,
         Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& input) override;
  // "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
  std::string describe() const override;
  const Conv2dOptions& options() const { return options_; }
  Tensor weight;
  Tensor bias;

 private:
  std::int64_t in_channels_;
  std::int64_t out_channels_;
  Size2 kernel_size_;
  Conv2dOptions options_;
};

// torch.nn.ConvTranspose2d: weight [in, out/groups, kh, kw] (PyTorch's layout), bias [out]; so
// fan_in, from the weight's dim 1, is (out/groups)·kh·kw, as PyTorch computes it.
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size,
                  const ConvTranspose2dOptions& options = {}, bool bias = true,
                  Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& input) override;
  // "ConvTranspose2d(4, 2, kernel_size=(2, 2), stride=(2, 2))"
  std::string describe() const override;
  const ConvTranspose2dOptions& options() const { return options_; }
  Tensor weight;
  Tensor bias;

 private:
  std::int64_t in_channels_;
  std::int64_t out_channels_;
  Size2 kernel_size_;
  ConvTranspose2dOptions options_;
};

// torch.nn.MaxPool2d; the stride defaults to the kernel size. No parameters.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel_size, const MaxPool2dOptions& options = {});
  Tensor forward(const Tensor& input) override;
  // "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)": a size whose
  // two numbers are equal prints as one number (PyTorch prints what it was given).
  std::string describe() const override;

 private:
  Size2 kernel_size_;
  MaxPool2dOptions options_;
};

// torch.nn.AvgPool2d; the stride defaults to the kernel size. No parameters.
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, const AvgPool2dOptions& options = {});
  Tensor forward(const Tensor& input) override;
  // "AvgPool2d(kernel_size=2, stride=2, padding=0)"
  std::string describe() const override;

 private:
  Size2 kernel_size_;
  AvgPool2dOptions options_;
};

// torch.nn.AdaptiveAvgPool2d: output [N, C, output_size].
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size);
  Tensor forward(const Tensor& input) override;
  // "AdaptiveAvgPool2d(output_size=(1, 1))" (or "output_size=1" for equal sizes, see MaxPool2d).
  std::string describe() const override;

 private:
  Size2 output_size_;
};

}  // namespace tg::nn
