// Printing the tape, tracing backward, the DOT graph, and anomaly detection.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
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

TEST(Inspect, NamesGoWithTheTensorAndItsCopiesOnly) {
  Tensor w = tensor({1.0, 2.0}).requires_grad(true);
  const Tensor named = name(w, "w");
  EXPECT_EQ(named.impl(), w.impl());  // the same tensor, not a copy of its value
  EXPECT_EQ(name_of(w), "w");
  const Tensor copy = w;
  EXPECT_EQ(name_of(copy), "w");
  EXPECT_EQ(name_of(w.detach()), "");
  EXPECT_EQ(name_of(w * 2.0), "");
  EXPECT_EQ(name_of(Tensor()), "");
  name(w, "w renamed");
  EXPECT_EQ(name_of(w), "w renamed");
  EXPECT_THROW(name(Tensor(), "nothing"), Error);
}

TEST(Inspect, NamesOfDeadTensorsAreNotGivenToNewOnes) {
  for (int i = 0; i < 1000; ++i) {
    const Tensor t = zeros({2});
    EXPECT_EQ(name_of(t), "") << "iteration " << i;
    name(t, "short-lived");
  }
}

TEST(Inspect, TapePrintAndTraceUseNames) {
  Tape tape;
  Tensor w = name(tensor({0.5, -1.0}).requires_grad(true), "w");
  const Tensor x = name(tensor({2.0, 3.0}), "x");
  const Tensor y = name(w * x, "y");
  const unsigned line = __LINE__ + 1;
  const Tensor loss = sum(y);
  std::ostringstream out;
  out << tape;
  const std::string at = "at inspect_test.cpp:" + std::to_string(line);
  EXPECT_NE(out.str().find("#0 mul(w, x) -> y [2] tensor([ 1., -3.])"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("#1 sum(#0 y) -> [] tensor(-2.)  " + at), std::string::npos)
      << out.str();

  BackwardTrace trace;
  loss.backward();
  const std::string text = trace.str();
  EXPECT_NE(text.find("  -> input 0 (#0 y): [2] tensor([1., 1.])\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  -> input 0 (w): [2] tensor([2., 3.])\n"), std::string::npos) << text;
  // x is a constant: no gradient is sent to it, so no line names it.
  EXPECT_EQ(text.find("(x)"), std::string::npos) << text;
}

TEST(Inspect, TraceShowsMatricesOverLinesAndSummarisesLargeTensors) {
  Tensor w = name(tensor({{1.0, 2.0}, {3.0, 4.0}}, f64).requires_grad(true), "W");
  Tensor big = name(full({5, 5}, 0.5, f64).requires_grad(true), "big");
  const Tensor loss = sum(w * tensor({{1.0, -1.0}, {0.5, 2.0}}, f64)) + sum(big * big);
  BackwardTrace trace;
  loss.backward();
  const std::string text = trace.str();
  // The 2×2 gradient of W, one row per line, indented under the line that names it.
  EXPECT_NE(text.find("  -> input 0 (W): [2, 2]\n"
                      "       tensor([[ 1.0000, -1.0000],\n"
                      "               [ 0.5000,  2.0000]], dtype=float64)\n"),
            std::string::npos)
      << text;
  // 25 elements: summarised, not printed (each factor of big · big gets g ⊙ big = 0.5).
  EXPECT_NE(text.find("  -> input 0 (big): [5, 5] float64, min 0.5, max 0.5, mean 0.5\n"),
            std::string::npos)
      << text;
}

TEST(Inspect, DotGraphSurvivesBackwardWithNamesValuesAndMatrices) {
  Tape tape;
  Tensor w = name(tensor({{0.5, -1.0}, {2.0, 0.25}}).requires_grad(true), "W");
  Tensor v = name(arange(12).requires_grad(true), "v");  // a dozen elements
  const Tensor x = tensor({1.0, 2.0});
  const Tensor first = sum(tanh(w * x));  // recorded first: its own statement
  const Tensor loss = first + sum(v * 0.5);
  loss.backward();  // without retain_graph: residuals are freed, the graph is not
  const std::string dot = to_dot(tape, loss);
  // W drawn as a matrix, with its gradient (1 − tanh²(W·x))·x, row by row.
  const std::vector<double> g = w.grad().to_vector();
  EXPECT_NE(dot.find(fmt::format("v0 [shape=ellipse, label=\"W [2, 2]\\n[0.5, -1]\\n[2, "
                                 "0.25]\\ngrad\\n[{:.4g}, {:.4g}]\\n[{:.4g}, {:.4g}]\"];",
                                 g[0], g[1], g[2], g[3])),
            std::string::npos)
      << dot;
  EXPECT_NE(dot.find("label=\"v [12]\\n[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\\ngrad [0.5, 0.5, "
                     "0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]\""),
            std::string::npos)
      << dot;
  // Every edge of sum(tanh(W ⊙ x)) + sum(v · 0.5), in data-flow direction.
  for (const char* edge : {"v0 -> op0;", "v1 -> op0;", "op0 -> t0;", "t0 -> op1;", "t1 -> op2;",
                           "v2 -> op3;", "t3 -> op4;", "t2 -> op5;", "t4 -> op5;", "op5 -> t5;"}) {
    EXPECT_NE(dot.find(edge), std::string::npos) << edge << "\n" << dot;
  }
  EXPECT_EQ(dot.find("(freed)"), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"#1 tanh\\n(residuals freed)\""), std::string::npos) << dot;
  // Explicit names for one picture take precedence.
  EXPECT_NE(to_dot(tape, loss, {{"weights", w}}).find("label=\"weights [2, 2]"), std::string::npos);
}

// The JSON a page embeds, parsed back.
nlohmann::json page_data(const std::string& page) {
  const std::string open = "<script type=\"application/json\" id=\"tapegrad-data\">";
  const std::size_t begin = page.find(open);
  const std::size_t end = page.find("</script>", begin);
  EXPECT_NE(begin, std::string::npos);
  return nlohmann::json::parse(page.substr(begin + open.size(), end - begin - open.size()));
}

std::vector<double> json_values(const nlohmann::json& value) {
  return value.at("values").get<std::vector<double>>();
}

TEST(Html, PageHoldsEveryEntryAndTheGradientsOfTheTracedPass) {
  Tape tape;
  Tensor w = name(tensor({{0.3, -0.2}, {0.1, 0.4}}, f64).requires_grad(true), "W1");
  Tensor b = name(tensor({0.05, -0.05}, f64).requires_grad(true), "b1");
  const Tensor x = name(tensor({0.5, -1.0}, f64), "x</script>");  // must not end the script
  const Tensor h = tanh(sum(w * x, 1) + b);
  const Tensor loss = sum(h * h);
  BackwardTrace trace;
  loss.backward();
  const std::string page = to_html(tape, loss, {}, {.trace = &trace, .use_graphviz = false});

  // Self-contained: nothing is fetched.
  for (const char* outside : {"<link", " src=", "@import", "url(http", "fetch("}) {
    EXPECT_EQ(page.find(outside), std::string::npos) << outside;
  }
  const nlohmann::json data = page_data(page);
  ASSERT_EQ(data["entries"].size(), 6u);  // mul, sum, add, tanh, mul, sum
  EXPECT_EQ(data["entries"][3]["op"], "tanh");
  EXPECT_EQ(data["entries"][3]["formula"], tape.entry(3).formula);
  EXPECT_EQ(data["entries"][3]["where"], detail::where(tape.entry(3).location));
  EXPECT_EQ(data["entries"][3]["source"], "const Tensor h = tanh(sum(w * x, 1) + b);");
  EXPECT_TRUE(data["entries"][3]["freed"]);
  ASSERT_EQ(data["backward"].size(), 6u);
  EXPECT_EQ(data["backward"][0]["entry"], 5);  // backward starts from the last entry

  std::map<std::string, nlohmann::json> tensors;
  for (const auto& t : data["tensors"]) tensors[t["label"]] = t;
  EXPECT_EQ(tensors.at("W1")["kind"], "leaf");
  EXPECT_EQ(tensors.at("x</script>")["kind"], "const");
  EXPECT_TRUE(tensors.at("x</script>")["grad"].is_null());
  EXPECT_EQ(json_values(tensors.at("W1")["value"]), w.to_vector());
  EXPECT_EQ(json_values(tensors.at("W1")["grad"]), w.grad().to_vector());
  EXPECT_EQ(json_values(tensors.at("b1")["grad"]), b.grad().to_vector());
  // The tanh output's value survives backward; its gradient is dL/dh = 2h.
  const nlohmann::json& hidden = tensors.at("#3");
  EXPECT_EQ(json_values(hidden["value"]), h.to_vector());
  EXPECT_EQ(json_values(hidden["grad"]), (h * 2.0).to_vector());
  // What the tanh step sent to its input: g ⊙ (1 − h²).
  const nlohmann::json& tanh_step = data["backward"][2];
  EXPECT_EQ(tanh_step["entry"], 3);
  const std::vector<double> sent = json_values(tanh_step["sent"][0]["grad"]);
  const std::vector<double> hv = h.to_vector();
  for (std::size_t i = 0; i < 2; ++i) EXPECT_NEAR(sent[i], 2 * hv[i] * (1 - hv[i] * hv[i]), 1e-15);
  // The SVG of tapegrad's own layout: a node per tensor and op, ids as the data names them.
  for (const auto& t : data["tensors"]) {
    EXPECT_NE(page.find("<g id=\"" + t["id"].get<std::string>() + "\" class=\"node\">"),
              std::string::npos)
        << t["id"];
  }
  EXPECT_NE(page.find("<g id=\"op3\" class=\"node\"><title>op3</title><polygon"),
            std::string::npos);
  EXPECT_NE(page.find("<title>t3-&gt;op4</title>"), std::string::npos);
}

TEST(Html, SoftmaxStepShowsItsJacobianBesideTheRule) {
  Tape tape;
  Tensor z = name(tensor({{2.0, 0.5, -1.0}, {0.0, 1.0, 3.0}}, f64).requires_grad(true), "z");
  const Tensor p = softmax(z, 1);
  const Tensor loss = sum(p * tensor({{1.0, -2.0, 0.5}, {3.0, 0.0, -1.0}}, f64));
  const nlohmann::json data = page_data(to_html(tape, loss, {}, {.use_graphviz = false}));
  const nlohmann::json& step = data["backward"][2];
  ASSERT_EQ(data["entries"][step["entry"].get<int>()]["op"], "softmax");
  const nlohmann::json& jacobian = step["jacobian"];
  EXPECT_EQ(jacobian["axis"], 1);
  EXPECT_EQ(jacobian["n"], 3);
  ASSERT_EQ(jacobian["slices"].size(), 2u);
  const nlohmann::json& second = jacobian["slices"][1];
  const std::vector<double> s = second["s"].get<std::vector<double>>();
  const std::vector<double> J = second["J"].get<std::vector<double>>();
  EXPECT_EQ(s, (std::vector<double>{p.at({1, 0}), p.at({1, 1}), p.at({1, 2})}));
  EXPECT_DOUBLE_EQ(J[0], s[0] * (1 - s[0]));  // diag(s) − s sᵀ
  EXPECT_DOUBLE_EQ(J[1], -s[0] * s[1]);
  EXPECT_DOUBLE_EQ(J[8], s[2] * (1 - s[2]));
  EXPECT_EQ(second["g"].get<std::vector<double>>(), (std::vector<double>{3.0, 0.0, -1.0}));
  const std::vector<double> jg = second["Jg"].get<std::vector<double>>();
  const std::vector<double> rule = second["rule"].get<std::vector<double>>();
  for (std::size_t i = 0; i < 3; ++i) EXPECT_NEAR(jg[i], rule[i], 1e-15) << i;
  // The rule's gradient is the one the leaf received.
  std::vector<double> z_grad;
  for (const auto& t : data["tensors"]) {
    if (t["label"] == "z") z_grad = json_values(t["grad"]);
  }
  EXPECT_EQ(std::vector<double>(z_grad.begin() + 3, z_grad.end()), rule);
}

TEST(Html, RunsBackwardItselfWhileTheGraphIsRetainedAndSaysWhatToDoAfter) {
  Tape tape;
  Tensor w = name(tensor({1.0, -2.0}).requires_grad(true), "w");
  const Tensor loss = sum(exp(w));
  const nlohmann::json before = page_data(to_html(tape, loss, {}, {.use_graphviz = false}));
  EXPECT_FALSE(w.grad().defined());  // the page's own pass leaves grad() alone
  for (const auto& t : before["tensors"]) {
    if (t["label"] == "w") {
      EXPECT_EQ(json_values(t["grad"]), exp(w).to_vector());
    }
  }
  loss.backward();
  try {
    to_html(tape, loss);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("{.trace = &trace}"), std::string::npos) << e.what();
  }
  const BackwardTrace unrelated;
  // It recorded no pass from this loss; w is not on the tape.
  EXPECT_THROW(to_html(tape, loss, {}, {.trace = &unrelated}), Error);
  EXPECT_THROW(to_html(tape, w, {}, {.trace = &unrelated}), Error);
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

// A NaN that arrives from a leaf is reported at the first op that receives it, as an input
// already non-finite, not as something that op produced.
TEST(Anomaly, NaNArrivingInAnInputIsAlreadyNonFiniteAtTheFirstOpThatGetsIt) {
  Tensor x = tensor({{0.5, NAN, -1.0}}).requires_grad(true);
  AnomalyGuard anomaly;
  const unsigned line = __LINE__ + 2;
  try {
    tanh(x * 2.0);
    ADD_FAILURE() << "expected an anomaly";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("anomaly: forward of 'mul_scalar'"), std::string::npos) << message;
    EXPECT_NE(message.find("inspect_test.cpp:" + std::to_string(line)), std::string::npos)
        << message;
    EXPECT_NE(message.find("input 0 is already non-finite (nan at [0, 1])"), std::string::npos)
        << message;
    EXPECT_EQ(message.find("produced"), std::string::npos) << message;  // mul is not blamed
  }
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
