#include "autograd/custom_op.h"

#include <algorithm>

namespace tg {

// Runs the forward again with grad mode on (create_graph is recording), so that the residuals the
// rule reads are functions of the inputs on the graph rather than constants.
void CustomOp::rebuild_residuals(const detail::OpBase& op, std::int64_t entry,
                                 const std::source_location& location, std::span<Tensor> tensors,
                                 std::size_t num_inputs, std::span<const std::uint8_t> needs) {
  const std::size_t num_saved = tensors.size() - num_inputs - 1;
  std::vector<const Tensor*> inputs;
  for (std::size_t i = 0; i < num_inputs; ++i) inputs.push_back(&tensors[i]);
  ForwardContext ctx(inputs, true, op.name, location);
  op.forward(op, ctx, nullptr);
  if (ctx.saved().size() != num_saved) {
    fail(
        "backward of '{}' (entry {}, {}:{}): run again for create_graph, its forward saved {} "
        "residuals instead of {}",
        op.name, entry, location.file_name(), location.line(), ctx.saved().size(), num_saved);
  }
  const bool any_needed = std::any_of(needs.begin(), needs.end(), [](auto n) { return n != 0; });
  for (std::size_t k = 0; k < num_saved; ++k) {
    const Tensor& again = ctx.saved()[k];
    if (ctx.residual_kind(k) == Residual::constant || !is_floating(again.dtype())) continue;
    const bool is_input = std::any_of(inputs.begin(), inputs.end(),
                                      [&](const Tensor* in) { return in->impl() == again.impl(); });
    if (any_needed && !again.requires_grad() && !is_input) {
      fail(
          "backward of '{}' (entry {}, {}:{}) under create_graph: saved residual {} is not a "
          "function of the op's inputs on the graph (computed outside tapegrad ops), so its "
          "derivative would be lost: compute it with tapegrad ops in the forward, recompute it in "
          "the rule from ctx.input(), save it as tg::Residual::constant if its derivative is zero "
          "by design, or declare the op Differentiability::once",
          op.name, entry, location.file_name(), location.line(), k);
    }
    tensors[num_inputs + 1 + k] = again;
  }
}

Tensor CustomOp::apply(const std::vector<Tensor>& inputs, SourceLocation location) const {
  std::vector<const Tensor*> pointers;
  for (const Tensor& input : inputs) pointers.push_back(&input);
  return detail::apply_op(*this, pointers, nullptr, 0, location);
}

}  // namespace tg
