#include "autograd/op.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "autograd/tape_core.h"

namespace tg {
namespace detail {

namespace {

struct ThreadState {
  bool grad_enabled = true;
  std::vector<Hook*> hooks;
  int rules_running = 0;  // hooks are paused while positive
};

thread_local ThreadState thread_state;

// The output must be a new impl: the link is per impl, and an input keeps its own.
Tensor fresh_output(Tensor output, std::span<const Tensor* const> inputs) {
  if (output.impl()->link.core != nullptr || output.impl()->requires_grad ||
      std::any_of(inputs.begin(), inputs.end(),
                  [&](const Tensor* in) { return in->impl() == output.impl(); })) {
    return output.detach();
  }
  return output;
}

// An error of an op's forward ends with the caller's file:line, the one the user can act on: an
// op the forward ran itself (with tapegrad's own line) gives way to it.
std::string ending_at(std::string_view message, const std::source_location& location) {
  return fmt::format("{} (at {}:{})", without_location(message), location.file_name(),
                     location.line());
}

}  // namespace

std::span<Hook* const> hooks() {
  if (thread_state.rules_running > 0) return {};
  return thread_state.hooks;
}

void add_hook(Hook& hook) {
  thread_state.hooks.push_back(&hook);
}
void remove_hook(Hook& hook) {
  auto& hooks = thread_state.hooks;
  hooks.erase(std::find(hooks.rbegin(), hooks.rend(), &hook).base() - 1);
}

RuleScope::RuleScope() {
  ++thread_state.rules_running;
}
RuleScope::~RuleScope() {
  --thread_state.rules_running;
}

Tensor apply_op(const OpBase& op, std::span<const Tensor* const> inputs, const void* attrs,
                std::size_t attrs_size, const std::source_location& location) {
  bool any_requires_grad = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]->defined()) fail_at(op.name, location, "input {} is an undefined tensor", i);
    any_requires_grad = any_requires_grad || inputs[i]->requires_grad();
  }
  const bool recording = any_requires_grad && thread_state.grad_enabled;
  for (Hook* hook : hooks()) hook->before_forward(op, inputs, location);
  ForwardContext ctx(inputs, recording, op.name, location);
  Tensor output;
  try {
    GradModeGuard forward_is_not_recorded(false);
    output = op.forward(op, ctx, attrs);
  } catch (const Error& e) {
    throw Error(ending_at(e.what(), location));
  }
  if (!output.defined()) {
    fail_at(op.name, location, "the forward returned an undefined tensor");
  }
  TapeCore* core = recording ? &recording_core() : nullptr;
  for (Hook* hook : hooks()) {
    hook->after_forward(op, inputs, output, location,
                        core ? std::int64_t(core->entries.size()) : -1);
  }
  if (!core) return output;
  output = fresh_output(std::move(output), inputs);
  core->record(op, attrs, attrs_size, inputs, output, ctx.saved(), location);
  return output;
}

void fail_context_index(const char* op, const std::source_location& location, const char* what,
                        std::size_t index, std::size_t size) {
  fail_at(op, location, "ctx.{}({}) is out of range: the op has {} of them", what, index, size);
}

}  // namespace detail

bool grad_enabled() {
  return detail::thread_state.grad_enabled;
}

GradModeGuard::GradModeGuard(bool enabled) : previous_(detail::thread_state.grad_enabled) {
  detail::thread_state.grad_enabled = enabled;
}

GradModeGuard::~GradModeGuard() {
  detail::thread_state.grad_enabled = previous_;
}

void ForwardContext::save(const Tensor& residual, Residual kind) {
  if (!recording_) return;
  if (!residual.defined()) {
    detail::fail_at(op_, location_, "ctx.save() of an undefined tensor");
  }
  if (num_saved_ == kMaxSaved) {
    detail::fail_at(op_, location_, "ctx.save(): at most {} residuals per op", kMaxSaved);
  }
  kinds_[num_saved_] = kind;
  saved_[num_saved_++] = residual;
}

}  // namespace tg
