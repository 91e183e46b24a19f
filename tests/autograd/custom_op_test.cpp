// User-defined ops: the CustomOp API, recording with the caller's location, create_graph,
// once-differentiable ops, registration, and gradcheck localising a wrong rule to its line.
#include <gtest/gtest.h>

#include <cmath>
#include <type_traits>
#include <utility>

#include "../expect_error.h"
#include "tapegrad.h"
#include "tools/gtest.h"

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

// swish whose rule simply uses the residual s saved by the forward, even under create_graph: the
// engine reruns the forward with grad mode on, so s is sigmoid(x) on the graph there.
const CustomOp swish_from_residual{"swish_from_residual", "dx = g ⊙ (s + x s (1 − s))",
                                   [](ForwardContext& ctx) {
                                     const Tensor s = sigmoid(ctx.input(0));
                                     ctx.save(s);
                                     return ctx.input(0) * s;
                                   },
                                   [](BackwardContext& ctx) {
                                     const Tensor& x = ctx.input(0);
                                     const Tensor& s = ctx.saved(0);
                                     ctx.set_grad(0, ctx.grad_output() * (s + x * s * (1.0 - s)));
                                   }};

// The same residual computed by hand from the values: invisible to the graph.
Tensor sigmoid_by_hand(const Tensor& x) {
  Tensor s = empty(x.shape(), f64);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    s.data<double>()[i] = 1.0 / (1.0 + std::exp(-std::as_const(x).data<double>()[i]));
  }
  return s;
}
Tensor swish_by_hand_forward(ForwardContext& ctx, Residual kind) {
  const Tensor s = sigmoid_by_hand(ctx.input(0));
  ctx.save(s, kind);
  return ctx.input(0) * s;
}
void swish_by_hand_backward(BackwardContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& s = ctx.saved(0);
  ctx.set_grad(0, ctx.grad_output() * (s + x * s * (1.0 - s)));
}
const CustomOp swish_by_hand{
    "swish_by_hand", "dx = g ⊙ (s + x s (1 − s))",
    [](ForwardContext& ctx) { return swish_by_hand_forward(ctx, Residual::differentiable); },
    swish_by_hand_backward};
const CustomOp swish_by_hand_constant{
    "swish_by_hand_constant", "dx = g ⊙ (s + x s (1 − s)), s held constant",
    [](ForwardContext& ctx) { return swish_by_hand_forward(ctx, Residual::constant); },
    swish_by_hand_backward};

TEST(CustomOp, AResidualFromTheForwardIsDifferentiatedUnderCreateGraph) {
  Generator gen(7);
  const Tensor x = randn({2, 3}, gen, f64);
  EXPECT_GRADCHECK([](const auto& in) { return swish_from_residual(in[0]); }, {x});
  EXPECT_GRADGRADCHECK([](const auto& in) { return swish_from_residual(in[0]); }, {x});
  // The second derivative against the closed form s'(2 + x(1 − 2s)).
  Tensor leaf = tensor({-1.5, 0.25, 2.0}, f64).requires_grad(true);
  const Tensor first = grad(sum(swish_from_residual(leaf)), {leaf}, {}, {.create_graph = true})[0];
  const Tensor second = grad(sum(first), {leaf})[0];
  for (int i = 0; i < 3; ++i) {
    const double v = leaf.at({i}), s = 1 / (1 + std::exp(-v));
    EXPECT_NEAR(second.at({i}), s * (1 - s) * (2 + v * (1 - 2 * s)), 1e-14);
  }
}

TEST(CustomOp, AResidualOffTheGraphIsAnErrorUnderCreateGraphUnlessDeclaredConstant) {
  Tensor leaf = tensor({-1.0, 0.5}, f64).requires_grad(true);
  // First order is right either way.
  EXPECT_GRADCHECK([](const auto& in) { return swish_by_hand(in[0]); }, {leaf.detach()});
  try {
    grad(sum(swish_by_hand(leaf)), {leaf}, {}, {.create_graph = true});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("backward of 'swish_by_hand'"), std::string::npos) << message;
    EXPECT_NE(message.find("saved residual 0 is not a function of the op's inputs"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("custom_op_test.cpp"), std::string::npos) << message;
  }
  // Declared constant: the recorded value is used, and the derivative treats s as fixed.
  const Tensor first =
      grad(sum(swish_by_hand_constant(leaf)), {leaf}, {}, {.create_graph = true})[0];
  const Tensor second = grad(sum(first), {leaf})[0];
  for (int i = 0; i < 2; ++i) {
    const double s = 1 / (1 + std::exp(-leaf.at({i})));
    EXPECT_NEAR(second.at({i}), s * (1 - s), 1e-14);
  }
}

TEST(CustomOp, MisuseIsAnErrorNamingTheOpAndTheLine) {
  static const CustomOp returns_nothing{
      "returns_nothing", "-", [](ForwardContext&) { return Tensor(); }, [](BackwardContext&) {}};
  static const CustomOp grad_past_the_end{
      "grad_past_the_end", "-", [](ForwardContext& ctx) { return ctx.input(0) * 2.0; },
      [](BackwardContext& ctx) { ctx.set_grad(1, ctx.grad_output()); }};
  static const CustomOp saved_past_the_end{
      "saved_past_the_end", "-", [](ForwardContext& ctx) { return ctx.input(0) * 2.0; },
      [](BackwardContext& ctx) { ctx.set_grad(0, ctx.saved(0)); }};
  static const CustomOp input_past_the_end{"input_past_the_end", "-",
                                           [](ForwardContext& ctx) { return ctx.input(3) * 2.0; },
                                           [](BackwardContext&) {}};
  Tensor x = tensor({1.0, 2.0}, f64).requires_grad(true);
  const auto expect_error = [](auto call, const std::string& part, unsigned line) {
    try {
      call();
      ADD_FAILURE() << "expected an error containing " << part;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(part), std::string::npos) << message;
      EXPECT_NE(message.find("custom_op_test.cpp:" + std::to_string(line)), std::string::npos)
          << message;
    }
  };
  unsigned line = __LINE__ + 1;
  expect_error([&] { returns_nothing(x); }, "returns_nothing", line);
  line = __LINE__ + 1;
  expect_error([&] { sum(grad_past_the_end(x)).backward(); }, "ctx.set_grad(1) is out of range",
               line);
  line = __LINE__ + 1;
  expect_error([&] { sum(saved_past_the_end(x)).backward(); }, "ctx.saved(0) is out of range",
               line);
  line = __LINE__ + 1;
  expect_error([&] { input_past_the_end(x); }, "ctx.input(3) is out of range", line);
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
  // softmax: each of its samples × 4.
  const std::size_t softmax_samples = op_registry().find("softmax(axis=-1)").samples(f64).size();
  EXPECT_EQ(good.checks, 8u + 4u + 4 * softmax_samples) << good.report();

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
  const TensorFunction f = [](const std::vector<Tensor>& in) {
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

// ---- attributes ----

// y = x^p with p an attribute: the struct is copied into each tape entry, so two calls with
// different exponents in one graph keep their own.
struct Power {
  double p;
};
const CustomOp power{"power", "dx = g ⊙ p x^(p−1)",
                     [](ForwardContext& ctx, const Power& a) { return pow(ctx.input(0), a.p); },
                     [](BackwardContext& ctx, const Power& a) {
                       ctx.set_grad(0, ctx.grad_output() * pow(ctx.input(0), a.p - 1.0) * a.p);
                     }};
static_assert(std::is_same_v<decltype(power), const CustomOp<Power>>);

TEST(CustomOp, AttributesReachTheForwardAndTheRuleOfEachCall) {
  Tape tape;
  Tensor x = tensor({0.5, 1.5, 2.0}, f64).requires_grad(true);
  const unsigned line = __LINE__ + 1;
  const Tensor y = power(Power{3.0}, x) + power(Power{0.5}, x);
  EXPECT_EQ(tape.entry(0).location.line(), line);
  EXPECT_STREQ(tape.entry(1).op, "power");
  sum(y).backward();
  const std::vector<double> xs{0.5, 1.5, 2.0};
  for (std::size_t i = 0; i < xs.size(); ++i) {
    EXPECT_DOUBLE_EQ(y.to_vector()[i], std::pow(xs[i], 3.0) + std::sqrt(xs[i]));
    EXPECT_NEAR(x.grad().to_vector()[i], 3 * xs[i] * xs[i] + 0.5 / std::sqrt(xs[i]), 1e-14);
  }
  const auto f = [](const std::vector<Tensor>& in) { return power(Power{2.5}, in[0]); };
  EXPECT_GRADCHECK(f, {x});
  EXPECT_TRUE(gradgradcheck(f, {x}).passed);
  EXPECT_TRUE(
      gradgradcheck([](const auto& in) { return power.apply(Power{-1.5}, {in[0]}); }, {x}).passed);
}

// ---- several outputs ----

// (sin x, cos x): the rule reads both cotangents and both outputs.
const MultiOutputOp sin_cos{
    "sin_cos", "dx = g₀ ⊙ cos x − g₁ ⊙ sin x",
    [](ForwardContext& ctx) {
      return std::vector{sin(ctx.input(0)), cos(ctx.input(0))};
    },
    [](BackwardContext& ctx) {
      ctx.set_grad(0, ctx.grad_output(0) * ctx.output(1) - ctx.grad_output(1) * ctx.output(0));
    }};

TEST(MultiOutputOp, ReturnsEachOutputAndItsRuleGetsOneCotangentPerOutput) {
  Tensor x = tensor({{-1.0, 0.25, 2.0}, {0.0, 3.0, -0.5}}, f64).requires_grad(true);
  const std::vector<Tensor> out = sin_cos(x);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(out[0].to_vector(), sin(x).to_vector());
  EXPECT_EQ(out[1].to_vector(), cos(x).to_vector());
  sum(out[0] * 2.0 + out[1] * out[1]).backward();
  const std::vector<double> xs = x.to_vector();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    EXPECT_NEAR(x.grad().to_vector()[i],
                2 * std::cos(xs[i]) - 2 * std::cos(xs[i]) * std::sin(xs[i]), 1e-15);
  }
  const MultiTensorFunction f = [](const std::vector<Tensor>& in) { return sin_cos(in[0]); };
  EXPECT_TRUE(gradcheck(f, {x}).passed);
  EXPECT_TRUE(gradgradcheck(f, {x}).passed);
}

TEST(MultiOutputOp, AnUnusedOutputsCotangentIsZeros) {
  static std::vector<double> seen_g0;
  static const MultiOutputOp watched{
      "watched", "dx = g₀ ⊙ cos x − g₁ ⊙ sin x",
      [](ForwardContext& ctx) {
        return std::vector{sin(ctx.input(0)), cos(ctx.input(0))};
      },
      [](BackwardContext& ctx) {
        seen_g0 = ctx.grad_output(0).to_vector();
        ctx.set_grad(0, ctx.grad_output(0) * ctx.output(1) - ctx.grad_output(1) * ctx.output(0));
      }};
  Tensor x = tensor({0.3, -1.2}, f64).requires_grad(true);
  sum(watched(x)[1]).backward();
  EXPECT_EQ(seen_g0, (std::vector<double>{0, 0}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{-std::sin(0.3), -std::sin(-1.2)}));
}

// The largest entry and its int64 index: the index is a constant output.
const MultiOutputOp max_and_index{
    "max_and_index", "dx = g₀ at the index of the max",
    [](ForwardContext& ctx) {
      const Tensor index = argmax(ctx.input(0));
      ctx.save(index, Residual::constant);
      return std::vector{max(ctx.input(0), 0), index};
    },
    [](BackwardContext& ctx) {
      EXPECT_FALSE(ctx.grad_output(1).defined());
      EXPECT_FALSE(ctx.output(1).defined());
      ctx.set_grad(0, scatter_add(zeros_like(ctx.input(0)), 0, reshape(ctx.saved(0), {1}),
                                  reshape(ctx.grad_output(0), {1})));
    }};

TEST(MultiOutputOp, AnInt64OutputIsAConstant) {
  Tensor x = tensor({0.5, 4.0, -2.0, 1.0}, f64).requires_grad(true);
  const std::vector<Tensor> out = max_and_index(x);
  EXPECT_EQ(out[0].to_vector(), std::vector<double>{4.0});
  EXPECT_EQ(out[1].dtype(), i64);
  EXPECT_FALSE(out[1].requires_grad());
  EXPECT_EQ(out[1].item<std::int64_t>(), 1);
  (out[0] * 3.0).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 3, 0, 0}));
  EXPECT_GRADCHECK([](const auto& in) { return max_and_index(in[0])[0]; }, {x});
}

TEST(MultiOutputOp, WithoutGradientsItReturnsTheForwardsTensors) {
  const Tensor x = tensor({1.0, 2.0}, f64);
  Tape tape;
  const std::vector<Tensor> out = sin_cos(x);
  EXPECT_EQ(tape.size(), 0u);
  EXPECT_EQ(out[1].to_vector(), cos(x).to_vector());
}

TEST(MultiOutputOp, AWrongRuleIsLocalisedToItsLine) {
  static const MultiOutputOp sin_cos_wrong{
      "sin_cos_wrong", "dx = g₀ ⊙ cos x (wrong: the g₁ term is missing)",
      [](ForwardContext& ctx) {
        return std::vector{sin(ctx.input(0)), cos(ctx.input(0))};
      },
      [](BackwardContext& ctx) { ctx.set_grad(0, ctx.grad_output(0) * ctx.output(1)); }};
  Generator gen(5);
  const Tensor x = randn({3}, gen, f64);
  const unsigned line = __LINE__ + 1;
  const MultiTensorFunction f = [](const std::vector<Tensor>& in) { return sin_cos_wrong(in[0]); };
  const GradcheckResult r = gradcheck(f, {x});
  ASSERT_FALSE(r.passed);
  ASSERT_FALSE(r.culprits.empty()) << r.report;
  EXPECT_EQ(r.culprits[0].op, "sin_cos_wrong") << r.report;
  EXPECT_EQ(r.culprits[0].location, "custom_op_test.cpp:" + std::to_string(line)) << r.report;
  // Output index 3 onwards is the second output: the cosine's entries are the wrong ones.
  ASSERT_TRUE(r.worst.has_value());
  EXPECT_GE(r.worst->output_index[0], 3);
}

TEST(MultiOutputOp, MisuseIsAnErrorNamingTheOpAndTheLine) {
  static const MultiOutputOp mixed{"mixed_dtypes", "-",
                                   [](ForwardContext& ctx) {
                                     return std::vector{ctx.input(0) * 2.0, ctx.input(0).to(f32)};
                                   },
                                   [](BackwardContext&) {}};
  static const MultiOutputOp none{"no_outputs", "-",
                                  [](ForwardContext&) { return std::vector<Tensor>{}; },
                                  [](BackwardContext&) {}};
  const Tensor x = tensor({1.0}, f64).requires_grad(true);
  const unsigned line = __LINE__ + 2;
  test_support::expect_error_containing(
      [&] { mixed(x); },
      "mixed_dtypes: floating outputs must share one dtype: output 1 is float32, "
      "an earlier one float64 (at " __FILE__ ":" +
          std::to_string(line) + ")");
  test_support::expect_error_containing([&] { none(x); }, "no_outputs");
}

}  // namespace
}  // namespace tg
