#include <tapegrad.h>

#include <iostream>

int main() {
  tg::nn::Dataset iris = tg::nn::load_csv(TAPEGRAD_EXAMPLE_DATA "/iris.csv", {.skip_lines = 1});
  iris.features = tg::nn::Standardizer(iris.features)(iris.features);
  auto model = tg::nn::MLP({4, 16, 3});
  tg::nn::AdamW optimizer(model->parameters(), {.lr = 1e-2, .weight_decay = 0.01});
  tg::nn::DataLoader loader(iris, 16, /*shuffle=*/true, /*seed=*/0);
  for (int epoch = 0; epoch < 30; ++epoch) {
    for (const tg::nn::Dataset& batch : loader) {
      optimizer.zero_grad();
      tg::Tensor loss = tg::cross_entropy((*model)(batch.features), batch.labels);
      loss.backward();
      optimizer.step();
    }
  }
  tg::nn::save(*model, "iris_mlp.safetensors");
  tg::NoGradGuard no_grad;
  std::cout << "training accuracy " << tg::nn::accuracy((*model)(iris.features), iris.labels)
            << '\n';
}
