#include "ops/norm.h"

namespace tg::detail {

void register_norm_ops(OpRegistry&) {}

}  // namespace tg::detail
