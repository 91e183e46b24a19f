#include <tapegrad.h>
#include <tools/gtest.h>

// softplus(x) = log(1 + eˣ) in its stable form; its derivative is sigmoid(x).
tg::Tensor softplus_forward(tg::ForwardContext& ctx) {
  const tg::Tensor& x = ctx.input(0);
  return tg::relu(x) + tg::log(1.0 + tg::exp(-tg::abs(x)));
}
void softplus_backward(tg::BackwardContext& ctx) {
  ctx.set_grad(0, ctx.grad_output() * tg::sigmoid(ctx.input(0)));
}
const tg::CustomOp softplus{"softplus", "dx = g ⊙ sigmoid(x)", softplus_forward, softplus_backward};

TEST(Softplus, BackwardRuleIsRight) {
  tg::Generator gen(0);
  const tg::Tensor x = tg::randn({3, 4}, gen, tg::f64) * 10.0;
  const tg::TensorFunction f = [](const std::vector<tg::Tensor>& in) { return softplus(in[0]); };
  EXPECT_GRADCHECK(f, {x});                                          // float64
  EXPECT_GRADCHECK(f, {x.to(tg::f32)}, {.keep_input_dtype = true});  // the float32 rule
  EXPECT_GRADGRADCHECK(f, {x});                                      // second order
}
