#pragma once
// The op registry: every op, built-in or user-defined, registers a name, a function of tensors,
// sample inputs and, where cheap, its explicit Jacobian. Registry-driven tests gradcheck every
// entry, so registering an op is all it takes to have it checked.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/tape.h"
#include "tools/gradcheck.h"

namespace tg {

struct OpSample {
  std::string label;           // what the sample exercises, e.g. "broadcast [3,1] with [4]"
  std::vector<Tensor> inputs;  // floating inputs are differentiated; int64 ones are constants
};

struct OpRegistration {
  std::string name;
  TensorFunction function;
  // Samples in the given floating dtype, from a fixed seed.
  std::function<std::vector<OpSample>(DType dtype)> samples;
  // Optional: for each input, d output / d input as a [output.numel(), input.numel()] float64
  // matrix computed independently of the backward rule (undefined for non-floating inputs).
  std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)> reference_jacobian;
  // An op whose backward rule is not differentiable is not held to gradgradcheck.
  Differentiability differentiability = Differentiability::twice;
};

// diag(d) as a [n, n] float64 matrix: the Jacobian of an elementwise map with derivatives d.
Tensor diagonal_jacobian(const std::vector<double>& derivatives);
// diag(f'(x)) for an elementwise unary op with derivative f', for reference Jacobians.
Tensor elementwise_jacobian(const Tensor& x, const std::function<double(double)>& derivative);

class OpRegistry {
 public:
  void add(OpRegistration registration);
  const std::vector<OpRegistration>& ops() const { return ops_; }
  const OpRegistration& find(std::string_view name) const;

 private:
  std::vector<OpRegistration> ops_;
};

// The process-wide registry, holding the built-in ops from its first use; add your own ops to it.
OpRegistry& op_registry();

struct OpCheckFailure {
  std::string op;
  std::string sample;
  std::string check;  // "gradcheck", "gradcheck float32", "reference Jacobian", "gradgradcheck"
  std::string report;
};

struct OpCheckSummary {
  std::size_t ops = 0;
  std::size_t samples = 0;
  std::size_t checks = 0;
  std::vector<OpCheckFailure> failures;
  bool passed() const { return failures.empty(); }
  std::string report() const;
};

// Checks one registered op on each of its samples: gradcheck in float64, gradcheck of the
// float32 rule against float64 finite differences, the rule against the reference Jacobian
// (max error 1e-10) when there is one, and gradgradcheck unless the op is once-differentiable.
OpCheckSummary check_op(const OpRegistration& op, const GradcheckOptions& options = {});
// check_op for every op of a registry: one call checks built-in and user-defined ops alike.
OpCheckSummary check_ops(const OpRegistry& registry, const GradcheckOptions& options = {});

}  // namespace tg
