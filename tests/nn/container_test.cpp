// Containers, shape modules and holders: Sequential in one expression, ModuleHolder and
// TG_MODULE in libtorch's roles, ModuleList, ModuleDict, Identity, Flatten, Unflatten, and the
// default describe().
#include <gtest/gtest.h>

#include <sstream>

#include "module_gradcheck.h"
#include "tapegrad.h"

namespace tg::nn {
namespace {

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : named) names.push_back(name);
  return names;
}

TEST(Sequential, BuiltFromModulesInOneExpression) {
  Generator gen(3);
  ModuleHolder<Linear> first(4, 8, true, gen, f64);
  const auto last = std::make_shared<Linear>(8, 2, true, gen, f64);
  Sequential model(first, ModuleHolder<ReLU>(), last);
  ASSERT_EQ(model.size(), 3u);
  EXPECT_EQ(names_of(model.named_parameters()),
            std::vector<std::string>({"0.weight", "0.bias", "2.weight", "2.bias"}));
  const Tensor x = randn({5, 4}, gen, f64);
  EXPECT_EQ(model(x).to_vector(), last->forward(relu(first(x))).to_vector());
  // Indexed as libtorch's: seq[i], and seq->ptr<T>(i) as at<T>(i).
  EXPECT_EQ(model[0], first.ptr());
  EXPECT_EQ(model.at<Linear>(-1), last);
  EXPECT_EQ(error_of([&] { model.at<Linear>(1); }),
            "Sequential: the module is ReLU(), not a Linear");
  EXPECT_EQ(error_of([&] { model[-4]; }),
            "Sequential: index -4 is out of range for a list of 3 modules");
  // As a holder itself, the way libtorch's Sequential is used.
  ModuleHolder<Sequential> held(ModuleHolder<Linear>(4, 3, true, gen, f64), ModuleHolder<Tanh>());
  EXPECT_EQ(held(x).shape(), Shape({5, 3}));
  EXPECT_EQ(held->parameters().size(), 2u);
}

TEST(ModuleHolder, CallsForwardAndSharesTheModule) {
  Generator gen(4);
  ModuleHolder<Linear> fc(3, 2, true, gen, f64);
  const Tensor x = tensor({{1.0, -2.0, 0.5}}, f64);
  EXPECT_EQ(fc(x).to_vector(), linear(x, fc->weight, fc->bias).to_vector());
  EXPECT_EQ(fc->parameters().size(), 2u);
  const ModuleHolder<Linear> copy = fc;
  EXPECT_EQ(copy->weight.impl(), fc->weight.impl());
  EXPECT_EQ(copy.ptr(), fc.ptr());
  EXPECT_EQ((*fc).describe(), "Linear(in_features=3, out_features=2, bias=True)");

  ModuleHolder<Linear> empty(nullptr);
  EXPECT_TRUE(empty.is_empty());
  EXPECT_FALSE(empty);
  EXPECT_EQ(error_of([&] { empty(x); }),
            "ModuleHolder<Linear>: the holder is empty (made from nullptr and not assigned a "
            "module)");
  empty = fc;
  EXPECT_EQ(empty(x).to_vector(), fc(x).to_vector());
}

// A libtorch module ported line by line: NetImpl holds holders, TG_MODULE(Net) names its holder.
struct NetImpl : Module {
  explicit NetImpl(Generator& gen)
      : fc1(register_module("fc1", ModuleHolder<Linear>(4, 8, true, gen, f64))),
        fc2(register_module("fc2", ModuleHolder<Linear>(8, 2, true, gen, f64))) {}
  Tensor forward(const Tensor& x) override { return fc2(relu(fc1(x))); }
  ModuleHolder<Linear> fc1{nullptr};
  ModuleHolder<Linear> fc2{nullptr};
};
TG_MODULE(Net);

TEST(ModuleHolder, TgModuleNamesTheHolderOfAnImpl) {
  Generator gen(5);
  Net net(gen);
  const Tensor x = randn({3, 4}, gen, f64);
  EXPECT_EQ(net(x).to_vector(), net->fc2(relu(net->fc1(x))).to_vector());
  EXPECT_EQ(names_of(net->named_parameters()),
            std::vector<std::string>({"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_TRUE(module_gradcheck(*net, x));
  // No describe() written: the class name, and the tree prints.
  std::ostringstream printed;
  printed << *net;
  EXPECT_EQ(printed.str(),
            "NetImpl(\n"
            "  (fc1): Linear(in_features=4, out_features=8, bias=True)\n"
            "  (fc2): Linear(in_features=8, out_features=2, bias=True)\n"
            ")");
  SGD sgd(net->parameters(), {.lr = 0.1});
  EXPECT_EQ(sgd.parameters().size(), 4u);
}

struct Plain : Module {
  Tensor forward(const Tensor& x) override { return x; }
};

TEST(Module, DescribeDefaultsToTheClassName) {
  EXPECT_EQ(Plain().describe(), "Plain");
  EXPECT_EQ(Identity().describe(), "Identity()");
  EXPECT_EQ(detail::class_name(typeid(ModuleHolder<Linear>)), "ModuleHolder<tg::nn::Linear>");
}

struct Registering : Module {
  Tensor forward(const Tensor& x) override { return x; }
  void add(const std::string& name) { register_parameter(name, slot, zeros({1})); }
  void add_buffer(const std::string& name) { register_buffer(name, slot, zeros({1})); }
  void add_module(const std::string& name) { register_module(name, std::make_shared<Plain>()); }
  Tensor slot;
};

TEST(Module, RegisteredNamesAreNonEmptyUndottedAndUnique) {
  Registering m;
  m.add("w");
  EXPECT_EQ(error_of([&] { m.add_buffer("w"); }),
            "Registering: cannot register buffer 'w': the module already has a parameter, buffer "
            "or submodule of that name");
  EXPECT_EQ(error_of([&] { m.add_module("w"); }),
            "Registering: cannot register submodule 'w': the module already has a parameter, "
            "buffer or submodule of that name");
  EXPECT_EQ(error_of([&] { m.add("a.b"); }),
            "Registering: parameter name 'a.b' is empty or contains '.' (dots separate "
            "submodules)");
  EXPECT_EQ(error_of([&] { m.add(""); }),
            "Registering: parameter name '' is empty or contains '.' (dots separate submodules)");
}

TEST(Identity, ReturnsItsInputItself) {
  const Tensor x = tensor({1.0, 2.0}, f64).requires_grad(true);
  Identity identity;
  EXPECT_EQ(identity(x).impl(), x.impl());
  EXPECT_TRUE(identity.parameters().empty());
}

TEST(Flatten, MergesDimensionsAsTorchFlatten) {
  Generator gen(6);
  const Tensor x = randn({2, 3, 4, 5}, gen, f64);
  EXPECT_EQ(Flatten()(x).shape(), Shape({2, 60}));
  EXPECT_EQ(Flatten(0, -1)(x).shape(), Shape({120}));
  EXPECT_EQ(Flatten(1, 2)(x).shape(), Shape({2, 12, 5}));
  EXPECT_EQ(Flatten(-3, -2)(x).shape(), Shape({2, 12, 5}));
  EXPECT_EQ(Flatten(2, 2)(x).shape(), Shape({2, 3, 4, 5}));
  EXPECT_EQ(Flatten()(x).to_vector(), x.to_vector());  // row-major order is kept
  EXPECT_EQ(Flatten(0)(tensor({7.0})).shape(), Shape({1}));
  EXPECT_EQ(Flatten(0)(full({}, 7.0)).shape(), Shape({1}));  // torch.flatten: a scalar is [1]
  Flatten flatten;
  EXPECT_TRUE(module_gradcheck(flatten, x));
  EXPECT_EQ(flatten.describe(), "Flatten(start_dim=1, end_dim=-1)");
  EXPECT_EQ(error_of([] { Flatten()(zeros({5})); }),
            "Flatten: start_dim = 1 is out of range for an input of shape [5] (expected -1 to 0)");
  EXPECT_EQ(error_of([&] { Flatten(2, 1)(x); }),
            "Flatten: start_dim = 2 comes after end_dim = 1 for an input of shape [2, 3, 4, 5]");
  EXPECT_EQ(error_of([&] { Flatten(0, 4)(x); }),
            "Flatten: end_dim = 4 is out of range for an input of shape [2, 3, 4, 5] (expected "
            "-4 to 3)");
}

TEST(Unflatten, SplitsADimensionWithOneInferredSize) {
  Generator gen(7);
  const Tensor x = randn({2, 12}, gen, f64);
  EXPECT_EQ(Unflatten(1, {3, 4})(x).shape(), Shape({2, 3, 4}));
  EXPECT_EQ(Unflatten(-1, {-1, 4})(x).shape(), Shape({2, 3, 4}));
  EXPECT_EQ(Unflatten(0, {1, 2})(x).shape(), Shape({1, 2, 12}));
  EXPECT_EQ(Unflatten(1, {2, 3, 2})(x).to_vector(), x.to_vector());
  Unflatten unflatten(1, {3, -1});
  EXPECT_TRUE(module_gradcheck(unflatten, x));
  EXPECT_EQ(unflatten.describe(), "Unflatten(dim=1, unflattened_size=(3, -1))");
  EXPECT_EQ(Unflatten(1, {12}).describe(), "Unflatten(dim=1, unflattened_size=(12,))");
  // Flatten then Unflatten is the identity.
  EXPECT_EQ(Unflatten(1, {3, 4})(Flatten()(reshape(x, Shape{2, 3, 4}))).shape(), Shape({2, 3, 4}));
  EXPECT_EQ(error_of([&] {
              Unflatten(1, {5, -1})(x);
            }),
            "Unflatten: unflattened_size (5, -1) does not split dimension 1 of size 12 (input "
            "[2, 12])");
  EXPECT_EQ(error_of([&] {
              Unflatten(1, {3, 5})(x);
            }),
            "Unflatten: unflattened_size (3, 5) does not split dimension 1 of size 12 (input "
            "[2, 12])");
  EXPECT_EQ(error_of([] {
              Unflatten(1, {-1, -1});
            }),
            "Unflatten: unflattened_size (-1, -1) may hold one -1 and otherwise sizes ≥ 0");
  EXPECT_EQ(error_of([&] {
              Unflatten(2, {3, 4})(x);
            }),
            "Unflatten: dim = 2 is out of range for an input of shape [2, 12] (expected -2 to 1)");
}

TEST(ModuleList, RegistersItsModulesAndIndexesThem) {
  Generator gen(8);
  ModuleList list(std::make_shared<Linear>(2, 3, true, gen), ModuleHolder<ReLU>());
  list.push_back(ModuleHolder<Linear>(3, 1, true, gen));
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(names_of(list.named_parameters()),
            std::vector<std::string>({"0.weight", "0.bias", "2.weight", "2.bias"}));
  EXPECT_EQ(list.at<Linear>(2)->weight.shape(), Shape({1, 3}));
  EXPECT_EQ(list[-1], list[2]);
  EXPECT_EQ(list[1]->describe(), "ReLU()");
  Tensor x = ones({4, 2});
  for (const auto& [name, module] : list.children()) x = module->forward(x);
  EXPECT_EQ(x.shape(), Shape({4, 1}));
  EXPECT_EQ(error_of([&] { list[3]; }),
            "ModuleList: index 3 is out of range for a list of 3 modules");
  EXPECT_EQ(error_of([&] { list.at<Linear>(1); }),
            "ModuleList: the module is ReLU(), not a Linear");
  EXPECT_EQ(error_of([&] { list(x); }), "ModuleList: has no forward; call the modules it holds");
  std::ostringstream printed;
  printed << list;
  EXPECT_EQ(printed.str(),
            "ModuleList(\n"
            "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
            "  (1): ReLU()\n"
            "  (2): Linear(in_features=3, out_features=1, bias=True)\n"
            ")");
}

TEST(ModuleDict, KeepsInsertionOrderAndReplacesInPlace) {
  Generator gen(9);
  ModuleDict dict(
      {{"encoder", std::make_shared<Linear>(4, 2, true, gen)}, {"act", std::make_shared<Tanh>()}});
  dict.insert("decoder", ModuleHolder<Linear>(2, 4, true, gen));
  EXPECT_EQ(dict.keys(), std::vector<std::string>({"encoder", "act", "decoder"}));
  EXPECT_TRUE(dict.contains("act"));
  EXPECT_FALSE(dict.contains("missing"));
  const auto replacement = std::make_shared<Linear>(4, 3, false, gen);
  dict.insert("encoder", replacement);
  EXPECT_EQ(dict.keys(), std::vector<std::string>({"encoder", "act", "decoder"}));
  EXPECT_EQ(dict.at<Linear>("encoder"), replacement);
  EXPECT_EQ(names_of(dict.named_parameters()),
            std::vector<std::string>({"encoder.weight", "decoder.weight", "decoder.bias"}));
  EXPECT_EQ(error_of([&] { dict["missing"]; }),
            "ModuleDict: no module named 'missing' (keys: encoder, act, decoder)");
  EXPECT_EQ(error_of([&] { dict.at<Linear>("act"); }),
            "ModuleDict: the module is Tanh(), not a Linear");
  EXPECT_EQ(error_of([&] { dict.insert("a.b", std::make_shared<Tanh>()); }),
            "ModuleDict: submodule name 'a.b' is empty or contains '.' (dots separate "
            "submodules)");
  EXPECT_EQ(error_of([&] { dict.insert("act", nullptr); }), "ModuleDict: submodule 'act' is null");
}

}  // namespace
}  // namespace tg::nn
