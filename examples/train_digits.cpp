// Trains an MLP (64 → hidden → 10, ReLU, softmax cross-entropy, AdamW) on the 8×8 digits with a
// seeded 80/20 split and standardised features; writes the loss and accuracy curves as CSV and
// SVG, saves the model as safetensors and reloads it to confirm the test accuracy.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "tapegrad.h"

namespace {

struct Options {
  int epochs = 60;
  std::int64_t hidden = 256;
  double lr = 1e-3;
  double weight_decay = 0.01;
  std::int64_t batch_size = 32;
  std::uint64_t seed = 0;
  std::string data = TAPEGRAD_EXAMPLE_DATA "/digits.csv.gz";
  std::string out_dir = "train_digits_out";
  double min_accuracy = 0.0;
};

struct EpochRecord {
  int epoch;
  double loss;
  double train_accuracy;
  double test_accuracy;
};

void progress_bar(int epoch, int epochs, std::int64_t batch, std::int64_t batches, double loss) {
  constexpr int kWidth = 30;
  const auto filled = int(kWidth * batch / batches);
  fmt::print("\repoch {:>3}/{} [{}{}] {:>3}/{} loss {:.4f}", epoch, epochs,
             std::string(std::size_t(filled), '#'), std::string(std::size_t(kWidth - filled), '.'),
             batch, batches, loss);
  std::fflush(stdout);
}

// A two-panel line chart (loss; train and test accuracy) as a standalone SVG file.
void write_svg(const std::string& path, const std::vector<EpochRecord>& history) {
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

double evaluate(tg::nn::Module& model, const tg::nn::Dataset& data) {
  tg::NoGradGuard no_grad;
  model.eval();
  const double result = tg::nn::accuracy(model(data.features), data.labels);
  model.train();
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train an MLP on the 8x8 digits with tapegrad"};
  app.add_option("--epochs", o.epochs, "passes over the training set")->check(CLI::PositiveNumber);
  app.add_option("--hidden", o.hidden, "hidden units")->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "AdamW learning rate")->check(CLI::PositiveNumber);
  app.add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay");
  app.add_option("--batch-size", o.batch_size, "mini-batch size")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed of the split, the initialisation and the shuffling");
  app.add_option("--data", o.data, "digits CSV (.csv or .csv.gz)");
  app.add_option("--out-dir", o.out_dir, "where the curves and the model are written");
  app.add_option("--min-accuracy", o.min_accuracy, "exit with 1 below this test accuracy");
  CLI11_PARSE(app, argc, argv);

  auto log = spdlog::stdout_logger_mt("train_digits");
  log->set_pattern("[%H:%M:%S.%e] %v");
  const bool terminal = isatty(STDOUT_FILENO) != 0;

  tg::nn::Dataset all = tg::nn::load_csv(o.data);
  auto [train, test] = tg::nn::train_test_split(all, 0.2, o.seed);
  const tg::nn::Standardizer standardize(train.features);
  train.features = standardize(train.features);
  test.features = standardize(test.features);
  log->info("digits: {} training and {} test rows of {} features", train.size(), test.size(),
            train.features.shape()[1]);

  tg::Generator init(o.seed);
  auto model =
      tg::nn::MLP({train.features.shape()[1], o.hidden, 10}, tg::nn::Activation::relu, init);
  tg::nn::AdamW optimizer(model->parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  tg::nn::DataLoader loader(train, o.batch_size, true, o.seed);
  std::vector<EpochRecord> history;
  double training_seconds = 0;

  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double total_loss = 0;
    std::int64_t batch = 0;
    for (const tg::nn::Dataset& b : loader) {
      optimizer.zero_grad();
      tg::Tensor loss = tg::cross_entropy((*model)(b.features), b.labels);
      loss.backward();
      optimizer.step();
      total_loss += loss.item() * double(b.size());
      ++batch;
      if (terminal)
        progress_bar(epoch, o.epochs, batch, loader.batches(),
                     total_loss / double(b.size() * batch));
    }
    training_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    history.push_back({epoch, total_loss / double(train.size()), evaluate(*model, train),
                       evaluate(*model, test)});
    if (terminal) fmt::print("\r\033[K");
    log->info("epoch {:>3}/{}: loss {:.4f}, train accuracy {:.2f} %, test accuracy {:.2f} %", epoch,
              o.epochs, history.back().loss, 100 * history.back().train_accuracy,
              100 * history.back().test_accuracy);
  }

  std::filesystem::create_directories(o.out_dir);
  {
    std::ofstream csv(o.out_dir + "/curves.csv");
    csv << "epoch,loss,train_accuracy,test_accuracy\n";
    for (const EpochRecord& r : history) {
      csv << fmt::format("{},{:.6f},{:.6f},{:.6f}\n", r.epoch, r.loss, r.train_accuracy,
                         r.test_accuracy);
    }
  }
  write_svg(o.out_dir + "/curves.svg", history);
  const std::string model_path = o.out_dir + "/model.safetensors";
  tg::nn::save(*model, model_path);

  // A fresh model of the same shape, with other initial weights, loaded from the file.
  tg::Generator other(o.seed + 1);
  auto reloaded =
      tg::nn::MLP({train.features.shape()[1], o.hidden, 10}, tg::nn::Activation::relu, other);
  tg::nn::load(*reloaded, model_path);
  const double accuracy = history.back().test_accuracy;
  const double reloaded_accuracy = evaluate(*reloaded, test);

  fmt::print("training time {:.2f} s for {} epochs ({:.1f} ms per epoch)\n", training_seconds,
             o.epochs, 1000 * training_seconds / o.epochs);
  fmt::print("wrote {0}/curves.csv, {0}/curves.svg and {1}\n", o.out_dir, model_path);
  fmt::print("reloaded from {}: test accuracy {:.2f} % ({})\n", model_path, 100 * reloaded_accuracy,
             reloaded_accuracy == accuracy ? "identical" : "DIFFERENT");
  fmt::print("final test accuracy: {:.2f} %\n", 100 * accuracy);
  return reloaded_accuracy == accuracy && accuracy >= o.min_accuracy ? 0 : 1;
}
