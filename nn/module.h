#pragma once
// Modules with the names PyTorch users know: named parameters and submodules, train/eval, and
// the usual layers. Parameters are tensor handles: an optimizer holding them updates the module.
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace tg::nn {

// The generator layers initialise from when none is given: seeded, so runs repeat.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

// Clears gradients, as PyTorch's zero_grad. With set_to_none (the default, as in PyTorch 2) each
// grad() becomes undefined: the next backward allocates a fresh one, and an optimizer skips a
// parameter that then gets none. Otherwise each existing gradient is detached from any graph
// (create_graph) and filled with zeros in place, through the writing data<T>(), so its version
// bumps; an optimizer then steps that parameter with a zero gradient (momentum and Adam's moments
// decay, Adam counts the step), and a handle to the old gradient sees the zeros.
void zero_grad(const std::vector<Tensor>& parameters, bool set_to_none = true);

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }

  // This module's parameters, then its submodules', in registration order; names are dotted
  // paths ("0.weight", "encoder.bias").
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

  // As nn::zero_grad over parameters().
  void zero_grad(bool set_to_none = true);
  // Sets training mode here and in every submodule (Dropout acts only in training).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // One line, e.g. "Linear(in_features=64, out_features=10, bias=true)".
  virtual std::string describe() const = 0;

 protected:
  // Makes `slot` (a member of the module) a parameter holding `value`, a leaf that requires
  // grad. The module refers to the slot, so functional_call can substitute other tensors.
  void register_parameter(std::string name, Tensor& slot, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }

 private:
  // The parameter slots of this module and its submodules, in named_parameters() order.
  std::vector<Tensor*> parameter_slots();
  friend Tensor functional_call(Module& module, const std::vector<Tensor>& parameters,
                                const Tensor& input);

  std::vector<std::pair<std::string, Tensor*>> parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// The module's forward with `parameters` (in named_parameters() order) in place of its own, as
// torch.func.functional_call: gradients then flow to those tensors, which is how modules are
// gradchecked with respect to their parameters.
Tensor functional_call(Module& module, const std::vector<Tensor>& parameters, const Tensor& input);

// Prints the module tree as PyTorch does.
std::ostream& operator<<(std::ostream& out, const Module& module);

// y = x·Wᵀ + b with W [out, in] and b [out], initialised as PyTorch's Linear:
// U(−1/√in, 1/√in) for both.
class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true,
         Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  Tensor weight;
  Tensor bias;

 private:
  std::int64_t in_features_;
  std::int64_t out_features_;
};

// Rows of a [num_embeddings, dim] table for int64 indices of any shape; N(0, 1) initialisation.
class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t dim,
            Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& indices) override;
  std::string describe() const override;
  Tensor weight;
};

// Normalises over the last dimension: (x − mean) / √(var + eps) · γ + β, with the biased
// variance, as PyTorch.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(std::int64_t features, double eps = 1e-5, bool elementwise_affine = true,
                     DType dtype = f32);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  Tensor weight;
  Tensor bias;

 private:
  std::int64_t features_;
  double eps_;
};

// In training, zeroes each element with probability p and scales the rest by 1/(1 − p), from
// its own seeded generator; in evaluation, the identity.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, std::uint64_t seed = 0);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;

 private:
  double p_;
  Generator generator_;
};

// leaky_relu has PyTorch's default slope, 0.01.
enum class Activation { relu, tanh, sigmoid, gelu, leaky_relu, softplus };

class ActivationModule : public Module {
 public:
  explicit ActivationModule(Activation kind) : kind_(kind) {}
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;

 private:
  Activation kind_;
};

struct ReLU : ActivationModule {
  ReLU() : ActivationModule(Activation::relu) {}
};
struct Tanh : ActivationModule {
  Tanh() : ActivationModule(Activation::tanh) {}
};
struct Sigmoid : ActivationModule {
  Sigmoid() : ActivationModule(Activation::sigmoid) {}
};
// The exact GELU, x·Φ(x) = x/2 · (1 + erf(x/√2)), PyTorch's default.
struct GELU : ActivationModule {
  GELU() : ActivationModule(Activation::gelu) {}
};
struct LeakyReLU : ActivationModule {
  LeakyReLU() : ActivationModule(Activation::leaky_relu) {}
};
struct Softplus : ActivationModule {
  Softplus() : ActivationModule(Activation::softplus) {}
};

Tensor activate(const Tensor& x, Activation kind);

class Sequential : public Module {
 public:
  Sequential() = default;
  // Appends a module, named by its position ("0", "1", ...).
  Sequential& push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override { return "Sequential"; }
  std::size_t size() const { return children().size(); }
};

// Linear layers of the given sizes with an activation between them (none after the last):
// MLP({64, 256, 10}) is Linear(64, 256), ReLU, Linear(256, 10).
std::shared_ptr<Sequential> MLP(const std::vector<std::int64_t>& sizes,
                                Activation activation = Activation::relu,
                                Generator& generator = default_generator(), DType dtype = f32);

}  // namespace tg::nn
