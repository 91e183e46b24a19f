// Property-based: random compositions (depth up to 8) of registered ops on random shapes that
// broadcast, in float64, must pass gradcheck. TAPEGRAD_RANDOM_GRAPHS sets how many (500 by
// default); a failure prints its seed and its graph, and TAPEGRAD_GRAPH_SEED=<seed> replays it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include "tools/gtest.h"
#include "tapegrad.h"

namespace tg {
namespace {

struct Graph {
  std::vector<Tensor> inputs;
  std::string text;
  std::function<Tensor(const std::vector<Tensor>&)> function;
};

class GraphBuilder {
 public:
  explicit GraphBuilder(std::uint64_t seed) : gen_(seed) {}

  Graph build() {
    // Every shape is one that broadcasts to [a, b]: any two of them broadcast together.
    const std::int64_t a = 1 + pick(3), b = 1 + pick(4);
    const std::vector<Shape> family = {{a, b}, {b}, {a, 1}, {1, b}, {}};
    Graph graph;
    const std::size_t count = 2 + std::size_t(pick(2));
    for (std::size_t i = 0; i < count; ++i) {
      graph.inputs.push_back(
          uniform(family[std::size_t(pick(int(family.size())))], gen_, -1.5, 1.5, f64));
    }
    auto [text, fn] = node(graph.inputs, 1 + pick(8), true);
    graph.text = text;
    graph.function = fn;
    return graph;
  }

 private:
  using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

  int pick(int n) { return int(gen_.next() % std::uint64_t(n)); }

  std::pair<std::string, Fn> node(const std::vector<Tensor>& inputs, int depth, bool root = false) {
    if (depth == 0 || (!root && pick(6) == 0)) {
      const std::size_t i = std::size_t(pick(int(inputs.size())));
      return {fmt::format("x{}", i), [i](const auto& in) { return in[i]; }};
    }
    ++ops;
    const auto [left, f] = node(inputs, depth - 1);
    switch (pick(12)) {
      case 0:
        return {fmt::format("tanh({})", left), [f](const auto& in) { return tanh(f(in)); }};
      case 1:
        return {fmt::format("sigmoid({})", left), [f](const auto& in) { return sigmoid(f(in)); }};
      case 2:
        return {fmt::format("(-{} * 1.5 + 0.25)", left),
                [f](const auto& in) { return -f(in) * 1.5 + 0.25; }};
      case 3:
      case 4: {
        const int axis = pick(2);
        const bool log = pick(2) == 1;
        return {fmt::format("{}({}, axis=-{})", log ? "log_softmax" : "softmax", left, axis + 1),
                [f, axis, log](const auto& in) {
                  const Tensor x = f(in);
                  if (x.rank() == 0) return tanh(x);  // no axis to normalise over
                  const int ax = -1 - std::min(axis, x.rank() - 1);
                  return log ? log_softmax(x, ax) : softmax(x, ax);
                }};
      }
      case 5: {
        const int kind = pick(3);
        return {fmt::format("{}({}, axis=0, keepdim)",
                            kind == 0   ? "sum"
                            : kind == 1 ? "mean"
                                        : "logsumexp",
                            left),
                [f, kind](const auto& in) {
                  const Tensor x = f(in);
                  if (x.rank() == 0) return sigmoid(x);
                  return kind == 0   ? sum(x, 0, true)
                         : kind == 1 ? mean(x, 0, true)
                                     : logsumexp(x, 0, true);
                }};
      }
      default:
        break;
    }
    const auto [right, g] = node(inputs, depth - 1);
    switch (pick(4)) {
      case 0:
        return {fmt::format("({} + {})", left, right),
                [f, g](const auto& in) { return f(in) + g(in); }};
      case 1:
        return {fmt::format("({} - {})", left, right),
                [f, g](const auto& in) { return f(in) - g(in); }};
      case 2:
        return {fmt::format("({} * {})", left, right),
                [f, g](const auto& in) { return f(in) * g(in); }};
      default:  // a denominator of at least 1
        return {fmt::format("({} / (1 + {}²))", left, right), [f, g](const auto& in) {
                  const Tensor d = g(in);
                  return f(in) / (d * d + 1.0);
                }};
    }
  }

  Generator gen_;

 public:
  int ops = 0;  // op nodes built, for the report
};

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value ? std::strtoull(value, nullptr, 10) : fallback;
}

TEST(RandomGraphs, EveryGraphPassesGradcheck) {
  const std::uint64_t count = env_or("TAPEGRAD_RANDOM_GRAPHS", 500);
  const std::uint64_t only = env_or("TAPEGRAD_GRAPH_SEED", 0);
  std::uint64_t checked = 0, entries = 0, ops = 0;
  for (std::uint64_t seed = only ? only : 1; seed <= (only ? only : count); ++seed) {
    GraphBuilder builder(seed);
    const Graph graph = builder.build();
    ops += std::uint64_t(builder.ops);
    const GradcheckResult r = gradcheck(graph.function, graph.inputs);
    ++checked;
    entries += r.entries_checked;
    if (only) std::cout << "[ random graphs ] seed " << seed << ": " << graph.text << '\n';
    if (!r.passed) {
      std::string shapes;
      for (const Tensor& x : graph.inputs) shapes += fmt::format(" {}", x.shape().str());
      ADD_FAILURE() << "graph seed " << seed << ": " << graph.text << "\ninputs:" << shapes << "\n"
                    << r.report << "\nreplay: TAPEGRAD_GRAPH_SEED=" << seed
                    << " tests/tapegrad_tests --gtest_filter=RandomGraphs.*";
    }
  }
  std::cout << "[ random graphs ] " << checked << " graphs of " << ops << " op nodes gradchecked, "
            << entries << " Jacobian entries\n";
}

}  // namespace
}  // namespace tg
