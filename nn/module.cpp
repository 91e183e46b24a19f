#include "nn/module.h"

#include <cxxabi.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <ostream>
#include <set>

#include "nn/init.h"
#include "ops/language.h"
#include "ops/ops.h"

namespace tg::nn {

Generator& default_generator() {
  thread_local Generator generator(0);
  return generator;
}

void manual_seed(std::uint64_t seed) {
  default_generator() = Generator(seed);
}

namespace detail {

std::string class_name(const std::type_info& type) {
  int status = 0;
  const std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  std::string name = status == 0 ? demangled.get() : type.name();
  // The last "::" outside template arguments ends the namespace.
  const std::size_t scope = name.rfind("::", name.find('<'));
  return scope == std::string::npos ? name : name.substr(scope + 2);
}

void fail_empty_holder(const std::type_info& type) {
  fail("ModuleHolder<{}>: the holder is empty (made from nullptr and not assigned a module)",
       class_name(type));
}

void fail_module_type(const Module& module, const std::type_info& wanted,
                      const std::string& container) {
  fail("{}: the module is {}, not a {}", container, module.describe(), class_name(wanted));
}

std::shared_ptr<Module> module_at(const Module& container, std::int64_t index) {
  const auto n = std::int64_t(container.children().size());
  if (index < -n || index >= n) {
    fail("{}: index {} is out of range for a list of {} modules", container.describe(), index, n);
  }
  return container.children()[std::size_t(index < 0 ? index + n : index)].second;
}

}  // namespace detail

// ---- Module ----

std::string Module::describe() const {
  return detail::class_name(typeid(*this));
}

void Module::check_new_name(const std::string& name, const char* what) const {
  const auto named = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(),
                       [&](const auto& entry) { return entry.first == name; });
  };
  if (name.empty() || name.find('.') != std::string::npos) {
    fail("{}: {} name '{}' is empty or contains '.' (dots separate submodules)", describe(), what,
         name);
  }
  if (named(parameters_) || named(buffers_) || named(children_)) {
    fail(
        "{}: cannot register {} '{}': the module already has a parameter, buffer or submodule "
        "of that name",
        describe(), what, name);
  }
}

void Module::register_parameter(std::string name, Tensor& slot, Tensor value) {
  check_new_name(name, "parameter");
  value.requires_grad(true);
  slot = value;
  parameters_.emplace_back(std::move(name), &slot);
}

void Module::register_buffer(std::string name, Tensor& slot, Tensor value) {
  check_new_name(name, "buffer");
  if (!value.defined()) fail("{}: buffer '{}' is an undefined tensor", describe(), name);
  slot = value;
  buffers_.emplace_back(std::move(name), &slot);
}

void Module::add_module(std::string name, std::shared_ptr<Module> module) {
  check_new_name(name, "submodule");
  if (!module) fail("{}: submodule '{}' is null", describe(), name);
  children_.emplace_back(std::move(name), std::move(module));
}

void Module::replace_module(const std::string& name, std::shared_ptr<Module> module) {
  if (!module) fail("{}: submodule '{}' is null", describe(), name);
  const auto found = std::find_if(children_.begin(), children_.end(),
                                  [&](const auto& child) { return child.first == name; });
  if (found == children_.end()) fail("{}: there is no submodule '{}' to replace", describe(), name);
  found->second = std::move(module);
}

std::vector<std::pair<std::string, Tensor*>> Module::named_slots(Slots which) const {
  std::vector<std::pair<std::string, Tensor*>> named;
  if (which != Slots::buffers) named.insert(named.end(), parameters_.begin(), parameters_.end());
  if (which != Slots::parameters) named.insert(named.end(), buffers_.begin(), buffers_.end());
  for (const auto& [child_name, child] : children_) {
    for (auto& [name, slot] : child->named_slots(which)) {
      named.emplace_back(child_name + "." + name, slot);
    }
  }
  return named;
}

namespace {

std::vector<std::pair<std::string, Tensor>> values_of(
    const std::vector<std::pair<std::string, Tensor*>>& slots) {
  std::vector<std::pair<std::string, Tensor>> named;
  for (const auto& [name, slot] : slots) named.emplace_back(name, *slot);
  return named;
}

std::vector<Tensor> tensors_of(const std::vector<std::pair<std::string, Tensor*>>& slots) {
  std::vector<Tensor> flat;
  for (const auto& [name, slot] : slots) flat.push_back(*slot);
  return flat;
}

}  // namespace

namespace {

// The first slot of each distinct tensor: tied slots hold handles to one impl.
std::vector<std::pair<std::string, Tensor*>> first_of_each_tensor(
    const std::vector<std::pair<std::string, Tensor*>>& slots) {
  std::set<const tg::detail::TensorImpl*> seen;
  std::vector<std::pair<std::string, Tensor*>> distinct;
  for (const auto& entry : slots) {
    if (seen.insert(entry.second->impl().get()).second) distinct.push_back(entry);
  }
  return distinct;
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  return values_of(first_of_each_tensor(named_slots(Slots::parameters)));
}

std::vector<Tensor> Module::parameters() const {
  return tensors_of(first_of_each_tensor(named_slots(Slots::parameters)));
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  return values_of(named_slots(Slots::buffers));
}

std::vector<Tensor> Module::buffers() const {
  return tensors_of(named_slots(Slots::buffers));
}

std::vector<std::pair<std::string, Tensor>> Module::state_dict() const {
  return values_of(named_slots(Slots::state));
}

std::vector<Tensor*> Module::parameter_slots() const {
  std::vector<Tensor*> slots;
  for (const auto& [name, slot] : named_slots(Slots::parameters)) slots.push_back(slot);
  return slots;
}

Module& Module::to(DType dtype) {
  if (!is_floating(dtype)) {
    fail("Module::to: expected a floating dtype (float32 or float64), got {}", dtype_name(dtype));
  }
  // Tied slots must get the same converted tensor, or the tie breaks.
  std::map<const tg::detail::TensorImpl*, Tensor> converted;
  for (const auto& [name, slot] : named_slots(Slots::state)) {
    if (!is_floating(slot->dtype()) || slot->dtype() == dtype) continue;
    auto [it, fresh] = converted.try_emplace(slot->impl().get());
    if (fresh) {
      it->second = slot->detach().to(dtype);
      if (slot->requires_grad()) it->second.requires_grad(true);
    }
    *slot = it->second;
  }
  return *this;
}

Tensor functional_call(Module& module, const std::vector<Tensor>& parameters, const Tensor& input) {
  const std::vector<Tensor*> slots = module.parameter_slots();
  // Each slot's position among the distinct parameters (tied slots share one).
  std::map<const tg::detail::TensorImpl*, std::size_t> position;
  std::vector<std::size_t> index_of;
  for (Tensor* slot : slots) {
    index_of.push_back(position.try_emplace(slot->impl().get(), position.size()).first->second);
  }
  if (position.size() != parameters.size()) {
    fail("functional_call: the module has {} parameters, {} were given", position.size(),
         parameters.size());
  }
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const Tensor& given = parameters[index_of[i]];
    if (!(slots[i]->shape() == given.shape()) || slots[i]->dtype() != given.dtype()) {
      fail("functional_call: parameter {} is {} {}, the module's is {} {}", index_of[i],
           dtype_name(given.dtype()), given.shape().str(), dtype_name(slots[i]->dtype()),
           slots[i]->shape().str());
    }
  }
  std::vector<Tensor> own;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    own.push_back(*slots[i]);
    *slots[i] = parameters[index_of[i]];
  }
  struct Restore {
    const std::vector<Tensor*>& slots;
    std::vector<Tensor>& own;
    ~Restore() {
      for (std::size_t i = 0; i < slots.size(); ++i) *slots[i] = own[i];
    }
  } restore{slots, own};
  return module.forward(input);
}

void zero_grad(const std::vector<Tensor>& parameters, bool set_to_none) {
  for (Tensor p : parameters) {
    if (set_to_none) {
      p.zero_grad();
      continue;
    }
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (g.requires_grad()) {
      // PyTorch's grad.detach_(): the zeros must not flow back into the graph that made them.
      g = g.detach();
      p.impl()->grad = g;
    }
    dispatch_floating(g.dtype(), "zero_grad",
                      [&]<class T>() { std::fill_n(g.data<T>(), g.numel(), T(0)); });
  }
}

void Module::zero_grad(bool set_to_none) {
  nn::zero_grad(parameters(), set_to_none);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

namespace {

void print_tree(std::ostream& out, const Module& module, int indent) {
  out << module.describe();
  if (module.children().empty()) return;
  out << "(\n";
  for (const auto& [name, child] : module.children()) {
    out << std::string(std::size_t(indent + 2), ' ') << '(' << name << "): ";
    print_tree(out, *child, indent + 2);
    out << '\n';
  }
  out << std::string(std::size_t(indent), ' ') << ')';
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Module& module) {
  print_tree(out, module, 0);
  return out;
}

// ---- layers ----

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& generator,
               DType dtype)
    : in_features_(in_features), out_features_(out_features) {
  if (in_features <= 0 || out_features <= 0) {
    fail("Linear: expected positive sizes, got in_features = {}, out_features = {}", in_features,
         out_features);
  }
  // PyTorch's default: kaiming_uniform_ with a = √5, that is U(−1/√in, 1/√in), and the same
  // bound for the bias.
  Tensor w = empty({out_features, in_features}, dtype);
  init::kaiming_uniform_(w, generator, std::sqrt(5.0));
  register_parameter("weight", weight, w);
  if (bias) {
    const double bound = 1.0 / std::sqrt(double(in_features));
    Tensor b = empty({out_features}, dtype);
    init::uniform_(b, generator, -bound, bound);
    register_parameter("bias", this->bias, b);
  }
}

Tensor Linear::forward(const Tensor& input) {
  return linear(input, weight, bias);
}

std::string Linear::describe() const {
  return fmt::format("Linear(in_features={}, out_features={}, bias={})", in_features_,
                     out_features_, bias.defined() ? "True" : "False");
}

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t dim, Generator& generator,
                     DType dtype, std::optional<std::int64_t> padding_idx) {
  if (num_embeddings <= 0 || dim <= 0) {
    fail("Embedding: expected positive sizes, got num_embeddings = {}, dim = {}", num_embeddings,
         dim);
  }
  if (padding_idx) {
    if (*padding_idx < -num_embeddings || *padding_idx >= num_embeddings) {
      fail("Embedding({}, {}): padding_idx {} is outside [-{}, {})", num_embeddings, dim,
           *padding_idx, num_embeddings, num_embeddings);
    }
    padding_idx_ = *padding_idx < 0 ? *padding_idx + num_embeddings : *padding_idx;
  }
  Tensor table = empty({num_embeddings, dim}, dtype);
  init::normal_(table, generator);
  if (padding_idx_) {
    dispatch_floating(dtype, "Embedding", [&]<class T>() {
      std::fill_n(table.data<T>() + *padding_idx_ * dim, dim, T(0));
    });
  }
  register_parameter("weight", weight, table);
}

Tensor Embedding::forward(const Tensor& indices) {
  return embedding(indices, weight, padding_idx_);
}

std::string Embedding::describe() const {
  std::string out = fmt::format("Embedding({}, {}", weight.shape()[0], weight.shape()[1]);
  if (padding_idx_) out += fmt::format(", padding_idx={}", *padding_idx_);
  return out + ")";
}

LayerNorm::LayerNorm(std::int64_t features, double eps, bool elementwise_affine, DType dtype)
    : LayerNorm(std::vector<std::int64_t>{features}, eps, elementwise_affine, true, dtype) {}

LayerNorm::LayerNorm(std::vector<std::int64_t> normalized_shape, double eps,
                     bool elementwise_affine, bool bias, DType dtype)
    : normalized_shape_(std::move(normalized_shape)),
      eps_(eps),
      elementwise_affine_(elementwise_affine) {
  if (normalized_shape_.empty() || std::any_of(normalized_shape_.begin(), normalized_shape_.end(),
                                               [](std::int64_t d) { return d <= 0; })) {
    fail("LayerNorm: expected a non-empty normalized_shape of positive sizes, got [{}]",
         fmt::join(normalized_shape_, ", "));
  }
  if (elementwise_affine) {
    register_parameter("weight", weight, ones(Shape(normalized_shape_), dtype));
    if (bias) register_parameter("bias", this->bias, zeros(Shape(normalized_shape_), dtype));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  const auto k = std::int64_t(normalized_shape_.size());
  if (x.rank() < k ||
      !std::equal(normalized_shape_.begin(), normalized_shape_.end(), x.shape().dims().end() - k)) {
    fail("{}: expected an input of shape [..., {}], got {}", describe(),
         fmt::join(normalized_shape_, ", "), x.shape().str());
  }
  return layer_norm(x, normalized_shape_, weight, bias, eps_);
}

std::string LayerNorm::describe() const {
  // Python's repr of a tuple: "(4,)" for one size, "(2, 3)" for more.
  const std::string shape = normalized_shape_.size() == 1
                                ? fmt::format("({},)", normalized_shape_[0])
                                : fmt::format("({})", fmt::join(normalized_shape_, ", "));
  return fmt::format("LayerNorm({}, eps={:g}, elementwise_affine={})", shape, eps_,
                     elementwise_affine_ ? "True" : "False");
}

Tensor dropout(const Tensor& x, double p, Generator& generator) {
  if (p == 0.0) return x;
  std::vector<double> keep(std::size_t(x.numel()));
  for (double& k : keep) k = generator.uniform() < p ? 0.0 : 1.0 / (1.0 - p);
  return x * from_vector(keep, x.shape(), x.dtype());
}

Dropout::Dropout(double p, std::uint64_t seed) : p_(p), generator_(seed) {
  if (!(p >= 0.0 && p < 1.0)) fail("Dropout: expected 0 <= p < 1, got {}", p);
}

Tensor Dropout::forward(const Tensor& input) {
  return is_training() ? dropout(input, p_, generator_) : input;
}

std::string Dropout::describe() const {
  return fmt::format("Dropout(p={:g}, inplace=False)", p_);
}

Tensor activate(const Tensor& x, Activation kind) {
  switch (kind) {
    case Activation::relu:
      return relu(x);
    case Activation::tanh:
      return tanh(x);
    case Activation::sigmoid:
      return sigmoid(x);
    case Activation::gelu:
      return x * (erf(x * M_SQRT1_2) + 1.0) * 0.5;
    case Activation::leaky_relu:
      return leaky_relu(x, 0.01);
    case Activation::softplus:
      return softplus(x);
  }
  return x;
}

Tensor ActivationModule::forward(const Tensor& input) {
  return activate(input, kind_);
}

std::string ActivationModule::describe() const {
  switch (kind_) {
    case Activation::relu:
      return "ReLU()";
    case Activation::tanh:
      return "Tanh()";
    case Activation::sigmoid:
      return "Sigmoid()";
    case Activation::gelu:
      return "GELU()";
    case Activation::leaky_relu:
      return "LeakyReLU(negative_slope=0.01)";
    case Activation::softplus:
      return "Softplus()";
  }
  return "?";
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& [name, child] : children()) x = child->forward(x);
  return x;
}

std::shared_ptr<Sequential> MLP(const std::vector<std::int64_t>& sizes, Activation activation,
                                Generator& generator, DType dtype) {
  if (sizes.size() < 2)
    fail("MLP: expected at least two sizes (input and output), got {}", sizes.size());
  auto model = std::make_shared<Sequential>();
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    model->push_back(std::make_shared<Linear>(sizes[i], sizes[i + 1], true, generator, dtype));
    if (i + 2 < sizes.size()) model->push_back(std::make_shared<ActivationModule>(activation));
  }
  return model;
}

}  // namespace tg::nn
