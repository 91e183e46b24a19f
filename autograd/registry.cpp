#include "autograd/registry.h"

#include <algorithm>

namespace tg {

void OpRegistry::add(OpRegistration registration) {
  if (!registration.function || !registration.samples) {
    fail("OpRegistry::add: op '{}' needs a function and a sample generator", registration.name);
  }
  const auto same_name = [&](const OpRegistration& r) { return r.name == registration.name; };
  if (std::any_of(ops_.begin(), ops_.end(), same_name)) {
    fail("OpRegistry::add: an op named '{}' is already registered", registration.name);
  }
  ops_.push_back(std::move(registration));
}

const OpRegistration& OpRegistry::find(std::string_view name) const {
  for (const OpRegistration& r : ops_) {
    if (r.name == name) return r;
  }
  fail("OpRegistry::find: no op named '{}' is registered", name);
}

}  // namespace tg
