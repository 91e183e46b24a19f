#pragma once
// An op: a forward (input values in, output value and residuals out) and a backward rule
// (residuals and output cotangent in, one gradient per input out) written with tapegrad's own ops,
// so that recording the backward pass (create_graph) gives gradients of gradients. The engine
// never looks at an op's name: the name and formula are for logs, errors and pictures.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <source_location>
#include <span>
#include <type_traits>
#include <vector>

#include "autograd/tensor.h"

namespace tg {

// ---- grad mode ----

bool grad_enabled();

// Sets grad mode for a scope and restores the previous mode on exit.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled);
  ~GradModeGuard();
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

// No op is recorded in its scope (evaluation, optimizer updates).
class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

// ---- defining ops ----

// A function of tensors, as gradcheck, jacobian and the op registry take them.
using TensorFunction = std::function<Tensor(const std::vector<Tensor>& inputs)>;

// A tensor operand that remembers where the expression using it was written, so `a * b` or
// `my_op(x)` is recorded with the user's file and line rather than tapegrad's.
struct Operand {
  Operand(const Tensor& tensor, SourceLocation location = SourceLocation::current())
      : tensor(tensor), location(location) {}
  const Tensor& tensor;
  SourceLocation location;
};

// Whether an op's backward rule is itself differentiable (built from tapegrad ops), so that
// create_graph can record it. A once-differentiable op raises a clear error under create_graph.
enum class Differentiability { twice, once };

struct NoAttrs {};

// How a residual saved by a user-defined op takes part in gradients of gradients (see CustomOp).
enum class Residual {
  differentiable,  // a function of the inputs, computed with tapegrad ops
  constant,        // derivative zero by design: a mask, indices, a random draw
};

namespace detail {
// An index past the end of what a context holds: an error naming the op and where it was called.
[[noreturn]] void fail_context_index(const char* op, const std::source_location& location,
                                     const char* what, std::size_t index, std::size_t size);
}  // namespace detail

class ForwardContext {
 public:
  static constexpr std::size_t kMaxSaved = 8;

  ForwardContext(std::span<const Tensor* const> inputs, bool recording, const char* op,
                 const std::source_location& location)
      : inputs_(inputs), recording_(recording), op_(op), location_(location) {}
  const Tensor& input(std::size_t i) const {
    if (i >= inputs_.size()) [[unlikely]]
      detail::fail_context_index(op_, location_, "input", i, inputs_.size());
    return *inputs_[i];
  }
  std::size_t num_inputs() const { return inputs_.size(); }
  // Keeps a residual for the backward rule; a no-op when nothing is being recorded.
  void save(const Tensor& residual, Residual kind = Residual::differentiable);
  std::span<const Tensor> saved() const { return {saved_.data(), num_saved_}; }
  Residual residual_kind(std::size_t i) const { return kinds_[i]; }
  const char* op_name() const { return op_; }
  const std::source_location& location() const { return location_; }

 private:
  std::span<const Tensor* const> inputs_;
  bool recording_;
  const char* op_;
  std::source_location location_;
  std::array<Tensor, kMaxSaved> saved_;
  std::array<Residual, kMaxSaved> kinds_{};
  std::size_t num_saved_ = 0;
};

class BackwardContext {
 public:
  BackwardContext(std::span<const Tensor> inputs, std::span<const Tensor> outputs,
                  std::span<const Tensor> saved, std::span<const Tensor> grad_outputs,
                  std::span<const std::uint8_t> needs_grad, std::span<Tensor> grads,
                  bool create_graph, const char* op, const std::source_location& location)
      : inputs_(inputs),
        outputs_(outputs),
        saved_(saved),
        grad_outputs_(grad_outputs),
        needs_grad_(needs_grad),
        grads_(grads),
        create_graph_(create_graph),
        op_(op),
        location_(location) {}

  const Tensor& input(std::size_t i) const { return inputs_[checked(i, inputs_.size(), "input")]; }
  std::size_t num_inputs() const { return inputs_.size(); }
  // Output k and its cotangent (several only for tg::MultiOutputOp).
  const Tensor& output(std::size_t k = 0) const {
    return outputs_[checked(k, outputs_.size(), "output")];
  }
  std::size_t num_outputs() const { return outputs_.size(); }
  const Tensor& saved(std::size_t i) const { return saved_[checked(i, saved_.size(), "saved")]; }
  std::size_t num_saved() const { return saved_.size(); }
  const Tensor& grad_output(std::size_t k = 0) const {
    return grad_outputs_[checked(k, grad_outputs_.size(), "grad_output")];
  }
  // False for inputs no gradient can flow to (constants, int64 labels): skip their work.
  bool needs_grad(std::size_t i) const {
    return needs_grad_[checked(i, needs_grad_.size(), "needs_grad")] != 0;
  }
  // True when the backward pass is itself being recorded.
  bool create_graph() const { return create_graph_; }
  const char* op_name() const { return op_; }
  const std::source_location& location() const { return location_; }
  // The gradient for input i; it may have the output's broadcast shape, the engine sums it back.
  void set_grad(std::size_t i, Tensor grad) {
    grads_[checked(i, grads_.size(), "set_grad")] = std::move(grad);
  }

 private:
  std::size_t checked(std::size_t i, std::size_t size, const char* what) const {
    if (i >= size) [[unlikely]]
      detail::fail_context_index(op_, location_, what, i, size);
    return i;
  }

  std::span<const Tensor> inputs_;
  std::span<const Tensor> outputs_;
  std::span<const Tensor> saved_;
  std::span<const Tensor> grad_outputs_;
  std::span<const std::uint8_t> needs_grad_;
  std::span<Tensor> grads_;
  bool create_graph_;
  const char* op_;
  std::source_location location_;
};

namespace detail {

inline constexpr std::size_t kAttrCapacity = 80;

// Type-erased view of an Op<Attrs>, what a tape entry points to.
struct OpBase {
  const char* name;
  const char* formula;  // the VJP, as documented in the op's file
  Tensor (*forward)(const OpBase& op, ForwardContext& ctx, const void* attrs);
  void (*backward)(const OpBase& op, BackwardContext& ctx, const void* attrs);
  Differentiability differentiability = Differentiability::twice;
  // Under create_graph, called before the rule to replace the saved residuals (tensors holds the
  // entry's inputs, output and residuals) with ones on the graph: CustomOp reruns its forward.
  // Built-in ops recompute what they need in their rules instead.
  void (*rebuild_residuals)(const OpBase& op, const void* attrs, std::int64_t entry,
                            const std::source_location& location, std::span<Tensor> tensors,
                            std::size_t num_inputs, std::span<const std::uint8_t> needs) = nullptr;
};

}  // namespace detail

namespace detail {

// The side concerns of recording and backward (anomaly detection, the backward trace, fault
// injection in tests) watch through hooks installed per thread, so that neither apply_op nor the
// backward loop knows about them. With no hook installed they cost one test of an empty list.
// Hooks do not see the ops a backward rule runs: those are the rule's implementation.
// One step of a backward pass as the loop sees it: valid during the call only.
struct StepView {
  std::int64_t entry;
  const OpBase& op;
  const std::source_location& location;
  const Tensor& grad_output;
  std::span<const Tensor> inputs;
  std::span<const std::int64_t> input_entries;  // -1 for a leaf or a constant
  std::span<const Tensor> grad_inputs;          // undefined where no gradient flows
};

class Hook {
 public:
  virtual ~Hook() = default;
  // Around an op's forward; `entry` is the tape entry it will be recorded as, or -1.
  virtual void before_forward(const OpBase&, std::span<const Tensor* const> /*inputs*/,
                              const std::source_location&) {}
  virtual void after_forward(const OpBase&, std::span<const Tensor* const> /*inputs*/,
                             const Tensor& /*output*/, const std::source_location&,
                             std::int64_t /*entry*/) {}
  // Around a backward rule: may change the cotangent before it and the raw gradients after it.
  virtual void before_rule(const OpBase&, Tensor& /*grad_output*/) {}
  virtual void after_rule(const OpBase&, std::span<Tensor> /*grad_inputs*/) {}
  // The gradients of one step, each summed back to its input's shape.
  virtual void on_step(const StepView&) {}
};

void add_hook(Hook& hook);
void remove_hook(Hook& hook);

// Installs a hook on this thread for the scope's lifetime.
class HookScope {
 public:
  explicit HookScope(Hook& hook) : hook_(hook) { add_hook(hook); }
  ~HookScope() { remove_hook(hook_); }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;

 private:
  Hook& hook_;
};

// The hooks installed on this thread, oldest first; empty while a backward rule runs.
std::span<Hook* const> hooks();

// While a backward rule (or the forward it reruns) runs, this thread's hooks are paused.
class RuleScope {
 public:
  RuleScope();
  ~RuleScope();
  RuleScope(const RuleScope&) = delete;
  RuleScope& operator=(const RuleScope&) = delete;
};

Tensor apply_op(const OpBase& op, std::span<const Tensor* const> inputs, const void* attrs,
                std::size_t attrs_size, const std::source_location& location);

}  // namespace detail

// An op: its name, its VJP formula, a forward and a backward rule. Attrs holds the op's plain
// parameters (axis, exponent, shape); it is copied into the tape entry, so it must be trivially
// copyable: tensors a rule needs are saved through ForwardContext::save, never captured.
template <class Attrs = NoAttrs>
class Op : public detail::OpBase {
 public:
  static_assert(std::is_trivially_copyable_v<Attrs> && sizeof(Attrs) <= detail::kAttrCapacity,
                "op attributes must be plain values of at most kAttrCapacity bytes");
  using ForwardFn = Tensor (*)(ForwardContext& ctx, const Attrs& attrs);
  using BackwardFn = void (*)(BackwardContext& ctx, const Attrs& attrs);

  constexpr Op(const char* name, const char* formula, ForwardFn forward, BackwardFn backward,
               Differentiability differentiability = Differentiability::twice)
      : detail::OpBase{name, formula, &forward_thunk, &backward_thunk, differentiability},
        typed_forward_(forward),
        typed_backward_(backward) {}

  template <class... Inputs>
  Tensor operator()(const Attrs& attrs, const std::source_location& location,
                    const Inputs&... inputs) const {
    const std::array<const Tensor*, sizeof...(Inputs)> pointers{&inputs...};
    return detail::apply_op(*this, pointers, &attrs, sizeof(Attrs), location);
  }

  Tensor apply(std::span<const Tensor* const> inputs, const Attrs& attrs,
               const std::source_location& location) const {
    return detail::apply_op(*this, inputs, &attrs, sizeof(Attrs), location);
  }

 private:
  static Tensor forward_thunk(const detail::OpBase& op, ForwardContext& ctx, const void* attrs) {
    return static_cast<const Op&>(op).typed_forward_(ctx, *static_cast<const Attrs*>(attrs));
  }
  static void backward_thunk(const detail::OpBase& op, BackwardContext& ctx, const void* attrs) {
    static_cast<const Op&>(op).typed_backward_(ctx, *static_cast<const Attrs*>(attrs));
  }

  ForwardFn typed_forward_;
  BackwardFn typed_backward_;
};

}  // namespace tg
