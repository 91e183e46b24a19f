#pragma once
// Containers and shape modules with PyTorch's names: ModuleList, ModuleDict, Identity, Flatten,
// Unflatten. (Sequential and ModuleHolder are in nn/module.h.)
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace tg::nn {

// Returns its input, the tensor itself.
class Identity : public Module {
 public:
  Tensor forward(const Tensor& input) override { return input; }
  std::string describe() const override { return "Identity()"; }
};

// Merges dimensions start_dim..end_dim (inclusive, negative from the end) into one, by reshape;
// PyTorch's defaults keep the batch dimension: [N, C, H, W] becomes [N, C·H·W].
class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;

 private:
  std::int64_t start_dim_;
  std::int64_t end_dim_;
};

// Splits dimension `dim` into `sizes`, one of which may be −1 (inferred), by reshape.
class Unflatten : public Module {
 public:
  Unflatten(std::int64_t dim, std::vector<std::int64_t> sizes);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;

 private:
  std::int64_t dim_;
  std::vector<std::int64_t> sizes_;
};

// Submodules in a list, named "0", "1", ...: registered, so their parameters are the list's, but
// with no forward of its own (calling it is an error, as in PyTorch). Indexed as Sequential.
class ModuleList : public ModuleSequence<ModuleList> {
 public:
  using ModuleSequence::ModuleSequence;
  Tensor forward(const Tensor& input) override;
  std::string describe() const override { return "ModuleList"; }
};

// Named submodules in insertion order. Inserting an existing name replaces that module in its
// place, as assigning to a PyTorch ModuleDict key does.
class ModuleDict : public Module {
 public:
  ModuleDict() = default;
  ModuleDict(std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> modules);
  ModuleDict& insert(const std::string& name, std::shared_ptr<Module> module);
  template <class M>
  ModuleDict& insert(const std::string& name, const ModuleHolder<M>& module) {
    return insert(name, as_module(module));
  }
  std::size_t size() const { return children().size(); }
  bool contains(const std::string& name) const;
  std::vector<std::string> keys() const;
  // The module named `name`; an unknown name is an error listing the keys.
  std::shared_ptr<Module> operator[](const std::string& name) const;
  template <class M>
  std::shared_ptr<M> at(const std::string& name) const {
    return detail::module_as<M>((*this)[name], "ModuleDict");
  }
  Tensor forward(const Tensor& input) override;
  std::string describe() const override { return "ModuleDict"; }
};

}  // namespace tg::nn
