// First cut of the language-model ops: composed from existing ops (tril/triu, embedding,
// layer_norm); the fused kernels, topk and multinomial follow.
#include "ops/language.h"

#include "ops/everyday.h"
#include "tools/op_registry.h"

namespace tg {
namespace {

// Where j − i lies within the band for a [rows, cols] matrix.
Tensor band_mask(std::int64_t rows, std::int64_t cols, std::int64_t diagonal, bool lower) {
  const Tensor i = reshape(arange(rows, f64), Shape({rows, 1}));
  const Tensor j = reshape(arange(cols, f64), Shape({1, cols}));
  const Tensor offset = j - i;
  return lower ? le(offset, double(diagonal)) : ge(offset, double(diagonal));
}

Tensor triangle(const Tensor& x, std::int64_t diagonal, bool lower, const char* op,
                SourceLocation location) {
  if (x.rank() < 2) {
    detail::fail_at(op, location, "expected a tensor of rank >= 2, got shape {}", x.shape().str());
  }
  const Tensor keep = band_mask(x.shape()[x.rank() - 2], x.shape()[x.rank() - 1], diagonal, lower);
  return detail::composite(op, location, [&] {
    return x.dtype() == DType::b8 ? logical_and(x, keep, location) : where(keep, x, 0.0, location);
  });
}

}  // namespace

Tensor tril(const Tensor& x, std::int64_t diagonal, SourceLocation location) {
  return triangle(x, diagonal, true, "tril", location);
}
Tensor triu(const Tensor& x, std::int64_t diagonal, SourceLocation location) {
  return triangle(x, diagonal, false, "triu", location);
}

Tensor embedding(const Tensor& indices, const Tensor& weight,
                 std::optional<std::int64_t> /*padding_idx*/, SourceLocation location) {
  return detail::composite("embedding", location, [&] {
    const Tensor rows = index_select(weight, 0, reshape(indices, {indices.numel()}), location);
    Shape shape(indices.shape().dims());
    shape.push_back(weight.shape()[1]);
    return reshape(rows, shape, location);
  });
}

Tensor layer_norm(const Tensor& x, const std::vector<std::int64_t>& normalized_shape,
                  const Tensor& weight, const Tensor& bias, double eps, SourceLocation location) {
  return detail::composite("layer_norm", location, [&] {
    const auto k = std::int64_t(normalized_shape.size());
    std::vector<std::int64_t> dims(x.shape().dims().begin(), x.shape().dims().end() - k);
    dims.push_back(-1);
    const Tensor rows = reshape(x, dims, location);
    const Tensor centred = rows - mean(rows, -1, true, location);
    const Tensor variance = mean(centred * centred, -1, true, location);
    Tensor y = reshape(centred / sqrt(variance + eps, location), x.shape(), location);
    if (weight.defined()) y = y * weight;
    if (bias.defined()) y = y + bias;
    return y;
  });
}

namespace detail {
void register_language_ops(OpRegistry&) {}
}  // namespace detail

}  // namespace tg
