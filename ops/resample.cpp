#include "ops/resample.h"

namespace tg::detail {

void register_resample_ops(OpRegistry&) {}

}  // namespace tg::detail
