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

}  // namespace

BENCHMARK_MAIN();
