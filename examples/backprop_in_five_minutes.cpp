#include <tapegrad.h>

#include <iostream>

int main() {
  tg::Tape tape;  // ops record into this tape until the end of the scope
  tg::Tensor z = tg::name(tg::tensor({1.0, 2.0, 3.0}).requires_grad(true), "z");
  tg::Tensor loss = tg::sum(tg::softmax(z) * tg::tensor({1.0, 0.0, -1.0}));
  std::cout << tape;  // one line per entry: "#0 softmax(z) -> [3] tensor([...])  at ..."

  tg::BackwardTrace trace;  // records every backward step while it lives
  loss.backward();
  std::cout << trace.str() << "dloss/dz = " << z.grad() << '\n';

  // The graph survives backward (only saved residuals are freed): z -> softmax -> mul -> sum.
  const std::string dot = tg::to_dot(tape, loss);  // for `dot -Tsvg`
  std::cout << dot;
  for (const char* part : {"v0 [shape=ellipse, label=\"z [3]", "v0 -> op0;", "op0 -> t0;",
                           "t0 -> op1;", "v1 -> op1;", "t1 -> op2;", "op2 -> t2;"}) {
    if (dot.find(part) == std::string::npos) {
      std::cerr << "the graph lacks " << part << '\n';
      return 1;
    }
  }
}
