// The backward pass: one reverse loop over the tape, each entry's rule applied to the gradient
// accumulated for its output, as Stan Math's grad() calls chain() down its stack. Side concerns
// (anomaly checks, traces, fault injection) watch through the hooks of autograd/op.h.
#include "autograd/backward.h"

#include <algorithm>
#include <optional>

#include "autograd/factories.h"
#include "autograd/log.h"
#include "autograd/tape_core.h"
// Gradients are summed (add) and un-broadcast (sum_to) with ops, so that under create_graph the
// accumulation is itself recorded and differentiable: the only ops the core uses.
#include "ops/ops.h"

namespace tg {
namespace detail {
namespace {

void accumulate(Tensor& sum, Tensor grad) {
  sum = sum.defined() ? add(sum, grad) : std::move(grad);
}

// Checks a rule's gradient against its input and sums a broadcast gradient back to the input's
// shape, so that no rule has to.
Tensor conform(Tensor grad, const Tensor& input, const OpBase& op, std::int64_t entry,
               std::size_t position) {
  if (grad.dtype() != input.dtype()) {
    fail("backward of '{}' (entry {}) returned a {} gradient for input {}, which is {}", op.name,
         entry, dtype_name(grad.dtype()), position, dtype_name(input.dtype()));
  }
  if (grad.shape() == input.shape()) return grad;
  if (!broadcastable_to(input.shape(), grad.shape())) {
    fail("backward of '{}' (entry {}) returned a gradient of shape {} for input {} of shape {}",
         op.name, entry, grad.shape().str(), position, input.shape().str());
  }
  return sum_to(grad, input.shape());
}

// PyTorch's saved-variable check: a tensor an entry keeps for its rule must hold the values it
// had when the entry was recorded.
void check_versions(const TapeCore& core, const Entry& entry, std::int64_t index) {
  for (std::int64_t r = entry.first_ref; r < entry.end_ref(); ++r) {
    const Ref& ref = core.refs[std::size_t(r)];
    const std::uint64_t now = ref.impl->storage->version;
    if (now == ref.version) continue;
    const std::int64_t k = r - entry.first_ref;
    const std::string which =
        k < std::int64_t(entry.num_inputs) ? fmt::format("input {}", k)
        : k == std::int64_t(entry.num_inputs)
            ? std::string("its output")
            : fmt::format("saved residual {}", k - std::int64_t(entry.num_inputs) - 1);
    fail(
        "backward of '{}' (entry {}, {}:{}): {} ({} {}), which its rule needs, was modified in "
        "place after the op was recorded (version {} then, {} now: written through data<T>(), "
        "an optimizer step or another in-place update); recompute the forward after changing it, "
        "or change a copy",
        entry.op->name, index, entry.location.file_name(), entry.location.line(), which,
        dtype_name(ref.impl->dtype), ref.impl->shape.str(), ref.version, now);
  }
}

struct LeafGrad {
  std::shared_ptr<TensorImpl> leaf;
  Tensor grad;
};

std::atomic<std::uint64_t> last_backward_pass = 0;

// Sharing a tensor that requires grad between threads is not supported; what is cheap to catch
// is two threads' backward passes accumulating into it at once, which would race on its grad.
void hold_for_backward(TensorImpl& impl) {
  const std::thread::id me = std::this_thread::get_id();
  std::thread::id expected;
  if (!impl.backward_owner.compare_exchange_strong(expected, me, std::memory_order_acquire) &&
      expected != me) {
    fail(
        "backward: a tensor of shape {} that requires grad is being differentiated by another "
        "thread at the same time; tensors that require grad are not shared between threads (give "
        "each thread its own copy, or run the backward passes one after the other)",
        impl.shape.str());
  }
  ++impl.backward_holds;
}

void release_backward_hold(TensorImpl& impl) {
  if (--impl.backward_holds == 0) impl.backward_owner.store({}, std::memory_order_release);
}

// Working vectors of one backward pass, kept per thread and nesting depth so that a steady loop
// reuses their capacity instead of allocating every pass.
struct BackwardScratch {
  std::vector<LeafGrad> leaves;
  std::vector<Tensor> grads;
  std::vector<Tensor> tensors;
  std::vector<std::uint8_t> needs;
  std::vector<Tensor> grad_inputs;
  std::vector<std::int64_t> input_entries;
};

class ScratchLease {
 public:
  ScratchLease() {
    if (depth_ == stack_.size()) stack_.push_back(std::make_unique<BackwardScratch>());
    scratch_ = stack_[depth_++].get();
  }
  ~ScratchLease() {
    for (LeafGrad& leaf : scratch_->leaves) release_backward_hold(*leaf.leaf);
    clear_and_trim(scratch_->leaves);
    clear_and_trim(scratch_->grads);
    clear_and_trim(scratch_->tensors);
    clear_and_trim(scratch_->needs);
    clear_and_trim(scratch_->grad_inputs);
    clear_and_trim(scratch_->input_entries);
    --depth_;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  BackwardScratch& operator*() const { return *scratch_; }

 private:
  static thread_local std::vector<std::unique_ptr<BackwardScratch>> stack_;
  static thread_local std::size_t depth_;
  BackwardScratch* scratch_;
};

thread_local std::vector<std::unique_ptr<BackwardScratch>> ScratchLease::stack_;
thread_local std::size_t ScratchLease::depth_ = 0;

Tensor checked_seed(const Tensor& y, const Tensor& seed, const char* what) {
  if (!y.defined()) fail("{}: the output tensor is undefined", what);
  if (!y.requires_grad()) {
    fail(
        "{}: the output does not require grad: no input of the ops that produced it requires "
        "grad (call requires_grad(true) on a leaf), or it was computed under NoGradGuard",
        what);
  }
  if (!seed.defined()) {
    if (y.numel() != 1) {
      fail("{}: the output has shape {}, not a single element; pass a seed gradient of that shape",
           what, y.shape().str());
    }
    return ones_like(y);
  }
  if (!(seed.shape() == y.shape()) || seed.dtype() != y.dtype()) {
    fail("{}: the seed gradient is {} {} but the output is {} {}", what, dtype_name(seed.dtype()),
         seed.shape().str(), dtype_name(y.dtype()), y.shape().str());
  }
  return seed;
}

// One backward pass from y: the gradient of each output ref is accumulated in grads, each leaf's
// in a slot of its own, until the loop reaches the entry that produced it.
class BackwardPass {
 public:
  BackwardPass(BackwardOptions options, std::span<const Tensor> wrt)
      : options_(options),
        wrt_(wrt),
        what_(wrt.empty() ? "backward" : "grad"),
        pass_(last_backward_pass.fetch_add(1, std::memory_order_relaxed) + 1),
        s_(*lease_),
        results_(wrt.size()),
        wanted_refs_(wrt.size(), -1) {
    options_.retain_graph = options.retain_graph || options.create_graph;
  }

  std::vector<Tensor> run(const Tensor& y, const Tensor& seed_in) {
    const Tensor seed = checked_seed(y, seed_in, what_);
    // Rules, and the accumulation into leaves, record only under create_graph, and then on the
    // tape of the tensor being differentiated.
    const GradModeGuard mode(options_.create_graph);
    const Link& link = y.impl()->link;
    if (link.core == nullptr) {
      accumulate(leaf_slot(y.impl()), seed);
      return finish();
    }
    TapeCore& core = core_of(link);
    start(core, link);
    const BusyScope busy(core);
    const RecordingScope recording(&core);
    s_.grads.resize(std::size_t(core.entry(link.entry).output_ref() + 1));
    s_.grads.back() = seed;
    for (std::int64_t index = link.entry; index >= 0; --index) step(core, index);
    return finish();
  }

 private:
  void start(TapeCore& core, const Link& link) {
    if (core.thread != std::this_thread::get_id()) fail_other_thread(what_);
    if (!core.holds(link) || core.entry(link.entry).freed) fail_graph_gone(what_);
    for (std::size_t k = 0; k < wrt_.size(); ++k) {
      if (!wrt_[k].defined())
        fail("grad: input {} to differentiate with respect to is undefined", k);
      const Link& wanted = wrt_[k].impl()->link;
      if (core.holds(wanted)) {
        wanted_refs_[k] = wanted.ref;
      } else if (wrt_[k].requires_grad()) {
        leaf_slot(wrt_[k].impl());
      }
    }
  }

  // Entry `index`'s rule, if a gradient reached its output.
  void step(TapeCore& core, std::int64_t index) {
    Tensor& slot = s_.grads[std::size_t(core.entry(index).output_ref())];
    if (!slot.defined()) return;
    // A copy: a rule recording under create_graph may grow the entry and ref vectors.
    const Entry entry = core.entry(index);
    check_can_run(core, entry, index);
    for (std::size_t k = 0; k < wrt_.size(); ++k) {
      if (wanted_refs_[k] == entry.output_ref()) results_[k] = slot;
    }
    Tensor grad_output = std::move(slot);
    gather(core, entry);
    run_rule(entry, index, grad_output);
    for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
      if (!s_.needs[i] || !s_.grad_inputs[i].defined()) continue;
      s_.grad_inputs[i] = conform(std::move(s_.grad_inputs[i]), s_.tensors[i], *entry.op, index, i);
    }
    if (!hooks().empty()) observe(core, entry, index, grad_output);
    send(core, entry);
    if (!options_.retain_graph) core.free_entry(core.entry(index));
  }

  void check_can_run(const TapeCore& core, const Entry& entry, std::int64_t index) const {
    if (entry.freed) fail_graph_gone(what_);
    if (options_.create_graph && entry.op->differentiability == Differentiability::once) {
      fail(
          "backward of '{}' (entry {}, {}:{}) is once-differentiable: its rule is not built "
          "from differentiable ops, so create_graph cannot record it",
          entry.op->name, index, entry.location.file_name(), entry.location.line());
    }
    check_versions(core, entry, index);
  }

  // The entry's inputs, output and residuals as handles, and which inputs want a gradient.
  void gather(TapeCore& core, const Entry& entry) {
    s_.tensors.clear();
    for (std::int64_t r = entry.first_ref; r < entry.end_ref(); ++r) {
      s_.tensors.emplace_back(core.ref(r).impl);
    }
    s_.needs.assign(entry.num_inputs, 0);
    for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
      s_.needs[i] = core.ref(entry.first_ref + i).route != kNoRoute;
    }
    s_.grad_inputs.assign(entry.num_inputs, Tensor());
  }

  void run_rule(const Entry& entry, std::int64_t index, Tensor& grad_output) {
    for (Hook* hook : hooks()) hook->before_rule(*entry.op, grad_output);
    {
      const RuleScope rule;
      if (options_.create_graph && entry.op->rebuild_residuals && entry.num_saved > 0) {
        entry.op->rebuild_residuals(*entry.op, entry.attrs.data(), index, entry.location,
                                    s_.tensors, entry.num_inputs, s_.needs);
      }
      const std::span<const Tensor> tensors = s_.tensors;
      BackwardContext ctx(tensors.first(entry.num_inputs), tensors.subspan(entry.num_inputs, 1),
                          tensors.subspan(entry.num_inputs + 1, entry.num_saved), {&grad_output, 1},
                          s_.needs, s_.grad_inputs, options_.create_graph, entry.op->name,
                          entry.location);
      if (tracing()) {
        SPDLOG_LOGGER_TRACE(&logger(), "backward #{} {}: {} (grad {})", index, entry.op->name,
                            entry.op->formula, grad_output.shape().str());
      }
      entry.op->backward(*entry.op, ctx, entry.attrs.data());
    }
    for (Hook* hook : hooks()) hook->after_rule(*entry.op, s_.grad_inputs);
  }

  void observe(const TapeCore& core, const Entry& entry, std::int64_t index,
               const Tensor& grad_output) {
    s_.input_entries.clear();
    for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
      s_.input_entries.push_back(core.input_entry(core.refs[std::size_t(entry.first_ref + i)]));
    }
    const std::span<const Tensor> tensors = s_.tensors;
    const StepView step{index,
                        *entry.op,
                        entry.location,
                        grad_output,
                        tensors.first(entry.num_inputs),
                        s_.input_entries,
                        s_.grad_inputs};
    for (Hook* hook : hooks()) hook->on_step(step);
  }

  // Each input's gradient to the output that produced it, or to the leaf's slot.
  void send(TapeCore& core, const Entry& entry) {
    for (std::uint32_t i = 0; i < entry.num_inputs; ++i) {
      if (!s_.needs[i] || !s_.grad_inputs[i].defined()) continue;
      const Ref& input = core.ref(entry.first_ref + i);
      Tensor& sum = input.route >= 0 ? s_.grads[std::size_t(input.route)] : leaf_slot(input.impl);
      accumulate(sum, std::move(s_.grad_inputs[i]));
    }
  }

  Tensor& leaf_slot(const std::shared_ptr<TensorImpl>& impl) {
    if (impl->slot_stamp.load(std::memory_order_relaxed) != pass_) {
      // Once listed, the lease releases the hold whatever happens next.
      hold_for_backward(*impl);
      try {
        s_.leaves.push_back({impl, Tensor()});
      } catch (...) {
        release_backward_hold(*impl);
        throw;
      }
      impl->slot_stamp.store(pass_, std::memory_order_relaxed);
      impl->slot = s_.leaves.size() - 1;
    }
    return s_.leaves[impl->slot].grad;
  }

  std::vector<Tensor> finish() {
    if (wrt_.empty()) {
      for (LeafGrad& leaf : s_.leaves) {
        // A gradient handed to several leaves (add gives g to both inputs) or still held by the
        // caller (the seed) is copied, so that updating one grad() in place never changes another.
        const bool shared = leaf.grad.defined() && leaf.grad.impl().use_count() > 1;
        if (!leaf.leaf->grad.defined() && shared && !options_.create_graph) {
          leaf.grad = leaf.grad.copy();
        }
        accumulate(leaf.leaf->grad, std::move(leaf.grad));
      }
      return {};
    }
    for (std::size_t k = 0; k < wrt_.size(); ++k) {
      if (results_[k].defined()) continue;
      const auto& impl = wrt_[k].impl();
      const bool reached = impl->slot_stamp == pass_ && s_.leaves[impl->slot].grad.defined();
      results_[k] = reached ? s_.leaves[impl->slot].grad : zeros_like(wrt_[k]);
    }
    return std::move(results_);
  }

  BackwardOptions options_;
  std::span<const Tensor> wrt_;
  const char* what_;
  std::uint64_t pass_;
  ScratchLease lease_;
  BackwardScratch& s_;
  std::vector<Tensor> results_;
  std::vector<std::int64_t> wanted_refs_;
};

}  // namespace
}  // namespace detail

std::vector<Tensor> run_backward(const Tensor& y, const Tensor& seed, BackwardOptions options,
                                 std::span<const Tensor> wrt) {
  return detail::BackwardPass(options, wrt).run(y, seed);
}

std::vector<Tensor> grad(const Tensor& y, const std::vector<Tensor>& wrt, const Tensor& seed,
                         BackwardOptions options) {
  if (wrt.empty()) fail("grad: no tensors to differentiate with respect to");
  return run_backward(y, seed, options, wrt);
}

void Tensor::backward(const Tensor& seed, BackwardOptions options) const {
  run_backward(*this, seed, options, {});
}

}  // namespace tg
