// The checker checked: gradcheck's own arithmetic (the worst-entry ranking, the tolerance
// boundary, NaN, the float32 mode), every error path of gradcheck, gradgradcheck, jacobian,
// hessian, hvp and jvp, and every field of the report, each against a hand-made rule whose
// errors are known exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tapegrad.h"

namespace tg {
namespace {

// Every message must name the function and say what was expected.
void expect_error(const std::function<void()>& call, const std::string& message) {
  try {
    call();
    ADD_FAILURE() << "no error; expected: " << message;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

// y = x², with a rule that adds the known offsets [0.3, 0.15, 0.01] to 2x.
const CustomOp offset_square{
    "offset_square", "dx = g ⊙ (2x + d)",
    [](ForwardContext& ctx) { return ctx.input(0) * ctx.input(0); },
    [](BackwardContext& ctx) {
      ctx.set_grad(0, ctx.grad_output() *
                          (ctx.input(0) * 2.0 + tensor({0.3, 0.15, 0.01}, ctx.input(0).dtype())));
    }};

TEST(Checker, WorstEntryIsTheOneExceedingItsToleranceByTheMost) {
  // Numeric diagonal 2x = [200, 0, 2]; errors [0.3, 0.15, 0.01]; tolerances 1e-5 + 1e-3·|2x| =
  // [0.20001, 0.00001, 0.00201]; excesses [0.09999, 0.14999, 0.00799]. The largest error is
  // entry 0, but entry 1 is furthest past its tolerance.
  const GradcheckResult r = gradcheck([](const auto& in) { return offset_square(in[0]); },
                                      {tensor({100.0, 0.0, 1.0}, f64)}, {.localize = false});
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.entries_checked, 9u);
  EXPECT_EQ(r.entries_failed, 3u);
  EXPECT_NEAR(r.max_error, 0.3, 1e-6);
  ASSERT_TRUE(r.worst.has_value());
  EXPECT_EQ(r.worst->input, 0u);
  EXPECT_EQ(r.worst->input_index, std::vector<std::int64_t>({1}));
  EXPECT_EQ(r.worst->output_index, std::vector<std::int64_t>({1}));
  EXPECT_DOUBLE_EQ(r.worst->analytic, 0.15);
  EXPECT_EQ(r.worst->numeric, 0.0);
  EXPECT_DOUBLE_EQ(r.worst->error, 0.15);
  EXPECT_NE(r.report.find("gradcheck failed: 3 of 9 Jacobian entries differ (atol 1e-05, rtol "
                          "0.001); worst: d output[1] / d input 0[1]: analytic 0.15, numeric 0, "
                          "error 0.15"),
            std::string::npos)
      << r.report;
  EXPECT_TRUE(r.culprits.empty());  // localize = false
  EXPECT_EQ(r.tape_entries, 0u);
}

TEST(Checker, OnSuccessTheWorstIsTheEntryClosestToItsTolerance) {
  // With tolerances wide enough, every entry passes; entry 1 is still the closest call.
  const GradcheckResult r =
      gradcheck([](const auto& in) { return offset_square(in[0]); },
                {tensor({100.0, 0.0, 1.0}, f64)}, {.atol = 0.5, .rtol = 0.01});
  ASSERT_TRUE(r.passed) << r.report;
  ASSERT_TRUE(r.worst.has_value());
  EXPECT_EQ(r.worst->input_index, std::vector<std::int64_t>({1}));
  EXPECT_NE(r.report.find("gradcheck passed: 9 Jacobian entries, max |analytic − numeric| = 0.3"),
            std::string::npos)
      << r.report;
}

// A power-of-two step makes central differences of x·3 exact.
constexpr double kExactStep = 1.0 / (1 << 20);

TEST(Checker, AnExactRulePassesWithZeroTolerance) {
  const GradcheckResult r =
      gradcheck([](const auto& in) { return in[0] * 3.0; }, {tensor({0.5, 1.0, -2.0}, f64)},
                {.eps = kExactStep, .atol = 0, .rtol = 0});
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.max_error, 0.0);
  EXPECT_EQ(r.random_vjp_error, 0.0);
}

// y = 4x with the rule 5g: every diagonal entry is off by exactly 1 = 0.25·|4|.
const CustomOp four_x_rule_five{
    "four_x_rule_five", "dx = 5g", [](ForwardContext& ctx) { return ctx.input(0) * 4.0; },
    [](BackwardContext& ctx) { ctx.set_grad(0, ctx.grad_output() * 5.0); }};

TEST(Checker, AnErrorExactlyAtTheToleranceCountsAsPassing) {
  const auto failed = [](double atol, double rtol) {
    const GradcheckResult r = gradcheck(
        [](const auto& in) { return four_x_rule_five(in[0]); }, {tensor({1.0, -0.5}, f64)},
        {.eps = kExactStep, .atol = atol, .rtol = rtol, .localize = false});
    EXPECT_EQ(r.entries_checked, 4u);
    EXPECT_EQ(r.max_error, 1.0);
    return r.entries_failed;
  };
  EXPECT_EQ(failed(0, 0.25), 0u);
  EXPECT_EQ(failed(0, 0.2499), 2u);
  EXPECT_EQ(failed(1, 0), 0u);
  EXPECT_EQ(failed(0.9999, 0), 2u);
}

// y = x², rule 2x·g, but NaN as the derivative of element 1.
const CustomOp nan_rule{
    "nan_rule", "dx = g ⊙ 2x, NaN at 1",
    [](ForwardContext& ctx) { return ctx.input(0) * ctx.input(0); },
    [](BackwardContext& ctx) {
      ctx.set_grad(0, ctx.grad_output() * ctx.input(0) * tensor({2.0, NAN}, ctx.input(0).dtype()));
    }};

TEST(Checker, NanInTheAnalyticJacobianFailsAndIsReported) {
  const GradcheckResult r = gradcheck([](const auto& in) { return nan_rule(in[0]); },
                                      {tensor({3.0, 1.0}, f64)}, {.localize = false});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.max_error, INFINITY);
  ASSERT_TRUE(r.worst.has_value());
  EXPECT_TRUE(std::isnan(r.worst->analytic));
  EXPECT_NE(r.report.find("analytic nan"), std::string::npos) << r.report;
  // The NaN is the same on every pass: not reported as a nondeterministic backward.
  for (const std::string& p : r.problems) {
    EXPECT_EQ(p.find("not deterministic"), std::string::npos) << p;
  }
}

// y = x², except NaN within 1e-3 of 1 (but not at 1): finite differences at 1 see NaN.
const CustomOp nan_nearby{
    "nan_nearby", "dx = g ⊙ 2x",
    [](ForwardContext& ctx) {
      std::vector<double> v = ctx.input(0).to_vector();
      for (double& e : v) e = (e != 1 && std::abs(e - 1) < 1e-3) ? NAN : e * e;
      return from_vector(v, ctx.input(0).shape(), ctx.input(0).dtype());
    },
    [](BackwardContext& ctx) { ctx.set_grad(0, ctx.grad_output() * ctx.input(0) * 2.0); }};

TEST(Checker, NanInTheNumericJacobianFailsAndIsTheWorstEntry) {
  // Entry (0, 0) passes and is ranked first; the NaN entry (1, 1) must still take its place.
  const GradcheckResult r = gradcheck([](const auto& in) { return nan_nearby(in[0]); },
                                      {tensor({3.0, 1.0}, f64)}, {.localize = false});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.entries_failed, 1u);
  EXPECT_EQ(r.max_error, INFINITY);
  EXPECT_EQ(r.random_vjp_error, INFINITY);
  ASSERT_TRUE(r.worst.has_value());
  EXPECT_EQ(r.worst->input_index, std::vector<std::int64_t>({1}));
  EXPECT_EQ(r.worst->output_index, std::vector<std::int64_t>({1}));
  EXPECT_EQ(r.worst->analytic, 2.0);
  EXPECT_TRUE(std::isnan(r.worst->numeric));
  EXPECT_NE(r.report.find("d output[1] / d input 0[1]: analytic 2, numeric nan"), std::string::npos)
      << r.report;
}

// y = x², with a rule that drops the factor 2.
const CustomOp half_rule{
    "half_rule", "dx = g ⊙ x (wrong)",
    [](ForwardContext& ctx) { return ctx.input(0) * ctx.input(0); },
    [](BackwardContext& ctx) { ctx.set_grad(0, ctx.grad_output() * ctx.input(0)); }};

std::string failing_report(const Tensor& x, GradcheckOptions options, bool cast_to_f32 = false) {
  options.localize = false;
  const GradcheckResult r = gradcheck(
      [cast_to_f32](const auto& in) {
        const Tensor y = half_rule(in[0]);
        return cast_to_f32 ? cast(y, f32) : y;
      },
      {x}, options);
  EXPECT_FALSE(r.passed);
  return r.report;
}

TEST(Checker, Float32ToleranceAppliesExactlyWhenAFloat32ValueTakesPart) {
  const std::string f64_tolerance = "(atol 1e-05, rtol 0.001)";
  const std::string f32_tolerance = "(atol 0.0001, rtol 0.001)";
  const auto has = [](const std::string& report, const std::string& what) {
    return report.find(what) != std::string::npos;
  };
  // float32 inputs converted to float64 (the default): float64 tolerances.
  EXPECT_TRUE(has(failing_report(tensor({0.5, 2.0}, f32), {}), f64_tolerance));
  // Kept in float32: float32 tolerances.
  EXPECT_TRUE(
      has(failing_report(tensor({0.5, 2.0}, f32), {.keep_input_dtype = true}), f32_tolerance));
  // float64 inputs kept: float64.
  EXPECT_TRUE(
      has(failing_report(tensor({0.5, 2.0}, f64), {.keep_input_dtype = true}), f64_tolerance));
  // A float32 output from float64 inputs: float32.
  EXPECT_TRUE(has(failing_report(tensor({0.5, 2.0}, f64), {}, true), f32_tolerance));
}

TEST(Checker, Float32ModeComputesTheRuleInFloat32) {
  // exp's rule is exp(x), rounded to float32 when kept, to float64 when converted.
  const Tensor x = tensor({1.0 / 3.0}, f32);
  const GradcheckResult kept =
      gradcheck([](const auto& in) { return exp(in[0]); }, {x}, {.keep_input_dtype = true});
  EXPECT_TRUE(kept.passed) << kept.report;
  EXPECT_GT(kept.max_error, 1e-9);
  const GradcheckResult converted = gradcheck([](const auto& in) { return exp(in[0]); }, {x});
  EXPECT_LT(converted.max_error, 1e-9);
}

TEST(Checker, ReportNamesInputElementValuesOpEntryAndLine) {
  // f(a, b) = a ⊙ half_rule(b): d/db is a·b by the rule, 2a·b numerically.
  static const SourceLocation here = SourceLocation::current();
  const GradcheckResult r =
      gradcheck([](const auto& in) { return in[0] * half_rule.apply({in[1]}, here); },
                {tensor({1.0, 1.0}, f64), tensor({0.5, 2.0}, f64)});
  ASSERT_FALSE(r.passed);
  ASSERT_TRUE(r.worst.has_value());
  EXPECT_EQ(r.worst->input, 1u);
  EXPECT_EQ(r.worst->input_index, std::vector<std::int64_t>({1}));
  EXPECT_EQ(r.worst->output_index, std::vector<std::int64_t>({1}));
  EXPECT_DOUBLE_EQ(r.worst->analytic, 2.0);
  EXPECT_NEAR(r.worst->numeric, 4.0, 1e-8);
  EXPECT_EQ(r.entries_failed, 2u);
  EXPECT_EQ(r.tape_entries, 2u);
  ASSERT_EQ(r.culprits.size(), 1u);
  const GradcheckCulprit& c = r.culprits[0];
  EXPECT_EQ(c.entry, 0);
  EXPECT_EQ(c.op, "half_rule");
  const std::string location = fmt::format("checker_test.cpp:{}", here.line());
  EXPECT_EQ(c.location, location);
  EXPECT_EQ(c.worst.input, 0u);  // the entry's own input
  EXPECT_EQ(c.worst.input_index, std::vector<std::int64_t>({1}));
  EXPECT_DOUBLE_EQ(c.worst.analytic, 2.0);
  EXPECT_NEAR(c.worst.numeric, 4.0, 1e-8);
  EXPECT_NE(r.report.find("d output[1] / d input 1[1]: analytic 2, numeric 4"), std::string::npos)
      << r.report;
  EXPECT_NE(r.report.find("localised to 1 of 2 tape entries"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("entry #0 'half_rule' at " + location +
                          ": d output[1] / d input 0[1]: analytic 2, numeric 4"),
            std::string::npos)
      << r.report;
}

TEST(Checker, LocalisationSaysWhenEveryEntryPassesOnItsOwn) {
  // x ⊙ detach(x): the one entry is right for its inputs; the detach is what is wrong.
  const GradcheckResult r =
      gradcheck([](const auto& in) { return in[0] * in[0].detach(); }, {tensor({0.5, 2.0}, f64)});
  EXPECT_FALSE(r.passed);
  EXPECT_TRUE(r.culprits.empty());
  EXPECT_EQ(r.tape_entries, 1u);
  EXPECT_NE(r.report.find("localisation: each of the 1 tape entries passes on its own"),
            std::string::npos)
      << r.report;
}

TEST(Checker, FastModeReportsTheProjections) {
  const GradcheckResult r =
      gradcheck([](const auto& in) { return half_rule(in[0]); }, {tensor({0.5, 2.0, -1.0}, f64)},
                {.fast = true, .localize = false});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.entries_checked, 1u);
  ASSERT_TRUE(r.worst.has_value());
  EXPECT_TRUE(r.worst->input_index.empty());
  // The rule gives half the true derivative, so the projection is half the numeric one.
  EXPECT_NEAR(r.worst->analytic, r.worst->numeric / 2, 1e-8);
  EXPECT_NE(r.report.find("fast gradcheck failed: 1 of 1 Jacobian entries differ"),
            std::string::npos)
      << r.report;
  EXPECT_NE(r.report.find("vᵀJu along random directions"), std::string::npos) << r.report;
}

TEST(Checker, EmptyOutputPassesWithNothingToCompare) {
  const GradcheckResult r =
      gradcheck([](const auto& in) { return slice(in[0], 0, 1, 1); }, {tensor({1.0, 2.0}, f64)});
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.entries_checked, 0u);
}

TEST(Checker, TheCallersTensorsAreNotWrittenTo) {
  const Tensor x = tensor({0.5, 2.0}, f64);
  const std::uint64_t version = x.version();
  const std::vector<double> before = x.to_vector();
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0] * in[0]; }, {x}).passed);
  EXPECT_TRUE(gradgradcheck([](const auto& in) { return in[0] * in[0] * in[0]; }, {x}).passed);
  EXPECT_EQ(x.version(), version);
  EXPECT_EQ(x.to_vector(), before);
}

// ---- error paths ----

const TensorFunction square = [](const std::vector<Tensor>& in) { return in[0] * in[0]; };
const TensorFunction returns_int64 = [](const std::vector<Tensor>&) { return int64_tensor({1}); };
const TensorFunction returns_nothing = [](const std::vector<Tensor>&) { return Tensor(); };

TEST(CheckerErrors, GradcheckGradgradcheckAndJacobianNameThemselves) {
  const Tensor x = tensor({1.0, 2.0}, f64);
  using Check = std::function<void(const TensorFunction&, const std::vector<Tensor>&)>;
  const std::vector<std::pair<std::string, Check>> checks = {
      {"gradcheck", [](const auto& f, const auto& in) { gradcheck(f, in); }},
      {"gradgradcheck", [](const auto& f, const auto& in) { gradgradcheck(f, in); }},
      {"jacobian", [](const auto& f, const auto& in) { jacobian(f, in); }},
  };
  for (const auto& [name, check] : checks) {
    expect_error([&] { check(square, {x, Tensor()}); }, name + ": input 1 is undefined");
    expect_error([&] { check(returns_int64, {x}); },
                 name + ": the function must return a floating tensor, got int64");
    expect_error([&] { check(returns_nothing, {x}); },
                 name + ": the function must return a floating tensor, got an undefined one");
    expect_error(
        [&] {
          check(square, {int64_tensor({1, 2})});
        },
        name + ": no floating input to differentiate with respect to");
    expect_error([&] { check(square, {}); }, name + ": no floating input");
  }
}

TEST(CheckerErrors, JacobianDifferentiatesEveryFloatingInput) {
  const Tensor a = tensor({2.0}, f64).requires_grad(true);
  const Tensor b = tensor({3.0}, f64);
  const std::vector<Tensor> j = jacobian([](const auto& in) { return in[0] * in[1]; }, {a, b});
  ASSERT_TRUE(j[0].defined());
  ASSERT_TRUE(j[1].defined());
  EXPECT_EQ(j[0].item(), 3.0);
  EXPECT_EQ(j[1].item(), 2.0);
  EXPECT_FALSE(a.grad().defined());
}

TEST(CheckerErrors, JacobianIsComputedInTheInputsDtype) {
  static DType seen = f64;
  const std::vector<Tensor> j = jacobian(
      [](const auto& in) {
        seen = in[0].dtype();
        return in[0] * 2.0;
      },
      {tensor({1.0, 2.0}, f32)});
  EXPECT_EQ(seen, f32);
  EXPECT_EQ(j[0].dtype(), f32);
  EXPECT_EQ(j[0].to_vector(), std::vector<double>({2, 0, 0, 2}));
}

TEST(CheckerErrors, HessianHvpAndJvpNameThemselvesAndTheProblem) {
  const Tensor x = tensor({1.0, 2.0, 3.0}, f64);
  const UnaryFunction total = [](const Tensor& t) { return sum(t * t * t); };
  const UnaryFunction elementwise = [](const Tensor& t) { return t * t; };
  const UnaryFunction to_int = [](const Tensor&) { return int64_tensor({1}); };
  expect_error([&] { hessian(total, Tensor()); }, "hessian: x is undefined");
  expect_error([&] { hessian(total, int64_tensor({1})); },
               "hessian: x must be a floating tensor, got int64");
  expect_error([&] { hessian(elementwise, x); },
               "hessian: the function must return a single element, got shape [3]");
  expect_error([&] { hessian(to_int, x); },
               "hessian: the function must return a floating tensor, got int64");
  for (const auto& [name, call] : std::vector<std::pair<
           std::string, std::function<Tensor(const UnaryFunction&, const Tensor&, const Tensor&)>>>{
           {"hvp", [](const auto&f, const auto&a, const auto&v) { return hvp(f, a, v); }},
           {"jvp", [](const auto&f, const auto&a, const auto&v) { return jvp(f, a, v); }}}) {
    expect_error([&] { call(total, x, tensor({1.0}, f64)); },
                 name + ": the direction is float64 [1] but x is float64 [3]");
    expect_error(
        [&] {
          call(total, x, tensor({1.0, 1.0, 1.0}, f32));
        },
        name + ": the direction is float32 [3] but x is float64 [3]");
    expect_error([&] { call(total, x, Tensor()); }, name + ": the direction is undefined");
    expect_error([&] { call(total, Tensor(), x); }, name + ": x is undefined");
    expect_error([&] { call(total, int64_tensor({1}), int64_tensor({1})); },
                 name + ": x must be a floating tensor, got int64");
    expect_error([&] { call(to_int, x, x); },
                 name + ": the function must return a floating tensor, got int64");
  }
  expect_error([&] { hvp(elementwise, x, x); },
               "hvp: the function must return a single element, got shape [3]");
}

TEST(CheckerErrors, FunctionsThatDoNotDependOnXGiveZeros) {
  const Tensor x = tensor({1.0, 2.0}, f64);
  const Tensor v = tensor({0.5, -1.0}, f64);
  const UnaryFunction linear = [](const Tensor& t) { return sum(t * 3.0); };
  const UnaryFunction constant = [](const Tensor&) { return tensor({5.0}, f64); };
  EXPECT_EQ(hvp(linear, x, v).to_vector(), std::vector<double>({0.0, 0.0}));
  EXPECT_EQ(hvp(constant, x, v).to_vector(), std::vector<double>({0.0, 0.0}));
  EXPECT_EQ(hessian(linear, x).to_vector(), std::vector<double>(4, 0.0));
  EXPECT_EQ(hessian(constant, x).to_vector(), std::vector<double>(4, 0.0));
  EXPECT_EQ(jvp(constant, x, v).to_vector(), std::vector<double>({0.0}));
  EXPECT_EQ(jvp(linear, x, v).item(), -1.5);  // 3·0.5 − 3·1
}

}  // namespace
}  // namespace tg
