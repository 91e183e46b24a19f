// Deep graphs, threads and memory that stays flat.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "tapegrad.h"

namespace tg {
namespace {

double resident_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

TEST(Reliability, MillionOpChainBackpropagatesWithoutRecursion) {
  Tensor x = tensor({0.5}, f64).requires_grad(true);
  Tensor y = x;
  for (int i = 0; i < 1'000'000; ++i) y = i % 2 == 0 ? y * 1.000001 : y - 1e-7;
  sum(y).backward();
  EXPECT_NEAR(x.grad().item(), std::pow(1.000001, 500'000), 1e-9);
}

TEST(Reliability, DefaultTapeGivesBackTheMemoryOfAOneOffHugeGraph) {
  Tensor x = tensor({0.5}, f64).requires_grad(true);
  {
    Tensor y = x;
    for (int i = 0; i < 200'000; ++i) y = y * 1.000001;
    EXPECT_GT(default_tape().reserved_bytes(), std::size_t(200'000) * 64);
    sum(y).backward();
  }
  // Ordinary steps afterwards: the first reclaims the huge graph's entries, the next one, of
  // ordinary size, returns the capacity the huge one left behind.
  for (int step = 0; step < 2; ++step) sum(x * 2.0).backward();
  EXPECT_LT(default_tape().reserved_bytes(), std::size_t(1) << 20);
  // A steady loop keeps its storage: no reallocation from one step to the next.
  const std::size_t steady = default_tape().reserved_bytes();
  for (int step = 0; step < 10; ++step) sum(tanh(x * 2.0)).backward();
  EXPECT_EQ(default_tape().reserved_bytes(), steady);
}

std::vector<std::vector<double>> train_iris(std::uint64_t seed) {
  nn::Dataset iris = nn::load_csv(std::string(TAPEGRAD_TEST_DATA) + "/iris.csv", {.skip_lines = 1});
  iris.features = nn::Standardizer(iris.features)(iris.features);
  Generator init(seed);
  auto model = nn::MLP({4, 16, 3}, nn::Activation::tanh, init);
  nn::Adam optimizer(model->parameters(), {.lr = 0.01});
  nn::DataLoader loader(iris, 16, true, seed);
  for (int epoch = 0; epoch < 20; ++epoch) {
    for (const nn::Dataset& batch : loader) {
      optimizer.zero_grad();
      cross_entropy((*model)(batch.features), batch.labels).backward();
      optimizer.step();
    }
  }
  std::vector<std::vector<double>> parameters;
  for (const Tensor& p : model->parameters()) parameters.push_back(p.to_vector());
  return parameters;
}

TEST(Reliability, TwoThreadsTrainIndependentModelsExactlyAsOneAfterTheOther) {
  const auto sequential_a = train_iris(1);
  const auto sequential_b = train_iris(2);
  std::vector<std::vector<double>> parallel_a, parallel_b;
  std::thread first([&] { parallel_a = train_iris(1); });
  std::thread second([&] { parallel_b = train_iris(2); });
  first.join();
  second.join();
  EXPECT_EQ(parallel_a, sequential_a);
  EXPECT_EQ(parallel_b, sequential_b);
  EXPECT_NE(sequential_a, sequential_b);
}

TEST(Reliability, UsingAnotherThreadsGraphIsDetected) {
  Tensor x = tensor({1.0, 2.0}).requires_grad(true);
  Tensor y = tanh(x);  // recorded on this thread's tape
  std::string backward_error, record_error;
  std::thread other([&] {
    try {
      sum(y).backward();
    } catch (const Error& e) {
      record_error = e.what();
    }
    try {
      y.backward(ones({2}));
    } catch (const Error& e) {
      backward_error = e.what();
    }
  });
  other.join();
  EXPECT_NE(record_error.find("sum: the tensor was recorded on another thread's tape"),
            std::string::npos)
      << record_error;
  EXPECT_NE(backward_error.find("backward: the tensor was recorded on another thread's tape"),
            std::string::npos)
      << backward_error;
  EXPECT_NO_THROW(sum(y).backward());  // on its own thread it is fine
}

// A rule that signals that its backward pass holds the shared leaf, then waits until the other
// thread has tried to backpropagate into the same leaf: the overlap the check exists for, made
// certain instead of left to timing.
std::atomic<bool> leaf_held{false};
std::atomic<bool> other_thread_tried{false};

void wait_for(const std::atomic<bool>& flag) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!flag && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
}

const CustomOp wait_for_other_thread{"wait_for_other_thread", "dx = g",
                                     [](ForwardContext& ctx) { return ctx.input(0).copy(); },
                                     [](BackwardContext& ctx) {
                                       leaf_held = true;
                                       wait_for(other_thread_tried);
                                       ctx.set_grad(0, ctx.grad_output());
                                     }};

TEST(Reliability, TwoThreadsBackpropagatingIntoOneLeafAtOnceIsDetected) {
  Tensor shared = tensor({1.0, 2.0}, f64).requires_grad(true);
  std::string other_error;
  std::thread other([&] {
    wait_for(leaf_held);
    try {
      sum(shared * 2.0).backward();
    } catch (const Error& e) {
      other_error = e.what();
    }
    other_thread_tried = true;
  });
  // Reverse order: the add's rule hands the leaf its gradient first, then the waiting rule runs.
  sum(wait_for_other_thread(shared * 3.0) + shared).backward();
  other.join();
  EXPECT_NE(other_error.find("backward: a tensor of shape [2] that requires grad is being "
                             "differentiated by another thread at the same time"),
            std::string::npos)
      << other_error;
  // This thread's pass completed (1 + 3 per element), the other thread's left nothing behind, and
  // once nobody holds the leaf, another thread may backpropagate into it.
  EXPECT_EQ(shared.grad().to_vector(), std::vector<double>({4.0, 4.0}));
  std::thread after([&] { sum(shared * 2.0).backward(); });
  after.join();
  EXPECT_EQ(shared.grad().to_vector(), std::vector<double>({6.0, 6.0}));
}

// AddressSanitizer keeps freed memory in quarantine (256 MiB by default), so resident memory grows
// by design under it: there the loop is shorter and only LeakSanitizer judges it.
#ifdef __SANITIZE_ADDRESS__
constexpr int kSteps = 2'000;
constexpr bool kMeasureResidentMemory = false;
#else
constexpr int kSteps = 10'000;
constexpr bool kMeasureResidentMemory = true;
#endif

TEST(Reliability, TenThousandTrainingStepsKeepMemoryFlat) {
  nn::Dataset digits = nn::load_csv(std::string(TAPEGRAD_TEST_DATA) + "/digits.csv.gz");
  digits.features = nn::Standardizer(digits.features)(digits.features);
  Generator init(3);
  auto model = nn::MLP({64, 256, 10}, nn::Activation::relu, init);
  nn::AdamW optimizer(model->parameters(), {.lr = 1e-3});
  nn::DataLoader loader(digits, 32, true, 3);
  int steps = 0;
  double after_warm_up = 0;
  while (steps < kSteps) {
    for (const nn::Dataset& batch : loader) {
      optimizer.zero_grad();
      Tensor loss = cross_entropy((*model)(batch.features), batch.labels);
      loss.backward();
      optimizer.step();
      if (++steps == 1'000) after_warm_up = resident_mib();
      if (steps == kSteps) break;
    }
  }
  const double end = resident_mib();
  std::cout << "[ memory ] resident " << after_warm_up << " MiB after 1,000 steps, " << end
            << " MiB after " << kSteps << "\n";
  if (kMeasureResidentMemory) {
    EXPECT_LT(end - after_warm_up, 2.0);
  }
  EXPECT_EQ(default_tape().size(), 0u);
}

}  // namespace
}  // namespace tg
