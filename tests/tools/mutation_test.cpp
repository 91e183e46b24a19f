// Evidence that the checks bite: every registered op's backward rule is corrupted in the ways
// rules really go wrong, and gradcheck must reject every corruption.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "tapegrad.h"

namespace tg {
namespace {

enum class Mutation { flip_sign, scale_by_1_01, drop_term, wrong_input };

const char* mutation_name(Mutation m) {
  switch (m) {
    case Mutation::flip_sign:
      return "sign flipped on one input";
    case Mutation::scale_by_1_01:
      return "gradient scaled by 1.01";
    case Mutation::drop_term:
      return "one term dropped";
    case Mutation::wrong_input:
      return "gradient routed to the wrong input";
  }
  return "?";
}

// Corrupts every rule call while installed: the op under test is the only op its registered
// function records, so every call is a call of its rule.
class Mutant : public detail::Hook {
 public:
  Mutant(Mutation mutation, std::size_t input) : mutation_(mutation), input_(input) {}
  Mutant(const Mutant&) = delete;
  Mutant& operator=(const Mutant&) = delete;

  void before_rule(const detail::OpBase&, Tensor& grad_output) override {
    // The VJP is Σₖ gₖ ∂yₖ/∂x: dropping the term of the largest cotangent element.
    if (mutation_ != Mutation::drop_term || grad_output.numel() == 0) return;
    NoGradGuard no_grad;
    Tensor dropped = grad_output.copy();
    dispatch_floating(dropped.dtype(), "mutant", [&]<class T>() {
      T* g = dropped.data<T>();
      std::int64_t largest = 0;
      for (std::int64_t k = 1; k < dropped.numel(); ++k) {
        if (std::abs(g[k]) > std::abs(g[largest])) largest = k;
      }
      g[largest] = T(0);
    });
    grad_output = dropped;
  }

  void after_rule(const detail::OpBase&, std::span<Tensor> grads) override {
    if (input_ >= grads.size() || !grads[input_].defined()) return;
    NoGradGuard no_grad;
    Tensor& g = grads[input_];
    switch (mutation_) {
      case Mutation::flip_sign:
        g = -g;
        break;
      case Mutation::scale_by_1_01:
        g = g * 1.01;
        break;
      case Mutation::wrong_input: {
        const std::size_t other = (input_ + 1) % grads.size();
        grads[other] = g;
        g = Tensor();
        break;
      }
      case Mutation::drop_term:
        break;
    }
  }

 private:
  Mutation mutation_;
  std::size_t input_;
  detail::HookScope installed_{*this};
};

// An input whose derivative is zero on every sample (pow(x, 0)) has a zero gradient, and a
// sign flip, a scale or a dropped term of zero is still zero: no check can see those mutations.
bool zero_jacobian_on_every_sample(const OpRegistration& op, const std::vector<OpSample>& samples,
                                   std::size_t input) {
  for (const OpSample& sample : samples) {
    for (double v : jacobian(op.function, sample.inputs)[input].to_vector()) {
      if (v != 0.0) return false;
    }
  }
  return true;
}

TEST(Mutation, GradcheckRejectsEveryCorruptedRuleOfEveryRegisteredOp) {
  std::map<Mutation, std::pair<int, int>> tally;  // caught, tried
  int engine_rejections = 0;
  std::vector<std::string> missed;
  for (const OpRegistration& op : op_registry().ops()) {
    const std::vector<OpSample> samples = op.samples(f64);
    std::vector<std::size_t> floating;
    for (std::size_t i = 0; i < samples.front().inputs.size(); ++i) {
      if (is_floating(samples.front().inputs[i].dtype())) floating.push_back(i);
    }
    std::vector<std::size_t> visible;
    for (std::size_t i : floating) {
      if (zero_jacobian_on_every_sample(op, samples, i)) {
        std::cout << "[ mutation ] " << op.name << ": input " << i
                  << " has a zero Jacobian on every sample, so corrupting its zero gradient "
                     "cannot show\n";
      } else {
        visible.push_back(i);
      }
    }
    std::vector<std::pair<Mutation, std::size_t>> mutants;
    if (!visible.empty()) mutants.push_back({Mutation::drop_term, 0});
    for (std::size_t i : visible) {
      mutants.push_back({Mutation::flip_sign, i});
      mutants.push_back({Mutation::scale_by_1_01, i});
      if (floating.size() > 1) mutants.push_back({Mutation::wrong_input, i});
    }
    for (const auto& [mutation, input] : mutants) {
      // Caught when gradcheck rejects it on some sample: a sample can be blind to a mutation
      // (softmax of one element has a zero Jacobian, so no corruption of it shows).
      bool caught = false;
      for (const OpSample& sample : samples) {
        try {
          Mutant mutant(mutation, input);
          caught = !gradcheck(op.function, sample.inputs, {.localize = false}).passed;
        } catch (const Error&) {
          caught = true;  // the engine's own shape or dtype check rejected the gradient
          ++engine_rejections;
        }
        if (caught) break;
      }
      ++tally[mutation].second;
      if (caught) {
        ++tally[mutation].first;
      } else {
        missed.push_back(op.name + ": " + mutation_name(mutation) + " (input " +
                         std::to_string(input) + ")");
      }
    }
  }
  int caught = 0, tried = 0;
  for (const auto& [mutation, counts] : tally) {
    std::cout << "[ mutation ] " << mutation_name(mutation) << ": caught " << counts.first << " of "
              << counts.second << '\n';
    caught += counts.first;
    tried += counts.second;
  }
  std::cout << "[ mutation ] " << caught << " of " << tried << " corrupted rules caught ("
            << engine_rejections << " by the engine's shape checks), over "
            << op_registry().ops().size() << " registered ops\n";
  EXPECT_EQ(caught, tried);
  for (const std::string& m : missed) ADD_FAILURE() << "not caught: " << m;
}

}  // namespace
}  // namespace tg
