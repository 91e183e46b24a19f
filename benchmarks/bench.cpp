// tapegrad against hand-written Eigen (no tape, preallocated buffers, backward by hand) in one
// binary, so that every comparison is a ratio measured in the same run. scripts/bench.py runs it
// and prints the ratio tables; `--busy=N` runs it while N other processes keep N cores busy.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <cmath>
#include <string>
#include <vector>

#include "benchmarks/busy.h"
#include "benchmarks/common.h"
#include "benchmarks/workloads.h"
#include "tapegrad.h"

namespace {

using namespace tg::bench;
// ---- W1 softmax ----

void W1_softmax_handwritten(benchmark::State& state) {
  tg::set_num_threads(1);
  tg::Generator gen(1);
  const Matrix x = random_matrix(kSoftmaxRows, kSoftmaxCols, gen);
  const Matrix g = random_matrix(kSoftmaxRows, kSoftmaxCols, gen);
  Matrix s(kSoftmaxRows, kSoftmaxCols), dx(kSoftmaxRows, kSoftmaxCols);
  for (auto _ : state) {
    float loss = 0;
    for (std::int64_t r = 0; r < kSoftmaxRows; ++r) {
      auto xr = x.row(r).array();
      auto sr = s.row(r).array();
      sr = (xr - xr.maxCoeff()).exp();
      sr /= sr.sum();
      const auto gr = g.row(r).array();
      const float dot = (gr * sr).sum();
      loss += dot;
      dx.row(r).array() = sr * (gr - dot);
    }
    benchmark::DoNotOptimize(loss);
    benchmark::DoNotOptimize(dx.data());
  }
}
BENCHMARK(W1_softmax_handwritten)->Unit(benchmark::kMicrosecond);

void W1_softmax_tapegrad(benchmark::State& state) {
  use_threads(state);
  tg::Generator gen(1);
  tg::Tensor x = as_tensor(random_matrix(kSoftmaxRows, kSoftmaxCols, gen)).requires_grad(true);
  const tg::Tensor g = as_tensor(random_matrix(kSoftmaxRows, kSoftmaxCols, gen));
  for (auto _ : state) {
    x.zero_grad();
    tg::sum(tg::softmax(x, 1) * g).backward();
    benchmark::DoNotOptimize(x.grad().raw_data());
  }
}
BENCHMARK(W1_softmax_tapegrad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- W2 MLP training step ----

struct MlpData {
  Matrix x;
  std::vector<std::int64_t> labels;
  Matrix w1, w2, w3;
  RowVector b1, b2, b3;
  explicit MlpData(std::uint64_t seed) {
    tg::Generator gen(seed);
    x = random_matrix(kBatch, kInputs, gen);
    for (std::int64_t i = 0; i < kBatch; ++i) labels.push_back(std::int64_t(gen.next() % kClasses));
    w1 = random_matrix(kHidden, kInputs, gen, 1.0f / std::sqrt(float(kInputs)));
    w2 = random_matrix(kHidden, kHidden, gen, 1.0f / std::sqrt(float(kHidden)));
    w3 = random_matrix(kClasses, kHidden, gen, 1.0f / std::sqrt(float(kHidden)));
    b1 = RowVector::Zero(kHidden);
    b2 = RowVector::Zero(kHidden);
    b3 = RowVector::Zero(kClasses);
  }
};

void W2_mlp_step_handwritten(benchmark::State& state) {
  tg::set_num_threads(1);
  MlpData d(2);
  Matrix z1(kBatch, kHidden), h1(kBatch, kHidden), z2(kBatch, kHidden), h2(kBatch, kHidden);
  Matrix logits(kBatch, kClasses), dlogits(kBatch, kClasses), dh2(kBatch, kHidden),
      dh1(kBatch, kHidden);
  Matrix dw1(kHidden, kInputs), dw2(kHidden, kHidden), dw3(kClasses, kHidden);
  RowVector db1(kHidden), db2(kHidden), db3(kClasses);
  const std::uint64_t before = heap_allocations();
  for (auto _ : state) {
    z1.noalias() = d.x * d.w1.transpose();
    z1.rowwise() += d.b1;
    h1 = z1.array().tanh();
    z2.noalias() = h1 * d.w2.transpose();
    z2.rowwise() += d.b2;
    h2 = z2.cwiseMax(0.0f);
    logits.noalias() = h2 * d.w3.transpose();
    logits.rowwise() += d.b3;
    float loss = 0;
    for (std::int64_t i = 0; i < kBatch; ++i) {
      auto row = logits.row(i).array();
      auto grad = dlogits.row(i).array();
      const float m = row.maxCoeff();
      grad = (row - m).exp();
      const float total = grad.sum();
      loss += std::log(total) + m - row(d.labels[std::size_t(i)]);
      grad /= total;
      grad(d.labels[std::size_t(i)]) -= 1.0f;
    }
    dlogits /= float(kBatch);
    dw3.noalias() = dlogits.transpose() * h2;
    db3.noalias() = dlogits.colwise().sum();
    dh2.noalias() = dlogits * d.w3;
    dh2 = (z2.array() > 0.0f).select(dh2, 0.0f);
    dw2.noalias() = dh2.transpose() * h1;
    db2.noalias() = dh2.colwise().sum();
    dh1.noalias() = dh2 * d.w2;
    dh1.array() *= 1.0f - h1.array().square();
    dw1.noalias() = dh1.transpose() * d.x;
    db1.noalias() = dh1.colwise().sum();
    d.w1 -= kLearningRate * dw1;
    d.w2 -= kLearningRate * dw2;
    d.w3 -= kLearningRate * dw3;
    d.b1 -= kLearningRate * db1;
    d.b2 -= kLearningRate * db2;
    d.b3 -= kLearningRate * db3;
    benchmark::DoNotOptimize(loss);
  }
  state.counters["allocs_per_step"] =
      double(heap_allocations() - before) / double(state.iterations());
}
BENCHMARK(W2_mlp_step_handwritten)->Unit(benchmark::kMicrosecond);

void W2_mlp_step_tapegrad(benchmark::State& state) {
  use_threads(state);
  const MlpData d(2);
  auto model = std::make_shared<tg::nn::Sequential>();
  auto l1 = std::make_shared<tg::nn::Linear>(kInputs, kHidden);
  auto l2 = std::make_shared<tg::nn::Linear>(kHidden, kHidden);
  auto l3 = std::make_shared<tg::nn::Linear>(kHidden, kClasses);
  model->push_back(l1).push_back(std::make_shared<tg::nn::Tanh>());
  model->push_back(l2).push_back(std::make_shared<tg::nn::ReLU>()).push_back(l3);
  const tg::Tensor x = as_tensor(d.x);
  const tg::Tensor labels = tg::int64_tensor(d.labels);
  tg::nn::SGD sgd(model->parameters(), {.lr = kLearningRate});
  const auto step = [&] {
    sgd.zero_grad();
    tg::Tensor loss = tg::cross_entropy((*model)(x), labels);
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.raw_data());
  };
  time_steps(state, step);
}
BENCHMARK(W2_mlp_step_tapegrad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- W3 a chain of small ops ----

void W3_chain_handwritten(benchmark::State& state) {
  tg::set_num_threads(1);
  using Row = Eigen::Array<float, 1, kChainWidth>;
  std::vector<Row> values(kChainOps + 1);
  values[0] = Row::LinSpaced(kChainWidth, -1.0f, 1.0f);
  for (auto _ : state) {
    for (int i = 0; i < kChainOps; ++i) {
      if (i % 2 == 0) {
        values[std::size_t(i + 1)] = values[std::size_t(i)] * 1.0001f + 0.0001f;
      } else {
        values[std::size_t(i + 1)] = values[std::size_t(i)].tanh();
      }
    }
    Row grad = Row::Ones();
    for (int i = kChainOps - 1; i >= 0; --i) {
      if (i % 2 == 0) {
        grad *= 1.0001f;
      } else {
        grad *= 1.0f - values[std::size_t(i + 1)].square();
      }
    }
    benchmark::DoNotOptimize(grad.data());
  }
  state.counters["us_per_op"] =
      benchmark::Counter(double(kChainOps) * 1e-6, benchmark::Counter::kIsIterationInvariantRate |
                                                       benchmark::Counter::kInvert);
}
BENCHMARK(W3_chain_handwritten)->Unit(benchmark::kMicrosecond);

void W3_chain_tapegrad(benchmark::State& state) {
  tg::set_num_threads(1);
  tg::Tensor x = tg::arange(0.0, 1.0, 1.0 / double(kChainWidth)).requires_grad(true);
  for (auto _ : state) {
    x.zero_grad();
    tg::Tensor y = x;
    for (int i = 0; i < kChainOps; ++i) y = i % 2 == 0 ? y * 1.0001 + 0.0001 : tg::tanh(y);
    tg::sum(y).backward();
    benchmark::DoNotOptimize(x.grad().raw_data());
  }
  state.counters["us_per_op"] =
      benchmark::Counter(double(kChainOps) * 1e-6, benchmark::Counter::kIsIterationInvariantRate |
                                                       benchmark::Counter::kInvert);
}
BENCHMARK(W3_chain_tapegrad)->Unit(benchmark::kMicrosecond);

// W3 again with anomaly detection on: what the NaN/infinity checks cost when asked for (off, they
// are one test of a thread-local flag per op, inside W3_chain_tapegrad's time).
void W3_chain_tapegrad_anomaly_checks(benchmark::State& state) {
  const tg::AnomalyGuard anomaly;
  W3_chain_tapegrad(state);
}
BENCHMARK(W3_chain_tapegrad_anomaly_checks)->Unit(benchmark::kMicrosecond);

// ---- W4 GEMM ----

void W4_gemm_handwritten(benchmark::State& state) {
  tg::set_num_threads(1);
  tg::Generator gen(4);
  const Matrix a = random_matrix(kGemmSize, kGemmSize, gen);
  const Matrix b = random_matrix(kGemmSize, kGemmSize, gen);
  const Matrix ones = Matrix::Ones(kGemmSize, kGemmSize);
  Matrix c(kGemmSize, kGemmSize), da(kGemmSize, kGemmSize), db(kGemmSize, kGemmSize);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.sum());
    da.noalias() = ones * b.transpose();
    db.noalias() = a.transpose() * ones;
    benchmark::DoNotOptimize(da.data());
    benchmark::DoNotOptimize(db.data());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(kGemmFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(W4_gemm_handwritten)->Unit(benchmark::kMillisecond);

void W4_gemm_tapegrad(benchmark::State& state) {
  tg::set_num_threads(1);
  tg::Generator gen(4);
  tg::Tensor a = as_tensor(random_matrix(kGemmSize, kGemmSize, gen)).requires_grad(true);
  tg::Tensor b = as_tensor(random_matrix(kGemmSize, kGemmSize, gen)).requires_grad(true);
  for (auto _ : state) {
    a.zero_grad();
    b.zero_grad();
    tg::sum(tg::matmul(a, b)).backward();
    benchmark::DoNotOptimize(a.grad().raw_data());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(kGemmFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(W4_gemm_tapegrad)->Unit(benchmark::kMillisecond);

// ---- W5 one epoch of the digits MLP ----

void W5_digits_epoch_tapegrad(benchmark::State& state) {
  use_threads(state);
  tg::nn::Dataset all = tg::nn::load_csv(TAPEGRAD_EXAMPLE_DATA "/digits.csv.gz");
  auto [train, test] = tg::nn::train_test_split(all, 0.2, 0);
  if (train.size() != kDigitsTrainRows) {
    state.SkipWithError("digits.csv.gz no longer splits into kDigitsTrainRows training rows");
    return;
  }
  train.features = tg::nn::Standardizer(train.features)(train.features);
  tg::Generator init(0);
  auto model =
      tg::nn::MLP({kDigitsFeatures, kDigitsHidden, kClasses}, tg::nn::Activation::relu, init);
  tg::nn::AdamW optimizer(model->parameters(), {.lr = 1e-3, .weight_decay = 0.01});
  tg::nn::DataLoader loader(train, kDigitsBatch, true, 0);
  for (auto _ : state) {
    for (const tg::nn::Dataset& batch : loader) {
      optimizer.zero_grad();
      tg::cross_entropy((*model)(batch.features), batch.labels).backward();
      optimizer.step();
    }
  }
}
BENCHMARK(W5_digits_epoch_tapegrad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- W8 one training step of the sequence_prediction LSTM ----

void W8_lstm_step_tapegrad(benchmark::State& state) {
  use_threads(state);
  tg::Generator gen(8);
  const tg::Tensor x = as_tensor(random_matrix(kLstmSequences * kLstmLength, 1, gen))
                           .reshape({kLstmSequences, kLstmLength, 1});
  const tg::Tensor y = as_tensor(random_matrix(kLstmSequences * kLstmLength, 1, gen))
                           .reshape({kLstmSequences, kLstmLength, 1});
  tg::nn::LSTM lstm(1, kLstmHidden, gen);
  tg::nn::Linear head(kLstmHidden, 1, true, gen);
  std::vector<tg::Tensor> parameters = lstm.parameters();
  for (const tg::Tensor& p : head.parameters()) parameters.push_back(p);
  tg::nn::Adam adam(parameters, {.lr = kLstmLearningRate});
  time_steps(state, [&] {
    adam.zero_grad();
    tg::mse_loss(head(lstm(x)), y).backward();
    adam.step();
  });
}
BENCHMARK(W8_lstm_step_tapegrad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- thresholds: the work at which a second thread starts to pay ----

// The loop of ops' elementwise kernels (one contiguous chunk per thread) with no threshold, so
// that it runs on the pool at any size. Arguments: threads, elements, 0 for a + b (memory-bound)
// or 1 for exp (compute-bound). The smallest size at which the default beats one thread is the
// kernel's threshold (kParallelElements).
void Threshold_elementwise(benchmark::State& state) {
  use_threads(state);
  tg::detail::set_adapt_to_load(false);  // what a free core is worth, whatever else runs
  const std::int64_t n = state.range(1);
  const bool exp = state.range(2) == 1;
  tg::Generator gen(6);
  const Matrix a = random_matrix(1, n, gen), b = random_matrix(1, n, gen);
  Matrix out(1, n);
  for (auto _ : state) {
    const std::int64_t chunks = tg::num_threads();
    const std::int64_t size = (n + chunks - 1) / chunks;
    tg::detail::parallel_for(
        chunks, n,
        [&](std::int64_t c) {
          const std::int64_t begin = std::min(n, c * size), count = std::min(n - begin, size);
          auto o = out.middleCols(begin, count).array();
          if (exp) {
            o = a.middleCols(begin, count).array().exp();
          } else {
            o = a.middleCols(begin, count).array() + b.middleCols(begin, count).array();
          }
        },
        0);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(Threshold_elementwise)
    ->ArgNames({"threads", "elements", "exp"})
    ->ArgsProduct({{1, 0}, {1 << 12, 1 << 14, 1 << 16, 1 << 18}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// tg::matmul of n × n matrices, forward only: products of at least kParallelMultiplyAdds
// (ops/matmul.cpp) split over the threads; lower it to 1 to measure below it. Arguments:
// threads, n.
void Threshold_gemm(benchmark::State& state) {
  use_threads(state);
  tg::detail::set_adapt_to_load(false);
  const std::int64_t n = state.range(1);
  tg::Generator gen(7);
  const tg::Tensor a = as_tensor(random_matrix(n, n, gen)), b = as_tensor(random_matrix(n, n, gen));
  for (auto _ : state) benchmark::DoNotOptimize(tg::matmul(a, b).raw_data());
}
BENCHMARK(Threshold_gemm)
    ->ArgNames({"threads", "n"})
    ->ArgsProduct({{1, 0}, {64, 96, 128, 160, 192, 256}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  default_threads = tg::num_threads();
  int busy = 0;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--busy=", 0) == 0) {
      busy = std::stoi(arg.substr(7));
    } else {
      args.push_back(argv[i]);
    }
  }
  const tg::bench::BusyCores spinners(busy);
  int count = int(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  benchmark::AddCustomContext("busy_cores", std::to_string(busy));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
