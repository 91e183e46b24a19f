#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "module_gradcheck.h"
#include "tapegrad.h"
#include "tools/gtest.h"

namespace tg::nn {
namespace {

TEST(Modules, OutputShapesAndParameterNames) {
  Generator gen(0);
  Linear linear(4, 3, true, gen);
  EXPECT_EQ(linear(ones({5, 4})).shape(), Shape({5, 3}));
  EXPECT_EQ(linear(ones({2, 5, 4})).shape(), Shape({2, 5, 3}));
  Embedding embedding(10, 6, gen);
  EXPECT_EQ(embedding(int64_tensor({1, 2, 3, 4, 5, 6}, {2, 3})).shape(), Shape({2, 3, 6}));
  LayerNorm norm(6);
  EXPECT_EQ(norm(ones({2, 6})).shape(), Shape({2, 6}));
  auto mlp = MLP({4, 8, 8, 2}, Activation::tanh, gen);
  EXPECT_EQ((*mlp)(ones({3, 4})).shape(), Shape({3, 2}));
  std::vector<std::string> names;
  for (auto& [name, p] : mlp->named_parameters()) names.push_back(name);
  EXPECT_EQ(names, std::vector<std::string>(
                       {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}));
  EXPECT_EQ(mlp->parameters().size(), 6u);
  for (const Tensor& p : mlp->parameters()) EXPECT_TRUE(p.requires_grad());
  std::ostringstream printed;
  printed << *mlp;
  EXPECT_EQ(printed.str(),
            "Sequential(\n"
            "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
            "  (1): Tanh()\n"
            "  (2): Linear(in_features=8, out_features=8, bias=True)\n"
            "  (3): Tanh()\n"
            "  (4): Linear(in_features=8, out_features=2, bias=True)\n"
            ")");
  EXPECT_THROW(norm(ones({2, 5})), Error);
  EXPECT_THROW(MLP({4}), Error);
}

TEST(Modules, LinearInitialisationIsPyTorchsDefault) {
  Generator gen(1);
  Linear linear(100, 50, true, gen);
  const double bound = 1.0 / std::sqrt(100.0);
  for (double w : linear.weight.to_vector()) EXPECT_LE(std::abs(w), bound);
  for (double b : linear.bias.to_vector()) EXPECT_LE(std::abs(b), bound);
  double square = 0;
  for (double w : linear.weight.to_vector()) square += w * w / 5000.0;
  EXPECT_NEAR(std::sqrt(square), bound / std::sqrt(3.0), 0.01 * bound);  // U(−b, b) has σ = b/√3
}

TEST(Modules, LayerNormNormalisesTheLastDimension) {
  LayerNorm norm(4, 1e-5, true, f64);
  const Tensor y = norm(tensor({{1, 2, 3, 4}, {-1, 0, 0, 5}}, f64));
  for (std::int64_t r = 0; r < 2; ++r) {
    double mean = 0, square = 0;
    for (std::int64_t c = 0; c < 4; ++c) mean += y.at({r, c}) / 4;
    for (std::int64_t c = 0; c < 4; ++c)
      square += (y.at({r, c}) - mean) * (y.at({r, c}) - mean) / 4;
    EXPECT_NEAR(mean, 0.0, 1e-12);
    EXPECT_NEAR(square, 1.0, 1e-4);
  }
}

TEST(Modules, DropoutIsSeededAndOnlyActsInTraining) {
  Dropout a(0.5, 7), b(0.5, 7);
  const Tensor x = ones({1000});
  const Tensor ya = a(x), yb = b(x);
  EXPECT_EQ(ya.to_vector(), yb.to_vector());
  int kept = 0;
  for (double v : ya.to_vector()) {
    EXPECT_TRUE(v == 0.0 || v == 2.0);
    kept += v != 0.0;
  }
  EXPECT_NEAR(kept, 500, 60);
  a.eval();
  EXPECT_EQ(a(x).to_vector(), x.to_vector());
  EXPECT_THROW(Dropout(1.0), Error);
}

TEST(Modules, TrainAndEvalReachSubmodules) {
  auto model = std::make_shared<Sequential>();
  auto dropout = std::make_shared<Dropout>(0.5);
  model->push_back(std::make_shared<Linear>(2, 2)).push_back(dropout);
  model->eval();
  EXPECT_FALSE(dropout->is_training());
  model->train();
  EXPECT_TRUE(dropout->is_training());
}

TEST(Modules, ActivationsMatchTheirDefinitions) {
  const Tensor x = tensor({-1.5, 0.0, 2.0}, f64);
  const Tensor gelu = GELU()(x);
  for (std::int64_t i = 0; i < 3; ++i) {
    const double v = x.at({i});
    EXPECT_NEAR(gelu.at({i}), 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-15);
  }
  EXPECT_EQ(ReLU()(x).to_vector(), std::vector<double>({0, 0, 2}));
  EXPECT_NEAR(Sigmoid()(x).at({1}), 0.5, 1e-15);
  EXPECT_NEAR(Tanh()(x).at({2}), std::tanh(2.0), 1e-15);
  EXPECT_EQ(LeakyReLU()(x).to_vector(), std::vector<double>({0.01 * x.at({0}), 0, 2}));
  EXPECT_NEAR(Softplus()(x).at({2}), std::log1p(std::exp(2.0)), 1e-15);
  EXPECT_EQ(LeakyReLU().describe(), "LeakyReLU(negative_slope=0.01)");
}

TEST(Modules, PassGradcheckInFloat64WithRespectToInputsAndParameters) {
  Generator gen(2);
  const Tensor x = randn({3, 4}, gen, f64);
  Linear linear(4, 2, true, gen, f64);
  EXPECT_TRUE(module_gradcheck(linear, x));
  Linear no_bias(4, 2, false, gen, f64);
  EXPECT_TRUE(module_gradcheck(no_bias, x));
  Embedding embedding(5, 3, gen, f64);
  EXPECT_TRUE(module_gradcheck(embedding, int64_tensor({4, 0, 4, 2})));
  LayerNorm norm(4, 1e-5, true, f64);
  {
    NoGradGuard no_grad;
    norm.weight.detach().data<double>()[1] = 1.5;  // away from the identity
  }
  EXPECT_TRUE(module_gradcheck(norm, x));
  for (Activation a : {Activation::relu, Activation::tanh, Activation::sigmoid, Activation::gelu}) {
    ActivationModule activation(a);
    EXPECT_TRUE(module_gradcheck(activation, x * 2.0 + 0.05)) << activation.describe();
  }
  auto mlp = MLP({4, 5, 3}, Activation::gelu, gen, f64);
  EXPECT_TRUE(module_gradcheck(*mlp, x));
  Dropout dropout(0.3, 5);
  dropout.eval();
  EXPECT_TRUE(module_gradcheck(dropout, x));
}

TEST(Modules, FunctionalCallRestoresTheModulesOwnParameters) {
  Linear linear(2, 1, false);
  const Tensor own = linear.weight;
  const Tensor y = functional_call(linear, {tensor({{1.0, 2.0}})}, tensor({{3.0, 4.0}}));
  EXPECT_EQ(y.item(), 11.0);
  EXPECT_EQ(linear.weight.impl(), own.impl());
  EXPECT_THROW(functional_call(linear, {}, tensor({{3.0, 4.0}})), Error);
  EXPECT_THROW(functional_call(linear, {tensor({1.0, 2.0})}, tensor({{3.0, 4.0}})), Error);
}

// Normalises by a running mean it keeps as a buffer, with an int64 count: state that is saved,
// loaded and converted with the parameters but never trained.
struct RunningScale : Module {
  explicit RunningScale(std::int64_t features, DType dtype = f32) {
    register_parameter("scale", scale, ones({features}, dtype));
    register_buffer("running_mean", running_mean, full({features}, 0.5, dtype));
    register_buffer("count", count, int64_tensor({3}));
  }
  Tensor forward(const Tensor& x) override { return (x - running_mean) * scale; }
  Tensor scale;
  Tensor running_mean;
  Tensor count;
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : named) names.push_back(name);
  return names;
}

TEST(Buffers, AreListedWithDottedNamesButAreNotParameters) {
  Generator gen(10);
  Sequential model(std::make_shared<Linear>(3, 2, true, gen), std::make_shared<RunningScale>(2));
  EXPECT_EQ(names_of(model.named_parameters()),
            std::vector<std::string>({"0.weight", "0.bias", "1.scale"}));
  EXPECT_EQ(names_of(model.named_buffers()),
            std::vector<std::string>({"1.running_mean", "1.count"}));
  EXPECT_EQ(model.buffers().size(), 2u);
  EXPECT_EQ(model.buffers()[0].to_vector(), std::vector<double>({0.5, 0.5}));
  EXPECT_FALSE(model.buffers()[0].requires_grad());
  // PyTorch's state_dict order: a module's parameters, its buffers, then its submodules'.
  EXPECT_EQ(names_of(model.state_dict()), std::vector<std::string>({"0.weight", "0.bias", "1.scale",
                                                                    "1.running_mean", "1.count"}));
}

TEST(Buffers, AreNotTouchedByAnOptimizer) {
  RunningScale m(2, f64);
  const Tensor x = tensor({{1.0, 2.0}}, f64);
  Adam adam(m.parameters(), {.lr = 0.1, .weight_decay = 0.1});
  SGD sgd(m.parameters(), {.lr = 0.1, .momentum = 0.9});
  for (int step = 0; step < 3; ++step) {
    m.zero_grad();
    sum(m(x) * m(x)).backward();
    adam.step();
    sgd.step();
  }
  EXPECT_NE(m.scale.to_vector(), std::vector<double>({1.0, 1.0}));  // trained
  EXPECT_EQ(m.running_mean.to_vector(), std::vector<double>({0.5, 0.5}));
  EXPECT_FALSE(m.running_mean.grad().defined());
  EXPECT_EQ(m.count.to_vector(), std::vector<double>({3}));
}

TEST(ModuleTo, ConvertsParametersAndFloatingBuffersOfTheTree) {
  Generator gen(11);
  Sequential model(std::make_shared<Linear>(3, 2, true, gen), std::make_shared<RunningScale>(2));
  const std::vector<double> weight = model.parameters()[0].to_vector();
  EXPECT_EQ(&model.to(f64), &model);
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_EQ(p.dtype(), f64) << name;
    EXPECT_TRUE(p.requires_grad()) << name;
    EXPECT_TRUE(p.is_leaf()) << name;
  }
  EXPECT_EQ(model.named_buffers()[0].second.dtype(), f64);
  EXPECT_EQ(model.named_buffers()[1].second.dtype(), i64);  // integers stay, as in PyTorch
  EXPECT_EQ(model.parameters()[0].to_vector(), weight);     // float32 → float64 is exact
  // The module computes in float64 now: the submodules' members are the converted tensors.
  EXPECT_EQ(model(ones({1, 3}, f64)).dtype(), f64);
  // Back to float32 rounds; to the current dtype changes nothing, not even the handles.
  const Tensor before = model.parameters()[1];
  model.to(f64);
  EXPECT_EQ(model.parameters()[1].impl(), before.impl());
  model.to(f32);
  EXPECT_EQ(model.parameters()[0].dtype(), f32);
  EXPECT_THROW(model.to(i64), Error);
}

TEST(ModuleTo, LetsAFloat32ModelBeGradcheckedInFloat64) {
  Generator gen(12);
  auto mlp = MLP({4, 5, 3}, Activation::tanh, gen);  // float32
  Sequential model(mlp, std::make_shared<RunningScale>(3));
  const Tensor x = randn({2, 4}, gen, f64);
  // In float32 it cannot be: ops do not mix a float64 input with float32 parameters.
  EXPECT_THROW(module_gradcheck(model, x), Error);
  model.to(f64);
  EXPECT_TRUE(module_gradcheck(model, x));
}

}  // namespace
}  // namespace tg::nn
