#include <tapegrad.h>

#include <iostream>

int main() {
  tg::Tape tape;  // ops record into this tape until the end of the scope
  tg::Tensor z = tg::tensor({1.0, 2.0, 3.0}).requires_grad(true);
  tg::Tensor loss = tg::sum(tg::softmax(z) * tg::tensor({1.0, 0.0, -1.0}));
  std::cout << tape;  // one line per entry: "#0 softmax(leaf) -> [3] tensor([...])  at ..."

  tg::BackwardTrace trace;  // records every backward step while it lives
  loss.backward();
  std::cout << trace.str() << "dloss/dz = " << z.grad() << '\n';

  std::cout << tg::to_dot(tape, loss, {{"z", z}});  // for `dot -Tsvg`
}
