// Printing tensors, close to PyTorch's format.
#include <fmt/format.h>

#include <cmath>
#include <ostream>
#include <sstream>

#include "autograd/tape_core.h"

namespace tg {

namespace {

// Name of the op that produced this tensor on a live tape, or nullptr.
const char* producer_name(const detail::TensorImpl& impl) {
  if (impl.link.core == nullptr || impl.link.thread != std::this_thread::get_id() ||
      !detail::core_of(impl.link).holds(impl.link)) {
    return nullptr;
  }
  return detail::core_of(impl.link).entry(impl.link.entry).op->name;
}

}  // namespace

namespace {

struct NumberFormat {
  // int64 prints as 3, a floating integer as 3. (PyTorch's forms).
  enum class Mode { boolean, int64, integer, fixed, scientific } mode = Mode::fixed;
  int width = 1;

  std::string operator()(double v) const {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    switch (mode) {
      case Mode::boolean:
        return v != 0 ? "True" : "False";
      case Mode::int64:
        return fmt::format("{:.0f}", v);
      case Mode::integer:
        return fmt::format("{:.0f}.", v);
      case Mode::fixed:
        return fmt::format("{:.4f}", v);
      case Mode::scientific:
        return fmt::format("{:.4e}", v);
    }
    return {};
  }
};

NumberFormat choose_format(const std::vector<double>& values, DType dtype) {
  NumberFormat format;
  double max_abs = 0.0;
  double min_abs = INFINITY;
  bool integral = true;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    const double a = std::abs(v);
    max_abs = std::max(max_abs, a);
    if (a > 0) min_abs = std::min(min_abs, a);
    integral = integral && v == std::nearbyint(v);
  }
  if (dtype == DType::b8) {
    format.mode = NumberFormat::Mode::boolean;
  } else if (dtype == DType::i64) {
    format.mode = NumberFormat::Mode::int64;
  } else if (integral && max_abs < 1e8) {
    format.mode = NumberFormat::Mode::integer;
  } else if (max_abs >= 1e8 || min_abs < 1e-4 || max_abs / min_abs > 1000.0) {
    format.mode = NumberFormat::Mode::scientific;
  }
  for (double v : values) format.width = std::max(format.width, int(format(v).size()));
  return format;
}

constexpr std::int64_t kSummarizeAbove = 1000;
constexpr std::int64_t kEdgeItems = 3;

void print_block(std::ostream& out, const Tensor& t, const std::vector<double>& values,
                 const NumberFormat& format, int axis, std::int64_t offset, int indent,
                 bool summarize) {
  const Shape& s = t.shape();
  std::int64_t stride = 1;
  for (int i = axis + 1; i < s.rank(); ++i) stride *= s[i];
  out << '[';
  const std::int64_t n = s[axis];
  for (std::int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      out << (axis + 1 == s.rank() ? "..., "
                                   : "...,\n" + std::string(std::size_t(indent + 1), ' '));
      i = n - kEdgeItems - 1;
      continue;
    }
    if (axis + 1 == s.rank()) {
      out << fmt::format("{:>{}}", format(values[std::size_t(offset + i)]), format.width);
    } else {
      print_block(out, t, values, format, axis + 1, offset + i * stride, indent + 1, summarize);
    }
    if (i + 1 < n) {
      if (axis + 1 == s.rank()) {
        out << ", ";
      } else {
        out << ',' << std::string(std::size_t(s.rank() - axis - 1), '\n')
            << std::string(std::size_t(indent + 1), ' ');
      }
    }
  }
  out << ']';
}

}  // namespace

std::string Tensor::str() const {
  std::ostringstream out;
  out << *this;
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  if (!t.defined()) return out << "tensor(undefined)";
  const std::vector<double> values = t.to_vector();
  const NumberFormat format = choose_format(values, t.dtype());
  out << "tensor(";
  if (t.rank() == 0) {
    out << format(values[0]);
  } else {
    print_block(out, t, values, format, 0, 0, int(std::string("tensor(").size()),
                t.numel() > kSummarizeAbove);
  }
  // True and False already say bool, so PyTorch prints no dtype for it either.
  if (t.dtype() != DType::f32 && t.dtype() != DType::b8) {
    out << ", dtype=" << dtype_name(t.dtype());
  }
  if (const char* op = producer_name(*t.impl())) {
    out << ", grad_fn=<" << op << '>';
  } else if (t.requires_grad()) {
    out << ", requires_grad=true";
  }
  return out << ')';
}

}  // namespace tg
