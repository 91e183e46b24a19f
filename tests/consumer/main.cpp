#include <tapegrad.h>

#include <cmath>
#include <iostream>

int main() {
  tg::Tensor x = tg::tensor({1.0, 2.0, 3.0}).requires_grad(true);
  tg::sum(tg::softmax(x) * tg::tensor({1.0, 0.0, 0.0})).backward();
  std::cout << x.grad() << '\n';  // s0 (e0 − s): 0.0819, −0.0220, −0.0599
  return std::abs(x.grad().at({0}) - 0.08192507) < 1e-6 ? 0 : 1;
}
