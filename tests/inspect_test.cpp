// Printing the tape, tracing backward, the DOT graph, and anomaly detection.
#include <gtest/gtest.h>

#include <sstream>

#include "tapegrad.h"

namespace tg {
namespace {

TEST(Inspect, TapePrintsOneLinePerEntry) {
  Tape tape;
  Tensor x = tensor({1.0, 2.0}).requires_grad(true);
  const unsigned line = __LINE__ + 1;
  Tensor y = sum(tanh(x * 2.0));
  std::ostringstream out;
  out << tape;
  const std::string at = "at inspect_test.cpp:" + std::to_string(line);
  EXPECT_EQ(out.str(), "#0 mul_scalar(leaf) -> [2] tensor([2., 4.])  " + at + "\n" +
                           "#1 tanh(#0) -> [2] tensor([0.9640, 0.9993])  " + at + "\n" +
                           "#2 sum(#1) -> [] tensor(1.9634)  " + at + "\n");
  y.backward();
  std::ostringstream after;
  after << tape;
  EXPECT_NE(after.str().find("(residuals freed)"), std::string::npos) << after.str();
}

TEST(Inspect, BackwardTraceShowsEveryStepWithItsRule) {
  Tensor x = tensor({1.0, 2.0, 3.0}, f64).requires_grad(true);
  const Tensor y = sum(softmax(x) * tensor({1.0, 0.0, 0.0}, f64));
  BackwardTrace trace;
  y.backward();
  ASSERT_EQ(trace.steps().size(), 3u);
  EXPECT_STREQ(trace.steps()[0].op, "sum");
  EXPECT_STREQ(trace.steps()[2].op, "softmax");
  EXPECT_STREQ(trace.steps()[2].formula, "dx = s ⊙ (g − ⟨g, s⟩)");
  EXPECT_EQ(trace.steps()[2].grad_output.to_vector(), std::vector<double>({1, 0, 0}));
  const std::vector<double> dx = trace.steps()[2].grad_inputs[0].to_vector();
  EXPECT_NEAR(dx[0], 0.08192507, 1e-8);
  const std::string text = trace.str();
  EXPECT_NE(text.find("backward #0 softmax"), std::string::npos) << text;
  EXPECT_NE(text.find("  rule: dx = s ⊙ (g − ⟨g, s⟩)\n"), std::string::npos) << text;
  EXPECT_NE(
      text.find("  -> input 0 (leaf): [3] tensor([ 0.0819, -0.0220, -0.0599], dtype=float64)"),
      std::string::npos)
      << text;
}

TEST(Inspect, DotGraphHasTensorAndOpNodesInDataFlowOrder) {
  Tape tape;
  Tensor w = tensor({0.5, -1.0}).requires_grad(true);
  const Tensor x = tensor({2.0, 3.0});
  Tensor unrelated = w * 10.0;  // not part of the loss: left out of the graph
  const Tensor loss = sum(w * x);
  loss.backward(Tensor(), {.retain_graph = true});
  const std::string dot = to_dot(tape, loss, {{"w", w}, {"x", x}});
  EXPECT_EQ(dot.rfind("digraph tape {", 0), 0u);
  EXPECT_NE(dot.find("op1 [shape=box"), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"#1 mul\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"w [2]\\n[0.5, -1]\\ngrad [2, 3]\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"x [2]\\n[2, 3]\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("t1 -> op2;"), std::string::npos) << dot;
  EXPECT_NE(dot.find("op2 -> t2;"), std::string::npos) << dot;
  EXPECT_EQ(dot.find("op0"), std::string::npos) << dot;  // the unrelated entry
  EXPECT_THROW(to_dot(tape, x), Error);
}

// Runs `make` under anomaly detection and checks that the error names the op, forward or
// backward, and the line the op was recorded on.
template <class Make>
void expect_anomaly(Make make, const std::string& op, const std::string& direction, unsigned line) {
  AnomalyGuard anomaly;
  try {
    make();
    ADD_FAILURE() << "expected an anomaly in " << op;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("anomaly: " + direction + " of '" + op + "'"), std::string::npos)
        << message;
    EXPECT_NE(message.find("inspect_test.cpp:" + std::to_string(line)), std::string::npos)
        << message;
    EXPECT_NE(message.find("inputs: input 0"), std::string::npos) << message;
  }
}

TEST(Anomaly, ForwardNaNAndInfinityNameTheOpAndLine) {
  Tensor zero = tensor({1.0, 0.0}).requires_grad(true);
  unsigned line = __LINE__ + 1;
  expect_anomaly([&] { return log(zero); }, "log", "forward", line);
  Tensor negative = tensor({-1.0, 4.0}).requires_grad(true);
  line = __LINE__ + 1;
  expect_anomaly([&] { return sqrt(negative); }, "sqrt", "forward", line);
  line = __LINE__ + 1;
  expect_anomaly([&] { return zero / zero; }, "div", "forward", line);
  // A constant computation is checked too: anomalies are not only in recorded ops.
  line = __LINE__ + 1;
  expect_anomaly([&] { return log(tensor({0.0})); }, "log", "forward", line);
}

TEST(Anomaly, BackwardInfinityNamesTheOpAndLine) {
  Tensor x = tensor({0.0, 4.0}).requires_grad(true);
  const unsigned line = __LINE__ + 1;
  const Tensor y = sqrt(x);  // finite forward; the gradient 1/(2√x) is infinite at 0
  expect_anomaly([&] { sum(y).backward(); }, "sqrt", "backward", line);
}

TEST(Anomaly, OffByDefaultAndScoped) {
  EXPECT_FALSE(anomaly_detection_enabled());
  {
    AnomalyGuard on;
    EXPECT_TRUE(anomaly_detection_enabled());
  }
  EXPECT_FALSE(anomaly_detection_enabled());
  EXPECT_NO_THROW(log(tensor({0.0})));  // -inf, as it should be when nobody asked
}

}  // namespace
}  // namespace tg
