// Optimizer::state_dict / load_state_dict: a checkpointed optimizer resumed into a fresh one
// continues exactly as the uninterrupted one, for every optimizer with state.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "tapegrad.h"

namespace tg::nn {
namespace {

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;

void step_with(Optimizer& optimizer, Tensor& p, double scale) {
  optimizer.zero_grad();
  sum(p * p * scale + p).backward();
  optimizer.step();
}

// Three steps, a checkpoint, two more: the same as five uninterrupted steps, bit for bit.
void expect_exact_resume(const MakeOptimizer& make) {
  Tensor straight = tensor({1.0, -2.0, 0.5}, f64).requires_grad(true);
  auto uninterrupted = make({straight});
  for (int s = 0; s < 5; ++s) step_with(*uninterrupted, straight, 0.1 * (s + 1));

  Tensor p = tensor({1.0, -2.0, 0.5}, f64).requires_grad(true);
  auto first = make({p});
  for (int s = 0; s < 3; ++s) step_with(*first, p, 0.1 * (s + 1));
  const auto state = first->state_dict();
  ASSERT_FALSE(state.empty());
  Tensor resumed_p = p.detach().clone().requires_grad(true);
  auto resumed = make({resumed_p});
  resumed->load_state_dict(state);
  for (int s = 3; s < 5; ++s) step_with(*resumed, resumed_p, 0.1 * (s + 1));
  EXPECT_EQ(resumed_p.to_vector(), straight.to_vector());
}

TEST(OptimizerState, ResumesExactly) {
  expect_exact_resume([](std::vector<Tensor> p) {
    return std::make_unique<SGD>(std::move(p), SGDOptions{.lr = 0.1, .momentum = 0.9});
  });
  expect_exact_resume([](std::vector<Tensor> p) {
    return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 0.1, .amsgrad = true});
  });
  expect_exact_resume([](std::vector<Tensor> p) {
    return std::make_unique<AdamW>(std::move(p), AdamWOptions{.lr = 0.1});
  });
  expect_exact_resume([](std::vector<Tensor> p) {
    return std::make_unique<RMSprop>(std::move(p),
                                     RMSpropOptions{.momentum = 0.5, .centered = true});
  });
  expect_exact_resume([](std::vector<Tensor> p) {
    return std::make_unique<Adagrad>(std::move(p), AdagradOptions{.lr_decay = 0.1});
  });
}

TEST(OptimizerState, HasTorchNamesAndCopies) {
  Tensor p = tensor({1.0, 2.0}, f64).requires_grad(true);
  AdamW optimizer({p}, {.lr = 0.1});
  EXPECT_TRUE(optimizer.state_dict().empty());  // no state before the first step
  step_with(optimizer, p, 1.0);
  auto state = optimizer.state_dict();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].first, "state.0.exp_avg");
  EXPECT_EQ(state[1].first, "state.0.exp_avg_sq");
  EXPECT_EQ(state[2].first, "state.0.step");
  EXPECT_EQ(state[2].second.dtype(), i64);
  EXPECT_EQ(state[2].second.item(), 1.0);
  // g = 2p + 1 = [3, 5]; m = 0.1·g.
  EXPECT_NEAR(state[0].second.at({1}), 0.5, 1e-15);
  state[0].second.data<double>()[1] = 7.0;  // a copy: the optimizer's own moment is unchanged
  EXPECT_NEAR(optimizer.state_dict()[0].second.at({1}), 0.5, 1e-15);
}

TEST(OptimizerState, RefusesForeignOrMisshapenStateAndChangesNothing) {
  Tensor p = tensor({1.0, 2.0}, f64).requires_grad(true);
  Adam optimizer({p}, {.lr = 0.1});
  step_with(optimizer, p, 1.0);
  const auto good = optimizer.state_dict();
  const auto expect_error = [&](std::vector<std::pair<std::string, Tensor>> state,
                                const std::string& fragment) {
    try {
      optimizer.load_state_dict(state);
      FAIL() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_EQ(optimizer.state_dict()[0].second.to_vector(), good[0].second.to_vector());
  };
  expect_error({{"state.0.momentum_buffer", zeros({2}, f64)}},
               "Adam: load_state_dict: 'state.0.momentum_buffer' is not state of this optimizer");
  // The whole state with one entry replaced.
  const auto with = [&](const std::string& name, const Tensor& value) {
    auto state = good;
    for (auto& [key, tensor] : state) {
      if (key == name) tensor = value;
    }
    return state;
  };
  expect_error(with("state.0.exp_avg", zeros({3}, f64)),
               "state.0.exp_avg is float64 [3], the parameter float64 [2]");
  expect_error(with("state.0.exp_avg", zeros({2}, f32)), "state.0.exp_avg is float32 [2]");
  expect_error(with("state.0.step", tensor({1.0}, f64)),
               "state.0.step must be one non-negative int64 count");
  expect_error({{"state.1.exp_avg", zeros({2}, f64)}}, "'state.1.exp_avg' is not state");
  // A part of a parameter's state would be stepped with the missing moments restarted at zero
  // under the loaded step count.
  expect_error({{"state.0.exp_avg_sq", full({2}, 100.0, f64)},
                {"state.0.step", int64_tensor({10}, Shape{})}},
               "the state of parameter 0 is incomplete: it has exp_avg_sq, step but not exp_avg");
  expect_error({{"state.0.max_exp_avg_sq", zeros({2}, f64)}},
               "'state.0.max_exp_avg_sq' is not state of this optimizer");
}

TEST(OptimizerState, StateOfOtherOptionsIsIncomplete) {
  Tensor p = tensor({1.0, 2.0}, f64).requires_grad(true);
  Adam plain({p}, {.lr = 0.1});
  step_with(plain, p, 1.0);
  Adam amsgrad({p}, {.lr = 0.1, .amsgrad = true});
  try {
    amsgrad.load_state_dict(plain.state_dict());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("it has exp_avg, exp_avg_sq, step but not max_exp_avg_sq"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(amsgrad.state_dict().empty());
  RMSprop rms({p}, {});
  step_with(rms, p, 1.0);
  RMSprop centered({p}, {.momentum = 0.9, .centered = true});
  EXPECT_THROW(centered.load_state_dict(rms.state_dict()), Error);
}

}  // namespace
}  // namespace tg::nn
