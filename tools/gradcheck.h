#pragma once
// Checking backward rules: the Jacobian by reverse mode, and gradcheck, which holds it against
// central finite differences in float64 and, on failure, says which entry is wrong and by how
// much, down to the tape entry (op, source line) whose rule disagrees.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autograd/factories.h"
#include "autograd/tape.h"

namespace tg {

struct GradcheckOptions {
  // Central differences in float64 with step eps; an entry passes when
  // |analytic − numeric| ≤ atol + rtol·|numeric| (PyTorch's defaults).
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  // By default floating inputs are converted to float64, which checks a rule's mathematics. With
  // keep_input_dtype, the analytic Jacobian is computed in the inputs' own dtype, so float32
  // kernels and rules are checked against float64 finite differences, with these tolerances
  // where a float32 value takes part.
  bool keep_input_dtype = false;
  double float32_atol = 1e-4;
  double float32_rtol = 1e-3;
  // Fast mode for large inputs: compares vᵀJu for random unit u and v (one backward, two
  // forwards) instead of every entry. It can miss errors that are orthogonal to the projection;
  // the full check stays the default.
  bool fast = false;
  // On failure, re-check every tape entry of the function on its own, at its recorded inputs.
  bool localize = true;
  std::uint64_t seed = 0;  // for the random directions and cotangents
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

// A tape entry whose backward rule disagrees with finite differences of its own forward.
struct GradcheckCulprit {
  std::int64_t entry = 0;
  std::string op;
  std::string location;  // file:line of the code that recorded it
  GradcheckEntry worst;
};

struct GradcheckResult {
  bool passed = true;
  std::size_t entries_checked = 0;
  std::size_t entries_failed = 0;
  double max_error = 0;  // largest |analytic − numeric| over all entries
  // The entry exceeding its tolerance by the most, error − (atol + rtol·|numeric|), a NaN
  // counting as the most (on success: the entry closest to its tolerance). In fast mode it holds
  // the projections vᵀJu, with empty indices.
  std::optional<GradcheckEntry> worst;
  // vᵀJ for a random v by backward, against vᵀ times the numeric Jacobian: catches rules that are
  // not linear in the cotangent, which one-hot cotangents cannot.
  double random_vjp_error = 0;
  // Problems found by the checks PyTorch also makes: a backward that is not deterministic, a zero
  // cotangent that does not give zero gradients.
  std::vector<std::string> problems;
  std::vector<GradcheckCulprit> culprits;  // from localisation, when the check failed
  std::size_t tape_entries = 0;            // entries localisation examined
  std::string report;                      // what a person reads

  explicit operator bool() const { return passed; }
};

// d f / d inputs[i] for every floating input (whether it requires grad or not), as
// [output.numel(), input.numel()] matrices in the inputs' dtype: one vector-Jacobian product per
// output element. Non-floating inputs (labels, indices) get an undefined tensor. The inputs are
// not modified and their grad() not touched. Errors: an undefined input, no floating input, an
// output that is not a floating tensor.
std::vector<Tensor> jacobian(const TensorFunction& f, const std::vector<Tensor>& inputs);

// Compares the reverse-mode Jacobian of f with central finite differences. Differentiates the
// inputs that require grad, or every floating input when none does; int64 inputs are constants.
// Errors, rather than a check that cannot fail: an undefined input, nothing to differentiate,
// an output that is not a floating tensor.
GradcheckResult gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

// gradcheck of the map (inputs, v) ↦ vᵀJ_f(inputs), computed by a backward with create_graph:
// checks the second derivatives, i.e. that every backward rule is itself differentiable.
GradcheckResult gradgradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

// A function with several outputs, such as a tg::MultiOutputOp: both checks take the Jacobian of
// its floating outputs flattened and joined in order, so an output index in a report counts
// through output 0's entries, then output 1's.
using MultiTensorFunction = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;
GradcheckResult gradcheck(const MultiTensorFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});
GradcheckResult gradgradcheck(const MultiTensorFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

}  // namespace tg
