#pragma once
// Scaled dot-product attention with PyTorch 2's semantics (torch.nn.functional's name).
#include <cstdint>
#include <optional>

#include "autograd/autograd.h"
#include "ops/ops.h"

namespace tg {

class OpRegistry;

// F.scaled_dot_product_attention's options. attn_mask broadcasts to [..., L, S]: a bool mask
// keeps the scores where it is true (false = −inf), a floating mask of the inputs' dtype is added
// to the scores (−inf entries mask). is_causal keeps key j for query i when j ≤ i (the top-left
// aligned lower triangle, as PyTorch 2), and is an error together with attn_mask. scale defaults
// to 1/√E (1 for E = 0, whose scores are all 0: each query averages v, as PyTorch 2). A query whose
// every key is masked gets output 0 and gradient 0 (PyTorch ≥ 2.5's math path; 2.0–2.4 gave NaN).
// dropout_p > 0 drops attention weights with `generator` (required then) and scales the rest by
// 1/(1 − dropout_p).
struct AttentionOptions {
  Tensor attn_mask{};
  double dropout_p = 0.0;
  bool is_causal = false;
  std::optional<double> scale = std::nullopt;
  Generator* generator = nullptr;
};

// softmax(q·kᵀ·scale + mask)·v for q [..., L, E], k [..., S, E], v [..., S, Ev] (equal leading
// dimensions, e.g. [B, H, T, D]) -> [..., L, Ev]. One fused op per batch and head in forward and
// first-order backward (never more than one L×S block per head held); under create_graph the
// backward is the composed rule, so every order of derivative works.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {},
                                    SourceLocation location = SourceLocation::current());

// The weights scaled_dot_product_attention multiplies v by, [..., L, S]: the same masks, scale,
// zero rows for fully masked queries and dropout, composed from differentiable ops (what
// nn::MultiheadAttention returns with need_weights). Errors as scaled_dot_product_attention's.
Tensor scaled_dot_product_attention_weights(const Tensor& q, const Tensor& k,
                                            const AttentionOptions& options = {},
                                            SourceLocation location = SourceLocation::current());

namespace detail {
void register_attention_ops(OpRegistry& registry);
}  // namespace detail

}  // namespace tg
