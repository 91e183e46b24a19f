// scaled_dot_product_attention. First cut: the composed rule only (scores, masked stable softmax,
// weighted sum); the fused kernels replace its first-order path.
#include "ops/attention.h"

#include <cmath>
#include <limits>

#include "ops/everyday.h"
#include "ops/language.h"
#include "tools/op_registry.h"

namespace tg {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options, SourceLocation location) {
  return detail::composite("scaled_dot_product_attention", location, [&] {
    const std::int64_t e = q.shape()[q.rank() - 1];
    const double scale = options.scale.value_or(1.0 / std::sqrt(double(e)));
    Tensor scores = matmul(q, transpose(k, -2, -1, location), location) * scale;
    const double minus_inf = -std::numeric_limits<double>::infinity();
    if (options.is_causal) {
      const std::int64_t l = q.shape()[q.rank() - 2];
      const std::int64_t s = k.shape()[k.rank() - 2];
      scores = where(tril(ones({l, s}, f32) > 0.0, 0, location), scores, minus_inf, location);
    }
    if (options.attn_mask.defined()) {
      scores = options.attn_mask.dtype() == DType::b8
                   ? where(options.attn_mask, scores, minus_inf, location)
                   : scores + options.attn_mask;
    }
    return matmul(softmax(scores, -1, location), v, location);
  });
}

namespace detail {
void register_attention_ops(OpRegistry&) {}
}  // namespace detail

}  // namespace tg
