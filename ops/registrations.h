#pragma once
// Private: each op file's registration function, and helpers for writing samples and reference
// Jacobians. ops/registry.cpp calls every registration function once.
#include <functional>

#include "autograd/factories.h"
#include "tools/op_registry.h"

namespace tg::detail {

void register_elementwise_ops(OpRegistry& registry);
void register_unary_ops(OpRegistry& registry);
void register_reduce_ops(OpRegistry& registry);
void register_shape_ops(OpRegistry& registry);
void register_matmul_ops(OpRegistry& registry);
void register_softmax_ops(OpRegistry& registry);
void register_loss_ops(OpRegistry& registry);

// Uniform values in [low, high).
Tensor sample(const Shape& shape, DType dtype, Generator& generator, double low = -2.0,
              double high = 2.0);
// Uniform values with |x| in [0.2, 2): away from the kinks of abs, relu and clamp, where a
// finite difference straddles the kink and disagrees with any one-sided gradient.
Tensor sample_away_from_zero(const Shape& shape, DType dtype, Generator& generator);

}  // namespace tg::detail
