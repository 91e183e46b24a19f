#pragma once
// User-defined ops: a forward and a backward rule as two plain functions, checked like built-ins.
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "autograd/op.h"

namespace tg {

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
// Residuals and gradients of gradients: under create_graph, the forward runs once more with grad
// mode on, so a residual it computes with tapegrad ops (say s = sigmoid(x)) is on the graph and
// the rule's use of it is differentiated correctly. A floating residual that is not on the graph
// then (computed by hand from data<T>(), or independent of the inputs) is an error, unless it is
// saved as Residual::constant (a mask, a random draw): its recorded value is used as a constant.
class CustomOp : public detail::OpBase {
 public:
  using ForwardFn = Tensor (*)(ForwardContext& ctx);
  using BackwardFn = void (*)(BackwardContext& ctx);

  CustomOp(const char* name, const char* formula, ForwardFn forward, BackwardFn backward,
           Differentiability differentiability = Differentiability::twice)
      : detail::OpBase{name,
                       formula,
                       &forward_thunk,
                       &backward_thunk,
                       differentiability,
                       &rebuild_residuals},
        forward_(forward),
        backward_(backward) {}

  template <class... Rest>
  Tensor operator()(Operand first, const Rest&... rest) const {
    const std::array<const Tensor*, 1 + sizeof...(Rest)> pointers{&first.tensor, &rest...};
    return detail::apply_op(*this, pointers, nullptr, 0, first.location);
  }

  Tensor apply(const std::vector<Tensor>& inputs,
               SourceLocation location = SourceLocation::current()) const;

 private:
  static Tensor forward_thunk(const detail::OpBase& op, ForwardContext& ctx, const void*) {
    return static_cast<const CustomOp&>(op).forward_(ctx);
  }
  static void backward_thunk(const detail::OpBase& op, BackwardContext& ctx, const void*) {
    static_cast<const CustomOp&>(op).backward_(ctx);
  }
  static void rebuild_residuals(const detail::OpBase& op, std::int64_t entry,
                                const std::source_location& location, std::span<Tensor> tensors,
                                std::size_t num_inputs, std::span<const std::uint8_t> needs);

  ForwardFn forward_;
  BackwardFn backward_;
};

}  // namespace tg
