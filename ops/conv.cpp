#include "ops/conv.h"

namespace tg::detail {

void register_conv_ops(OpRegistry&) {}

}  // namespace tg::detail
