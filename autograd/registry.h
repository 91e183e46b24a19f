#pragma once
// The op registry: every op, built-in or user-defined, registers a name, a function of tensors,
// sample inputs and, where cheap, its explicit Jacobian. Registry-driven tests gradcheck every
// entry, so registering an op is all it takes to have it checked.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/tensor.h"

namespace tg {

struct OpSample {
  std::string label;           // what the sample exercises, e.g. "broadcast [3,1] with [4]"
  std::vector<Tensor> inputs;  // floating inputs are differentiated; int64 ones are constants
};

using OpFunction = std::function<Tensor(const std::vector<Tensor>& inputs)>;

struct OpRegistration {
  std::string name;
  OpFunction function;
  // Samples in the given floating dtype, from a fixed seed.
  std::function<std::vector<OpSample>(DType dtype)> samples;
  // Optional: for each input, d output / d input as a [output.numel(), input.numel()] float64
  // matrix computed independently of the backward rule (undefined for non-floating inputs).
  std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)> reference_jacobian;
};

class OpRegistry {
 public:
  void add(OpRegistration registration);
  const std::vector<OpRegistration>& ops() const { return ops_; }
  const OpRegistration& find(std::string_view name) const;

 private:
  std::vector<OpRegistration> ops_;
};

// The process-wide registry, holding the built-in ops from its first use.
OpRegistry& op_registry();

}  // namespace tg
