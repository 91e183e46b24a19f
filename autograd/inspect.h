#pragma once
// Seeing reverse mode happen: the tape printed one entry per line, a trace of every backward
// step with the rule applied and the gradients it sent, and the graph in Graphviz's DOT language.
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tape.h"

namespace tg {

// One line per entry: index, op, where its inputs come from (#k for entry k, leaf, const), the
// output's shape and, for small tensors, its values, and the source line:
//   #2 tanh(#1) -> [2] tensor([0.8005, 0.4621])  at walkthrough.cpp:41
std::ostream& operator<<(std::ostream& out, const Tape& tape);

// Records the steps of every backward pass on this thread while it lives; str() prints them in
// order with the rule applied and the gradient sent to each input:
//   tg::BackwardTrace trace;
//   loss.backward();
//   std::cout << trace.str();
class BackwardTrace : private detail::BackwardObserver {
 public:
  BackwardTrace();
  ~BackwardTrace() override;
  BackwardTrace(const BackwardTrace&) = delete;
  BackwardTrace& operator=(const BackwardTrace&) = delete;

  const std::vector<BackwardStep>& steps() const { return steps_; }
  std::string str() const;

 private:
  void on_step(const BackwardStep& step) override;
  std::vector<BackwardStep> steps_;
  detail::BackwardObserver* previous_;
};

// The part of the tape that `output` depends on, as a Graphviz digraph: ellipses for tensors (shape
// and, when small, value and gradient), boxes for ops, edges in data-flow direction. Leaves and
// constants are labelled with `names` where given.
std::string to_dot(const Tape& tape, const Tensor& output,
                   const std::vector<std::pair<std::string, Tensor>>& names = {});

}  // namespace tg
