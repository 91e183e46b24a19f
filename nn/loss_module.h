#pragma once
// The losses as libtorch's loss modules: options fixed at construction, called with
// (input, target), as `nn::CrossEntropyLoss criterion({.label_smoothing = 0.1});` then
// `criterion(logits, labels)`. Each forwards to its loss op (ops/ops.h, ops/everyday.h) with the
// caller's location.
#include <string>

#include "nn/module.h"
#include "ops/everyday.h"

namespace tg::nn {

// A module of two inputs. Module's one-input forward is hidden: calling it through a Module&
// is an error naming the loss.
class Loss : public Module {
 public:
  virtual Tensor forward(const Tensor& input, const Tensor& target,
                         SourceLocation location = SourceLocation::current()) = 0;
  Tensor operator()(const Tensor& input, const Tensor& target,
                    SourceLocation location = SourceLocation::current()) {
    return forward(input, target, location);
  }
  // PyTorch's printout, "MSELoss()".
  std::string describe() const override;

 protected:
  // PyTorch's `weight` buffer, when one is given: saved, loaded and converted (to()) with the
  // module, and never trained.
  void register_weight(Tensor& weight);

 private:
  Tensor forward(const Tensor& input) final;
};

// libtorch's option names; these losses take only a reduction.
struct LossOptions {
  Reduction reduction = Reduction::mean;
};
using MSELossOptions = LossOptions;
using L1LossOptions = LossOptions;
using BCEWithLogitsLossOptions = LossOptions;
using CrossEntropyLossOptions = CrossEntropyOptions;
using NLLLossOptions = NllLossOptions;
struct SmoothL1LossOptions {
  Reduction reduction = Reduction::mean;
  double beta = 1.0;
};

class MSELoss : public Loss {
 public:
  explicit MSELoss(MSELossOptions options = {}) : options_(options) {}
  Tensor forward(const Tensor& input, const Tensor& target,
                 SourceLocation location = SourceLocation::current()) override;

 private:
  MSELossOptions options_;
};

class L1Loss : public Loss {
 public:
  explicit L1Loss(L1LossOptions options = {}) : options_(options) {}
  Tensor forward(const Tensor& input, const Tensor& target,
                 SourceLocation location = SourceLocation::current()) override;

 private:
  L1LossOptions options_;
};

class SmoothL1Loss : public Loss {
 public:
  explicit SmoothL1Loss(SmoothL1LossOptions options = {}) : options_(options) {}
  Tensor forward(const Tensor& input, const Tensor& target,
                 SourceLocation location = SourceLocation::current()) override;

 private:
  SmoothL1LossOptions options_;
};

// Without libtorch's pos_weight and weight: binary_cross_entropy_with_logits takes neither.
class BCEWithLogitsLoss : public Loss {
 public:
  explicit BCEWithLogitsLoss(BCEWithLogitsLossOptions options = {}) : options_(options) {}
  Tensor forward(const Tensor& input, const Tensor& target,
                 SourceLocation location = SourceLocation::current()) override;

 private:
  BCEWithLogitsLossOptions options_;
};

// Logits [N, C] (or [N, C, d1, ...]) against int64 class labels; options as tg::cross_entropy's.
class CrossEntropyLoss : public Loss {
 public:
  explicit CrossEntropyLoss(CrossEntropyLossOptions options = {});
  Tensor forward(const Tensor& input, const Tensor& target,
                 SourceLocation location = SourceLocation::current()) override;

 private:
  CrossEntropyLossOptions options_;
};

// Log-probabilities [N, C] against int64 class labels; options as tg::nll_loss's.
class NLLLoss : public Loss {
 public:
  explicit NLLLoss(NLLLossOptions options = {});
  Tensor forward(const Tensor& input, const Tensor& target,
                 SourceLocation location = SourceLocation::current()) override;

 private:
  NLLLossOptions options_;
};

}  // namespace tg::nn
