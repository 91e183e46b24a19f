// The Tensor methods declared in autograd/tensor.h, libtorch's spellings of the ops: the handle
// knows no ops, so they are defined here. Each calls the free function (qualified, since the
// member of the same name hides it) and passes the caller's location on, so a tape entry, an
// error or a report names the user's line, never this file.
#include "ops/everyday.h"

namespace tg {

Tensor Tensor::add(const Tensor& other, SourceLocation location) const {
  return tg::add(*this, other, location);
}
Tensor Tensor::sub(const Tensor& other, SourceLocation location) const {
  return tg::sub(*this, other, location);
}
Tensor Tensor::mul(const Tensor& other, SourceLocation location) const {
  return tg::mul(*this, other, location);
}
Tensor Tensor::div(const Tensor& other, SourceLocation location) const {
  return tg::div(*this, other, location);
}
Tensor Tensor::matmul(const Tensor& other, SourceLocation location) const {
  return tg::matmul(*this, other, location);
}
Tensor Tensor::pow(double exponent, SourceLocation location) const {
  return tg::pow(*this, exponent, location);
}
Tensor Tensor::clamp(double low, double high, SourceLocation location) const {
  return tg::clamp(*this, low, high, location);
}
Tensor Tensor::neg(SourceLocation location) const {
  return tg::neg(*this, location);
}
Tensor Tensor::exp(SourceLocation location) const {
  return tg::exp(*this, location);
}
Tensor Tensor::log(SourceLocation location) const {
  return tg::log(*this, location);
}
Tensor Tensor::sqrt(SourceLocation location) const {
  return tg::sqrt(*this, location);
}
Tensor Tensor::abs(SourceLocation location) const {
  return tg::abs(*this, location);
}
Tensor Tensor::square(SourceLocation location) const {
  return tg::square(*this, location);
}
Tensor Tensor::tanh(SourceLocation location) const {
  return tg::tanh(*this, location);
}
Tensor Tensor::sigmoid(SourceLocation location) const {
  return tg::sigmoid(*this, location);
}
Tensor Tensor::relu(SourceLocation location) const {
  return tg::relu(*this, location);
}
Tensor Tensor::softmax(std::int64_t axis, SourceLocation location) const {
  return tg::softmax(*this, axis, location);
}
Tensor Tensor::log_softmax(std::int64_t axis, SourceLocation location) const {
  return tg::log_softmax(*this, axis, location);
}

Tensor Tensor::sum(SourceLocation location) const {
  return tg::sum(*this, location);
}
Tensor Tensor::sum(std::int64_t axis, bool keepdim, SourceLocation location) const {
  return tg::sum(*this, axis, keepdim, location);
}
Tensor Tensor::mean(SourceLocation location) const {
  return tg::mean(*this, location);
}
Tensor Tensor::mean(std::int64_t axis, bool keepdim, SourceLocation location) const {
  return tg::mean(*this, axis, keepdim, location);
}
Tensor Tensor::logsumexp(std::int64_t axis, bool keepdim, SourceLocation location) const {
  return tg::logsumexp(*this, axis, keepdim, location);
}
std::tuple<Tensor, Tensor> Tensor::max(std::int64_t axis, bool keepdim,
                                       SourceLocation location) const {
  return {tg::max(*this, axis, keepdim, location), tg::argmax(*this, axis, keepdim, location)};
}
std::tuple<Tensor, Tensor> Tensor::min(std::int64_t axis, bool keepdim,
                                       SourceLocation location) const {
  return {tg::min(*this, axis, keepdim, location), tg::argmin(*this, axis, keepdim, location)};
}
Tensor Tensor::amax(std::int64_t axis, bool keepdim, SourceLocation location) const {
  return tg::amax(*this, axis, keepdim, location);
}
Tensor Tensor::amin(std::int64_t axis, bool keepdim, SourceLocation location) const {
  return tg::amin(*this, axis, keepdim, location);
}
Tensor Tensor::argmax(SourceLocation location) const {
  return tg::argmax(*this, location);
}
Tensor Tensor::argmax(std::int64_t axis, bool keepdim, SourceLocation location) const {
  return tg::argmax(*this, axis, keepdim, location);
}
Tensor Tensor::argmin(SourceLocation location) const {
  return tg::argmin(*this, location);
}
Tensor Tensor::argmin(std::int64_t axis, bool keepdim, SourceLocation location) const {
  return tg::argmin(*this, axis, keepdim, location);
}

Tensor Tensor::reshape(const std::vector<std::int64_t>& dims, SourceLocation location) const {
  return tg::reshape(*this, dims, location);
}
Tensor Tensor::view(const std::vector<std::int64_t>& dims, SourceLocation location) const {
  return tg::reshape(*this, dims, location);
}
Tensor Tensor::flatten(std::int64_t start, std::int64_t end, SourceLocation location) const {
  return tg::flatten(*this, start, end, location);
}
Tensor Tensor::unsqueeze(std::int64_t axis, SourceLocation location) const {
  return tg::unsqueeze(*this, axis, location);
}
Tensor Tensor::squeeze(SourceLocation location) const {
  return tg::squeeze(*this, location);
}
Tensor Tensor::squeeze(std::int64_t axis, SourceLocation location) const {
  return tg::squeeze(*this, axis, location);
}
Tensor Tensor::t(SourceLocation location) const {
  if (rank() > 2) {
    detail::fail_at("t", location, "expected a tensor of at most 2 dimensions, got shape {}",
                    shape().str());
  }
  return rank() < 2 ? *this : tg::transpose(*this, 0, 1, location);
}
Tensor Tensor::transpose(std::int64_t axis0, std::int64_t axis1, SourceLocation location) const {
  return tg::transpose(*this, axis0, axis1, location);
}
Tensor Tensor::permute(const std::vector<std::int64_t>& axes, SourceLocation location) const {
  return tg::permute(*this, axes, location);
}
Tensor Tensor::expand(const std::vector<std::int64_t>& sizes, SourceLocation location) const {
  return tg::expand(*this, sizes, location);
}
Tensor Tensor::slice(std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step,
                     SourceLocation location) const {
  return tg::slice(*this, axis, start, end, step, location);
}
Tensor Tensor::narrow(std::int64_t axis, std::int64_t start, std::int64_t length,
                      SourceLocation location) const {
  return tg::narrow(*this, axis, start, length, location);
}
Tensor Tensor::index_select(std::int64_t axis, const Tensor& index, SourceLocation location) const {
  return tg::index_select(*this, axis, index, location);
}
Tensor Tensor::gather(std::int64_t axis, const Tensor& index, SourceLocation location) const {
  return tg::gather(*this, axis, index, location);
}

Tensor Tensor::eq(const Tensor& other, SourceLocation location) const {
  return tg::eq(*this, other, location);
}
Tensor Tensor::ne(const Tensor& other, SourceLocation location) const {
  return tg::ne(*this, other, location);
}
Tensor Tensor::lt(const Tensor& other, SourceLocation location) const {
  return tg::lt(*this, other, location);
}
Tensor Tensor::le(const Tensor& other, SourceLocation location) const {
  return tg::le(*this, other, location);
}
Tensor Tensor::gt(const Tensor& other, SourceLocation location) const {
  return tg::gt(*this, other, location);
}
Tensor Tensor::ge(const Tensor& other, SourceLocation location) const {
  return tg::ge(*this, other, location);
}
Tensor Tensor::eq(double other, SourceLocation location) const {
  return tg::eq(*this, other, location);
}
Tensor Tensor::ne(double other, SourceLocation location) const {
  return tg::ne(*this, other, location);
}
Tensor Tensor::lt(double other, SourceLocation location) const {
  return tg::lt(*this, other, location);
}
Tensor Tensor::le(double other, SourceLocation location) const {
  return tg::le(*this, other, location);
}
Tensor Tensor::gt(double other, SourceLocation location) const {
  return tg::gt(*this, other, location);
}
Tensor Tensor::ge(double other, SourceLocation location) const {
  return tg::ge(*this, other, location);
}
Tensor Tensor::logical_not(SourceLocation location) const {
  return tg::logical_not(*this, location);
}
Tensor Tensor::isnan(SourceLocation location) const {
  return tg::isnan(*this, location);
}
Tensor Tensor::masked_fill(const Tensor& mask, double value, SourceLocation location) const {
  return tg::masked_fill(*this, mask, value, location);
}
Tensor Tensor::masked_select(const Tensor& mask, SourceLocation location) const {
  return tg::masked_select(*this, mask, location);
}

// A cast to its own dtype is a differentiable copy; int64 values have no gradient to keep.
Tensor Tensor::clone(SourceLocation location) const {
  return is_floating(dtype()) ? tg::cast(*this, dtype(), location) : copy();
}

}  // namespace tg
