#include "autograd/gradcheck.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "autograd/tape.h"
#include "ops/ops.h"

namespace tg {
namespace {

std::vector<std::int64_t> unravel(std::int64_t flat, const Shape& shape) {
  std::vector<std::int64_t> index(std::size_t(shape.rank()));
  for (int d = shape.rank() - 1; d >= 0; --d) {
    index[std::size_t(d)] = flat % std::max<std::int64_t>(shape[d], 1);
    flat /= std::max<std::int64_t>(shape[d], 1);
  }
  return index;
}

// Fresh leaves holding the inputs' values (float64 when `to_f64`), marked for differentiation.
struct Prepared {
  std::vector<Tensor> inputs;
  std::vector<std::size_t> differentiated;
};

Prepared prepare(const std::vector<Tensor>& inputs, bool to_f64) {
  bool any_marked = false;
  for (const Tensor& x : inputs) any_marked = any_marked || x.requires_grad();
  Prepared p;
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined()) fail("gradcheck: input {} is undefined", i);
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
  return p;
}

// Analytic Jacobians of f at p's inputs by one VJP per output element; the output's values are
// returned through `output`.
std::vector<Tensor> reverse_jacobian(const Function& f, const Prepared& p, Tensor& output) {
  Tape tape;
  GradModeGuard grad_on(true);
  output = f(p.inputs);
  if (!output.defined() || !is_floating(output.dtype())) {
    fail("gradcheck: the function must return a floating tensor");
  }
  std::vector<Tensor> wrt;
  std::vector<Tensor> jacobians;
  for (std::size_t i : p.differentiated) {
    wrt.push_back(p.inputs[i]);
    jacobians.push_back(zeros({output.numel(), p.inputs[i].numel()}, p.inputs[i].dtype()));
  }
  if (!output.requires_grad()) return jacobians;  // f ignores its inputs: a zero Jacobian
  Tensor seed = zeros_like(output);
  for (std::int64_t k = 0; k < output.numel(); ++k) {
    NoGradGuard no_grad;
    seed = zeros_like(output);
    dispatch_floating(seed.dtype(), "gradcheck", [&]<class T>() { seed.data<T>()[k] = T(1); });
    const std::vector<Tensor> grads = grad(output, wrt, seed, {.retain_graph = true});
    for (std::size_t j = 0; j < grads.size(); ++j) {
      const std::vector<double> row = grads[j].to_vector();
      dispatch_floating(jacobians[j].dtype(), "gradcheck", [&]<class T>() {
        T* pj = jacobians[j].data<T>() + k * grads[j].numel();
        for (std::size_t c = 0; c < row.size(); ++c) pj[c] = T(row[c]);
      });
    }
  }
  return jacobians;
}

void perturb(Tensor& x, std::int64_t element, double delta) {
  dispatch_floating(x.dtype(), "gradcheck", [&]<class T>() { x.data<T>()[element] += T(delta); });
}

std::vector<double> numeric_column(const Function& f, std::vector<Tensor>& inputs, std::size_t i,
                                   std::int64_t element, double eps) {
  NoGradGuard no_grad;
  Tensor& x = inputs[i];
  const double original = x.to_vector()[std::size_t(element)];
  perturb(x, element, eps);
  const std::vector<double> plus = f(inputs).to_vector();
  perturb(x, element, -2 * eps);
  const std::vector<double> minus = f(inputs).to_vector();
  dispatch_floating(x.dtype(), "gradcheck", [&]<class T>() { x.data<T>()[element] = T(original); });
  std::vector<double> column(plus.size());
  for (std::size_t k = 0; k < plus.size(); ++k) column[k] = (plus[k] - minus[k]) / (2 * eps);
  return column;
}

}  // namespace

std::vector<Tensor> jacobian(const Function& f, const std::vector<Tensor>& inputs) {
  Prepared p = prepare(inputs, false);
  Tensor output;
  std::vector<Tensor> computed = reverse_jacobian(f, p, output);
  std::vector<Tensor> result(inputs.size());
  for (std::size_t j = 0; j < p.differentiated.size(); ++j) {
    result[p.differentiated[j]] = computed[j];
  }
  return result;
}

GradcheckResult gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  Prepared p = prepare(inputs, true);
  Tensor output;
  const std::vector<Tensor> analytic = reverse_jacobian(f, p, output);
  const Shape output_shape = output.shape();

  GradcheckResult result;
  double worst_excess = -INFINITY;
  std::vector<std::vector<double>> numeric_jacobians;
  for (std::size_t j = 0; j < p.differentiated.size(); ++j) {
    const std::size_t i = p.differentiated[j];
    const std::int64_t columns = p.inputs[i].numel();
    const std::vector<double> a = analytic[j].to_vector();
    std::vector<double>& numeric =
        numeric_jacobians.emplace_back(std::size_t(output.numel() * columns));
    for (std::int64_t c = 0; c < columns; ++c) {
      const std::vector<double> column = numeric_column(f, p.inputs, i, c, options.eps);
      for (std::int64_t k = 0; k < output.numel(); ++k) {
        const std::size_t at = std::size_t(k * columns + c);
        numeric[at] = column[std::size_t(k)];
        const double error = std::abs(a[at] - numeric[at]);
        const double tolerance = options.atol + options.rtol * std::abs(numeric[at]);
        const bool ok = error <= tolerance;  // false for NaN too
        ++result.entries_checked;
        if (!ok) ++result.entries_failed;
        result.max_error = std::max(result.max_error, std::isnan(error) ? INFINITY : error);
        const double excess = std::isnan(error) ? INFINITY : error - tolerance;
        if (excess > worst_excess) {
          worst_excess = excess;
          result.worst = GradcheckEntry{
              i,    unravel(c, p.inputs[i].shape()), unravel(k, output_shape), a[at], numeric[at],
              error};
        }
      }
    }
  }

  // vᵀJ for a random v, by one backward, against vᵀ times the numeric Jacobian.
  if (output.numel() > 0 && !p.differentiated.empty()) {
    Generator gen(options.seed);
    const Tensor v = randn(output_shape, gen, output.dtype());
    const std::vector<double> vv = v.to_vector();
    std::vector<Tensor> wrt;
    for (std::size_t i : p.differentiated) wrt.push_back(p.inputs[i]);
    Tape tape;
    GradModeGuard grad_on(true);
    const Tensor y = f(p.inputs);
    const std::vector<Tensor> vjp = y.requires_grad() ? grad(y, wrt, v) : std::vector<Tensor>{};
    for (std::size_t j = 0; j < wrt.size(); ++j) {
      const std::vector<double> got =
          vjp.empty() ? std::vector<double>(std::size_t(wrt[j].numel())) : vjp[j].to_vector();
      const auto columns = std::int64_t(got.size());
      for (std::int64_t c = 0; c < columns; ++c) {
        double expected = 0;
        for (std::size_t k = 0; k < vv.size(); ++k) {
          expected += vv[k] * numeric_jacobians[j][std::size_t(std::int64_t(k) * columns + c)];
        }
        const double error = std::abs(got[std::size_t(c)] - expected);
        result.random_vjp_error =
            std::max(result.random_vjp_error, std::isnan(error) ? INFINITY : error);
        if (!(error <= options.atol + options.rtol * std::abs(expected))) {
          result.passed = false;
        }
      }
    }
  }

  result.passed = result.passed && result.entries_failed == 0;
  if (result.passed) {
    result.report = fmt::format(
        "gradcheck passed: {} Jacobian entries, max |analytic − numeric| "
        "= {:.3g}, random-cotangent VJP error {:.3g}",
        result.entries_checked, result.max_error, result.random_vjp_error);
  } else if (result.entries_failed == 0) {
    result.report = fmt::format(
        "gradcheck failed: every Jacobian entry matches, but the VJP for a random cotangent is off "
        "by {:.3g}: the backward rule is not linear in the cotangent g",
        result.random_vjp_error);
  } else {
    const GradcheckEntry& w = *result.worst;
    result.report = fmt::format(
        "gradcheck failed: {} of {} Jacobian entries differ (atol {:g}, rtol {:g}); worst: "
        "d output[{}] / d input {}[{}]: analytic {:.8g}, numeric {:.8g}, error {:.3g}",
        result.entries_failed, result.entries_checked, options.atol, options.rtol,
        fmt::join(w.output_index, ", "), w.input, fmt::join(w.input_index, ", "), w.analytic,
        w.numeric, w.error);
  }
  return result;
}

GradcheckResult gradgradcheck(const Function& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  const Prepared p = prepare(inputs, true);
  Tensor output;
  {
    NoGradGuard no_grad;
    output = f(p.inputs);
  }
  Generator gen(options.seed + 1);
  std::vector<Tensor> extended = p.inputs;
  extended.push_back(randn(output.shape(), gen, f64).requires_grad(true));
  const std::vector<std::size_t> differentiated = p.differentiated;

  // (inputs, v) ↦ the VJPs vᵀJ, flattened and concatenated into one vector.
  const Function first_derivative = [f, differentiated](const std::vector<Tensor>& in) {
    GradModeGuard grad_on(true);
    const std::vector<Tensor> primal(in.begin(), in.end() - 1);
    const Tensor y = f(primal);
    std::vector<Tensor> wrt;
    for (std::size_t i : differentiated) wrt.push_back(primal[i]);
    if (!y.requires_grad()) return zeros({0}, f64);
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

}  // namespace tg
