// Every registered op, on every sample: gradcheck in float64, its backward rule against its
// reference Jacobian where it has one, gradgradcheck, and float32 against float64 forward values.
// Registering an op is all it takes to be checked here.
#include <gtest/gtest.h>

#include <cmath>

#include "tapegrad.h"
#include "tools/gtest.h"

namespace tg {
namespace {

struct Case {
  std::string op;
  std::size_t sample;
  std::string label;
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << c.op << " on " << c.label;
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const OpRegistration& r : op_registry().ops()) {
    const std::vector<OpSample> samples = r.samples(f64);
    for (std::size_t i = 0; i < samples.size(); ++i) cases.push_back({r.name, i, samples[i].label});
  }
  return cases;
}

// The samples whose op registers a reference Jacobian that covers them.
std::vector<Case> cases_with_reference() {
  std::vector<Case> cases;
  for (const Case& c : all_cases()) {
    const OpRegistration& r = op_registry().find(c.op);
    if (!r.reference_jacobian) continue;
    const std::vector<Tensor> reference = r.reference_jacobian(r.samples(f64)[c.sample].inputs);
    if (std::any_of(reference.begin(), reference.end(),
                    [](const Tensor& j) { return j.defined(); })) {
      cases.push_back(c);
    }
  }
  return cases;
}

class RegisteredOp : public ::testing::TestWithParam<Case> {
 protected:
  const OpRegistration& op() const { return op_registry().find(GetParam().op); }
  OpSample sample(DType dtype) const { return op().samples(dtype)[GetParam().sample]; }
};

TEST_P(RegisteredOp, PassesGradcheckInFloat64) {
  EXPECT_GRADCHECK(op().function, sample(f64).inputs);
}

class RegisteredOpWithReference : public RegisteredOp {};

TEST_P(RegisteredOpWithReference, BackwardRuleMatchesItsReferenceJacobian) {
  const std::vector<Tensor> inputs = sample(f64).inputs;
  const std::vector<Tensor> reference = op().reference_jacobian(inputs);
  const std::vector<Tensor> computed = jacobian(op().function, inputs);
  for (std::size_t i = 0; i < reference.size(); ++i) {
    if (!reference[i].defined()) continue;
    ASSERT_EQ(reference[i].shape(), computed[i].shape()) << "input " << i;
    const std::vector<double> want = reference[i].to_vector();
    const std::vector<double> got = computed[i].to_vector();
    double worst = 0;
    for (std::size_t k = 0; k < want.size(); ++k)
      worst = std::max(worst, std::abs(want[k] - got[k]));
    EXPECT_LT(worst, 1e-12) << "input " << i;
  }
}

TEST_P(RegisteredOp, Float32RulePassesGradcheckAgainstFloat64FiniteDifferences) {
  EXPECT_GRADCHECK(op().function, sample(f32).inputs, {.keep_input_dtype = true});
}

// First-order backward passes may run fused kernels; under create_graph the rule is composed of
// ops. Both must give the same gradients (gradgradcheck alone would accept a composed rule that
// is consistently wrong).
TEST_P(RegisteredOp, FusedAndComposedRulesAgree) {
  std::vector<Tensor> inputs = sample(f64).inputs;
  std::vector<Tensor> wrt;
  for (Tensor& x : inputs) {
    if (!is_floating(x.dtype())) continue;
    x = x.detach().copy().requires_grad(true);
    wrt.push_back(x);
  }
  const Tensor y = op().function(inputs);
  Generator gen(17);
  const Tensor v = randn(y.shape(), gen, f64);
  const std::vector<Tensor> fused = grad(y, wrt, v, {.retain_graph = true});
  const std::vector<Tensor> composed = grad(y, wrt, v, {.create_graph = true});
  for (std::size_t i = 0; i < wrt.size(); ++i) {
    const std::vector<double> a = fused[i].to_vector(), b = composed[i].to_vector();
    for (std::size_t k = 0; k < a.size(); ++k)
      EXPECT_NEAR(a[k], b[k], 1e-12 * (1 + std::abs(b[k])));
  }
}

TEST_P(RegisteredOp, PassesGradgradcheckInFloat64) {
  EXPECT_GRADGRADCHECK(op().function, sample(f64).inputs);
}

TEST_P(RegisteredOp, Float32ForwardMatchesFloat64) {
  const Tensor y32 = op().function(sample(f32).inputs);
  const Tensor y64 = op().function(sample(f64).inputs);
  EXPECT_EQ(y32.dtype(), op().name == "cast" ? f64 : f32);
  ASSERT_EQ(y32.shape(), y64.shape());
  const std::vector<double> a = y32.to_vector();
  const std::vector<double> b = y64.to_vector();
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-5 * (1 + std::abs(b[k])));
}

TEST(Registry, HoldsEveryBuiltInOpFamily) {
  std::size_t samples = 0;
  for (const OpRegistration& r : op_registry().ops()) samples += r.samples(f64).size();
  for (const char* name : {"add",
                           "sub",
                           "mul",
                           "div",
                           "neg",
                           "pow",
                           "exp",
                           "log",
                           "sqrt",
                           "abs",
                           "tanh",
                           "sigmoid",
                           "relu",
                           "clamp",
                           "sum",
                           "mean",
                           "max(axis=0, keepdim=false)",
                           "logsumexp(axis=-1)",
                           "matmul",
                           "transpose",
                           "permute",
                           "reshape",
                           "slice",
                           "concat",
                           "index_select",
                           "softmax(axis=-1)",
                           "log_softmax(axis=0)",
                           "cross_entropy(mean)",
                           "nll_loss(sum)",
                           "mse_loss(none)"}) {
    EXPECT_NO_THROW(op_registry().find(name)) << name;
  }
  std::cout << "[ registry ] " << op_registry().ops().size() << " ops, " << samples << " samples\n";
  EXPECT_THROW(op_registry().find("no such op"), Error);
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.op + "_" + std::to_string(info.param.sample);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Ops, RegisteredOp, ::testing::ValuesIn(all_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Ops, RegisteredOpWithReference,
                         ::testing::ValuesIn(cases_with_reference()), case_name);

}  // namespace
}  // namespace tg
