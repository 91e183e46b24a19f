// User-defined ops: the CustomOp API, recording with the caller's location, create_graph,
// once-differentiable ops, registration, and gradcheck localising a wrong rule to its line.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gtest.h"
#include "tapegrad.h"

namespace tg {
namespace {

// swish(x) = x·sigmoid(x), as a struct with two static functions.
struct Swish {
  static Tensor forward(ForwardContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Tensor s = sigmoid(x);
    ctx.save(s);
    return x * s;
  }
  static void backward(BackwardContext& ctx) {
    const Tensor& x = ctx.input(0);
    // Under create_graph the saved s is a plain value; recompute it so d²/dx² sees it.
    const Tensor s = ctx.create_graph() ? sigmoid(x) : ctx.saved(0);
    ctx.set_grad(0, ctx.grad_output() * (s + x * s * (1.0 - s)));
  }
};
const CustomOp swish{"swish", "dx = g ⊙ (s + x s (1 − s))", Swish::forward, Swish::backward};

// A two-input op from two lambdas: y = a·b² (elementwise, broadcasting).
const CustomOp a_b_squared{
    "a_b_squared", "da = g ⊙ b², db = 2 g ⊙ a ⊙ b",
    [](ForwardContext& ctx) { return ctx.input(0) * ctx.input(1) * ctx.input(1); },
    [](BackwardContext& ctx) {
      const Tensor& a = ctx.input(0);
      const Tensor& b = ctx.input(1);
      const Tensor& g = ctx.grad_output();
      if (ctx.needs_grad(0)) ctx.set_grad(0, g * b * b);
      if (ctx.needs_grad(1)) ctx.set_grad(1, g * a * b * 2.0);
    }};

// softplus with a rule computed outside the tape (plain Eigen-free arithmetic on values): right
// to first order, not differentiable again.
const CustomOp softplus_once{"softplus_once", "dx = g ⊙ sigmoid(x)",
                             [](ForwardContext& ctx) { return log(exp(ctx.input(0)) + 1.0); },
                             [](BackwardContext& ctx) {
                               ctx.set_grad(0,
                                            (ctx.grad_output() * sigmoid(ctx.input(0))).detach());
                             },
                             Differentiability::once};

TEST(CustomOp, RecordsOneEntryWithTheCallersLocation) {
  Tape tape;
  Tensor x = tensor({-1.0, 0.5, 2.0}, f64).requires_grad(true);
  const unsigned line = __LINE__ + 1;
  const Tensor y = swish(x);
  ASSERT_EQ(tape.size(), 1u);
  const TapeEntryView entry = tape.entry(0);
  EXPECT_STREQ(entry.op, "swish");
  EXPECT_EQ(entry.location.line(), line);
  EXPECT_EQ(entry.saved.size(), 1u);
  for (int i = 0; i < 3; ++i) {
    const double v = x.at({i});
    EXPECT_NEAR(y.at({i}), v / (1 + std::exp(-v)), 1e-15);
  }
  sum(y).backward();
  for (int i = 0; i < 3; ++i) {
    const double v = x.at({i}), s = 1 / (1 + std::exp(-v));
    EXPECT_NEAR(x.grad().at({i}), s + v * s * (1 - s), 1e-15);
  }
}

TEST(CustomOp, PassesGradcheckAndGradgradcheck) {
  Generator gen(1);
  const Tensor x = randn({2, 3}, gen, f64);
  EXPECT_GRADCHECK([](const auto& in) { return swish(in[0]); }, {x});
  EXPECT_GRADGRADCHECK([](const auto& in) { return swish(in[0]); }, {x});
  const Tensor a = randn({2, 3}, gen, f64);
  const Tensor b = randn({3}, gen, f64);
  EXPECT_GRADCHECK([](const auto& in) { return a_b_squared(in[0], in[1]); }, {a, b});
  EXPECT_GRADGRADCHECK([](const auto& in) { return a_b_squared(in[0], in[1]); }, {a, b});
  EXPECT_GRADCHECK([](const auto& in) { return a_b_squared.apply(in); }, {a, b});
}

TEST(CustomOp, OnceDifferentiableOpWorksToFirstOrderAndRefusesCreateGraph) {
  const Tensor x = tensor({-1.0, 0.5}, f64);
  EXPECT_GRADCHECK([](const auto& in) { return softplus_once(in[0]); }, {x});
  Tensor leaf = x.detach().requires_grad(true);
  try {
    grad(sum(softplus_once(leaf)), {leaf}, Tensor(), {.create_graph = true});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("backward of 'softplus_once'"), std::string::npos) << message;
    EXPECT_NE(message.find("once-differentiable"), std::string::npos) << message;
    EXPECT_NE(message.find("custom_op_test.cpp"), std::string::npos) << message;
  }
}

TEST(CustomOp, RegisteredOpsAreCheckedByTheSameCallAsBuiltIns) {
  OpRegistry registry;
  const auto samples = [](DType dtype) {
    Generator gen(2);
    return std::vector<OpSample>{{"[4]", {randn({4}, gen, dtype)}},
                                 {"[2, 3]", {randn({2, 3}, gen, dtype)}}};
  };
  registry.add({"swish", [](const auto& in) { return swish(in[0]); }, samples,
                [](const std::vector<Tensor>& in) {
                  std::vector<double> d = in[0].to_vector();
                  for (double& v : d) {
                    const double s = 1 / (1 + std::exp(-v));
                    v = s + v * s * (1 - s);
                  }
                  return std::vector<Tensor>{diagonal_jacobian(d)};
                }});
  registry.add({"softplus_once",
                [](const auto& in) { return softplus_once(in[0]); },
                samples,
                {},
                Differentiability::once});
  registry.add(op_registry().find("softmax(axis=-1)"));
  const OpCheckSummary good = check_ops(registry);
  EXPECT_TRUE(good.passed()) << good.report();
  EXPECT_EQ(good.ops, 3u);
  // swish: 2 samples × (gradcheck, float32, gradgradcheck, reference); softplus_once: 2 × 2;
  // softmax: 4 samples × 4.
  EXPECT_EQ(good.checks, 8u + 4u + 16u) << good.report();

  static const CustomOp swish_wrong{
      "swish_wrong", "dx = g ⊙ s (the x s (1 − s) term dropped)", Swish::forward,
      [](BackwardContext& ctx) { ctx.set_grad(0, ctx.grad_output() * ctx.saved(0)); }};
  registry.add({"swish_wrong", [](const auto& in) { return swish_wrong(in[0]); }, samples, {}});
  const OpCheckSummary bad = check_op(registry.find("swish_wrong"));
  EXPECT_FALSE(bad.passed());
  EXPECT_NE(bad.report().find("swish_wrong on [4] (gradcheck): gradcheck failed"),
            std::string::npos)
      << bad.report();
}

// y = a_b_squared(x, w) → swish → ·0.5 → + c → tanh → sum: six ops, one with a wrong rule.
const CustomOp swish_dropped_term{
    "swish_dropped_term", "dx = g ⊙ s (wrong: the x s (1 − s) term is missing)", Swish::forward,
    [](BackwardContext& ctx) { ctx.set_grad(0, ctx.grad_output() * ctx.saved(0)); }};

TEST(Localisation, NamesTheWrongOpAndItsLineInAFunctionOfSixOps) {
  Generator gen(3);
  const Tensor x = randn({2, 3}, gen, f64);
  const Tensor w = randn({3}, gen, f64);
  const Tensor c = randn({2, 1}, gen, f64);
  const unsigned line = __LINE__ + 2;
  const Function f = [](const std::vector<Tensor>& in) {
    const Tensor h = swish_dropped_term(a_b_squared(in[0], in[1]));
    return sum(tanh(h * 0.5 + in[2]));
  };
  const GradcheckResult r = gradcheck(f, {x, w, c});
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.tape_entries, 6u);
  ASSERT_EQ(r.culprits.size(), 1u) << r.report;
  EXPECT_EQ(r.culprits[0].op, "swish_dropped_term");
  EXPECT_EQ(r.culprits[0].entry, 1);
  EXPECT_EQ(r.culprits[0].location, "custom_op_test.cpp:" + std::to_string(line));
  EXPECT_GT(r.culprits[0].worst.error, 1e-3);
  EXPECT_NE(r.report.find("localised to 1 of 6 tape entries"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("entry #1 'swish_dropped_term' at custom_op_test.cpp:" +
                          std::to_string(line) + ": d output["),
            std::string::npos)
      << r.report;
}

TEST(Localisation, FastModeLocalisesToo) {
  Generator gen(4);
  const Tensor x = randn({40, 30}, gen, f64);
  const GradcheckResult r = gradcheck(
      [](const auto& in) { return sum(tanh(swish_dropped_term(in[0]))); }, {x}, {.fast = true});
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.report.find("fast gradcheck failed"), std::string::npos) << r.report;
  ASSERT_EQ(r.culprits.size(), 1u) << r.report;
  EXPECT_EQ(r.culprits[0].op, "swish_dropped_term");
}

}  // namespace
}  // namespace tg
