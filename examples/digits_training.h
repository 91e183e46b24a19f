#pragma once
// What train_digits (an MLP) and train_digits_cnn share: the seeded split with standardised
// features, the training loop with its progress bar and log lines, the curves (CSV and SVG) and
// the closing lines (the saved model reloaded into a fresh one must give the same accuracy).
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad.h"

namespace digits {

// The options both examples take, with the defaults each gives.
struct Options {
  int epochs;
  std::int64_t batch_size;
  std::string out_dir;
  std::string data;
  double lr = 1e-3;
  double weight_decay = 0.01;
  std::uint64_t seed = 0;
  double min_accuracy = 0.0;
};

inline void add_options(CLI::App& app, Options& o) {
  app.add_option("--epochs", o.epochs, "passes over the training set")->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "AdamW learning rate")->check(CLI::PositiveNumber);
  app.add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay");
  app.add_option("--batch-size", o.batch_size, "mini-batch size")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed of the split, the initialisation and the shuffling");
  app.add_option("--data", o.data, "digits CSV (.csv or .csv.gz)");
  app.add_option("--out-dir", o.out_dir, "where the curves and the model are written");
  app.add_option("--min-accuracy", o.min_accuracy, "exit with 1 below this test accuracy");
}

struct EpochRecord {
  int epoch;
  double loss;
  double train_accuracy;
  double test_accuracy;
};

struct Split {
  tg::nn::Dataset train;
  tg::nn::Dataset test;
};

// The 80/20 split of `seed`, each pixel standardised with the training rows' mean and deviation.
inline Split load_split(const std::string& path, std::uint64_t seed,
                        const std::shared_ptr<spdlog::logger>& log) {
  auto [train, test] = tg::nn::train_test_split(tg::nn::load_csv(path), 0.2, seed);
  const tg::nn::Standardizer standardize(train.features);
  train.features = standardize(train.features);
  test.features = standardize(test.features);
  log->info("digits: {} training and {} test rows of {} features", train.size(), test.size(),
            train.features.shape()[1]);
  return {train, test};
}

inline void progress_bar(int epoch, int epochs, std::int64_t batch, std::int64_t batches,
                         double loss) {
  constexpr int kWidth = 30;
  const auto filled = int(kWidth * batch / batches);
  fmt::print("\repoch {:>3}/{} [{}{}] {:>3}/{} loss {:.4f}", epoch, epochs,
             std::string(std::size_t(filled), '#'), std::string(std::size_t(kWidth - filled), '.'),
             batch, batches, loss);
  std::fflush(stdout);
}

// A two-panel line chart (loss; train and test accuracy) as a standalone SVG file.
inline void write_svg(const std::string& path, const std::vector<EpochRecord>& history) {
  constexpr double kWidth = 420, kHeight = 260, kLeft = 50, kTop = 30, kGap = 60;
  const auto polyline = [&](double x0, auto value, double low, double high, const char* colour) {
    std::string points;
    for (std::size_t i = 0; i < history.size(); ++i) {
      const double x =
          x0 + kWidth * double(i) / double(std::max<std::size_t>(history.size() - 1, 1));
      const double y = kTop + kHeight * (1 - (value(history[i]) - low) / (high - low));
      points += fmt::format("{:.1f},{:.1f} ", x, y);
    }
    return fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                       colour, points);
  };
  const auto axes = [&](double x0, const std::string& title, double low, double high) {
    return fmt::format(
        "<rect x=\"{0}\" y=\"{1}\" width=\"{2}\" height=\"{3}\" fill=\"none\" stroke=\"#888\"/>\n"
        "<text x=\"{0}\" y=\"{4}\" font-size=\"14\">{5}</text>\n"
        "<text x=\"{6}\" y=\"{1}\" font-size=\"11\" text-anchor=\"end\">{7:.3g}</text>\n"
        "<text x=\"{6}\" y=\"{8}\" font-size=\"11\" text-anchor=\"end\">{9:.3g}</text>\n"
        "<text x=\"{0}\" y=\"{10}\" font-size=\"11\">epoch 1</text>\n"
        "<text x=\"{11}\" y=\"{10}\" font-size=\"11\" text-anchor=\"end\">{12}</text>\n",
        x0, kTop, kWidth, kHeight, kTop - 10, title, x0 - 4, high, kTop + kHeight, low,
        kTop + kHeight + 16, x0 + kWidth, history.size());
  };
  double max_loss = 0;
  for (const EpochRecord& r : history) max_loss = std::max(max_loss, r.loss);
  const double right = kLeft + kWidth + kGap;
  std::ofstream out(path);
  out << fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      right + kWidth + 20, kTop + kHeight + 30);
  out << axes(kLeft, "training loss", 0, max_loss)
      << polyline(
             kLeft, [](const EpochRecord& r) { return r.loss; }, 0, max_loss, "#c0392b");
  out << axes(right, "accuracy: train (blue), test (green)", 0.8, 1.0)
      << polyline(
             right, [](const EpochRecord& r) { return std::max(r.train_accuracy, 0.8); }, 0.8, 1.0,
             "#2c7fb8")
      << polyline(
             right, [](const EpochRecord& r) { return std::max(r.test_accuracy, 0.8); }, 0.8, 1.0,
             "#31a354");
  out << "</svg>\n";
}

// The CNN of train_digits_cnn (and of benchmark W6), for [N, 1, 8, 8] images: conv 3×3 (padding
// 1) → batch norm → ReLU, conv 3×3 to twice the channels → batch norm → ReLU → 2×2 max pool,
// flatten, linear to the 10 classes. Its state_dict names are those of the same nn.Sequential in
// PyTorch ("0.weight", "1.running_mean", ...).
inline std::shared_ptr<tg::nn::Sequential> make_cnn(std::int64_t channels,
                                                    tg::Generator& generator) {
  using namespace tg::nn;
  auto model = std::make_shared<Sequential>();
  model
      ->push_back(std::make_shared<Conv2d>(1, channels, 3, tg::Conv2dOptions{.padding = 1}, true,
                                           generator))
      .push_back(std::make_shared<BatchNorm2d>(channels))
      .push_back(std::make_shared<ReLU>())
      .push_back(std::make_shared<Conv2d>(channels, 2 * channels, 3,
                                          tg::Conv2dOptions{.padding = 1}, true, generator))
      .push_back(std::make_shared<BatchNorm2d>(2 * channels))
      .push_back(std::make_shared<ReLU>())
      .push_back(std::make_shared<MaxPool2d>(2))
      .push_back(std::make_shared<Flatten>())
      .push_back(std::make_shared<Linear>(2 * channels * 4 * 4, 10, true, generator));
  return model;
}

// In evaluation mode (dropout off, batch norm on its running statistics), without recording.
inline double evaluate(tg::nn::Module& model, const tg::nn::Dataset& data) {
  tg::NoGradGuard no_grad;
  model.eval();
  const double result = tg::nn::accuracy(model(data.features), data.labels);
  model.train();
  return result;
}

struct Training {
  std::vector<EpochRecord> history;
  double seconds = 0;
};

// Softmax cross-entropy on shuffled mini-batches; one log line per epoch.
inline Training train(tg::nn::Module& model, tg::nn::Optimizer& optimizer, const Split& data,
                      int epochs, std::int64_t batch_size, std::uint64_t seed,
                      const std::shared_ptr<spdlog::logger>& log) {
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  tg::nn::DataLoader loader(data.train, batch_size, true, seed);
  Training result;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double total_loss = 0;
    std::int64_t batch = 0;
    for (const tg::nn::Dataset& b : loader) {
      optimizer.zero_grad();
      tg::Tensor loss = tg::cross_entropy(model(b.features), b.labels);
      loss.backward();
      optimizer.step();
      total_loss += loss.item() * double(b.size());
      ++batch;
      if (terminal)
        progress_bar(epoch, epochs, batch, loader.batches(), total_loss / double(b.size() * batch));
    }
    result.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.history.push_back({epoch, total_loss / double(data.train.size()),
                              evaluate(model, data.train), evaluate(model, data.test)});
    if (terminal) fmt::print("\r\033[K");
    const EpochRecord& last = result.history.back();
    log->info("epoch {:>3}/{}: loss {:.4f}, train accuracy {:.2f} %, test accuracy {:.2f} %", epoch,
              epochs, last.loss, 100 * last.train_accuracy, 100 * last.test_accuracy);
  }
  return result;
}

// Writes the curves and the model to out_dir, loads the model into `fresh` (same architecture,
// other initial weights), prints the closing lines and returns main's exit status: 0 when the
// reloaded model's test accuracy is the trained one's and at least min_accuracy.
inline int finish(tg::nn::Module& model, tg::nn::Module& fresh, const Split& data,
                  const Training& training, const std::string& out_dir, double min_accuracy) {
  std::filesystem::create_directories(out_dir);
  {
    std::ofstream csv(out_dir + "/curves.csv");
    csv << "epoch,loss,train_accuracy,test_accuracy\n";
    for (const EpochRecord& r : training.history) {
      csv << fmt::format("{},{:.6f},{:.6f},{:.6f}\n", r.epoch, r.loss, r.train_accuracy,
                         r.test_accuracy);
    }
  }
  write_svg(out_dir + "/curves.svg", training.history);
  const std::string model_path = out_dir + "/model.safetensors";
  tg::nn::save(model, model_path);
  tg::nn::load(fresh, model_path);
  const double accuracy = training.history.back().test_accuracy;
  const double reloaded_accuracy = evaluate(fresh, data.test);

  const auto epochs = training.history.size();
  fmt::print("training time {:.2f} s for {} epochs ({:.1f} ms per epoch)\n", training.seconds,
             epochs, 1000 * training.seconds / double(epochs));
  fmt::print("wrote {0}/curves.csv, {0}/curves.svg and {1}\n", out_dir, model_path);
  fmt::print("reloaded from {}: test accuracy {:.2f} % ({})\n", model_path, 100 * reloaded_accuracy,
             reloaded_accuracy == accuracy ? "identical" : "DIFFERENT");
  fmt::print("final test accuracy: {:.2f} %\n", 100 * accuracy);
  return reloaded_accuracy == accuracy && accuracy >= min_accuracy ? 0 : 1;
}

}  // namespace digits
