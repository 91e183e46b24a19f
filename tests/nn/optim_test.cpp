// Optimizer steps against values worked out by hand from PyTorch's documented formulas, for
// p₀ = [1, −2], lr = 0.1 and the gradients [0.5, 1], [−0.5, 2], [0.25, −1] in turn.
#include <gtest/gtest.h>

#include <cmath>

#include "tapegrad.h"

namespace tg::nn {
namespace {

const std::vector<std::vector<double>> kGradients = {{0.5, 1.0}, {-0.5, 2.0}, {0.25, -1.0}};

// Runs three steps and returns the parameter after each.
template <class MakeOptimizer>
std::vector<std::vector<double>> run(MakeOptimizer make) {
  Tensor p = tensor({1.0, -2.0}, f64).requires_grad(true);
  auto optimizer = make(std::vector<Tensor>{p});
  std::vector<std::vector<double>> trajectory;
  for (const std::vector<double>& g : kGradients) {
    optimizer->zero_grad();
    sum(p * from_vector(g, {2}, f64)).backward();  // grad(p) = g
    optimizer->step();
    trajectory.push_back(p.to_vector());
  }
  return trajectory;
}

void expect_trajectory(const std::vector<std::vector<double>>& got,
                       const std::vector<std::vector<double>>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t step = 0; step < want.size(); ++step) {
    for (std::size_t i = 0; i < 2; ++i) {
      EXPECT_NEAR(got[step][i], want[step][i], 1e-12) << "step " << step + 1 << ", element " << i;
    }
  }
}

TEST(SGD, PlainMomentumNesterovDampeningAndWeightDecay) {
  const auto sgd = [](SGDOptions o) {
    return [o](std::vector<Tensor> p) { return std::make_unique<SGD>(std::move(p), o); };
  };
  // p ← p − 0.1 g.
  expect_trajectory(run(sgd({.lr = 0.1})), {{0.95, -2.1}, {1.0, -2.3}, {0.975, -2.2}});
  // b₁ = g₁; b₂ = 0.9 b₁ + g₂ = [−0.05, 2.9]; b₃ = 0.9 b₂ + g₃ = [0.205, 1.61].
  expect_trajectory(run(sgd({.lr = 0.1, .momentum = 0.9})),
                    {{0.95, -2.1}, {0.955, -2.39}, {0.9345, -2.551}});
  // Nesterov: p ← p − 0.1 (g + 0.9 b).
  expect_trajectory(run(sgd({.lr = 0.1, .momentum = 0.9, .nesterov = true})),
                    {{0.905, -2.19}, {0.9595, -2.651}, {0.91605, -2.6959}});
  // Dampening 0.5: b ← 0.9 b + 0.5 g after the first step.
  expect_trajectory(run(sgd({.lr = 0.1, .momentum = 0.9, .dampening = 0.5})),
                    {{0.95, -2.1}, {0.93, -2.29}, {0.8995, -2.411}});
  // Weight decay 0.1: g ← g + 0.1 p.
  expect_trajectory(run(sgd({.lr = 0.1, .weight_decay = 0.1})),
                    {{0.94, -2.08}, {0.9806, -2.2592}, {0.945794, -2.136608}});
  EXPECT_THROW(SGD({tensor({1.0}).requires_grad(true)}, {.lr = 0.1, .nesterov = true}), Error);
}

TEST(Adam, BiasCorrectedMomentsAndL2WeightDecay) {
  // Step 1: m̂ = g, v̂ = g², so p moves by 0.1 in each coordinate (less ε's share).
  // Step 2: m = [−0.005, 0.29], v = [0.00049975, 0.004999], m̂ = m / 0.19, v̂ = v / 0.001999.
  expect_trajectory(run([](std::vector<Tensor> p) {
                      return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 0.1});
                    }),
                    {{0.900000002, -2.099999999},
                     {0.9052631597894735, -2.1965182009718336},
                     {0.8877906067738799, -2.2385271310318133}});
  expect_trajectory(run([](std::vector<Tensor> p) {
                      return std::make_unique<Adam>(std::move(p),
                                                    AdamOptions{.lr = 0.1, .weight_decay = 0.1});
                    }),
                    {{0.9000000016666666, -2.09999999875},
                     {0.8866836230649792, -2.1952720095868674},
                     {0.8503518619580189, -2.2240427812194343}});
}

TEST(AdamW, DecoupledWeightDecay) {
  // p ← p(1 − 0.1·0.1) first: p₁ = [0.99 − 0.1, −1.98 − 0.1].
  expect_trajectory(run([](std::vector<Tensor> p) {
                      return std::make_unique<AdamW>(std::move(p),
                                                     AdamOptions{.lr = 0.1, .weight_decay = 0.1});
                    }),
                    {{0.890000002, -2.079999999},
                     {0.8863631597694734, -2.1557182009818336},
                     {0.8600269751561851, -2.176169949031995}});
}

TEST(Optimizer, SkipsParametersWithoutGradientAndZeroGradClears) {
  Tensor a = tensor({1.0}, f64).requires_grad(true);
  Tensor b = tensor({1.0}, f64).requires_grad(true);
  SGD sgd({a, b}, {.lr = 0.5});
  sum(a * 2.0).backward();
  sgd.step();
  EXPECT_EQ(a.item(), 0.0);
  EXPECT_EQ(b.item(), 1.0);
  sgd.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(ClipGradNorm, ScalesAllGradientsToTheMaximumNorm) {
  Tensor a = tensor({1.0, 2.0}, f64).requires_grad(true);
  Tensor b = tensor({3.0}, f64).requires_grad(true);
  (sum(a * tensor({3.0, 0.0}, f64)) + sum(b * 4.0)).backward();  // grads [3, 0], [4]: norm 5
  EXPECT_NEAR(clip_grad_norm({a, b}, 1.0), 5.0, 1e-15);
  EXPECT_NEAR(a.grad().at({0}), 3.0 / (5.0 + 1e-6), 1e-15);
  EXPECT_NEAR(b.grad().at({0}), 4.0 / (5.0 + 1e-6), 1e-15);
  EXPECT_NEAR(clip_grad_norm({a, b}, 10.0), 5.0 / (5.0 + 1e-6), 1e-12);  // below: unchanged
  EXPECT_NEAR(b.grad().at({0}), 4.0 / (5.0 + 1e-6), 1e-15);
}

TEST(ClipGradNorm, GradientsSharedByTwoLeavesAreClippedOnce) {
  // add hands the same cotangent to both inputs; each leaf must own its gradient.
  Tensor a = tensor({3.0}, f64).requires_grad(true);
  Tensor b = tensor({4.0}, f64).requires_grad(true);
  sum(a + b).backward();
  clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(a.grad().item(), 1.0 / (std::sqrt(2.0) + 1e-6), 1e-12);
  EXPECT_NEAR(b.grad().item(), 1.0 / (std::sqrt(2.0) + 1e-6), 1e-12);
}

TEST(Schedulers, StepAndCosine) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 1.0});
  StepLR step(sgd, 2, 0.5);
  std::vector<double> lrs;
  for (int e = 0; e < 5; ++e) {
    step.step();
    lrs.push_back(sgd.lr());
  }
  EXPECT_EQ(lrs, std::vector<double>({1.0, 0.5, 0.5, 0.25, 0.25}));
  SGD other({p}, {.lr = 1.0});
  CosineAnnealingLR cosine(other, 4, 0.1);
  cosine.step();
  EXPECT_NEAR(other.lr(), 0.1 + 0.9 * (1 + std::cos(M_PI / 4)) / 2, 1e-15);
  cosine.step();
  EXPECT_NEAR(other.lr(), 0.55, 1e-15);
  cosine.step();
  cosine.step();
  EXPECT_NEAR(other.lr(), 0.1, 1e-15);
}

}  // namespace
}  // namespace tg::nn
