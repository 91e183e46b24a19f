#pragma once
// Ops a language model needs around attention: triangular masks, embedding with a padding row,
// layer_norm over the last k dimensions, and top-k / multinomial sampling for generation
// (torch's names and conventions).
#include <cstdint>
#include <optional>
#include <vector>

#include "autograd/autograd.h"
#include "ops/ops.h"

namespace tg {

class OpRegistry;

// torch.tril / torch.triu over the last two dimensions of a tensor of rank ≥ 2: entries (i, j)
// with j − i ≤ diagonal (tril) or j − i ≥ diagonal (triu) kept, the rest 0. Any dtype (bool too);
// the gradient is the same mask applied to g.
Tensor tril(const Tensor& x, std::int64_t diagonal = 0,
            SourceLocation location = SourceLocation::current());
Tensor triu(const Tensor& x, std::int64_t diagonal = 0,
            SourceLocation location = SourceLocation::current());

// F.embedding: rows of weight [num_embeddings, dim] for int64 indices of any shape ->
// [*indices.shape, dim]. An index equal to padding_idx (negative counts from the end; nullopt =
// none) reads its row but sends it no gradient. Out-of-range indices are an error.
Tensor embedding(const Tensor& indices, const Tensor& weight,
                 std::optional<std::int64_t> padding_idx = std::nullopt,
                 SourceLocation location = SourceLocation::current());

// F.layer_norm: normalises over the last normalized_shape.size() dimensions, which must equal
// normalized_shape: (x − mean)/√(var + eps)·weight + bias, the biased variance; weight and bias
// of shape normalized_shape, or undefined. One fused op (statistics in double) whose rule is the
// composed layer norm, so second order works.
Tensor layer_norm(const Tensor& x, const std::vector<std::int64_t>& normalized_shape,
                  const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5,
                  SourceLocation location = SourceLocation::current());

// torch.topk: the k largest (or smallest) entries along axis, sorted by value (descending for
// largest) when `sorted`; indices int64. NaN counts as larger than every number, as PyTorch.
// Values carry the gradient (scattered back to the chosen positions).
struct TopK {
  Tensor values;
  Tensor indices;
};
TopK topk(const Tensor& x, std::int64_t k, std::int64_t axis = -1, bool largest = true,
          bool sorted = true, SourceLocation location = SourceLocation::current());

// torch.multinomial: num_samples category indices (int64) per row of non-negative weights [C]
// or [N, C] (not necessarily normalised), drawn with `generator`; without replacement each row
// needs num_samples non-zero weights. Negative, inf or NaN weights, or a row summing to 0, are
// errors. Not differentiable.
Tensor multinomial(const Tensor& probs, std::int64_t num_samples, Generator& generator,
                   bool replacement = false, SourceLocation location = SourceLocation::current());

namespace detail {
void register_language_ops(OpRegistry& registry);
}  // namespace detail

}  // namespace tg
