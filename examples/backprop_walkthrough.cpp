// Backprop, step by step: forward values, the tape, every backward step with the rule it applies,
// and each gradient held against the derivation written here by hand.
//
// Reverse mode is the chain rule applied from the output back: each op receives the gradient of
// the loss with respect to its output (g, the upstream gradient, a vector-Jacobian product so
// far) and sends gᵀJ to each input, where J is the op's Jacobian. The tape lists the ops in the
// order they ran; backward visits them in reverse.
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "tapegrad.h"

namespace {

int failures = 0;

// The pages written, and for each the gradient tapegrad computed for every named leaf, as JSON
// for the browser test (tests/browser) to hold what the page shows against.
std::vector<std::string> expected_gradients;

void check(const char* what, double computed, double by_hand) {
  const bool ok = std::abs(computed - by_hand) <= 1e-12 * (1 + std::abs(by_hand));
  fmt::print("   {:<12} tapegrad {:>12.8f}   by hand {:>12.8f}   {}\n", what, computed, by_hand,
             ok ? "ok" : "MISMATCH");
  failures += ok ? 0 : 1;
}

void write_graph(const tg::Tape& tape, const tg::Tensor& output,
                 const std::vector<std::pair<std::string, tg::Tensor>>& names,
                 const std::string& out_dir, const std::string& name) {
  std::filesystem::create_directories(out_dir);
  const std::string dot_path = out_dir + "/" + name + ".dot";
  std::ofstream(dot_path) << tg::to_dot(tape, output, names);
  fmt::print("   wrote {}", dot_path);
  if (std::system("command -v dot > /dev/null 2>&1") == 0) {
    const std::string svg = out_dir + "/" + name + ".svg";
    if (std::system(("dot -Tsvg " + dot_path + " -o " + svg).c_str()) == 0)
      fmt::print(" and {}", svg);
  }
  fmt::print("\n");
}

// The interactive page: the graph, and a stepper through the forward pass and the backward pass
// that `trace` recorded. Open it in a browser; it needs no network.
void write_page(const tg::Tape& tape, const tg::Tensor& loss, const tg::BackwardTrace& trace,
                const std::vector<tg::Tensor>& leaves, const std::string& out_dir,
                const std::string& name, const std::string& title) {
  std::filesystem::create_directories(out_dir);
  const std::string path = out_dir + "/" + name + ".html";
  std::ofstream(path) << tg::to_html(tape, loss, {}, {.title = title, .trace = &trace});
  fmt::print("   wrote {} (open it in a browser: arrow keys step, a click shows a tensor)\n", path);
  std::vector<std::string> gradients;
  for (const tg::Tensor& leaf : leaves) {
    gradients.push_back(
        fmt::format("\"{}\": [{}]", tg::name_of(leaf), fmt::join(leaf.grad().to_vector(), ", ")));
  }
  expected_gradients.push_back(
      fmt::format("\"{}.html\": {{{}}}", name, fmt::join(gradients, ", ")));
}

// 1. One neuron: z = w₀x₀ + w₁x₁ + b, y = tanh z, loss L = y.
//    dL/dz = 1 − y² (tanh' = 1 − tanh²); dL/dwᵢ = (1 − y²)·xᵢ; dL/db = 1 − y².
void single_neuron() {
  fmt::print("1. A single neuron, y = tanh(w·x + b)\n");
  tg::Tape tape;
  const tg::Tensor x = tg::tensor({1.0, 2.0}, tg::f64);
  tg::Tensor w = tg::tensor({0.5, 0.25}, tg::f64).requires_grad(true);
  tg::Tensor b = tg::full({}, 0.1, tg::f64).requires_grad(true);
  const tg::Tensor z = tg::sum(w * x) + b;
  const tg::Tensor y = tg::tanh(z);
  fmt::print("   forward: z = {:.8f}, y = {:.8f}\n   the tape:\n", z.item(), y.item());
  std::cout << tape;
  tg::BackwardTrace trace;
  y.backward();
  fmt::print("   the backward pass, last op first:\n{}", trace.str());
  const double dz = 1 - y.item() * y.item();
  check("dL/dw0", w.grad().at({0}), dz * 1.0);
  check("dL/dw1", w.grad().at({1}), dz * 2.0);
  check("dL/db", b.grad().item(), dz);
}

// 2. Two layers on two inputs: a = W₁x + b₁, h = tanh a, ŷ = w₂·h + b₂, L = (ŷ − t)².
//    dL/dŷ = 2(ŷ − t)
//    dL/dw₂ = dL/dŷ · h            dL/db₂ = dL/dŷ
//    dL/dh  = dL/dŷ · w₂           dL/da  = dL/dh ⊙ (1 − h²)
//    dL/dW₁ = dL/da · xᵀ           dL/db₁ = dL/da
void two_layers(const std::string& out_dir) {
  fmt::print("\n2. Two layers: h = tanh(W1·x + b1), y = w2·h + b2, L = (y − t)^2\n");
  tg::Tape tape;
  const tg::Tensor x = tg::tensor({0.5, -1.0}, tg::f64);
  const double t = 0.25;
  // Named tensors are labelled by name in the tape, the trace, the graph and the page.
  tg::name(x, "x");
  tg::Tensor w1 =
      tg::name(tg::tensor({{0.3, -0.2}, {0.1, 0.4}}, tg::f64).requires_grad(true), "W1");
  tg::Tensor b1 = tg::name(tg::tensor({0.05, -0.05}, tg::f64).requires_grad(true), "b1");
  tg::Tensor w2 = tg::name(tg::tensor({0.7, -0.6}, tg::f64).requires_grad(true), "w2");
  tg::Tensor b2 = tg::name(tg::full({}, 0.1, tg::f64).requires_grad(true), "b2");
  const tg::Tensor h = tg::name(tg::tanh(tg::sum(w1 * x, 1) + b1), "h");
  const tg::Tensor y = tg::name(tg::sum(w2 * h) + b2, "y");
  const tg::Tensor loss = tg::name(tg::pow(y - t, 2.0), "L");
  fmt::print("   forward: h = [{:.8f}, {:.8f}], y = {:.8f}, L = {:.8f}\n   the tape:\n", h.at({0}),
             h.at({1}), y.item(), loss.item());
  std::cout << tape;
  tg::BackwardTrace trace;
  loss.backward();  // frees the saved residuals; the graph, its values and names stay
  fmt::print("   the backward pass:\n{}", trace.str());
  const double dy = 2 * (y.item() - t);
  for (std::int64_t j = 0; j < 2; ++j) {
    const double hj = h.at({j});
    const double da = dy * w2.at({j}) * (1 - hj * hj);
    check(fmt::format("dL/dw2[{}]", j).c_str(), w2.grad().at({j}), dy * hj);
    check(fmt::format("dL/db1[{}]", j).c_str(), b1.grad().at({j}), da);
    for (std::int64_t k = 0; k < 2; ++k) {
      check(fmt::format("dL/dW1[{},{}]", j, k).c_str(), w1.grad().at({j, k}), da * x.at({k}));
    }
  }
  check("dL/db2", b2.grad().item(), dy);
  write_graph(tape, loss, {}, out_dir, "two_layers");
  write_page(tape, loss, trace, {w1, b1, w2, b2}, out_dir, "two_layers",
             "tapegrad: backprop through two layers");
}

// 3. Softmax and cross-entropy with a confident wrong prediction. The gradient of
//    −log softmax(z)[label] is softmax(z) − onehot(label): of magnitude 1, never vanishing. Going
//    through softmax and then log computes softmax(z)[label] first: at logits ±60 it is e^−120,
//    which float32 rounds to 0, so log gives −inf and the gradient 0·inf = NaN.
void softmax_cross_entropy() {
  fmt::print("\n3. Softmax cross-entropy at logits [60, 0, -60], label 2\n");
  const tg::Tensor labels = tg::int64_tensor({2});
  const auto gradient = [&](tg::DType dtype, bool fused) {
    tg::Tensor z = tg::tensor({{60.0, 0.0, -60.0}}, dtype).requires_grad(true);
    const tg::Tensor loss =
        fused ? tg::cross_entropy(z, labels) : tg::nll_loss(tg::log(tg::softmax(z, 1)), labels);
    loss.backward();
    return z.grad().to(tg::f64).to_vector();
  };
  const std::vector<double> reference = gradient(tg::f64, true);
  for (const bool fused : {true, false}) {
    for (const tg::DType dtype : {tg::f32, tg::f64}) {
      const std::vector<double> g = gradient(dtype, fused);
      double error = 0;
      for (std::size_t i = 0; i < g.size(); ++i) {
        error = std::isnan(g[i]) ? NAN : std::max(error, std::abs(g[i] - reference[i]));
      }
      fmt::print("   {:<28} {}: gradient [{:.6g}, {:.6g}, {:.6g}], max error {:.3g}\n",
                 fused ? "fused cross_entropy" : "log(softmax) then nll_loss",
                 tg::dtype_name(dtype), g[0], g[1], g[2], error);
    }
  }
  try {
    tg::AnomalyGuard anomaly;
    gradient(tg::f32, false);
  } catch (const tg::Error& e) {
    fmt::print(
        "   with tg::AnomalyGuard the float32 chain stops at the first non-finite value:\n"
        "   {}\n",
        e.what());
  }
}

// 4. The softmax Jacobian on the page: p = softmax(z), L = −log p[2]. The page's softmax step
//    shows the explicit J = diag(p) − p pᵀ beside the rule p ⊙ (g − ⟨g, p⟩) that never forms
//    it; the gradient that reaches the logits is p − onehot(2).
void softmax_page(const std::string& out_dir) {
  fmt::print("\n4. The softmax Jacobian, step by step: L = -log softmax(z)[2]\n");
  tg::Tape tape;
  tg::Tensor z = tg::name(tg::tensor({{2.0, 0.5, -1.0}}, tg::f64).requires_grad(true), "z");
  const tg::Tensor p = tg::name(tg::softmax(z, 1), "p");
  const tg::Tensor loss = tg::name(tg::nll_loss(tg::log(p), tg::int64_tensor({2})), "L");
  tg::BackwardTrace trace;
  loss.backward();
  for (std::int64_t j = 0; j < 3; ++j) {
    check(fmt::format("dL/dz[{}]", j).c_str(), z.grad().at({0, j}),
          p.at({0, j}) - (j == 2 ? 1.0 : 0.0));
  }
  write_page(tape, loss, trace, {z}, out_dir, "softmax",
             "tapegrad: the softmax Jacobian beside its rule");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out_dir = argc > 1 ? argv[1] : "backprop_walkthrough_out";
  single_neuron();
  two_layers(out_dir);
  softmax_cross_entropy();
  softmax_page(out_dir);
  std::ofstream(out_dir + "/expected_gradients.json")
      << fmt::format("{{{}}}\n", fmt::join(expected_gradients, ",\n"));
  fmt::print("\n{}\n", failures == 0 ? "every gradient matches its hand derivation"
                                     : fmt::format("{} gradients do not match", failures));
  return failures == 0 ? 0 : 1;
}
