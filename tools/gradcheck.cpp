#include "tools/gradcheck.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <utility>

#include "ops/ops.h"

namespace tg {
namespace {

std::string describe(const GradcheckEntry& e) {
  if (e.output_index.empty() && e.input_index.empty()) {
    return fmt::format(
        "vᵀJu along random directions: analytic {:.8g}, numeric {:.8g}, error {:.3g}", e.analytic,
        e.numeric, e.error);
  }
  const std::string output = e.output_index.empty()
                                 ? "output"
                                 : fmt::format("output[{}]", fmt::join(e.output_index, ", "));
  return fmt::format("d {} / d input {}[{}]: analytic {:.8g}, numeric {:.8g}, error {:.3g}", output,
                     e.input, fmt::join(e.input_index, ", "), e.analytic, e.numeric, e.error);
}

// Fresh leaves holding the inputs' values (in float64 when `to_f64`), those to differentiate
// marked: the ones that require grad, or every floating one when none does or `every_floating`.
struct Prepared {
  std::vector<Tensor> inputs;
  std::vector<std::size_t> differentiated;

  std::vector<Tensor> wrt() const {
    std::vector<Tensor> out;
    for (std::size_t i : differentiated) out.push_back(inputs[i]);
    return out;
  }
};

Prepared prepare(const std::vector<Tensor>& inputs, bool to_f64, const char* what,
                 bool every_floating = false) {
  bool any_marked = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) fail("{}: input {} is undefined", what, i);
    any_marked = any_marked || inputs[i].requires_grad();
  }
  any_marked = any_marked && !every_floating;
  Prepared p;
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!is_floating(x.dtype())) {
      p.inputs.push_back(x);
      continue;
    }
    Tensor copy = to_f64 ? x.detach().to(f64) : x.detach().copy();
    if (!any_marked || x.requires_grad()) {
      copy.requires_grad(true);
      p.differentiated.push_back(i);
    }
    p.inputs.push_back(copy);
  }
  if (p.differentiated.empty()) {
    // Nothing to compare would make every check pass.
    fail("{}: no floating input to differentiate with respect to (int64 inputs are constants)",
         what);
  }
  return p;
}

Tensor evaluate(const TensorFunction& f, const std::vector<Tensor>& inputs, const char* what) {
  Tensor y = f(inputs);
  if (!y.defined())
    fail("{}: the function must return a floating tensor, got an undefined one", what);
  if (!is_floating(y.dtype())) {
    fail("{}: the function must return a floating tensor, got {}", what, dtype_name(y.dtype()));
  }
  return y;
}

// VJPs of f at p's inputs for the cotangent v (zeros for inputs y does not depend on).
std::vector<Tensor> vjp(const Tensor& y, const Prepared& p, const Tensor& v) {
  if (!y.requires_grad()) {
    std::vector<Tensor> zero;
    for (const Tensor& x : p.wrt()) zero.push_back(zeros_like(x));
    return zero;
  }
  return grad(y, p.wrt(), v, {.retain_graph = true});
}

// Analytic Jacobians at p's inputs by one VJP per output element of the recorded output y.
std::vector<std::vector<double>> reverse_jacobian(const Tensor& y, const Prepared& p) {
  std::vector<std::vector<double>> jacobians(p.differentiated.size());
  for (std::int64_t k = 0; k < y.numel(); ++k) {
    Tensor seed = zeros_like(y);
    dispatch_floating(seed.dtype(), "gradcheck", [&]<class T>() { seed.data<T>()[k] = T(1); });
    const std::vector<Tensor> grads = vjp(y, p, seed);
    for (std::size_t j = 0; j < grads.size(); ++j) {
      const std::vector<double> row = grads[j].to_vector();
      jacobians[j].insert(jacobians[j].end(), row.begin(), row.end());
    }
  }
  return jacobians;
}

// Numeric Jacobian columns: perturbs each element of each differentiated input of p, which are
// float64 leaves of their own: writing to them must not touch tensors a recorded graph saved.
std::vector<std::vector<double>> numeric_jacobian(const TensorFunction& f, Prepared& p,
                                                  std::int64_t outputs, double eps) {
  NoGradGuard no_grad;
  std::vector<std::vector<double>> jacobians;
  for (std::size_t i : p.differentiated) {
    Tensor& x = p.inputs[i];
    const std::int64_t columns = x.numel();
    std::vector<double>& jac = jacobians.emplace_back(std::size_t(outputs * columns));
    for (std::int64_t c = 0; c < columns; ++c) {
      const double original = std::as_const(x).data<double>()[c];
      x.data<double>()[c] = original + eps;
      const std::vector<double> plus = evaluate(f, p.inputs, "gradcheck").to_vector();
      x.data<double>()[c] = original - eps;
      const std::vector<double> minus = evaluate(f, p.inputs, "gradcheck").to_vector();
      x.data<double>()[c] = original;
      for (std::int64_t k = 0; k < outputs; ++k) {
        jac[std::size_t(k * columns + c)] =
            (plus[std::size_t(k)] - minus[std::size_t(k)]) / (2 * eps);
      }
    }
  }
  return jacobians;
}

struct Tolerance {
  double atol;
  double rtol;
  bool accepts(double error, double reference) const {
    return error <= atol + rtol * std::abs(reference);  // false for NaN
  }
};

Tolerance tolerance_for(const Prepared& analytic, const Tensor& y, const GradcheckOptions& o) {
  bool float32 = y.dtype() == f32;
  for (std::size_t i : analytic.differentiated)
    float32 = float32 || analytic.inputs[i].dtype() == f32;
  return float32 ? Tolerance{o.float32_atol, o.float32_rtol} : Tolerance{o.atol, o.rtol};
}

void compare(GradcheckResult& result, const GradcheckEntry& entry, const Tolerance& tolerance,
             double& worst_excess) {
  const double error = std::isnan(entry.error) ? INFINITY : entry.error;
  ++result.entries_checked;
  if (!tolerance.accepts(entry.error, entry.numeric)) ++result.entries_failed;
  result.max_error = std::max(result.max_error, error);
  double excess = error - (tolerance.atol + tolerance.rtol * std::abs(entry.numeric));
  if (std::isnan(excess)) excess = INFINITY;  // a NaN numeric value: as bad as it gets
  if (excess > worst_excess || !result.worst) {
    worst_excess = excess;
    result.worst = entry;
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double total = 0;
  for (std::size_t i = 0; i < a.size(); ++i) total += a[i] * b[i];
  return total;
}

Tensor random_direction(const Shape& shape, DType dtype, Generator& gen, double norm) {
  const Tensor r = randn(shape, gen, f64);
  return cast(r * (1.0 / norm), dtype);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const std::size_t bytes = std::size_t(a.numel()) * dtype_size(a.dtype());
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), bytes) == 0;
}

// The checks PyTorch adds: the same cotangent twice gives bitwise the same gradients (NaN
// included), and a zero cotangent gives zero gradients.
void check_backward_properties(GradcheckResult& result, const Tensor& y, const Prepared& p,
                               const Tensor& v) {
  const std::vector<Tensor> first = vjp(y, p, v);
  const std::vector<Tensor> second = vjp(y, p, v);
  const std::vector<Tensor> from_zero = vjp(y, p, zeros_like(y));
  for (std::size_t j = 0; j < first.size(); ++j) {
    const std::size_t input = p.differentiated[j];
    if (!bitwise_equal(first[j], second[j])) {
      result.problems.push_back(
          fmt::format("backward is not deterministic: two passes with the same cotangent give "
                      "different gradients for input {}",
                      input));
    }
    for (double value : from_zero[j].to_vector()) {
      if (value != 0.0) {
        result.problems.push_back(fmt::format(
            "a zero cotangent gives a non-zero gradient ({:g}) for input {}", value, input));
        break;
      }
    }
  }
}

GradcheckResult check_function(const TensorFunction& f, const std::vector<Tensor>& inputs,
                               const GradcheckOptions& options) {
  // Separate leaves: the numeric Jacobian writes to its own, never to ones y's graph saved.
  Prepared numeric = prepare(inputs, true, "gradcheck");
  const Prepared analytic = prepare(inputs, !options.keep_input_dtype, "gradcheck");
  Tape tape;
  GradModeGuard grad_on(true);
  const Tensor y = evaluate(f, analytic.inputs, "gradcheck");
  const Tolerance tolerance = tolerance_for(analytic, y, options);
  Generator gen(options.seed);
  GradcheckResult result;
  double worst_excess = -INFINITY;

  if (options.fast) {
    // vᵀJu: one backward for vᵀJ, and two forwards along ±eps·u for Ju.
    const Tensor v = random_direction(y.shape(), y.dtype(), gen,
                                      std::sqrt(double(std::max<std::int64_t>(y.numel(), 1))));
    std::int64_t total = 0;
    for (std::size_t i : numeric.differentiated) total += numeric.inputs[i].numel();
    const double u_norm = std::sqrt(double(std::max<std::int64_t>(total, 1)));
    std::vector<Tensor> directions;
    for (std::size_t i : numeric.differentiated) {
      directions.push_back(random_direction(numeric.inputs[i].shape(), f64, gen, u_norm));
    }
    const std::vector<Tensor> v_j = vjp(y, analytic, v);
    double projected = 0;
    for (std::size_t j = 0; j < v_j.size(); ++j) {
      projected += dot(v_j[j].to_vector(), directions[j].to_vector());
    }
    std::vector<std::vector<double>> shifted;
    for (const double sign : {1.0, -1.0}) {
      NoGradGuard no_grad;
      std::vector<Tensor> moved = numeric.inputs;
      for (std::size_t j = 0; j < directions.size(); ++j) {
        const std::size_t i = numeric.differentiated[j];
        moved[i] = numeric.inputs[i] + directions[j] * (sign * options.eps);
      }
      shifted.push_back(evaluate(f, moved, "gradcheck").to_vector());
    }
    std::vector<double> ju(shifted[0].size());
    for (std::size_t k = 0; k < ju.size(); ++k)
      ju[k] = (shifted[0][k] - shifted[1][k]) / (2 * options.eps);
    const double numeric_projection = dot(v.to_vector(), ju);
    compare(result,
            {0, {}, {}, projected, numeric_projection, std::abs(projected - numeric_projection)},
            tolerance, worst_excess);
  } else {
    const std::vector<std::vector<double>> a = reverse_jacobian(y, analytic);
    const std::vector<std::vector<double>> n = numeric_jacobian(f, numeric, y.numel(), options.eps);
    for (std::size_t j = 0; j < a.size(); ++j) {
      const std::size_t i = numeric.differentiated[j];
      const std::int64_t columns = numeric.inputs[i].numel();
      for (std::size_t at = 0; at < a[j].size(); ++at) {
        const auto k = std::int64_t(at) / columns;
        const auto c = std::int64_t(at) % columns;
        compare(result,
                {i, unravel_index(c, numeric.inputs[i].shape()), unravel_index(k, y.shape()),
                 a[j][at], n[j][at], std::abs(a[j][at] - n[j][at])},
                tolerance, worst_excess);
      }
    }
    // vᵀJ for a random v against vᵀ times the numeric Jacobian.
    if (y.numel() > 0) {
      const Tensor v = randn(y.shape(), gen, y.dtype());
      const std::vector<double> vv = v.to_vector();
      const std::vector<Tensor> got = vjp(y, analytic, v);
      for (std::size_t j = 0; j < got.size(); ++j) {
        const std::vector<double> g = got[j].to_vector();
        const auto columns = std::int64_t(g.size());
        for (std::int64_t c = 0; c < columns; ++c) {
          double expected = 0;
          for (std::size_t k = 0; k < vv.size(); ++k)
            expected += vv[k] * n[j][std::size_t(std::int64_t(k) * columns + c)];
          const double error = std::abs(g[std::size_t(c)] - expected);
          result.random_vjp_error =
              std::max(result.random_vjp_error, std::isnan(error) ? INFINITY : error);
          if (!tolerance.accepts(error, expected)) result.passed = false;
        }
      }
    }
  }
  if (y.numel() > 0 && !analytic.differentiated.empty()) {
    check_backward_properties(result, y, analytic, randn(y.shape(), gen, y.dtype()));
  }

  const bool entries_ok = result.entries_failed == 0;
  const bool vjp_ok = result.passed;
  result.passed = entries_ok && vjp_ok && result.problems.empty();
  const std::string what = options.fast ? "fast gradcheck" : "gradcheck";
  if (result.passed) {
    result.report =
        options.fast ? fmt::format("{} passed: {}", what, describe(*result.worst))
                     : fmt::format(
                           "{} passed: {} Jacobian entries, max |analytic − numeric| = "
                           "{:.3g}, random-cotangent VJP error {:.3g}",
                           what, result.entries_checked, result.max_error, result.random_vjp_error);
  } else if (!entries_ok) {
    result.report = fmt::format(
        "{} failed: {} of {} Jacobian entries differ (atol {:g}, rtol {:g}); "
        "worst: {}",
        what, result.entries_failed, result.entries_checked, tolerance.atol, tolerance.rtol,
        describe(*result.worst));
  } else if (!vjp_ok) {
    result.report = fmt::format(
        "{} failed: every Jacobian entry matches, but the VJP for a random cotangent is off by "
        "{:.3g}: the backward rule is not linear in the cotangent g",
        what, result.random_vjp_error);
  } else {
    result.report = fmt::format("{} failed: {}", what, fmt::join(result.problems, "; "));
  }
  return result;
}

// Re-checks every entry the function records, on its own, at its recorded inputs.
void localize(const TensorFunction& f, const std::vector<Tensor>& inputs,
              const GradcheckOptions& options, GradcheckResult& result) {
  GradcheckOptions each = options;
  each.localize = false;
  const Prepared p = prepare(inputs, !options.keep_input_dtype, "gradcheck");
  Tape tape;
  GradModeGuard grad_on(true);
  const Tensor y = evaluate(f, p.inputs, "gradcheck");
  result.tape_entries = tape.size();
  for (std::int64_t i = 0; i < std::int64_t(tape.size()); ++i) {
    const TapeEntryView view = tape.entry(i);
    const GradcheckResult own = check_function(tape.entry_function(i), view.inputs, each);
    if (own.passed) continue;
    const std::string file = std::filesystem::path(view.location.file_name()).filename().string();
    result.culprits.push_back({i, view.op, fmt::format("{}:{}", file, view.location.line()),
                               own.worst.value_or(GradcheckEntry{})});
  }
  if (result.culprits.empty()) {
    result.report += fmt::format(
        "\nlocalisation: each of the {} tape entries passes on its own, so the error is in how "
        "they connect (a rule that detaches its result, or one that is not differentiable)",
        result.tape_entries);
    return;
  }
  result.report += fmt::format(
      "\nlocalised to {} of {} tape entries, each checked on its own at its recorded inputs:",
      result.culprits.size(), result.tape_entries);
  for (const GradcheckCulprit& c : result.culprits) {
    result.report +=
        fmt::format("\n  entry #{} '{}' at {}: {}", c.entry, c.op, c.location, describe(c.worst));
  }
}

}  // namespace

std::vector<Tensor> jacobian(const TensorFunction& f, const std::vector<Tensor>& inputs) {
  const Prepared p = prepare(inputs, false, "jacobian", true);
  Tape tape;
  GradModeGuard grad_on(true);
  const Tensor y = evaluate(f, p.inputs, "jacobian");
  const std::vector<std::vector<double>> rows = reverse_jacobian(y, p);
  std::vector<Tensor> result(inputs.size());
  for (std::size_t j = 0; j < p.differentiated.size(); ++j) {
    const std::size_t i = p.differentiated[j];
    result[i] = from_vector(rows[j], {y.numel(), inputs[i].numel()}, inputs[i].dtype());
  }
  return result;
}

GradcheckResult gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  GradcheckResult result = check_function(f, inputs, options);
  if (!result.passed && options.localize) localize(f, inputs, options, result);
  return result;
}

GradcheckResult gradgradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  const Prepared p = prepare(inputs, !options.keep_input_dtype, "gradgradcheck");
  Tensor output;
  {
    NoGradGuard no_grad;
    output = evaluate(f, p.inputs, "gradgradcheck");
  }
  Generator gen(options.seed + 1);
  std::vector<Tensor> extended = p.inputs;
  extended.push_back(randn(output.shape(), gen, output.dtype()).requires_grad(true));
  const std::vector<std::size_t> differentiated = p.differentiated;

  // (inputs, v) ↦ the VJPs vᵀJ, flattened and concatenated into one vector.
  const TensorFunction first_derivative = [f, differentiated](const std::vector<Tensor>& in) {
    GradModeGuard grad_on(true);
    const std::vector<Tensor> primal(in.begin(), in.end() - 1);
    const Tensor y = f(primal);
    std::vector<Tensor> wrt;
    for (std::size_t i : differentiated) wrt.push_back(primal[i]);
    if (!y.requires_grad()) return zeros({0}, y.dtype());
    std::vector<Tensor> pieces;
    for (const Tensor& g : grad(y, wrt, in.back(), {.create_graph = true})) {
      pieces.push_back(reshape(g, {g.numel()}));
    }
    return concat(pieces);
  };
  GradcheckResult result = gradcheck(first_derivative, extended, options);
  result.report = "gradgradcheck: " + result.report;
  return result;
}

namespace {

// The floating outputs of f, flattened and joined in order: the one output the checks take.
TensorFunction joined_outputs(const MultiTensorFunction& f) {
  return [f](const std::vector<Tensor>& inputs) {
    std::vector<Tensor> pieces;
    for (const Tensor& output : f(inputs)) {
      if (output.defined() && is_floating(output.dtype())) {
        pieces.push_back(reshape(output, {output.numel()}));
      }
    }
    if (pieces.empty()) fail("gradcheck: the function returned no floating output");
    return concat(pieces);
  };
}

}  // namespace

GradcheckResult gradcheck(const MultiTensorFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  return gradcheck(joined_outputs(f), inputs, options);
}

GradcheckResult gradgradcheck(const MultiTensorFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  return gradgradcheck(joined_outputs(f), inputs, options);
}

}  // namespace tg
