#include <tapegrad.h>

#include <iostream>

int main() {
  tg::Generator gen(0);
  tg::Tensor w =
      tg::randn({3, 2}, gen).requires_grad(true);  // a leaf: grads accumulate in w.grad()
  tg::Tensor x = tg::tensor({{1.0, 2.0, 3.0}, {0.5, -1.0, 2.0}});
  tg::Tensor labels = tg::int64_tensor({1, 0});

  tg::Tensor loss = tg::cross_entropy(tg::tanh(tg::matmul(x, w)), labels);
  loss.backward();  // one reverse loop over the tape
  std::cout << "loss " << loss << "\ndloss/dw " << w.grad() << '\n';

  // Prove a backward rule right: reverse mode against finite differences, in float64.
  tg::GradcheckResult check =
      tg::gradcheck([](const std::vector<tg::Tensor>& in) { return tg::softmax(in[0], 1); }, {x});
  std::cout << check.report << '\n';
  return check.passed ? 0 : 1;
}
