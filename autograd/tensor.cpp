#include "autograd/tensor.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <new>

#include "autograd/allocator.h"

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

std::int64_t Tensor::size(std::int64_t axis, SourceLocation location) const {
  return shape()[normalize_axis(axis, rank(), "Tensor::size", location)];
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
    case DType::b8:
      return t.data<bool>()[flat] ? 1.0 : 0.0;
  }
  return 0.0;
}

std::size_t byte_size(const Shape& shape, DType dtype) {
  return tensor_bytes(shape, dtype_size(dtype), dtype_name(dtype));
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

Tensor Tensor::detach() const {
  const detail::TensorImpl& impl = checked_impl("Tensor::detach");
  return Tensor(detail::make_impl(impl.storage, impl.shape, impl.dtype));
}

Tensor Tensor::copy() const {
  Tensor out = empty(shape(), dtype());
  std::memcpy(out.raw_data(), raw_data(), byte_size(shape(), dtype()));
  return out;
}

Tensor empty(const Shape& shape, DType dtype) {
  auto storage = std::allocate_shared<detail::Storage>(detail::PoolAllocator<detail::Storage>(),
                                                       byte_size(shape, dtype));
  return Tensor(detail::make_impl(std::move(storage), shape, dtype));
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

}  // namespace tg
