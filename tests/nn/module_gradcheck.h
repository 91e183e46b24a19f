#pragma once
#include <gtest/gtest.h>

#include <vector>

#include "tapegrad.h"
#include "tools/gtest.h"

namespace tg::nn {

// gradcheck of a module with respect to its input (when floating) and every parameter.
inline ::testing::AssertionResult module_gradcheck(Module& module, const Tensor& input) {
  std::vector<Tensor> inputs = {input};
  for (const Tensor& p : module.parameters()) inputs.push_back(p.detach().copy());
  const GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& in) {
        return functional_call(module, std::vector<Tensor>(in.begin() + 1, in.end()), in[0]);
      },
      inputs);
  return testing::as_assertion(r);
}

}  // namespace tg::nn
