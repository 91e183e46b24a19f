#pragma once
// Convolutional-network ops (issue 14), one header per family.
#include "ops/conv.h"
#include "ops/norm.h"
#include "ops/pool.h"
#include "ops/resample.h"

namespace tg::detail {
inline void register_cnn_ops(OpRegistry& registry) {
  register_conv_ops(registry);
  register_pool_ops(registry);
  register_norm_ops(registry);
  register_resample_ops(registry);
}
}  // namespace tg::detail
