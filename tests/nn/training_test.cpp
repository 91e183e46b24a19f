// Short end-to-end runs: iris must reach 95 % training accuracy, and training is reproducible.
#include <gtest/gtest.h>

#include "tapegrad.h"

namespace tg::nn {
namespace {

struct TrainingRun {
  double train_accuracy;
  std::vector<std::vector<double>> parameters;
};

TrainingRun train_iris(std::uint64_t seed) {
  Dataset iris = load_csv(std::string(TAPEGRAD_TEST_DATA) + "/iris.csv", {.skip_lines = 1});
  iris.features = Standardizer(iris.features)(iris.features);
  Generator init(seed);
  auto model = MLP({4, 16, 3}, Activation::tanh, init);
  Adam optimizer(model->parameters(), {.lr = 0.01});
  DataLoader loader(iris, 16, true, seed);
  for (int epoch = 0; epoch < 60; ++epoch) {
    for (const Dataset& batch : loader) {
      optimizer.zero_grad();
      cross_entropy((*model)(batch.features), batch.labels).backward();
      optimizer.step();
    }
  }
  NoGradGuard no_grad;
  TrainingRun run{accuracy((*model)(iris.features), iris.labels), {}};
  for (const Tensor& p : model->parameters()) run.parameters.push_back(p.to_vector());
  return run;
}

TEST(Training, IrisReaches95PercentTrainingAccuracy) {
  const TrainingRun run = train_iris(0);
  std::cout << "[ iris ] training accuracy " << 100 * run.train_accuracy << " %\n";
  EXPECT_GE(run.train_accuracy, 0.95);
}

TEST(Training, SameSeedSameParametersBitwise) {
  EXPECT_EQ(train_iris(5).parameters, train_iris(5).parameters);
}

TEST(Training, DefaultTapeStaysSmallWhileTraining) {
  train_iris(1);
  EXPECT_EQ(default_tape().size(), 0u);
}

}  // namespace
}  // namespace tg::nn
