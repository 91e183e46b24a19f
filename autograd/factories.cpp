#include "autograd/factories.h"

#include <cmath>
#include <cstring>

#include "autograd/error.h"

namespace tg {

namespace {

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
    case DType::b8:
      // As PyTorch's bool(): any non-zero value, NaN included, is true.
      t.data<bool>()[flat] = value != 0.0;
      break;
  }
}

// Ranges and random draws have no bool form (PyTorch refuses them too): a mask comes from a
// comparison.
void check_not_bool(DType dtype, const char* op) {
  if (dtype == DType::b8) fail("{}: cannot make bool values (compare a tensor to make a mask)", op);
}

}  // namespace

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

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor out = empty(shape, dtype);
  for (std::int64_t i = 0; i < out.numel(); ++i) store(out, i, value);
  return out;
}

Tensor zeros(const Shape& shape, DType dtype) {
  Tensor out = empty(shape, dtype);
  // empty() sized the storage to the byte count, checked once there.
  std::memset(out.raw_data(), 0, out.impl()->storage->bytes);
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
  check_not_bool(dtype, "arange");
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
  check_not_bool(dtype, "randn");
  Tensor out = empty(shape, dtype);
  for (std::int64_t i = 0; i < out.numel(); ++i) store(out, i, generator.normal());
  return out;
}

Tensor uniform(const Shape& shape, Generator& generator, double low, double high, DType dtype) {
  check_not_bool(dtype, "uniform");
  Tensor out = empty(shape, dtype);
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    store(out, i, low + (high - low) * generator.uniform());
  }
  return out;
}

}  // namespace tg
