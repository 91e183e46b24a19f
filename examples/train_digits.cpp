// Trains an MLP (64 → hidden → 10, ReLU, softmax cross-entropy, AdamW) on the 8×8 digits with a
// seeded 80/20 split and standardised features; writes the loss and accuracy curves as CSV and
// SVG, saves the model as safetensors and reloads it to confirm the test accuracy.
#include "examples/digits_training.h"

int main(int argc, char** argv) {
  digits::Options o{.epochs = 60,
                    .batch_size = 32,
                    .out_dir = "train_digits_out",
                    .data = TAPEGRAD_EXAMPLE_DATA "/digits.csv.gz"};
  CLI::App app{"Train an MLP on the 8x8 digits with tapegrad"};
  digits::add_options(app, o);
  std::int64_t hidden = 256;
  app.add_option("--hidden", hidden, "hidden units")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  auto log = spdlog::stdout_logger_mt("train_digits");
  log->set_pattern("[%H:%M:%S.%e] %v");
  const digits::Split data = digits::load_split(o.data, o.seed, log);

  const auto make_model = [&](std::uint64_t seed) {
    tg::Generator init(seed);
    return tg::nn::MLP({data.train.features.shape()[1], hidden, 10}, tg::nn::Activation::relu,
                       init);
  };
  auto model = make_model(o.seed);
  tg::nn::AdamW optimizer(model->parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  const digits::Training training =
      digits::train(*model, optimizer, data, o.epochs, o.batch_size, o.seed, log);
  auto fresh = make_model(o.seed + 1);
  return digits::finish(*model, *fresh, data, training, o.out_dir, o.min_accuracy);
}
