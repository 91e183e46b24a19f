#include "ops/cnn.h"
#include "ops/everyday.h"
#include "ops/registrations.h"
#include "ops/transformer.h"
#include "tools/op_registry.h"

namespace tg {

OpRegistry& op_registry() {
  static OpRegistry registry = [] {
    OpRegistry builtins;
    detail::register_elementwise_ops(builtins);
    detail::register_unary_ops(builtins);
    detail::register_reduce_ops(builtins);
    detail::register_shape_ops(builtins);
    detail::register_matmul_ops(builtins);
    detail::register_softmax_ops(builtins);
    detail::register_loss_ops(builtins);
    detail::register_everyday_ops(builtins);
    detail::register_cnn_ops(builtins);
    detail::register_transformer_ops(builtins);
    return builtins;
  }();
  return registry;
}

}  // namespace tg
