#pragma once
// Attention and language-model ops (issue 17), one header per family.
#include "ops/attention.h"
#include "ops/language.h"

namespace tg::detail {
inline void register_transformer_ops(OpRegistry& registry) {
  register_attention_ops(registry);
  register_language_ops(registry);
}
}  // namespace tg::detail
