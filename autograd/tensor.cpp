#include "autograd/tensor.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <new>
#include <ostream>
#include <sstream>

#include "autograd/allocator.h"
#include "autograd/tape.h"
#include "ops/ops.h"

namespace tg {

namespace detail {

std::shared_ptr<TensorImpl> make_impl(std::shared_ptr<Storage> storage, const Shape& shape,
                                      DType dtype) {
  return std::allocate_shared<TensorImpl>(PoolAllocator<TensorImpl>(), std::move(storage), shape,
                                          dtype);
}

Storage::Storage(std::size_t bytes) : data(allocate_buffer(bytes)), bytes(bytes) {}

Storage::~Storage() {
  release_buffer(data, bytes);
}

}  // namespace detail

void fail_undefined(const char* what) {
  fail("{}: the tensor is undefined (default-constructed or moved from)", what);
}

detail::TensorImpl& Tensor::checked_impl(const char* what) const {
  if (!impl_) fail_undefined(what);
  return *impl_;
}

std::int64_t Tensor::size(std::int64_t axis) const {
  return shape()[normalize_axis(axis, rank(), "Tensor::size")];
}

const void* Tensor::raw_data() const {
  return checked_impl("Tensor::raw_data").storage->data;
}
void* Tensor::raw_data() {
  detail::Storage& storage = *checked_impl("Tensor::raw_data").storage;
  ++storage.version;
  return storage.data;
}

namespace {

double element(const Tensor& t, std::int64_t flat) {
  switch (t.dtype()) {
    case DType::f32:
      return t.data<float>()[flat];
    case DType::f64:
      return t.data<double>()[flat];
    case DType::i64:
      return double(t.data<std::int64_t>()[flat]);
  }
  return 0.0;
}

std::size_t byte_size(const Shape& shape, DType dtype) {
  return tensor_bytes(shape, dtype_size(dtype), dtype_name(dtype));
}

void store(Tensor& t, std::int64_t flat, double value) {
  switch (t.dtype()) {
    case DType::f32:
      t.data<float>()[flat] = float(value);
      break;
    case DType::f64:
      t.data<double>()[flat] = value;
      break;
    case DType::i64:
      // Converting a double outside int64's range (or NaN) is undefined behaviour: refuse it.
      if (!(value >= -0x1p63 && value < 0x1p63)) {
        fail("Tensor: {} cannot be stored in an int64 tensor", value);
      }
      t.data<std::int64_t>()[flat] = std::int64_t(value);
      break;
  }
}

}  // namespace

double Tensor::item() const {
  if (numel() != 1) {
    fail("Tensor::item: expected a tensor with one element, got shape {}", shape().str());
  }
  return element(*this, 0);
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  const Shape& s = shape();
  if (int(index.size()) != s.rank()) {
    fail("Tensor::at: {} indices given for a tensor of shape {}", index.size(), s.str());
  }
  std::int64_t flat = 0;
  int axis = 0;
  for (std::int64_t i : index) {
    if (i < 0 || i >= s[axis]) {
      fail("Tensor::at: index {} is out of range for axis {} of shape {}", i, axis, s.str());
    }
    flat = flat * s[axis++] + i;
  }
  return element(*this, flat);
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> values(static_cast<std::size_t>(numel()));
  for (std::int64_t i = 0; i < numel(); ++i) values[std::size_t(i)] = element(*this, i);
  return values;
}

Tensor Tensor::to(DType target) const {
  if (is_floating(dtype()) && is_floating(target)) return cast(*this, target);
  // Conversions to or from int64 carry values only: labels and indices have no gradient.
  if (dtype() == target) return copy();
  return from_vector(to_vector(), shape(), target);
}

Tensor Tensor::detach() const {
  const detail::TensorImpl& impl = checked_impl("Tensor::detach");
  return Tensor(detail::make_impl(impl.storage, impl.shape, impl.dtype));
}

Tensor Tensor::copy() const {
  Tensor out = empty(shape(), dtype());
  std::memcpy(out.raw_data(), raw_data(), byte_size(shape(), dtype()));
  return out;
}

bool Tensor::requires_grad() const {
  return impl_ && impl_->requires_grad;
}

Tensor& Tensor::requires_grad(bool value) {
  detail::TensorImpl& impl = checked_impl("Tensor::requires_grad");
  if (impl.link.core) {
    fail(
        "Tensor::requires_grad: only leaf tensors can change requires_grad; this one was "
        "produced by a recorded op (use detach() for a new leaf)");
  }
  if (value && !is_floating(impl.dtype)) {
    fail("Tensor::requires_grad: only floating tensors can require grad, this one is {}",
         dtype_name(impl.dtype));
  }
  impl.requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const {
  return checked_impl("Tensor::is_leaf").link.core == nullptr;
}

Tensor Tensor::grad() const {
  return checked_impl("Tensor::grad").grad;
}

void Tensor::zero_grad() {
  checked_impl("Tensor::zero_grad").grad = Tensor();
}

void Tensor::backward(const Tensor& seed, BackwardOptions options) const {
  run_backward(*this, seed, options, {});
}

// ---- printing, close to PyTorch's ----

namespace {

struct NumberFormat {
  enum class Mode { integer, fixed, scientific } mode = Mode::fixed;
  int width = 1;

  std::string operator()(double v) const {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    switch (mode) {
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
  if (dtype == DType::i64) {
    format.mode = NumberFormat::Mode::integer;
  } else if (integral && max_abs < 1e8) {
    format.mode = NumberFormat::Mode::integer;
  } else if (max_abs >= 1e8 || min_abs < 1e-4 || max_abs / min_abs > 1000.0) {
    format.mode = NumberFormat::Mode::scientific;
  }
  for (double v : values) {
    std::string text = format(v);
    if (dtype == DType::i64 && text.back() == '.') text.pop_back();
    format.width = std::max(format.width, int(text.size()));
  }
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
      std::string text = format(values[std::size_t(offset + i)]);
      if (t.dtype() == DType::i64 && text.back() == '.') text.pop_back();
      out << fmt::format("{:>{}}", text, format.width);
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
  if (t.dtype() != DType::f32) out << ", dtype=" << dtype_name(t.dtype());
  if (const char* op = detail::producer_name(*t.impl())) {
    out << ", grad_fn=<" << op << '>';
  } else if (t.requires_grad()) {
    out << ", requires_grad=true";
  }
  return out << ')';
}

// ---- random numbers ----

double Generator::uniform() {
  // 53 random bits give every double in [0, 1) on the 2^-53 grid, identically on every platform.
  return double(engine_() >> 11) * 0x1.0p-53;
}

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Box-Muller rather than std::normal_distribution, whose output differs between libraries.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * M_PI * u2;
  spare_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

// ---- factories ----

Tensor empty(const Shape& shape, DType dtype) {
  auto storage = std::allocate_shared<detail::Storage>(detail::PoolAllocator<detail::Storage>(),
                                                       byte_size(shape, dtype));
  return Tensor(detail::make_impl(std::move(storage), shape, dtype));
}

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor out = empty(shape, dtype);
  for (std::int64_t i = 0; i < out.numel(); ++i) store(out, i, value);
  return out;
}

Tensor zeros(const Shape& shape, DType dtype) {
  Tensor out = empty(shape, dtype);
  std::memset(out.raw_data(), 0, byte_size(shape, dtype));
  return out;
}

Tensor ones(const Shape& shape, DType dtype) {
  return full(shape, 1.0, dtype);
}
Tensor zeros_like(const Tensor& like) {
  return zeros(like.shape(), like.dtype());
}
Tensor ones_like(const Tensor& like) {
  return ones(like.shape(), like.dtype());
}

Tensor arange(double start, double stop, double step, DType dtype) {
  if (step == 0 || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step)) {
    fail("arange: expected finite start, stop and a non-zero step, got {}, {}, {}", start, stop,
         step);
  }
  const double count = std::max(0.0, std::ceil((stop - start) / step));
  // Converting a count past int64's range (or infinite, when stop - start overflows) is
  // undefined behaviour; a count within it but too large fails in empty().
  if (!(count < 0x1p63)) {
    fail("arange: [{}, {}) in steps of {} has {} elements, more than 2^63 - 1", start, stop, step,
         count);
  }
  const auto n = std::int64_t(count);
  Tensor out = empty({n}, dtype);
  for (std::int64_t i = 0; i < n; ++i) store(out, i, start + double(i) * step);
  return out;
}

Tensor arange(std::int64_t stop, DType dtype) {
  return arange(0.0, double(stop), 1.0, dtype);
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  if (std::int64_t(values.size()) != shape.numel()) {
    fail("from_vector: {} values do not fill shape {} ({} elements)", values.size(), shape.str(),
         shape.numel());
  }
  Tensor out = empty(shape, dtype);
  for (std::int64_t i = 0; i < out.numel(); ++i) store(out, i, values[std::size_t(i)]);
  return out;
}

Tensor tensor(std::initializer_list<double> values, DType dtype) {
  return from_vector(std::vector<double>(values), {std::int64_t(values.size())}, dtype);
}

Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype) {
  std::vector<double> values;
  const std::size_t cols = rows.size() == 0 ? 0 : rows.begin()->size();
  for (const auto& row : rows) {
    if (row.size() != cols) {
      fail("tensor: ragged rows: row {} has {} values, the first row has {}",
           values.size() / std::max<std::size_t>(cols, 1), row.size(), cols);
    }
    values.insert(values.end(), row.begin(), row.end());
  }
  return from_vector(values, {std::int64_t(rows.size()), std::int64_t(cols)}, dtype);
}

Tensor int64_tensor(const std::vector<std::int64_t>& values, const Shape& shape) {
  if (std::int64_t(values.size()) != shape.numel()) {
    fail("int64_tensor: {} values do not fill shape {}", values.size(), shape.str());
  }
  Tensor out = empty(shape, DType::i64);
  // An empty vector's data() may be null, which memcpy must not be given even for 0 bytes.
  if (!values.empty()) {
    std::memcpy(out.raw_data(), values.data(), values.size() * sizeof(std::int64_t));
  }
  return out;
}

Tensor int64_tensor(const std::vector<std::int64_t>& values) {
  return int64_tensor(values, {std::int64_t(values.size())});
}

Tensor randn(const Shape& shape, Generator& generator, DType dtype) {
  Tensor out = empty(shape, dtype);
  for (std::int64_t i = 0; i < out.numel(); ++i) store(out, i, generator.normal());
  return out;
}

Tensor uniform(const Shape& shape, Generator& generator, double low, double high, DType dtype) {
  Tensor out = empty(shape, dtype);
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    store(out, i, low + (high - low) * generator.uniform());
  }
  return out;
}

}  // namespace tg
