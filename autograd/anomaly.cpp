#include "autograd/anomaly.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/op.h"
#include "autograd/shape.h"

namespace tg {
namespace {

// The flat index of the first NaN or infinity, or -1.
std::int64_t first_non_finite(const Tensor& t) {
  if (!is_floating(t.dtype())) return -1;
  return dispatch_floating(t.dtype(), "anomaly", [&]<class T>() -> std::int64_t {
    const T* p = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      if (!std::isfinite(p[i])) return i;
    }
    return -1;
  });
}

// "nan at [0, 2]": the value and where it is.
std::string describe_element(const Tensor& t, std::int64_t flat) {
  return fmt::format("{} at [{}]", t.to_vector()[std::size_t(flat)],
                     fmt::join(unravel_index(flat, t.shape()), ", "));
}

std::string input_ranges(std::span<const Tensor* const> inputs) {
  std::string text;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = *inputs[i];
    std::string range = "empty";
    if (x.numel() > 0) {
      std::vector<double> v = x.to_vector();
      // NaN compares false with everything, so a range taken over it would hide it.
      const auto non_finite =
          std::partition(v.begin(), v.end(), [](double e) { return std::isfinite(e); });
      const auto count = std::distance(non_finite, v.end());
      if (non_finite != v.begin()) {
        const auto [low, high] = std::minmax_element(v.begin(), non_finite);
        range = fmt::format("[{:g}, {:g}]", *low, *high);
      } else {
        range = "no finite value";
      }
      if (count > 0) range += fmt::format(" and {} non-finite ({})", count, *non_finite);
    }
    text += fmt::format("{}input {} {} {} in {}", i == 0 ? "inputs: " : "; ", i,
                        dtype_name(x.dtype()), x.shape().str(), range);
  }
  return text;
}

[[noreturn]] void fail_anomaly(const char* direction, const detail::OpBase& op,
                               const std::string& entry, const std::source_location& location,
                               const std::string& what, std::span<const Tensor* const> inputs) {
  fail("anomaly: {} of '{}' ({}, {}:{}) produced {}; {}", direction, op.name, entry,
       location.file_name(), location.line(), what, input_ranges(inputs));
}

// Reports the first non-finite value where it is produced: an op's output in the forward, a
// rule's gradient in the backward. An input that is already non-finite came from a leaf or a
// constant, and is reported at the first op that receives it rather than blamed on that op.
class AnomalyHook final : public detail::Hook {
 public:
  void before_forward(const detail::OpBase& op, std::span<const Tensor* const> inputs,
                      const std::source_location& location) override {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const std::int64_t bad = first_non_finite(*inputs[i]);
      if (bad < 0) continue;
      fail(
          "anomaly: forward of '{}' ({}:{}): input {} is already non-finite ({}): it comes from a "
          "leaf or a constant, not from a recorded op; {}",
          op.name, location.file_name(), location.line(), i, describe_element(*inputs[i], bad),
          input_ranges(inputs));
    }
  }

  void after_forward(const detail::OpBase& op, std::span<const Tensor* const> inputs,
                     const Tensor& output, const std::source_location& location,
                     std::int64_t entry) override {
    const std::int64_t bad = first_non_finite(output);
    if (bad < 0) return;
    fail_anomaly("forward", op, entry >= 0 ? fmt::format("tape entry {}", entry) : "not recorded",
                 location, fmt::format("{} in its output", describe_element(output, bad)), inputs);
  }

  void on_step(const detail::StepView& step) override {
    for (std::size_t i = 0; i < step.grad_inputs.size(); ++i) {
      const Tensor& g = step.grad_inputs[i];
      const std::int64_t bad = g.defined() ? first_non_finite(g) : -1;
      if (bad < 0) continue;
      std::vector<const Tensor*> inputs;
      for (const Tensor& t : step.inputs) inputs.push_back(&t);
      fail_anomaly("backward", step.op, fmt::format("tape entry {}", step.entry), step.location,
                   fmt::format("{} in the gradient for input {}", describe_element(g, bad), i),
                   inputs);
    }
  }
};

thread_local AnomalyHook anomaly_hook;
thread_local bool anomaly_on = false;

}  // namespace

void detect_anomaly(bool on) {
  if (on == anomaly_on) return;
  if (on) {
    detail::add_hook(anomaly_hook);
  } else {
    detail::remove_hook(anomaly_hook);
  }
  anomaly_on = on;
}

bool anomaly_detection_enabled() {
  return anomaly_on;
}

AnomalyGuard::AnomalyGuard(bool on) : previous_(anomaly_detection_enabled()) {
  detect_anomaly(on);
}

AnomalyGuard::~AnomalyGuard() {
  detect_anomaly(previous_);
}

}  // namespace tg
