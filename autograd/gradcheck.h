#pragma once
// Checking backward rules: the Jacobian by reverse mode, and gradcheck, which holds it against
// central finite differences in float64 and, on failure, says which entry is wrong and by how
// much.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace tg {

using Function = std::function<Tensor(const std::vector<Tensor>& inputs)>;

// Defaults as PyTorch's gradcheck: an entry passes when |analytic − numeric| ≤ atol +
// rtol·|numeric|.
struct GradcheckOptions {
  double eps = 1e-6;  // finite-difference step, in float64
  double atol = 1e-5;
  double rtol = 1e-3;
  std::uint64_t seed = 0;  // for the random cotangents
};

// One Jacobian entry d output[output_index] / d inputs[input][input_index].
struct GradcheckEntry {
  std::size_t input = 0;
  std::vector<std::int64_t> input_index;
  std::vector<std::int64_t> output_index;
  double analytic = 0;
  double numeric = 0;
  double error = 0;  // |analytic − numeric|
};

struct GradcheckResult {
  bool passed = true;
  std::size_t entries_checked = 0;
  std::size_t entries_failed = 0;
  double max_error = 0;  // largest |analytic − numeric| over all entries
  // The entry that exceeds its tolerance by the most; on success, the largest error.
  std::optional<GradcheckEntry> worst;
  // A random-cotangent VJP, vᵀJ by backward against vᵀ times the numeric Jacobian: catches
  // rules that are not linear in the cotangent, which one-hot cotangents cannot.
  double random_vjp_error = 0;
  std::string report;  // one paragraph a person can act on

  explicit operator bool() const { return passed; }
};

// d f / d inputs[i] for every floating input, as [output.numel(), input.numel()] matrices in the
// inputs' dtype: one vector-Jacobian product per output element. Non-floating inputs (labels,
// indices) get an undefined tensor. The inputs are not modified and their grad() not touched.
std::vector<Tensor> jacobian(const Function& f, const std::vector<Tensor>& inputs);

// Compares the reverse-mode Jacobian of f with central finite differences, in float64: floating
// inputs are converted to float64 copies, so f must accept float64. Differentiates the inputs that
// require grad, or every floating input when none does.
GradcheckResult gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

// gradcheck of the map (inputs, v) ↦ vᵀ J_f(inputs), computed by a backward with create_graph:
// checks the second derivatives, i.e. that every backward rule is itself differentiable.
GradcheckResult gradgradcheck(const Function& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

}  // namespace tg
