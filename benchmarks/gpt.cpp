// W7 (a training step of examples/train_char_gpt's GPT) and the attention row (causal
// scaled_dot_product_attention forward and backward) in tapegrad; torch_bench.cpp has the same in
// libtorch and scripts/bench_pytorch.py in PyTorch.
#include <benchmark/benchmark.h>

#include "benchmarks/common.h"
#include "benchmarks/workloads.h"
#include "tapegrad.h"

namespace {

using namespace tg::bench;

void W7_gpt_step_tapegrad(benchmark::State& state) {
  use_threads(state);
  using namespace tg::nn;
  tg::Generator init(7);
  GPT model({.vocab_size = kGptVocab,
             .block_size = kGptContext,
             .n_layer = kGptLayers,
             .n_head = kGptHeads,
             .n_embd = kGptChannels,
             .bias = false},
            init);
  AdamW adamw(weight_decay_groups(model, AdamWOptions{.beta2 = 0.99, .weight_decay = 0.1},
                                  /*exclude_embeddings=*/false));
  tg::Generator data(8);
  const tg::Tensor x = tg::randint(0, kGptVocab, {kGptBatch, kGptContext}, data);
  const tg::Tensor y = tg::randint(0, kGptVocab, {kGptBatch, kGptContext}, data);
  const std::vector<tg::Tensor> parameters = model.parameters();
  const auto step = [&] {
    adamw.zero_grad();
    tg::Tensor loss = model.loss(model(x), y);
    loss.backward();
    clip_grad_norm(parameters, 1.0);
    adamw.step();
    benchmark::DoNotOptimize(loss.raw_data());
  };
  time_steps(state, step, 3);
  state.counters["GFLOPs"] =
      benchmark::Counter(kGptFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(W7_gpt_step_tapegrad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void Attention_tapegrad(benchmark::State& state) {
  tg::set_num_threads(1);
  const std::int64_t t = state.range(0);
  tg::Generator gen(9);
  const tg::Shape shape{kAttentionBatch, kAttentionHeads, t, kAttentionDim};
  tg::Tensor q = tg::randn(shape, gen).requires_grad(true);
  tg::Tensor k = tg::randn(shape, gen).requires_grad(true);
  tg::Tensor v = tg::randn(shape, gen).requires_grad(true);
  const tg::Tensor g = tg::randn(shape, gen);
  for (auto _ : state) {
    for (tg::Tensor* p : {&q, &k, &v}) p->zero_grad();
    tg::sum(tg::scaled_dot_product_attention(q, k, v, {.is_causal = true}) * g).backward();
    benchmark::DoNotOptimize(q.grad().raw_data());
  }
}
BENCHMARK(Attention_tapegrad)->ArgName("T")->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace
