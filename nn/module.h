#pragma once
// Modules with the names PyTorch users know: named parameters and submodules, train/eval, and
// the usual layers. Parameters are tensor handles: an optimizer holding them updates the module.
#include <concepts>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "autograd/factories.h"

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

template <class M>
class ModuleHolder;

namespace detail {
// A class's name without its namespace, demangled: "Linear" for tg::nn::Linear.
std::string class_name(const std::type_info& type);
[[noreturn]] void fail_empty_holder(const std::type_info& type);
}  // namespace detail

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }

  // This module's parameters, then its submodules', in registration order; names are dotted
  // paths ("0.weight", "encoder.bias"). A tensor held by two slots (tied weights:
  // lm_head->weight = wte->weight) is one parameter, listed once under its first name, as
  // PyTorch's remove_duplicate; tensors are the same when their handles share the impl.
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  // Buffers likewise: state that is saved and converted with the parameters but not trained.
  std::vector<Tensor> buffers() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  // PyTorch's state_dict names and order: each module's parameters, then its buffers, then its
  // submodules'; a tied tensor under each of its names. What save() writes and load() reads
  // (load copies into the storage, so tied slots stay one tensor).
  std::vector<std::pair<std::string, Tensor>> state_dict() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

  // As nn::zero_grad over parameters().
  void zero_grad(bool set_to_none = true);
  // Sets training mode here and in every submodule (Dropout acts only in training).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Converts every floating parameter and buffer of the tree to `dtype` (a floating one), as
  // PyTorch's module.to(dtype); int64 buffers stay. Unlike PyTorch, the converted tensors are new
  // leaves (without gradients) in the same slots: parameters() taken before, and so an optimizer
  // built before, still hold the old ones. Converting to the current dtype changes nothing. Tied
  // slots get one converted tensor.
  Module& to(DType dtype);

  // One line, e.g. "Linear(in_features=64, out_features=10, bias=true)"; by default the class
  // name without its namespace.
  virtual std::string describe() const;

 protected:
  // Makes `slot` (a member of the module) a parameter holding `value`, a leaf that requires
  // grad. The module refers to the slot, so functional_call can substitute other tensors.
  // Names (here and below) are non-empty, without '.', and unique within the module.
  void register_parameter(std::string name, Tensor& slot, Tensor value);
  // Makes `slot` a buffer holding `value`: in named_buffers() and state_dict(), converted by to()
  // and filled by load(), but not a parameter, so no optimizer sees it. A slot rather than
  // libtorch's returned reference because to() puts a new tensor there.
  void register_buffer(std::string name, Tensor& slot, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_module(std::move(name), module);
    return module;
  }
  template <class M>
  ModuleHolder<M> register_module(std::string name, ModuleHolder<M> module) {
    add_module(std::move(name), module.ptr());
    return module;
  }
  // Puts `module` in place of the submodule `name`, which must exist (ModuleDict's assignment).
  void replace_module(const std::string& name, std::shared_ptr<Module> module);

 private:
  enum class Slots { parameters, buffers, state };
  // Dotted names and slots of this module and its submodules, in the order of
  // named_parameters(), named_buffers() or state_dict().
  std::vector<std::pair<std::string, Tensor*>> named_slots(Slots which) const;
  std::vector<Tensor*> parameter_slots() const;
  void check_new_name(const std::string& name, const char* what) const;
  void add_module(std::string name, std::shared_ptr<Module> module);
  friend Tensor functional_call(Module& module, const std::vector<Tensor>& parameters,
                                const Tensor& input);

  std::vector<std::pair<std::string, Tensor*>> parameters_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// The module's forward with `parameters` (in named_parameters() order, a tied parameter once and
// put in each of its slots) in place of its own, as torch.func.functional_call: gradients then flow
// to those tensors, which is how modules are gradchecked with respect to their parameters.
Tensor functional_call(Module& module, const std::vector<Tensor>& parameters, const Tensor& input);

// Prints the module tree as PyTorch does.
std::ostream& operator<<(std::ostream& out, const Module& module);

namespace detail {
[[noreturn]] void fail_module_type(const Module& module, const std::type_info& wanted,
                                   const std::string& container);
// The submodule at a position of `container` (negative from the end), or an error.
std::shared_ptr<Module> module_at(const Module& container, std::int64_t index);
// `module` as an M, or an error naming the container, the module and M.
template <class M>
std::shared_ptr<M> module_as(const std::shared_ptr<Module>& module, const std::string& container) {
  std::shared_ptr<M> typed = std::dynamic_pointer_cast<M>(module);
  if (!typed) fail_module_type(*module, typeid(M), container);
  return typed;
}
}  // namespace detail

// A shared handle to a module in libtorch's ModuleHolder role: copies share the module,
// `model(x)` calls its forward and `model->parameters()` reaches it. ModuleHolder<Linear> fc(4, 8)
// constructs the module in place, ModuleHolder<Linear> fc(nullptr) is empty until assigned.
// TG_MODULE(Net) names the holder of a NetImpl, as TORCH_MODULE does. The layers keep their
// names as modules (Linear, not LinearImpl), so code holding them by value or in a shared_ptr
// is unchanged; a port of libtorch code spells its built-in holders ModuleHolder<Linear>.
template <class M>
class ModuleHolder {
 public:
  ModuleHolder() requires std::default_initializable<M> : module_(std::make_shared<M>()) {}
  ModuleHolder(std::nullptr_t) {}
  ModuleHolder(std::shared_ptr<M> module) : module_(std::move(module)) {}
  template <class... Args>
  requires(sizeof...(Args) > 0 &&
           std::constructible_from<M, Args...>) explicit ModuleHolder(Args&&... args)
      : module_(std::make_shared<M>(std::forward<Args>(args)...)) {}

  M* operator->() const { return &**this; }
  M& operator*() const {
    if (!module_) detail::fail_empty_holder(typeid(M));
    return *module_;
  }
  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    return (**this).forward(std::forward<Args>(args)...);
  }
  const std::shared_ptr<M>& ptr() const { return module_; }
  bool is_empty() const { return module_ == nullptr; }
  explicit operator bool() const { return module_ != nullptr; }

 private:
  std::shared_ptr<M> module_;
};

// Anything Sequential, ModuleList and ModuleDict take as a module: a shared_ptr or a holder.
template <class M>
std::shared_ptr<Module> as_module(std::shared_ptr<M> module) {
  return module;
}
template <class M>
std::shared_ptr<Module> as_module(const ModuleHolder<M>& module) {
  return module.ptr();
}
template <class T>
concept ModuleHandle = requires(const T& t) {
  as_module(t);
};

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

// Rows of a [num_embeddings, dim] table for int64 indices of any shape (tg::embedding);
// N(0, 1) initialisation. With padding_idx (negative counts from the end, as PyTorch's) that row
// starts at zeros and gets no gradient.
class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t dim,
            Generator& generator = default_generator(), DType dtype = f32,
            std::optional<std::int64_t> padding_idx = std::nullopt);
  Tensor forward(const Tensor& indices) override;
  std::string describe() const override;
  std::optional<std::int64_t> padding_idx() const { return padding_idx_; }
  Tensor weight;

 private:
  std::optional<std::int64_t> padding_idx_;  // in [0, num_embeddings)
};

// tg::layer_norm over the last normalized_shape.size() dimensions: (x − mean) / √(var + eps) · γ
// + β, the biased variance, as PyTorch. elementwise_affine adds γ (ones) and, unless bias is false
// (PyTorch 2's flag, nanoGPT's LayerNorm without bias), β (zeros), both of normalized_shape.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(std::int64_t features, double eps = 1e-5, bool elementwise_affine = true,
                     DType dtype = f32);
  explicit LayerNorm(std::vector<std::int64_t> normalized_shape, double eps = 1e-5,
                     bool elementwise_affine = true, bool bias = true, DType dtype = f32);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;
  Tensor weight;
  Tensor bias;

 private:
  std::vector<std::int64_t> normalized_shape_;
  double eps_;
  bool elementwise_affine_;
};

// F.dropout in training: zeroes each element with probability p (0 <= p < 1) and scales the rest
// by 1/(1 − p), drawing from `generator`; p = 0 returns x itself.
Tensor dropout(const Tensor& x, double p, Generator& generator);

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

// Submodules named by their position, "0", "1", ...: what Sequential and ModuleList share. Self
// is the container, which push_back returns for chaining.
template <class Self>
class ModuleSequence : public Module {
 public:
  ModuleSequence() = default;
  // The modules in one expression, shared_ptrs or holders:
  // Sequential(ModuleHolder<Linear>(4, 8), ModuleHolder<ReLU>(), ModuleHolder<Linear>(8, 2)).
  template <ModuleHandle... Modules>
  requires(sizeof...(Modules) > 0) explicit ModuleSequence(const Modules&... modules) {
    (push_back(as_module(modules)), ...);
  }
  Self& push_back(std::shared_ptr<Module> module) {
    register_module(std::to_string(size()), std::move(module));
    return static_cast<Self&>(*this);
  }
  template <class M>
  Self& push_back(const ModuleHolder<M>& module) {
    return push_back(as_module(module));
  }
  std::size_t size() const { return children().size(); }
  bool empty() const { return children().empty(); }
  // The module at `index`; out of range is an error (negative counts from the end, as Python's).
  std::shared_ptr<Module> operator[](std::int64_t index) const {
    return detail::module_at(*this, index);
  }
  // The same as an M: an error if it is not one.
  template <class M>
  std::shared_ptr<M> at(std::int64_t index) const {
    return detail::module_as<M>((*this)[index], describe());
  }
};

class Sequential : public ModuleSequence<Sequential> {
 public:
  using ModuleSequence::ModuleSequence;
  Tensor forward(const Tensor& input) override;
  std::string describe() const override { return "Sequential"; }
};

// Linear layers of the given sizes with an activation between them (none after the last):
// MLP({64, 256, 10}) is Linear(64, 256), ReLU, Linear(256, 10).
std::shared_ptr<Sequential> MLP(const std::vector<std::int64_t>& sizes,
                                Activation activation = Activation::relu,
                                Generator& generator = default_generator(), DType dtype = f32);

}  // namespace tg::nn

// libtorch's TORCH_MODULE: TG_MODULE(Net) declares Net, the ModuleHolder of NetImpl.
#define TG_MODULE(Name)                                     \
  class Name : public ::tg::nn::ModuleHolder<Name##Impl> {  \
   public:                                                  \
    using ::tg::nn::ModuleHolder<Name##Impl>::ModuleHolder; \
  }
