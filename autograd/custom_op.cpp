#include "autograd/custom_op.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "autograd/factories.h"
// Outside the core: a multi-output op's outputs are packed and sliced with tapegrad's own ops, so
// that the slices are differentiable under create_graph like any other op.
#include "ops/ops.h"

namespace tg {
namespace detail {

void rebuild_custom_residuals(const OpBase& op, const void* attrs, std::int64_t entry,
                              const std::source_location& location, std::span<Tensor> tensors,
                              std::size_t num_inputs, std::span<const std::uint8_t> needs) {
  const std::size_t num_saved = tensors.size() - num_inputs - 1;
  std::vector<const Tensor*> inputs;
  for (std::size_t i = 0; i < num_inputs; ++i) inputs.push_back(&tensors[i]);
  ForwardContext ctx(inputs, true, op.name, location);
  op.forward(op, ctx, attrs);
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

namespace {

// Where the forward of the multi-output op being called hands its outputs to the call, past
// apply_op (which returns the packed tensor only). Null while a backward pass reruns a forward.
thread_local std::vector<Tensor>* outputs_sink = nullptr;

// The layout residual: per output, whether it is floating (packed), its rank and its dims.
struct PackedOutput {
  bool floating;
  Shape shape;
};

std::vector<PackedOutput> read_layout(const Tensor& layout) {
  const std::int64_t* p = layout.data<std::int64_t>();
  const std::int64_t* end = p + layout.numel();
  std::vector<PackedOutput> outputs;
  while (p < end) {
    const bool floating = p[0] != 0;
    const auto rank = std::size_t(p[1]);
    outputs.push_back({floating, Shape(std::span(p + 2, rank))});
    p += 2 + rank;
  }
  return outputs;
}

// Output k of the packed tensor, a slice of it in k's shape.
std::vector<Tensor> unpack(const Tensor& packed, const std::vector<PackedOutput>& layout,
                           const std::source_location& location) {
  std::vector<Tensor> outputs;
  std::int64_t offset = 0;
  for (const PackedOutput& output : layout) {
    if (!output.floating) {
      outputs.emplace_back();
      continue;
    }
    const std::int64_t size = output.shape.numel();
    outputs.push_back(
        reshape(slice(packed, 0, offset, offset + size, location), output.shape, location));
    offset += size;
  }
  return outputs;
}

}  // namespace

Tensor pack_outputs(ForwardContext& ctx, std::vector<Tensor> outputs) {
  const std::source_location& location = ctx.location();
  if (outputs.empty()) {
    fail_at(ctx.op_name(), location, "the forward returned no outputs");
  }
  std::vector<std::int64_t> layout;
  std::vector<Tensor> flat;
  std::optional<DType> dtype;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& output = outputs[k];
    if (!output.defined()) {
      fail_at(ctx.op_name(), location, "output {} of the forward is an undefined tensor", k);
    }
    const bool floating = is_floating(output.dtype());
    if (floating && dtype && *dtype != output.dtype()) {
      fail_at(ctx.op_name(), location,
              "floating outputs must share one dtype: output {} is {}, an earlier one {}", k,
              dtype_name(output.dtype()), dtype_name(*dtype));
    }
    layout.push_back(floating);
    layout.push_back(std::int64_t(output.shape().rank()));
    for (std::int64_t dim : output.shape().dims()) layout.push_back(dim);
    if (floating) {
      dtype = output.dtype();
      flat.push_back(reshape(output, Shape{output.numel()}));
    }
  }
  Tensor packed;
  {
    // A rerun under create_graph has grad mode on: the packing itself is never differentiated.
    const NoGradGuard packing;
    packed = flat.empty() ? zeros(Shape{0}) : concat(flat, 0);
  }
  ctx.save(int64_tensor(layout), Residual::constant);
  if (outputs_sink) *outputs_sink = std::move(outputs);
  return packed;
}

std::vector<Tensor> apply_multi_output(const OpBase& op, std::span<const Tensor* const> inputs,
                                       const void* attrs, std::size_t attrs_size,
                                       const std::source_location& location) {
  std::vector<Tensor> outputs;
  const Tensor packed = [&] {
    struct SinkScope {  // a multi-output op called inside another's forward restores the outer sink
      std::vector<Tensor>* outer;
      ~SinkScope() { outputs_sink = outer; }
    } scope{std::exchange(outputs_sink, &outputs)};
    return apply_op(op, inputs, attrs, attrs_size, location);
  }();
  if (!packed.requires_grad()) return outputs;  // nothing recorded: the forward's own tensors
  std::vector<PackedOutput> layout;
  for (const Tensor& output : outputs) {
    layout.push_back({is_floating(output.dtype()), output.shape()});
  }
  std::vector<Tensor> slices = unpack(packed, layout, location);
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    if (slices[k].defined()) outputs[k] = std::move(slices[k]);
  }
  return outputs;
}

void unpack_for_rule(const BackwardContext& ctx, std::vector<Tensor>& outputs,
                     std::vector<Tensor>& grad_outputs) {
  const std::vector<PackedOutput> layout = read_layout(ctx.saved(ctx.num_saved() - 1));
  outputs = unpack(ctx.output(), layout, ctx.location());
  grad_outputs = unpack(ctx.grad_output(), layout, ctx.location());
}

}  // namespace detail
}  // namespace tg
