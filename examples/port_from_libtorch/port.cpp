// original_libtorch.cpp ported to tapegrad line for line: `diff` the two files and the changes
// are names (torch:: -> tg::, torch::optim:: -> tg::nn::, batch.data -> batch.features), option
// structs for builders, `*model` where libtorch overloads on its holder, and safetensors for .pt.
// The original's helpers for what libtorch lacks (its Dataset, load_csv, train_test_split and a
// data set class for the loader) are tapegrad's own here. `make test` builds and runs it.
#include <tapegrad.h>

#include <cstdint>
#include <iostream>
#include <string>

struct NetImpl : tg::nn::Module {
  NetImpl(int64_t inputs, int64_t hidden, int64_t classes)
      : fc1(register_module("fc1", tg::nn::ModuleHolder<tg::nn::Linear>(inputs, hidden))),
        fc2(register_module("fc2", tg::nn::ModuleHolder<tg::nn::Linear>(hidden, classes))) {}
  tg::Tensor forward(const tg::Tensor& x) { return fc2(fc1(x).relu()); }
  tg::nn::ModuleHolder<tg::nn::Linear> fc1{nullptr}, fc2{nullptr};
};
TG_MODULE(Net);

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : TAPEGRAD_EXAMPLE_DATA "/iris.csv";
  tg::nn::manual_seed(0);
  auto [train, test] = tg::nn::train_test_split(tg::nn::load_csv(path, {.skip_lines = 1}), 0.2, 0);
  // Standardise with the training rows' mean and deviation.
  const auto mean = train.features.mean(0);
  const auto scale = (train.features - mean).square().mean(0).sqrt();
  train.features = (train.features - mean) / scale;
  test.features = (test.features - mean) / scale;
  auto loader = tg::nn::DataLoader(train, /*batch_size=*/16, /*shuffle=*/true);

  Net model(4, 16, 3);
  tg::nn::Adam optimizer(model->parameters(), tg::nn::AdamOptions{.lr = 0.01});
  tg::nn::StepLR scheduler(optimizer, /*step_size=*/20, /*gamma=*/0.5);
  tg::nn::CrossEntropyLoss criterion;
  for (int epoch = 0; epoch < 60; ++epoch) {
    model->train();
    for (const auto& batch : loader) {
      optimizer.zero_grad();
      auto loss = criterion(model(batch.features), batch.labels);
      loss.backward();
      optimizer.step();
    }
    scheduler.step();
  }

  model->eval();
  tg::NoGradGuard no_grad;
  const auto logits = model(test.features);
  const double accuracy =
      logits.argmax(1).eq(test.labels).sum().item<int64_t>() / double(test.labels.size(0));

  tg::nn::save(*model, "iris_mlp.safetensors");
  Net reloaded(4, 16, 3);
  tg::nn::load(*reloaded, "iris_mlp.safetensors");
  reloaded->eval();
  const bool identical = reloaded(test.features).to_vector() == logits.to_vector();
  std::cout << "test accuracy " << accuracy << ", reloaded checkpoint identical: " << std::boolalpha
            << identical << '\n';
  return accuracy >= 0.9 && identical ? 0 : 1;
}
