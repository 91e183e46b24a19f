#include "tools/op_registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tg {

void OpRegistry::add(OpRegistration registration) {
  if (!registration.function || !registration.samples) {
    fail("OpRegistry::add: op '{}' needs a function and a sample generator", registration.name);
  }
  const auto same_name = [&](const OpRegistration& r) { return r.name == registration.name; };
  if (std::any_of(ops_.begin(), ops_.end(), same_name)) {
    fail("OpRegistry::add: an op named '{}' is already registered", registration.name);
  }
  ops_.push_back(std::move(registration));
}

const OpRegistration& OpRegistry::find(std::string_view name) const {
  for (const OpRegistration& r : ops_) {
    if (r.name == name) return r;
  }
  fail("OpRegistry::find: no op named '{}' is registered", name);
}

Tensor diagonal_jacobian(const std::vector<double>& derivatives) {
  const auto n = std::int64_t(derivatives.size());
  Tensor jacobian = zeros({n, n}, f64);
  for (std::int64_t i = 0; i < n; ++i)
    jacobian.data<double>()[i * n + i] = derivatives[std::size_t(i)];
  return jacobian;
}

Tensor elementwise_jacobian(const Tensor& x, const std::function<double(double)>& derivative) {
  std::vector<double> values = x.to_vector();
  for (double& v : values) v = derivative(v);
  return diagonal_jacobian(values);
}

namespace {

// The largest difference between the reference Jacobians and the reverse-mode ones, or -1 when
// the reference covers no input of this sample.
double reference_error(const OpRegistration& op, const std::vector<Tensor>& inputs) {
  const std::vector<Tensor> reference = op.reference_jacobian(inputs);
  const std::vector<Tensor> computed = jacobian(op.function, inputs);
  double worst = -1;
  for (std::size_t i = 0; i < reference.size() && i < computed.size(); ++i) {
    if (!reference[i].defined()) continue;
    if (!computed[i].defined() || !(reference[i].shape() == computed[i].shape())) return INFINITY;
    const std::vector<double> want = reference[i].to_vector();
    const std::vector<double> got = computed[i].to_vector();
    worst = std::max(worst, 0.0);
    for (std::size_t k = 0; k < want.size(); ++k)
      worst = std::max(worst, std::abs(want[k] - got[k]));
  }
  return worst;
}

void merge(OpCheckSummary& into, const OpCheckSummary& from) {
  into.ops += from.ops;
  into.samples += from.samples;
  into.checks += from.checks;
  into.failures.insert(into.failures.end(), from.failures.begin(), from.failures.end());
}

}  // namespace

constexpr double kReferenceTolerance = 1e-10;

OpCheckSummary check_op(const OpRegistration& op, const GradcheckOptions& options) {
  OpCheckSummary summary;
  summary.ops = 1;
  const std::vector<OpSample> samples64 = op.samples(f64);
  const std::vector<OpSample> samples32 = op.samples(f32);
  GradcheckOptions float32 = options;
  float32.keep_input_dtype = true;
  for (std::size_t s = 0; s < samples64.size(); ++s) {
    const OpSample& sample = samples64[s];
    ++summary.samples;
    const auto record = [&](const char* check, const GradcheckResult& result) {
      ++summary.checks;
      if (!result.passed) summary.failures.push_back({op.name, sample.label, check, result.report});
    };
    record("gradcheck", gradcheck(op.function, sample.inputs, options));
    if (s < samples32.size()) {
      record("gradcheck float32", gradcheck(op.function, samples32[s].inputs, float32));
    }
    if (op.differentiability == Differentiability::twice) {
      record("gradgradcheck", gradgradcheck(op.function, sample.inputs, options));
    }
    if (op.reference_jacobian) {
      const double error = reference_error(op, sample.inputs);
      if (error >= 0) {
        ++summary.checks;
        if (!(error <= kReferenceTolerance)) {
          summary.failures.push_back(
              {op.name, sample.label, "reference Jacobian",
               fmt::format("the backward rule differs from the reference Jacobian by {:.3g} "
                           "(tolerance {:g})",
                           error, kReferenceTolerance)});
        }
      }
    }
  }
  return summary;
}

OpCheckSummary check_ops(const OpRegistry& registry, const GradcheckOptions& options) {
  OpCheckSummary summary;
  for (const OpRegistration& op : registry.ops()) merge(summary, check_op(op, options));
  return summary;
}

std::string OpCheckSummary::report() const {
  std::string text =
      fmt::format("{} ops, {} samples, {} checks: {}", ops, samples, checks,
                  failures.empty() ? "all passed" : fmt::format("{} failed", failures.size()));
  for (const OpCheckFailure& f : failures) {
    text += fmt::format("\n{} on {} ({}): {}", f.op, f.sample, f.check, f.report);
  }
  return text;
}

}  // namespace tg
