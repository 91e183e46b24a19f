// Trains a small CNN on the 8×8 digits as 1×8×8 images, with train_digits' seeded 80/20 split,
// standardised pixels and AdamW: conv 3×3 → batch norm → ReLU, conv 3×3 → batch norm → ReLU →
// 2×2 max pool, linear to the 10 classes. Writes the loss and accuracy curves as CSV and SVG,
// saves the model (parameters and batch norm's running statistics) as safetensors and reloads it
// to confirm the test accuracy.
#include <iostream>

#include "examples/digits_training.h"

int main(int argc, char** argv) {
  digits::Options o{.epochs = 20,
                    .batch_size = 64,
                    .out_dir = "train_digits_cnn_out",
                    .data = TAPEGRAD_EXAMPLE_DATA "/digits.csv.gz"};
  CLI::App app{"Train a small CNN on the 8x8 digits with tapegrad"};
  digits::add_options(app, o);
  std::int64_t channels = 16;
  app.add_option("--channels", channels,
                 "channels of the first convolution (the second has twice as many)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  auto log = spdlog::stdout_logger_mt("train_digits_cnn");
  log->set_pattern("[%H:%M:%S.%e] %v");
  digits::Split data = digits::load_split(o.data, o.seed, log);
  // The 64 standardised pixels of a row are the 8×8 image, row by row: [N, 1, 8, 8].
  for (tg::nn::Dataset* part : {&data.train, &data.test}) {
    part->features = tg::reshape(part->features, {-1, 1, 8, 8});
  }

  tg::Generator init(o.seed);
  auto model = digits::make_cnn(channels, init);
  std::cout << *model << "\n";
  tg::nn::AdamW optimizer(model->parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  const digits::Training training =
      digits::train(*model, optimizer, data, o.epochs, o.batch_size, o.seed, log);
  tg::Generator other(o.seed + 1);
  auto fresh = digits::make_cnn(channels, other);
  return digits::finish(*model, *fresh, data, training, o.out_dir, o.min_accuracy);
}
