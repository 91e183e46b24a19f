// Writing your own op and proving its backward rule right.
//
// softplus(x) = log(1 + eˣ) overflows for large x written that way; the stable form is
// max(x, 0) + log(1 + e^(−|x|)), derivative sigmoid(x). tapegrad has it (tg::softplus); here it
// is written as a user writes an op: registered and checked like the built-ins, then a version
// whose rule forgets the log term's derivative, inside six ops, and the report that points at it.
#include <fmt/format.h>

#include <cmath>

#include "tapegrad.h"

namespace {

struct Softplus {
  static tg::Tensor forward(tg::ForwardContext& ctx) {
    const tg::Tensor& x = ctx.input(0);
    return tg::relu(x) + tg::log(1.0 + tg::exp(-tg::abs(x)));
  }
  // dx = g ⊙ sigmoid(x), written with tapegrad ops so that it is differentiable again.
  static void backward(tg::BackwardContext& ctx) {
    ctx.set_grad(0, ctx.grad_output() * tg::sigmoid(ctx.input(0)));
  }
  // d/dx [max(x, 0)] only: the term from log(1 + e^(−|x|)) is missing.
  static void backward_dropping_a_term(tg::BackwardContext& ctx) {
    const tg::Tensor positive = tg::relu(ctx.input(0)) / tg::abs(ctx.input(0));
    ctx.set_grad(0, ctx.grad_output() * positive);
  }
};

const tg::CustomOp my_softplus{"my_softplus", "dx = g ⊙ sigmoid(x)", Softplus::forward,
                               Softplus::backward};
const tg::CustomOp softplus_wrong{"softplus_wrong", "dx = g ⊙ [x > 0] (a term dropped)",
                                  Softplus::forward, Softplus::backward_dropping_a_term};

std::vector<tg::OpSample> samples(tg::DType dtype) {
  tg::Generator gen(1);
  return {{"[5]", {tg::randn({5}, gen, dtype)}},
          {"[3, 4] large magnitudes", {tg::randn({3, 4}, gen, dtype) * 30.0}}};
}

}  // namespace

int main() {
  // 1. Register the op beside the built-ins, with samples and its explicit Jacobian diag(σ(x)).
  tg::op_registry().add({"my_softplus", [](const auto& in) { return my_softplus(in[0]); }, samples,
                         [](const std::vector<tg::Tensor>& in) {
                           return std::vector{tg::elementwise_jacobian(
                               in[0], [](double x) { return 1.0 / (1.0 + std::exp(-x)); })};
                         }});
  const tg::OpCheckSummary check = tg::check_op(tg::op_registry().find("my_softplus"));
  fmt::print(
      "1. my_softplus, checked like every built-in op (gradcheck in float64, its float32 rule\n"
      "   against float64 finite differences, gradgradcheck, the explicit Jacobian):\n"
      "   {}\n\n",
      check.report());

  // 2. The wrong rule inside a function of six ops.
  tg::Generator gen(2);
  const tg::Tensor x = tg::randn({2, 3}, gen, tg::f64);
  const tg::Tensor w = tg::randn({3, 3}, gen, tg::f64);
  const tg::Tensor b = tg::randn({3}, gen, tg::f64);
  const tg::TensorFunction model = [](const std::vector<tg::Tensor>& in) {
    const tg::Tensor hidden = softplus_wrong(tg::matmul(in[0], in[1]) + in[2]);
    return tg::sum(tg::tanh(hidden) * 0.5);
  };
  const tg::GradcheckResult report = tg::gradcheck(model, {x, w, b});
  fmt::print("2. gradcheck of sum(tanh(softplus_wrong(x·w + b)) · 0.5), six ops:\n{}\n",
             report.report);
  const bool pinpointed = report.culprits.size() == 1 && report.culprits[0].op == "softplus_wrong";
  return check.passed() && !report.passed && pinpointed ? 0 : 1;
}
