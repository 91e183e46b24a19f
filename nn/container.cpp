#include "nn/container.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "ops/ops.h"

namespace tg::nn {
namespace {

// A possibly negative dimension of a tensor of rank `rank`, as PyTorch wraps it.
std::int64_t wrapped_dim(std::int64_t dim, std::int64_t rank, const char* module, const char* what,
                         const Shape& shape) {
  if (dim < -rank || dim >= rank) {
    fail("{}: {} = {} is out of range for an input of shape {} (expected {} to {})", module, what,
         dim, shape.str(), -rank, rank - 1);
  }
  return dim < 0 ? dim + rank : dim;
}

}  // namespace

Flatten::Flatten(std::int64_t start_dim, std::int64_t end_dim)
    : start_dim_(start_dim), end_dim_(end_dim) {}

Tensor Flatten::forward(const Tensor& input) {
  const Shape& shape = input.shape();
  // torch.flatten makes a scalar [1] whatever the dimensions; nn.Flatten's default start_dim = 1
  // is then out of range, but 0 and -1 are not.
  const std::int64_t rank = std::max(shape.rank(), 1);
  const std::int64_t start = wrapped_dim(start_dim_, rank, "Flatten", "start_dim", shape);
  const std::int64_t end = wrapped_dim(end_dim_, rank, "Flatten", "end_dim", shape);
  if (start > end) {
    fail("Flatten: start_dim = {} comes after end_dim = {} for an input of shape {}", start_dim_,
         end_dim_, shape.str());
  }
  if (shape.rank() == 0) return reshape(input, Shape{1});
  Shape out;
  std::int64_t merged = 1;
  for (int axis = 0; axis < shape.rank(); ++axis) {
    if (axis < start || axis > end) {
      out.push_back(shape[axis], "Flatten");
      continue;
    }
    merged *= shape[axis];
    if (axis == end) out.push_back(merged, "Flatten");
  }
  return reshape(input, out);
}

std::string Flatten::describe() const {
  return fmt::format("Flatten(start_dim={}, end_dim={})", start_dim_, end_dim_);
}

Unflatten::Unflatten(std::int64_t dim, std::vector<std::int64_t> sizes)
    : dim_(dim), sizes_(std::move(sizes)) {
  if (sizes_.empty()) fail("Unflatten: unflattened_size is empty");
  if (std::count(sizes_.begin(), sizes_.end(), -1) > 1 ||
      std::any_of(sizes_.begin(), sizes_.end(), [](std::int64_t s) { return s < -1; })) {
    fail("Unflatten: unflattened_size ({}) may hold one -1 and otherwise sizes ≥ 0",
         fmt::join(sizes_, ", "));
  }
}

Tensor Unflatten::forward(const Tensor& input) {
  const Shape& shape = input.shape();
  const std::int64_t dim = wrapped_dim(dim_, shape.rank(), "Unflatten", "dim", shape);
  std::int64_t known = 1;
  for (std::int64_t s : sizes_) known *= s == -1 ? 1 : s;
  const bool infer = std::count(sizes_.begin(), sizes_.end(), -1) == 1;
  const std::int64_t size = shape[int(dim)];
  if (infer ? (known == 0 || size % known != 0) : known != size) {
    fail("Unflatten: unflattened_size ({}) does not split dimension {} of size {} (input {})",
         fmt::join(sizes_, ", "), dim_, size, shape.str());
  }
  Shape out;
  for (int axis = 0; axis < shape.rank(); ++axis) {
    if (axis != dim) {
      out.push_back(shape[axis], "Unflatten");
      continue;
    }
    for (std::int64_t s : sizes_) out.push_back(s == -1 ? size / known : s, "Unflatten");
  }
  return reshape(input, out);
}

std::string Unflatten::describe() const {
  return fmt::format("Unflatten(dim={}, unflattened_size=({}{}))", dim_, fmt::join(sizes_, ", "),
                     sizes_.size() == 1 ? "," : "");
}

Tensor ModuleList::forward(const Tensor&) {
  fail("ModuleList: has no forward; call the modules it holds");
}

ModuleDict::ModuleDict(
    std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> modules) {
  for (const auto& [name, module] : modules) insert(name, module);
}

ModuleDict& ModuleDict::insert(const std::string& name, std::shared_ptr<Module> module) {
  if (contains(name)) {
    replace_module(name, std::move(module));
  } else {
    register_module(name, std::move(module));
  }
  return *this;
}

bool ModuleDict::contains(const std::string& name) const {
  return std::any_of(children().begin(), children().end(),
                     [&](const auto& child) { return child.first == name; });
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> names;
  for (const auto& [name, module] : children()) names.push_back(name);
  return names;
}

std::shared_ptr<Module> ModuleDict::operator[](const std::string& name) const {
  for (const auto& [key, module] : children()) {
    if (key == name) return module;
  }
  fail("ModuleDict: no module named '{}' (keys: {})", name, fmt::join(keys(), ", "));
}

Tensor ModuleDict::forward(const Tensor&) {
  fail("ModuleDict: has no forward; call the modules it holds");
}

}  // namespace tg::nn
