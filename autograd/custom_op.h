#pragma once
// User-defined ops: a forward and a backward rule as two plain functions, checked like built-ins.
#include <array>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "autograd/op.h"

namespace tg {

namespace detail {

// A user function taking the context, and the op's attributes unless there are none.
template <class Attrs, class Result, class Context>
using UserFn = std::conditional_t<std::is_same_v<Attrs, NoAttrs>, Result (*)(Context&),
                                  Result (*)(Context&, const Attrs&)>;

// The attributes type a forward takes as its second argument (NoAttrs when it takes one), so that
// `tg::CustomOp op{name, formula, forward, backward}` deduces it from functions and lambdas alike.
template <class F>
struct AttrsOfFn : AttrsOfFn<decltype(&F::operator())> {};
template <class R, class C>
struct AttrsOfFn<R (*)(C&)> {
  using type = NoAttrs;
};
template <class R, class C, class A>
struct AttrsOfFn<R (*)(C&, const A&)> {
  using type = A;
};
template <class R, class L, class C>
struct AttrsOfFn<R (L::*)(C&) const> {
  using type = NoAttrs;
};
template <class R, class L, class C, class A>
struct AttrsOfFn<R (L::*)(C&, const A&) const> {
  using type = A;
};
template <class F>
using AttrsOf = typename AttrsOfFn<std::decay_t<F>>::type;

template <class Attrs, class Fn, class Context>
decltype(auto) call_user(Fn fn, Context& ctx, const void* attrs) {
  if constexpr (std::is_same_v<Attrs, NoAttrs>) {
    return fn(ctx);
  } else {
    return fn(ctx, *static_cast<const Attrs*>(attrs));
  }
}

template <class Attrs>
constexpr bool valid_custom_attrs = std::is_trivially_copyable_v<Attrs> &&
                                    sizeof(Attrs) <= kAttrCapacity && alignof(Attrs) <= 8;

// Under create_graph, runs the forward again with grad mode on, so that the residuals the rule
// reads are functions of the inputs on the graph rather than constants.
void rebuild_custom_residuals(const OpBase& op, const void* attrs, std::int64_t entry,
                              const std::source_location& location, std::span<Tensor> tensors,
                              std::size_t num_inputs, std::span<const std::uint8_t> needs);

// A multi-output op is recorded as one entry whose output packs its floating outputs, flattened,
// one after the other; each output the caller gets is a slice of that, so the engine's one-output
// entries carry it unchanged and an unused output's cotangent is zeros.
Tensor pack_outputs(ForwardContext& ctx, std::vector<Tensor> outputs);
std::vector<Tensor> apply_multi_output(const OpBase& op, std::span<const Tensor* const> inputs,
                                       const void* attrs, std::size_t attrs_size,
                                       const std::source_location& location);
// Gives the rule one output and one cotangent per output of the op, then its gradients back.
template <class Rule>
void run_multi_output_rule(BackwardContext& ctx, Rule&& rule);
void unpack_for_rule(const BackwardContext& ctx, std::vector<Tensor>& outputs,
                     std::vector<Tensor>& grad_outputs);

// What CustomOp and MultiOutputOp share: the user's two functions and the calls, with attributes
// or without; `record` makes a call (one output, or several packed into one).
template <class Attrs, class Output, auto record>
class UserOp : public OpBase {
  static_assert(valid_custom_attrs<Attrs>,
                "op attributes must be plain values of at most 80 bytes");
  static constexpr bool kHasAttrs = !std::is_same_v<Attrs, NoAttrs>;

 public:
  using ForwardFn = UserFn<Attrs, Output, ForwardContext>;
  using BackwardFn = UserFn<Attrs, void, BackwardContext>;

  template <class... Rest>
  requires(!kHasAttrs) Output operator()(Operand first, const Rest&... rest) const {
    const std::array<const Tensor*, 1 + sizeof...(Rest)> pointers{&first.tensor, &rest...};
    return record(*this, pointers, nullptr, 0, first.location);
  }
  template <class... Rest>
  requires kHasAttrs Output operator()(const Attrs& attrs, Operand first,
                                       const Rest&... rest) const {
    const std::array<const Tensor*, 1 + sizeof...(Rest)> pointers{&first.tensor, &rest...};
    return record(*this, pointers, &attrs, sizeof(Attrs), first.location);
  }
  Output apply(const std::vector<Tensor>& inputs,
               SourceLocation location = SourceLocation::current()) const requires(!kHasAttrs) {
    return record(*this, pointers_of(inputs), nullptr, 0, location);
  }
  Output apply(const Attrs& attrs, const std::vector<Tensor>& inputs,
               SourceLocation location = SourceLocation::current()) const requires kHasAttrs {
    return record(*this, pointers_of(inputs), &attrs, sizeof(Attrs), location);
  }

 protected:
  UserOp(const char* name, const char* formula, decltype(OpBase::forward) forward_thunk,
         decltype(OpBase::backward) backward_thunk, Differentiability differentiability,
         ForwardFn forward, BackwardFn backward)
      : OpBase{name,           formula,           forward_thunk,
               backward_thunk, differentiability, &rebuild_custom_residuals},
        forward_(forward),
        backward_(backward) {}

  ForwardFn forward_;
  BackwardFn backward_;

 private:
  static std::vector<const Tensor*> pointers_of(const std::vector<Tensor>& inputs) {
    std::vector<const Tensor*> pointers;
    for (const Tensor& input : inputs) pointers.push_back(&input);
    return pointers;
  }
};

}  // namespace detail

// A user-defined op from a forward and a backward rule: two plain functions, a struct's two
// static functions, or two capture-free lambdas. Called like a function, it records one tape
// entry with the caller's source location:
//
//   const tg::CustomOp swish{"swish", "dx = g ⊙ (s + x s (1 − s))", Swish::forward,
//                            Swish::backward};
//   tg::Tensor y = swish(x);
//
// The forward computes values (it runs with grad mode off) and saves what the rule needs with
// ctx.save(); the rule returns one gradient per input with ctx.set_grad(). A rule written with
// tapegrad ops works under create_graph; mark one that is not Differentiability::once.
//
// Attributes (non-tensor parameters: an exponent, an axis) come as a struct that both functions
// take as a second argument and the caller passes first; it is copied into the tape entry, so it
// must be trivially copyable (at most 80 bytes), never a pointer to a tensor:
//
//   struct Power { double p; };
//   const tg::CustomOp power{"power", "dx = g ⊙ p x^(p−1)", power_forward, power_backward};
//   tg::Tensor y = power(Power{3.0}, x);   // power_forward(ctx, const Power&)
//
// Residuals and gradients of gradients: under create_graph, the forward runs once more with grad
// mode on, so a residual it computes with tapegrad ops (say s = sigmoid(x)) is on the graph and
// the rule's use of it is differentiated correctly. A floating residual that is not on the graph
// then (computed by hand from data<T>(), or independent of the inputs) is an error, unless it is
// saved as Residual::constant (a mask, a random draw): its recorded value is used as a constant.
template <class Attrs = NoAttrs>
class CustomOp : public detail::UserOp<Attrs, Tensor, &detail::apply_op> {
  using Base = detail::UserOp<Attrs, Tensor, &detail::apply_op>;

 public:
  CustomOp(const char* name, const char* formula, typename Base::ForwardFn forward,
           typename Base::BackwardFn backward,
           Differentiability differentiability = Differentiability::twice)
      : Base(name, formula, &forward_thunk, &backward_thunk, differentiability, forward, backward) {
  }

 private:
  static Tensor forward_thunk(const detail::OpBase& op, ForwardContext& ctx, const void* attrs) {
    return detail::call_user<Attrs>(static_cast<const CustomOp&>(op).forward_, ctx, attrs);
  }
  static void backward_thunk(const detail::OpBase& op, BackwardContext& ctx, const void* attrs) {
    detail::call_user<Attrs>(static_cast<const CustomOp&>(op).backward_, ctx, attrs);
  }
};

template <class Forward, class Backward>
CustomOp(const char*, const char*, Forward, Backward, Differentiability = Differentiability::twice)
    -> CustomOp<detail::AttrsOf<Forward>>;

// A user-defined op with several outputs: the forward returns them as a vector, and the rule
// reads output k and its cotangent as ctx.output(k) and ctx.grad_output(k) — zeros for an output
// the loss does not use. Floating outputs share one dtype; an int64 output (indices, say) is a
// constant, and its ctx.output(k) and ctx.grad_output(k) are undefined. Attributes as CustomOp's.
// gradcheck and gradgradcheck take a function returning the outputs.
//
//   const tg::MultiOutputOp min_max{"min_max", "…", min_max_forward, min_max_backward};
//   std::vector<tg::Tensor> lo_hi = min_max(x);
template <class Attrs = NoAttrs>
class MultiOutputOp
    : public detail::UserOp<Attrs, std::vector<Tensor>, &detail::apply_multi_output> {
  using Base = detail::UserOp<Attrs, std::vector<Tensor>, &detail::apply_multi_output>;

 public:
  MultiOutputOp(const char* name, const char* formula, typename Base::ForwardFn forward,
                typename Base::BackwardFn backward,
                Differentiability differentiability = Differentiability::twice)
      : Base(name, formula, &forward_thunk, &backward_thunk, differentiability, forward, backward) {
  }

 private:
  static Tensor forward_thunk(const detail::OpBase& op, ForwardContext& ctx, const void* attrs) {
    return detail::pack_outputs(
        ctx, detail::call_user<Attrs>(static_cast<const MultiOutputOp&>(op).forward_, ctx, attrs));
  }
  static void backward_thunk(const detail::OpBase& op, BackwardContext& ctx, const void* attrs) {
    detail::run_multi_output_rule(ctx, [&](BackwardContext& rule_ctx) {
      detail::call_user<Attrs>(static_cast<const MultiOutputOp&>(op).backward_, rule_ctx, attrs);
    });
  }
};

template <class Forward, class Backward>
MultiOutputOp(const char*, const char*, Forward, Backward,
              Differentiability = Differentiability::twice)
    -> MultiOutputOp<detail::AttrsOf<Forward>>;

template <class Rule>
void detail::run_multi_output_rule(BackwardContext& ctx, Rule&& rule) {
  std::vector<Tensor> inputs, outputs, grad_outputs, grads(ctx.num_inputs());
  std::vector<std::uint8_t> needs;
  for (std::size_t i = 0; i < ctx.num_inputs(); ++i) {
    inputs.push_back(ctx.input(i));
    needs.push_back(ctx.needs_grad(i));
  }
  std::vector<Tensor> saved;  // the user's residuals: the layout, saved last, is not theirs
  for (std::size_t i = 0; i + 1 < ctx.num_saved(); ++i) saved.push_back(ctx.saved(i));
  unpack_for_rule(ctx, outputs, grad_outputs);
  BackwardContext rule_ctx(inputs, outputs, saved, grad_outputs, needs, grads, ctx.create_graph(),
                           ctx.op_name(), ctx.location());
  rule(rule_ctx);
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].defined()) ctx.set_grad(i, std::move(grads[i]));
  }
}

}  // namespace tg
