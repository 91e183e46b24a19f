// Tensors crossing threads the way users hand them over: a worker's loss read and dropped by the
// main thread, batches made by a producer thread, one model's forward run by several threads.
// The CI's ThreadSanitizer stage runs these (with OpenMP off).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "tapegrad.h"

namespace tg {
namespace {

// A minimal blocking queue: what a training program uses to pass tensors between threads.
class Channel {
 public:
  void push(Tensor t) {
    {
      const std::lock_guard lock(mutex_);
      items_.push_back(std::move(t));
    }
    ready_.notify_one();
  }
  void close() {
    {
      const std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }
  std::optional<Tensor> pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    Tensor t = std::move(items_.front());
    items_.pop_front();
    return t;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Tensor> items_;
  bool closed_ = false;
};

// Steps of a small regression on the calling thread's default tape; each step's loss (still
// linked to its graph) goes to `out` when given.
std::vector<double> train(int steps, Channel* out) {
  Generator gen(11);
  nn::Linear layer(4, 1, true, gen, f64);
  nn::SGD optimizer(layer.parameters(), {.lr = 0.05});
  const Tensor x = randn({16, 4}, gen, f64);
  const Tensor y = randn({16, 1}, gen, f64);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    Tensor loss = mse_loss(layer(x), y);
    loss.backward();
    optimizer.step();
    losses.push_back(loss.item());
    if (out) out->push(loss);  // a copy: this thread keeps its handle until the next step
  }
  return losses;
}

TEST(Threads, AWorkersLossesReadAndDroppedByTheMainThread) {
  constexpr int kSteps = 2000;
  const std::vector<double> expected = train(kSteps, nullptr);
  Channel channel;
  std::vector<double> got;
  std::atomic<bool> all_dropped = false;
  std::size_t entries_left = 0;
  std::thread worker([&] {
    train(kSteps, &channel);
    channel.close();
    while (!all_dropped) std::this_thread::yield();
    // The next op applies the handle drops queued by the main thread.
    Tensor probe = tensor({1.0}, f64);
    probe.requires_grad(true);
    const Tensor doubled = probe * 2.0;
    entries_left = default_tape().size();
  });
  while (std::optional<Tensor> loss = channel.pop()) {
    const Tensor another_handle = *loss;  // copies and drops on this thread too
    got.push_back(another_handle.item());
  }
  all_dropped = true;
  worker.join();
  EXPECT_EQ(got, expected);
  // Every loss handle is gone, so the worker's tape reclaimed its graphs: one entry is left (the
  // probe), not the 2,000 losses' entries that handles counted as alive would pin.
  EXPECT_EQ(entries_left, 1u);
}

TEST(Threads, AHandleOutlivingItsThreadsTapeStaysReadable) {
  Tensor kept;
  std::thread worker([&] {
    Tensor x = tensor({1.0, 2.0}, f64).requires_grad(true);
    kept = sum(x * x);
  });
  worker.join();  // the worker's default tape is gone now
  EXPECT_DOUBLE_EQ(kept.item(), 5.0);
  const Tensor copy = kept;
  EXPECT_DOUBLE_EQ(copy.item(), 5.0);
  try {
    kept.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another thread"), std::string::npos) << e.what();
  }
}

TEST(Threads, BatchesFromAProducerThreadTrainLikeBatchesMadeInPlace) {
  constexpr int kBatches = 200;
  const auto make_batch = [](Generator& gen) { return randn({8, 4}, gen, f64); };
  const auto train_on = [](const std::vector<Tensor>& batches) {
    Generator init(5);
    nn::Linear layer(4, 2, true, init, f64);
    nn::Adam optimizer(layer.parameters(), {.lr = 0.01});
    for (const Tensor& batch : batches) {
      optimizer.zero_grad();
      sum(tanh(layer(batch))).backward();
      optimizer.step();
    }
    return layer.weight.to_vector();
  };
  Generator gen(9);
  std::vector<Tensor> in_place;
  for (int i = 0; i < kBatches; ++i) in_place.push_back(make_batch(gen));
  const std::vector<double> expected = train_on(in_place);

  Channel channel;
  std::thread producer([&] {
    Generator producer_gen(9);
    for (int i = 0; i < kBatches; ++i) channel.push(make_batch(producer_gen));
    channel.close();
  });
  std::vector<Tensor> received;
  while (std::optional<Tensor> batch = channel.pop()) received.push_back(*batch);
  producer.join();
  EXPECT_EQ(train_on(received), expected);
}

TEST(Threads, OneModelsForwardOnSeveralThreadsAtOnce) {
  Generator gen(4);
  const std::shared_ptr<nn::Sequential> mlp = nn::MLP({6, 16, 3}, nn::Activation::relu, gen, f64);
  nn::Sequential& model = *mlp;
  const Tensor input = randn({32, 6}, gen, f64);
  const std::vector<double> expected = model(input).to_vector();
  constexpr int kThreads = 4;
  std::vector<std::vector<double>> outputs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int repeat = 0; repeat < 50; ++repeat) {
        // Recorded (the parameters require grad) on each thread's own tape, then dropped.
        outputs[t] = model(input).to_vector();
        const NoGradGuard evaluation;
        EXPECT_EQ(model(input).to_vector(), expected);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& out : outputs) EXPECT_EQ(out, expected);
}

}  // namespace
}  // namespace tg
