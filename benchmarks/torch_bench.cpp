// The same workloads in libtorch (built with -DTAPEGRAD_BENCH_TORCH=ON against Debian's
// libtorch-dev), one thread, float32, so scripts/bench.sh can print tapegrad / libtorch ratios.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "benchmarks/workloads.h"

namespace {

using namespace tg::bench;

void W1_softmax_libtorch(benchmark::State& state) {
  torch::set_num_threads(int(state.range(0)));
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({kSoftmaxRows, kSoftmaxCols}).requires_grad_(true);
  const torch::Tensor g = torch::randn({kSoftmaxRows, kSoftmaxCols});
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    (torch::softmax(x, 1) * g).sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
}
BENCHMARK(W1_softmax_libtorch)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void W2_mlp_step_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::manual_seed(2);
  torch::nn::Sequential model(torch::nn::Linear(kInputs, kHidden), torch::nn::Tanh(),
                              torch::nn::Linear(kHidden, kHidden), torch::nn::ReLU(),
                              torch::nn::Linear(kHidden, kClasses));
  const torch::Tensor x = torch::randn({kBatch, kInputs});
  const torch::Tensor labels = torch::randint(kClasses, {kBatch}, torch::kLong);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(kLearningRate));
  for (auto _ : state) {
    sgd.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), labels);
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
}
BENCHMARK(W2_mlp_step_libtorch)->Unit(benchmark::kMicrosecond);

void W3_chain_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::Tensor x = torch::linspace(0, 1, kChainWidth).requires_grad_(true);
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    torch::Tensor y = x;
    for (int i = 0; i < kChainOps; ++i) y = i % 2 == 0 ? y * 1.0001 + 0.0001 : torch::tanh(y);
    y.sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  state.counters["us_per_op"] =
      benchmark::Counter(double(kChainOps) * 1e-6, benchmark::Counter::kIsIterationInvariantRate |
                                                       benchmark::Counter::kInvert);
}
BENCHMARK(W3_chain_libtorch)->Unit(benchmark::kMicrosecond);

void W4_gemm_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::manual_seed(4);
  torch::Tensor a = torch::randn({kGemmSize, kGemmSize}).requires_grad_(true);
  torch::Tensor b = torch::randn({kGemmSize, kGemmSize}).requires_grad_(true);
  for (auto _ : state) {
    a.mutable_grad() = torch::Tensor();
    b.mutable_grad() = torch::Tensor();
    torch::matmul(a, b).sum().backward();
    benchmark::DoNotOptimize(a.grad().data_ptr());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(kGemmFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(W4_gemm_libtorch)->Unit(benchmark::kMillisecond);

void W6_cnn_step_libtorch(benchmark::State& state) {
  torch::set_num_threads(int(state.range(0)));
  torch::manual_seed(6);
  namespace nn = torch::nn;
  nn::Sequential model(nn::Conv2d(nn::Conv2dOptions(1, kCnnChannels1, 3).padding(1)),
                       nn::BatchNorm2d(kCnnChannels1), nn::ReLU(),
                       nn::Conv2d(nn::Conv2dOptions(kCnnChannels1, kCnnChannels2, 3).padding(1)),
                       nn::BatchNorm2d(kCnnChannels2), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                       nn::Linear(kCnnChannels2 * (kCnnSide / 2) * (kCnnSide / 2), 10));
  const torch::Tensor x = torch::randn({kCnnBatch, 1, kCnnSide, kCnnSide});
  const torch::Tensor labels = torch::randint(10, {kCnnBatch}, torch::kLong);
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(kCnnLearningRate));
  for (auto _ : state) {
    adam.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), labels);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
}
BENCHMARK(W6_cnn_step_libtorch)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void Conv2d_large_libtorch(benchmark::State& state) {
  torch::set_num_threads(int(state.range(0)));
  torch::manual_seed(7);
  torch::Tensor x =
      torch::randn({kConvBatch, kConvChannels, kConvSide, kConvSide}).requires_grad_(true);
  torch::Tensor w =
      (torch::randn({kConvChannels, kConvChannels, 3, 3}) * 0.04).requires_grad_(true);
  const torch::Tensor g = torch::randn({kConvBatch, kConvChannels, kConvSide, kConvSide});
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    w.mutable_grad() = torch::Tensor();
    (torch::conv2d(x, w, {}, 1, 1) * g).sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(kConvFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(Conv2d_large_libtorch)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// W7: the GPT of examples/train_char_gpt written in libtorch as nanoGPT writes it in PyTorch
// (LayerNorm without bias, causal attention by masked_fill and softmax, GELU tanh, tied head).
struct GptBlockImpl : torch::nn::Module {
  GptBlockImpl()
      : ln_1(register_parameter("ln_1", torch::ones({kGptChannels}))),
        ln_2(register_parameter("ln_2", torch::ones({kGptChannels}))),
        c_attn(register_module(
            "c_attn", torch::nn::Linear(
                          torch::nn::LinearOptions(kGptChannels, 3 * kGptChannels).bias(false)))),
        attn_proj(register_module(
            "attn_proj",
            torch::nn::Linear(torch::nn::LinearOptions(kGptChannels, kGptChannels).bias(false)))),
        c_fc(register_module(
            "c_fc", torch::nn::Linear(
                        torch::nn::LinearOptions(kGptChannels, 4 * kGptChannels).bias(false)))),
        mlp_proj(register_module(
            "mlp_proj",
            torch::nn::Linear(
                torch::nn::LinearOptions(4 * kGptChannels, kGptChannels).bias(false)))) {}
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& causal) {
    const std::int64_t b = x.size(0), t = x.size(1), d = kGptChannels / kGptHeads;
    const auto qkv = c_attn(torch::layer_norm(x, {kGptChannels}, ln_1)).split(kGptChannels, 2);
    const auto heads = [&](const torch::Tensor& z) {
      return z.view({b, t, kGptHeads, d}).transpose(1, 2);
    };
    const torch::Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
    torch::Tensor att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(d)));
    att = torch::softmax(att.masked_fill(causal.logical_not(), -INFINITY), -1);
    x = x +
        attn_proj(torch::matmul(att, v).transpose(1, 2).contiguous().view({b, t, kGptChannels}));
    return x + mlp_proj(torch::gelu(c_fc(torch::layer_norm(x, {kGptChannels}, ln_2)), "tanh"));
  }
  torch::Tensor ln_1, ln_2;
  torch::nn::Linear c_attn, attn_proj, c_fc, mlp_proj;
};
TORCH_MODULE(GptBlock);

struct GptImpl : torch::nn::Module {
  GptImpl()
      : wte(register_module("wte", torch::nn::Embedding(kGptVocab, kGptChannels))),
        wpe(register_module("wpe", torch::nn::Embedding(kGptContext, kGptChannels))),
        ln_f(register_parameter("ln_f", torch::ones({kGptChannels}))) {
    for (std::int64_t i = 0; i < kGptLayers; ++i) {
      blocks.push_back(register_module("h" + std::to_string(i), GptBlock()));
    }
  }
  torch::Tensor forward(const torch::Tensor& idx) {
    const std::int64_t t = idx.size(1);
    const torch::Tensor causal = torch::ones({t, t}, torch::kBool).tril();
    torch::Tensor x = wte(idx) + wpe(torch::arange(t, torch::kLong));
    for (GptBlock& block : blocks) x = block->forward(x, causal);
    return torch::matmul(torch::layer_norm(x, {kGptChannels}, ln_f), wte->weight.t());
  }
  torch::nn::Embedding wte, wpe;
  torch::Tensor ln_f;
  std::vector<GptBlock> blocks;
};
TORCH_MODULE(Gpt);

void W7_gpt_step_libtorch(benchmark::State& state) {
  torch::set_num_threads(int(state.range(0)));
  torch::manual_seed(7);
  Gpt model;
  std::vector<torch::Tensor> decayed, other;
  for (const torch::Tensor& p : model->parameters()) (p.dim() >= 2 ? decayed : other).push_back(p);
  using torch::optim::AdamWOptions;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<AdamWOptions>(
                                   AdamWOptions(1e-3).betas({0.9, 0.99}).weight_decay(0.1)));
  groups.emplace_back(other, std::make_unique<AdamWOptions>(
                                 AdamWOptions(1e-3).betas({0.9, 0.99}).weight_decay(0.0)));
  torch::optim::AdamW adamw(groups);
  const torch::Tensor x = torch::randint(kGptVocab, {kGptBatch, kGptContext}, torch::kLong);
  const torch::Tensor y = torch::randint(kGptVocab, {kGptBatch, kGptContext}, torch::kLong);
  const auto step = [&] {
    adamw.zero_grad();
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(model->forward(x).view({-1, kGptVocab}), y.view({-1}));
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    adamw.step();
    benchmark::DoNotOptimize(loss.data_ptr());
  };
  for (int i = 0; i < 3; ++i) step();
  for (auto _ : state) step();
  state.counters["GFLOPs"] =
      benchmark::Counter(kGptFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(W7_gpt_step_libtorch)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The attention row in libtorch 1.13, which has no fused attention: the composed maths.
void Attention_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::manual_seed(9);
  const std::int64_t t = state.range(0);
  const std::vector<std::int64_t> shape{kAttentionBatch, kAttentionHeads, t, kAttentionDim};
  torch::Tensor q = torch::randn(shape).requires_grad_(true);
  torch::Tensor k = torch::randn(shape).requires_grad_(true);
  torch::Tensor v = torch::randn(shape).requires_grad_(true);
  const torch::Tensor g = torch::randn(shape);
  const torch::Tensor causal = torch::ones({t, t}, torch::kBool).tril();
  for (auto _ : state) {
    for (torch::Tensor* p : {&q, &k, &v}) p->mutable_grad() = torch::Tensor();
    torch::Tensor att = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(kAttentionDim));
    att = torch::softmax(att.masked_fill(causal.logical_not(), -INFINITY), -1);
    (torch::matmul(att, v) * g).sum().backward();
    benchmark::DoNotOptimize(q.grad().data_ptr());
  }
}
BENCHMARK(Attention_libtorch)->ArgName("T")->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

// W5 on random rows of the digits' shapes (workloads.h): a fresh permutation each epoch, each
// batch gathered from it, as tapegrad's DataLoader does.
void W5_digits_epoch_libtorch(benchmark::State& state) {
  torch::set_num_threads(int(state.range(0)));
  torch::manual_seed(5);
  torch::nn::Sequential model(torch::nn::Linear(kDigitsFeatures, kDigitsHidden), torch::nn::ReLU(),
                              torch::nn::Linear(kDigitsHidden, kClasses));
  const torch::Tensor features = torch::randn({kDigitsTrainRows, kDigitsFeatures});
  const torch::Tensor labels = torch::randint(kClasses, {kDigitsTrainRows}, torch::kLong);
  torch::optim::AdamW adamw(model->parameters(),
                            torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
  for (auto _ : state) {
    const torch::Tensor order = torch::randperm(kDigitsTrainRows, torch::kLong);
    for (std::int64_t begin = 0; begin < kDigitsTrainRows; begin += kDigitsBatch) {
      const torch::Tensor rows =
          order.slice(0, begin, std::min(begin + kDigitsBatch, kDigitsTrainRows));
      adamw.zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(
          model->forward(features.index_select(0, rows)), labels.index_select(0, rows));
      loss.backward();
      adamw.step();
    }
  }
}
BENCHMARK(W5_digits_epoch_libtorch)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void W8_lstm_step_libtorch(benchmark::State& state) {
  torch::set_num_threads(int(state.range(0)));
  torch::manual_seed(8);
  torch::nn::LSTM lstm(torch::nn::LSTMOptions(1, kLstmHidden).batch_first(true));
  torch::nn::Linear head(kLstmHidden, 1);
  const torch::Tensor x = torch::randn({kLstmSequences, kLstmLength, 1});
  const torch::Tensor y = torch::randn({kLstmSequences, kLstmLength, 1});
  std::vector<torch::Tensor> parameters = lstm->parameters();
  for (const torch::Tensor& p : head->parameters()) parameters.push_back(p);
  torch::optim::Adam adam(parameters, torch::optim::AdamOptions(kLstmLearningRate));
  for (auto _ : state) {
    adam.zero_grad();
    torch::Tensor loss = torch::mse_loss(head->forward(std::get<0>(lstm->forward(x))), y);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
}
BENCHMARK(W8_lstm_step_libtorch)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
