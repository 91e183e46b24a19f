#pragma once
// Normalisation and channel-dropout modules with PyTorch's names, parameters, buffers, defaults
// and repr; their forwards are the ops of ops/norm.h.
#include <cstdint>
#include <optional>
#include <string>

#include "nn/module.h"

namespace tg::nn {

// torch.nn.BatchNorm1d / BatchNorm2d: parameters `weight` (ones) and `bias` (zeros) when affine;
// buffers `running_mean` (zeros), `running_var` (ones) and `num_batches_tracked` (an int64
// scalar, 0) when track_running_stats. A training forward adds 1 to num_batches_tracked and
// updates the running statistics with momentum, or, for momentum nullopt (PyTorch's None), with
// the cumulative average 1/num_batches_tracked. Evaluation normalises with the running statistics;
// without track_running_stats, with the batch's in evaluation too. Module::to converts the
// floating buffers; num_batches_tracked stays int64.
class BatchNormBase : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  // "BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
  std::string describe() const override;
  std::int64_t num_features() const { return num_features_; }
  Tensor weight;
  Tensor bias;
  Tensor running_mean;
  Tensor running_var;
  Tensor num_batches_tracked;

 protected:
  BatchNormBase(const char* name, std::int64_t num_features, double eps,
                std::optional<double> momentum, bool affine, bool track_running_stats, DType dtype);
  // PyTorch's _check_input_dim.
  virtual void check_input_rank(const Tensor& input) const = 0;
  const char* name_;

 private:
  std::int64_t num_features_;
  double eps_;
  std::optional<double> momentum_;
};

// Input [N, C] or [N, C, L].
class BatchNorm1d : public BatchNormBase {
 public:
  explicit BatchNorm1d(std::int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true, DType dtype = f32);

 protected:
  void check_input_rank(const Tensor& input) const override;
};

// Input [N, C, H, W].
class BatchNorm2d : public BatchNormBase {
 public:
  explicit BatchNorm2d(std::int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true, DType dtype = f32);

 protected:
  void check_input_rank(const Tensor& input) const override;
};

// torch.nn.GroupNorm: num_channels in num_groups groups (which must divide it); `weight` ones and
// `bias` zeros, [num_channels], when affine.
class GroupNorm : public Module {
 public:
  GroupNorm(std::int64_t num_groups, std::int64_t num_channels, double eps = 1e-5,
            bool affine = true, DType dtype = f32);
  Tensor forward(const Tensor& input) override;
  // "GroupNorm(2, 4, eps=1e-05, affine=True)"
  std::string describe() const override;
  Tensor weight;
  Tensor bias;

 private:
  std::int64_t num_groups_;
  std::int64_t num_channels_;
  double eps_;
};

// torch.nn.Dropout2d: in training, each channel of each sample zeroed with probability p (0 ≤ p
// ≤ 1) and the rest scaled by 1/(1 − p), from its own seeded generator; in evaluation, the
// identity. As PyTorch 1.13, a 3-D input is [N, C, L].
class Dropout2d : public Module {
 public:
  explicit Dropout2d(double p = 0.5, std::uint64_t seed = 0);
  Tensor forward(const Tensor& input) override;
  // "Dropout2d(p=0.5, inplace=False)"
  std::string describe() const override;

 private:
  double p_;
  Generator generator_;
};

}  // namespace tg::nn
