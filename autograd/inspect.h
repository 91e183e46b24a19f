#pragma once
// Seeing reverse mode happen: the tape printed one entry per line, a trace of every backward
// step with the rule applied and the gradients it sent, the graph in Graphviz's DOT language, and
// an interactive page that steps through the forward and the backward pass.
#include <cstddef>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tape.h"

namespace tg {

// One step of a backward pass, as a BackwardTrace records it: an entry's rule applied to its
// upstream gradient.
struct BackwardStep {
  std::int64_t entry;
  const char* op;
  const char* formula;
  std::source_location location;
  Tensor grad_output;  // the upstream gradient
  std::vector<Tensor> inputs;
  std::vector<std::int64_t> input_entries;  // -1 for a leaf or a constant
  std::vector<Tensor> grad_inputs;          // what the rule sent to each input (undefined: none)
};

// Names a tensor for the tape print, the backward trace, to_dot and to_html, and returns it (a
// handle sharing it), so that a definition can be wrapped:
//   tg::Tensor w1 = tg::name(tg::randn({4, 2}, gen).requires_grad(true), "W1");
// The name lives in a side table that only those printers read: nothing is paid when unused, and
// it goes with the tensor (a copied handle has it, detach() or an op's result does not).
Tensor name(const Tensor& tensor, std::string name);
// The name given with tg::name, or "".
std::string name_of(const Tensor& tensor);

// Explicit names for one picture, taking precedence over tg::name.
using TensorNames = std::vector<std::pair<std::string, Tensor>>;

// One line per entry: index, op, where its inputs come from (a name, #k for entry k, leaf,
// const), the output's name, shape and, for small tensors, its values, and the source line:
//   #2 tanh(#1) -> h [2] tensor([0.8005, 0.4621])  at walkthrough.cpp:41
std::ostream& operator<<(std::ostream& out, const Tape& tape);

// Records the steps of every backward pass on this thread while it lives; str() prints them in
// order with the rule applied, the upstream gradient and the gradient sent to each input (small
// tensors as values, matrices over several lines, large ones summarised):
//   tg::BackwardTrace trace;
//   loss.backward();
//   std::cout << trace.str();
class BackwardTrace : private detail::Hook {
 public:
  BackwardTrace() = default;
  BackwardTrace(const BackwardTrace&) = delete;
  BackwardTrace& operator=(const BackwardTrace&) = delete;

  const std::vector<BackwardStep>& steps() const { return steps_; }
  std::string str() const;

 private:
  void on_step(const detail::StepView& step) override;
  std::vector<BackwardStep> steps_;
  detail::HookScope scope_{*this};
};

// The part of the tape that `output` depends on, as a Graphviz digraph: ellipses for tensors
// (name, shape and, up to 16 elements, value and gradient, 2-D ones as matrices), boxes for ops,
// edges in data-flow direction. Node ids are stable: op<k> and t<k> for entry k and its output,
// v0, v1, … for leaves and constants in order of first use. The graph survives backward; an
// entry whose saved residuals backward freed says so.
std::string to_dot(const Tape& tape, const Tensor& output, const TensorNames& names = {});

struct HtmlOptions {
  std::string title = "tapegrad: backprop step by step";
  // The backward pass to show: the last one this trace recorded from the loss. Without one,
  // to_html runs its own (tg::grad with retain_graph, leaving every grad() as it was), which needs
  // the graph's saved values: before backward, or after backward with retain_graph.
  const BackwardTrace* trace = nullptr;
  // Lay the graph out with Graphviz (`dot -Tsvg`) when it is installed; otherwise, or when false,
  // with tapegrad's own layered layout.
  bool use_graphviz = true;
};

// A self-contained HTML page (no network, no external script or font) for the graph of `loss`:
// the graph as SVG, and a stepper (buttons, arrow keys) that walks the forward pass entry by
// entry and then the backward pass, showing for the current entry its op, source line, rule,
// inputs, output, upstream gradient and the gradient sent to each input; a softmax entry also
// shows its explicit Jacobian diag(s) − s sᵀ beside the rule. Clicking a tensor shows its value
// and its gradient in that backward pass. `names` label tensors as in to_dot.
//   tg::BackwardTrace trace;
//   loss.backward();
//   std::ofstream("backprop.html") << tg::to_html(tape, loss, {}, {.trace = &trace});
std::string to_html(const Tape& tape, const Tensor& loss, const TensorNames& names = {},
                    const HtmlOptions& options = {});

namespace detail {

// The part of a tape an output depends on, as to_dot and to_html draw it.
struct GraphTensor {
  Tensor tensor;       // undefined when freed
  std::string label;   // its name, else "#k" for entry k's output, "leaf" or "const"
  std::string id;      // t<k> for entry k's output, v<n> for leaves and constants
  std::int64_t entry;  // the entry that produced it, or -1
};

struct Graph {
  std::vector<TapeEntryView> entries;  // recording order
  std::vector<GraphTensor> tensors;
  std::vector<std::vector<std::size_t>> inputs;  // per entry, indices into tensors
  std::vector<std::size_t> outputs;              // per entry, an index into tensors
};

Graph collect_graph(const Tape& tape, const Tensor& output, const TensorNames& names,
                    const char* caller);

// Tensors up to this many elements are printed and drawn with their values.
constexpr std::int64_t kShowValues = 16;
// "walkthrough.cpp:41"
std::string where(const std::source_location& location);

}  // namespace detail

}  // namespace tg
