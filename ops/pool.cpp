#include "ops/pool.h"

namespace tg::detail {

void register_pool_ops(OpRegistry&) {}

}  // namespace tg::detail
