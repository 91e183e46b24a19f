// Trains a character-level GPT-2-style model on tiny Shakespeare, with nanoGPT's
// train_shakespeare_char settings for a CPU: 4 layers, 4 heads, 128 channels, context 64, batch
// 12, no dropout, no biases, AdamW (lr 1e-3, β₂ 0.99, weight decay 0.1 on matrices only),
// gradient clipping at 1, 100 warm-up steps then cosine decay to 1e-4 at step 2,000. The first
// 90 % of the text trains, the last 10 % validates. Logs the train and validation loss (CSV and
// SVG), prints a sample every --sample-interval steps, checkpoints the model, the optimizer and
// the step to safetensors, and resumes from such a checkpoint with --resume. The last line is the
// validation loss over the whole validation split (every non-overlapping window of the context).
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tapegrad.h"

namespace {

struct Options {
  std::string data = TAPEGRAD_EXAMPLE_DATA "/tinyshakespeare.txt.gz";
  std::string out_dir = "train_char_gpt_out";
  std::string resume;
  std::int64_t steps = 2000;
  std::int64_t stop_at = 0;  // 0: at `steps`
  std::int64_t batch_size = 12;
  std::int64_t accumulation = 1;
  tg::nn::GPTConfig model{
      .block_size = 64, .n_layer = 4, .n_head = 4, .n_embd = 128, .dropout = 0.0, .bias = false};
  double lr = 1e-3;
  double min_lr = 1e-4;
  std::int64_t warmup = 100;
  double weight_decay = 0.1;
  double beta2 = 0.99;
  double grad_clip = 1.0;
  bool decay_embeddings = false;
  std::int64_t eval_interval = 250;
  std::int64_t eval_batches = 20;
  std::int64_t sample_interval = 500;
  std::int64_t sample_length = 200;
  std::int64_t checkpoint_interval = 500;
  double temperature = 0.8;
  std::int64_t top_k = 40;
  std::uint64_t seed = 1337;
  double max_val_loss = 0.0;  // 0: no check
};

// The characters of the text, sorted, and the text as their indices.
struct Corpus {
  std::string alphabet;
  std::vector<std::int64_t> train;
  std::vector<std::int64_t> val;

  std::string decode(const std::vector<std::int64_t>& tokens) const {
    std::string text;
    for (std::int64_t t : tokens) text += alphabet[std::size_t(t)];
    return text;
  }
};

Corpus load_corpus(const std::string& path) {
  const std::string text = tg::nn::load_text(path);
  std::array<bool, 256> seen{};
  for (unsigned char c : text) seen[c] = true;
  Corpus corpus;
  std::array<std::int64_t, 256> index{};
  for (int c = 0; c < 256; ++c) {
    if (!seen[std::size_t(c)]) continue;
    index[std::size_t(c)] = std::int64_t(corpus.alphabet.size());
    corpus.alphabet += char(c);
  }
  const auto split = std::size_t(0.9 * double(text.size()));
  for (std::size_t i = 0; i < text.size(); ++i) {
    (i < split ? corpus.train : corpus.val).push_back(index[static_cast<unsigned char>(text[i])]);
  }
  return corpus;
}

struct Batch {
  tg::Tensor inputs;   // int64 [B, T]
  tg::Tensor targets;  // the inputs shifted by one character
};

// nanoGPT's get_batch: B windows at random offsets. The generator is the step's own, so a resumed
// run draws the batches the uninterrupted one would.
Batch random_batch(const std::vector<std::int64_t>& data, std::int64_t batch_size,
                   std::int64_t context, tg::Generator& generator) {
  std::vector<std::int64_t> x, y;
  const auto offsets = double(std::int64_t(data.size()) - context);
  for (std::int64_t b = 0; b < batch_size; ++b) {
    const auto start = std::size_t(generator.uniform() * offsets);
    x.insert(x.end(), data.begin() + std::ptrdiff_t(start),
             data.begin() + std::ptrdiff_t(start) + context);
    y.insert(y.end(), data.begin() + std::ptrdiff_t(start) + 1,
             data.begin() + std::ptrdiff_t(start) + context + 1);
  }
  const tg::Shape shape{batch_size, context};
  return {tg::int64_tensor(x, shape), tg::int64_tensor(y, shape)};
}

// The mean loss over every non-overlapping window of `data` (the whole split), in evaluation mode
// without recording.
double full_loss(tg::nn::GPT& model, const std::vector<std::int64_t>& data) {
  tg::NoGradGuard no_grad;
  model.eval();
  const std::int64_t context = model.config().block_size;
  const std::int64_t windows = (std::int64_t(data.size()) - 1) / context;
  constexpr std::int64_t kRows = 64;
  double total = 0;
  for (std::int64_t first = 0; first < windows; first += kRows) {
    const std::int64_t rows = std::min(kRows, windows - first);
    std::vector<std::int64_t> x, y;
    for (std::int64_t w = first; w < first + rows; ++w) {
      const auto start = data.begin() + std::ptrdiff_t(w * context);
      x.insert(x.end(), start, start + context);
      y.insert(y.end(), start + 1, start + context + 1);
    }
    const tg::Shape shape{rows, context};
    total += model.loss(model(tg::int64_tensor(x, shape)), tg::int64_tensor(y, shape)).item() *
             double(rows);
  }
  model.train();
  return total / double(windows);
}

// nanoGPT's estimate_loss: the mean over a few random batches (seeded, so every estimate of a
// split uses the same windows).
double estimate_loss(tg::nn::GPT& model, const std::vector<std::int64_t>& data, const Options& o) {
  tg::NoGradGuard no_grad;
  model.eval();
  tg::Generator generator(o.seed + 7);
  double total = 0;
  for (std::int64_t i = 0; i < o.eval_batches; ++i) {
    const Batch b = random_batch(data, o.batch_size, o.model.block_size, generator);
    total += model.loss(model(b.inputs), b.targets).item();
  }
  model.train();
  return total / double(o.eval_batches);
}

std::string sample(tg::nn::GPT& model, const Corpus& corpus, const Options& o, std::int64_t step) {
  tg::Generator generator(o.seed + std::uint64_t(step));
  const tg::Tensor start = tg::int64_tensor({0}, tg::Shape{1, 1});  // "\n"
  model.eval();
  const tg::Tensor out = model.generate(start, o.sample_length, generator, o.temperature, o.top_k);
  model.train();
  std::vector<std::int64_t> tokens;
  for (double t : out.to_vector()) tokens.push_back(std::int64_t(t));
  return corpus.decode(tokens);
}

// nanoGPT's get_lr: linear warm-up to lr over `warmup` steps, then a half cosine down to min_lr
// at the last step.
double learning_rate(std::int64_t step, const Options& o) {
  if (step < o.warmup) return o.lr * double(step + 1) / double(o.warmup + 1);
  const double progress =
      double(step - o.warmup) / double(std::max<std::int64_t>(o.steps - o.warmup, 1));
  return o.min_lr + 0.5 * (1 + std::cos(M_PI * std::min(progress, 1.0))) * (o.lr - o.min_lr);
}

struct LogRow {
  std::int64_t step;
  double train_loss;
  double val_loss;
};

// Train and validation loss against the step, as a standalone SVG line chart.
void write_svg(const std::string& path, const std::vector<LogRow>& rows, std::int64_t steps) {
  constexpr double kWidth = 520, kHeight = 300, kLeft = 50, kTop = 30;
  double high = 0, low = 1e9;
  for (const LogRow& r : rows) {
    high = std::max({high, r.train_loss, r.val_loss});
    low = std::min({low, r.train_loss, r.val_loss});
  }
  low = std::floor(low * 2) / 2;
  high = std::ceil(high * 2) / 2;
  const auto line = [&](auto value, const char* colour) {
    std::string points;
    for (const LogRow& r : rows) {
      points += fmt::format("{:.1f},{:.1f} ", kLeft + kWidth * double(r.step) / double(steps),
                            kTop + kHeight * (high - value(r)) / (high - low));
    }
    return fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                       colour, points);
  };
  std::ofstream out(path);
  out << fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n"
      "<text x=\"{}\" y=\"{}\" font-size=\"14\">loss: train (blue), validation (red)</text>\n"
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{:.1f}</text>\n"
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{:.1f}</text>\n"
      "<text x=\"{}\" y=\"{}\" font-size=\"11\">step 0</text>\n"
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
      kLeft + kWidth + 20, kTop + kHeight + 30, kLeft, kTop, kWidth, kHeight, kLeft, kTop - 10,
      kLeft - 4, kTop + 4, high, kLeft - 4, kTop + kHeight, low, kLeft, kTop + kHeight + 16,
      kLeft + kWidth, kTop + kHeight + 16, steps);
  out << line([](const LogRow& r) { return r.train_loss; }, "#2c7fb8")
      << line([](const LogRow& r) { return r.val_loss; }, "#c0392b") << "</svg>\n";
}

void save_checkpoint(const std::string& path, tg::nn::GPT& model, tg::nn::Optimizer& optimizer,
                     std::int64_t step) {
  tg::nn::NamedTensors tensors;
  for (auto& [name, t] : model.state_dict()) tensors.emplace_back("model." + name, t);
  for (auto& [name, t] : optimizer.state_dict()) tensors.emplace_back("optimizer." + name, t);
  tensors.emplace_back("step", tg::int64_tensor({step}, tg::Shape{}));
  tg::nn::save_safetensors(path, tensors);
}

// Loads a checkpoint of save_checkpoint's into the model and the optimizer; returns its step.
std::int64_t load_checkpoint(const std::string& path, tg::nn::GPT& model,
                             tg::nn::Optimizer& optimizer) {
  tg::nn::NamedTensors model_state, optimizer_state;
  std::int64_t step = -1;
  for (auto& [name, t] : tg::nn::load_safetensors(path)) {
    if (name.starts_with("model.")) {
      model_state.emplace_back(name.substr(6), t);
    } else if (name.starts_with("optimizer.")) {
      optimizer_state.emplace_back(name.substr(10), t);
    } else if (name == "step" && t.dtype() == tg::i64 && t.numel() == 1) {
      step = std::int64_t(t.item());
    } else {
      tg::fail("train_char_gpt: {}: unexpected entry '{}' in a checkpoint", path, name);
    }
  }
  if (step < 0) tg::fail("train_char_gpt: {}: the checkpoint has no step", path);
  tg::nn::load_state_dict(model, model_state, path);
  optimizer.load_state_dict(optimizer_state);
  return step;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train a character-level GPT on tiny Shakespeare with tapegrad"};
  app.add_option("--data", o.data, "the text (.txt or .txt.gz)");
  app.add_option("--out-dir", o.out_dir, "where the curves and checkpoints are written");
  app.add_option("--resume", o.resume, "a checkpoint of this program to continue from");
  app.add_option("--steps", o.steps, "optimizer steps (the schedule ends here)")
      ->check(CLI::PositiveNumber);
  app.add_option("--stop-at", o.stop_at,
                 "stop after this step (with its checkpoint), leaving the schedule for --steps");
  app.add_option("--batch-size", o.batch_size, "windows per micro-batch")
      ->check(CLI::PositiveNumber);
  app.add_option("--accumulation", o.accumulation, "micro-batches per step (gradients summed)")
      ->check(CLI::PositiveNumber);
  app.add_option("--block-size", o.model.block_size, "context length")->check(CLI::PositiveNumber);
  app.add_option("--layers", o.model.n_layer, "transformer blocks")->check(CLI::PositiveNumber);
  app.add_option("--heads", o.model.n_head, "attention heads")->check(CLI::PositiveNumber);
  app.add_option("--channels", o.model.n_embd, "embedding width")->check(CLI::PositiveNumber);
  app.add_option("--dropout", o.model.dropout, "dropout probability");
  app.add_option("--lr", o.lr, "peak learning rate")->check(CLI::PositiveNumber);
  app.add_option("--min-lr", o.min_lr, "learning rate at the last step");
  app.add_option("--warmup", o.warmup, "warm-up steps");
  app.add_option("--weight-decay", o.weight_decay, "AdamW decay of the matrices");
  app.add_flag("--decay-embeddings", o.decay_embeddings,
               "decay the embeddings too, as nanoGPT (not by default)");
  app.add_option("--eval-interval", o.eval_interval, "steps between loss estimates")
      ->check(CLI::PositiveNumber);
  app.add_option("--eval-batches", o.eval_batches, "batches per loss estimate")
      ->check(CLI::PositiveNumber);
  app.add_option("--sample-interval", o.sample_interval, "steps between samples (0: none)");
  app.add_option("--sample-length", o.sample_length, "characters per sample");
  app.add_option("--checkpoint-interval", o.checkpoint_interval, "steps between checkpoints");
  app.add_option("--temperature", o.temperature, "sampling temperature")
      ->check(CLI::PositiveNumber);
  app.add_option("--top-k", o.top_k, "sample among the k likeliest characters (0: all)");
  app.add_option("--seed", o.seed, "seed of the initialisation, the batches and the samples");
  app.add_option("--max-val-loss", o.max_val_loss, "exit with 1 above this final validation loss");
  CLI11_PARSE(app, argc, argv);

  const Corpus corpus = load_corpus(o.data);
  o.model.vocab_size = std::int64_t(corpus.alphabet.size());
  fmt::print("tiny Shakespeare: {} characters ({} distinct), {} for training, {} for validation\n",
             corpus.train.size() + corpus.val.size(), corpus.alphabet.size(), corpus.train.size(),
             corpus.val.size());
  tg::Generator init(o.seed);
  tg::nn::GPT model(o.model, init);
  std::int64_t parameters = 0;
  for (const tg::Tensor& p : model.parameters()) parameters += p.numel();
  fmt::print("GPT: {} layers, {} heads, {} channels, context {}: {} parameters\n", o.model.n_layer,
             o.model.n_head, o.model.n_embd, o.model.block_size, parameters);
  // The groups: the matrices of the blocks decay; biases, norm weights and the embeddings
  // (the token embedding is also the output projection) do not. nanoGPT decays the embeddings
  // too: --decay-embeddings.
  tg::nn::AdamW optimizer(tg::nn::weight_decay_groups(
      model, tg::nn::AdamWOptions{.lr = o.lr, .beta2 = o.beta2, .weight_decay = o.weight_decay},
      /*exclude_embeddings=*/!o.decay_embeddings));
  std::int64_t step = 0;
  if (!o.resume.empty()) {
    step = load_checkpoint(o.resume, model, optimizer);
    fmt::print("resumed from {} at step {}\n", o.resume, step);
  }

  std::filesystem::create_directories(o.out_dir);
  const std::string checkpoint = o.out_dir + "/checkpoint.safetensors";
  std::vector<LogRow> log;
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  double seconds = 0;
  const auto report = [&] {
    log.push_back(
        {step, estimate_loss(model, corpus.train, o), estimate_loss(model, corpus.val, o)});
    if (terminal) fmt::print("\r\033[K");
    fmt::print("step {:>5}: train loss {:.4f}, val loss {:.4f}, lr {:.2e}, {:.1f} ms/step\n", step,
               log.back().train_loss, log.back().val_loss,
               learning_rate(std::max<std::int64_t>(step - 1, 0), o),
               step == 0 ? 0.0 : 1000 * seconds / double(step));
    std::fflush(stdout);  // a line at a time when piped, e.g. into tee
  };
  report();
  const std::int64_t last = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
  while (step < last) {
    const auto start = std::chrono::steady_clock::now();
    optimizer.set_lr(learning_rate(step, o));
    optimizer.zero_grad();
    tg::Generator batches(o.seed ^ (0x9e3779b97f4a7c15ULL * std::uint64_t(step + 1)));
    double loss = 0;
    for (std::int64_t micro = 0; micro < o.accumulation; ++micro) {
      const Batch b = random_batch(corpus.train, o.batch_size, o.model.block_size, batches);
      tg::Tensor micro_loss = model.loss(model(b.inputs), b.targets) / double(o.accumulation);
      micro_loss.backward();
      loss += micro_loss.item();
    }
    tg::nn::clip_grad_norm(model.parameters(), o.grad_clip);
    optimizer.step();
    ++step;
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (terminal) {
      fmt::print("\rstep {:>5}/{} loss {:.4f}", step, o.steps, loss);
      std::fflush(stdout);
    }
    if (step % o.eval_interval == 0 || step == last) report();
    if (o.sample_interval > 0 && (step % o.sample_interval == 0 || step == last)) {
      fmt::print("--- sample at step {} (temperature {}, top-k {}) ---\n{}\n---\n", step,
                 o.temperature, o.top_k, sample(model, corpus, o, step));
    }
    if (o.checkpoint_interval > 0 && (step % o.checkpoint_interval == 0 || step == last)) {
      save_checkpoint(checkpoint, model, optimizer, step);
    }
  }

  {
    std::ofstream csv(o.out_dir + "/loss.csv");
    csv << "step,train_loss,val_loss\n";
    for (const LogRow& r : log)
      csv << fmt::format("{},{:.6f},{:.6f}\n", r.step, r.train_loss, r.val_loss);
  }
  write_svg(o.out_dir + "/loss.svg", log, o.steps);
  fmt::print("wrote {0}/loss.csv, {0}/loss.svg and {1}\n", o.out_dir, checkpoint);
  const double val_loss = full_loss(model, corpus.val);
  fmt::print("training wall time {:.1f} s ({:.1f} ms per step)\n", seconds,
             1000 * seconds / double(std::max<std::int64_t>(step, 1)));
  fmt::print("final validation loss: {:.4f}\n", val_loss);
  return o.max_val_loss > 0 && !(val_loss <= o.max_val_loss) ? 1 : 0;
}
