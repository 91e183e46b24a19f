// The thread pool behind detail::parallel_for: every index exactly once, the same results for one
// and several threads, exceptions reaching the caller, nested and concurrent calls finishing, and
// set_num_threads taking effect on the next call.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../expect_error.h"
#include "tapegrad.h"

namespace tg {
namespace {

// With the load of the machine ignored: other processes must not change which threads run.
class ParallelFor : public ::testing::Test {
 protected:
  void SetUp() override { detail::set_adapt_to_load(false); }
  void TearDown() override {
    detail::set_adapt_to_load(true);
    set_num_threads(threads_before_);
  }

 private:
  int threads_before_ = num_threads();
};

// The threads that ran a parallel_for of `count` blocks, each block waiting (up to `patience`)
// until `expected` threads have shown up, so that a pool which starts its threads late is still
// seen whole and one which never starts them fails instead of hanging.
std::set<std::thread::id> threads_seen(
    std::int64_t count, std::size_t expected,
    std::chrono::milliseconds patience = std::chrono::seconds(10)) {
  std::mutex mutex;
  std::set<std::thread::id> seen;
  detail::parallel_for(
      count, 1,
      [&](std::int64_t) {
        const auto deadline = std::chrono::steady_clock::now() + patience;
        std::unique_lock lock(mutex);
        seen.insert(std::this_thread::get_id());
        while (seen.size() < expected && std::chrono::steady_clock::now() < deadline) {
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          lock.lock();
        }
      },
      0);
  return seen;
}

TEST_F(ParallelFor, RunsEveryIndexExactlyOnceAtAnyThreadCount) {
  for (const int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    for (const std::int64_t count : {2, 7, 33, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(count));
      detail::parallel_for(
          count, 1, [&](std::int64_t i) { ++hits[std::size_t(i)]; }, 0);
      for (std::int64_t i = 0; i < count; ++i) {
        EXPECT_EQ(hits[std::size_t(i)].load(), 1)
            << "index " << i << " of " << count << ", " << threads << " threads";
      }
    }
  }
}

TEST_F(ParallelFor, ThreadCountChangesTakeEffectOnTheNextCall) {
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  EXPECT_EQ(threads_seen(12, 3).size(), 3u);
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  const std::set<std::thread::id> alone = threads_seen(12, 1);
  EXPECT_EQ(alone, std::set{std::this_thread::get_id()});
  set_num_threads(2);
  EXPECT_EQ(threads_seen(12, 2).size(), 2u);
}

// What another process holding a core looks like to the pool: the thread that claimed a block
// finishes it long after the caller is done with its own. After such jobs the caller runs the
// next ones alone (10 ms after the first, doubling while they keep losing), until the thread
// count is set again.
TEST_F(ParallelFor, AfterJobsThatWaitedForALateThreadTheCallerRunsAlone) {
  set_num_threads(2);
  const std::thread::id caller = std::this_thread::get_id();
  for (int lost = 0; lost < 5; ++lost) {
    std::atomic<bool> claimed{false};
    detail::parallel_for(
        8, 1,
        [&](std::int64_t) {
          if (std::this_thread::get_id() != caller) {
            claimed = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            return;
          }
          const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (!claimed && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
        },
        0);
    ASSERT_TRUE(claimed) << "the pool's thread never took a block";
    // Past this loss's serial period (10, 20, 40, 80 ms), so that the next job probes again.
    if (lost < 4) std::this_thread::sleep_for(std::chrono::milliseconds(15 << lost));
  }
  // The fifth loss in a row: 160 ms on the caller alone.
  EXPECT_EQ(threads_seen(4, 2, std::chrono::milliseconds(5)), std::set{caller});
  set_num_threads(2);
  EXPECT_EQ(threads_seen(4, 2).size(), 2u);
}

TEST_F(ParallelFor, WorkBelowTheThresholdStaysOnTheCallingThread) {
  set_num_threads(2);
  std::set<std::thread::id> seen;
  detail::parallel_for(100, detail::kParallelElements - 1,
                       [&](std::int64_t) { seen.insert(std::this_thread::get_id()); });
  EXPECT_EQ(seen, std::set{std::this_thread::get_id()});
}

TEST_F(ParallelFor, AnExceptionInTheBodyReachesTheCaller) {
  for (const int threads : {1, 2, 4}) {
    set_num_threads(threads);
    std::atomic<int> ran{0};
    test_support::expect_error_containing(
        [&] {
          detail::parallel_for(
              1000, 1,
              [&](std::int64_t i) {
                ++ran;
                if (i == 537) fail("kernel: bad element {}", i);
              },
              0);
        },
        "kernel: bad element 537");
    EXPECT_GE(ran.load(), 1);
    // The pool is usable afterwards.
    std::atomic<std::int64_t> total{0};
    detail::parallel_for(
        1000, 1, [&](std::int64_t i) { total += i; }, 0);
    EXPECT_EQ(total.load(), 999 * 1000 / 2) << threads << " threads";
  }
}

TEST_F(ParallelFor, NestedCallsRunInsideTheOuterOne) {
  set_num_threads(2);
  std::atomic<std::int64_t> total{0};
  detail::parallel_for(
      16, 1,
      [&](std::int64_t i) {
        detail::parallel_for(
            100, 1, [&](std::int64_t j) { total += i * 100 + j; }, 0);
      },
      0);
  EXPECT_EQ(total.load(), 1599 * 1600 / 2);
}

TEST_F(ParallelFor, CallsFromSeveralThreadsAtOnceAllFinish) {
  set_num_threads(2);
  std::vector<std::int64_t> totals(4);
  std::vector<std::thread> callers;
  for (std::size_t t = 0; t < totals.size(); ++t) {
    callers.emplace_back([&, t] {
      for (int repeat = 0; repeat < 200; ++repeat) {
        std::atomic<std::int64_t> total{0};
        detail::parallel_for(
            64, 1, [&](std::int64_t i) { total += i; }, 0);
        totals[t] += total.load();
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  for (const std::int64_t total : totals) EXPECT_EQ(total, 200 * 63 * 64 / 2);
}

TEST_F(ParallelFor, AThreadCountBelowOneIsAnError) {
  test_support::expect_error_containing([] { set_num_threads(0); },
                                        "set_num_threads: expected at least one thread, got 0");
  EXPECT_GE(num_threads(), 1);
}

// Kernels split over the pool compute each output element on one thread, with the same
// arithmetic: bit for bit the results of one thread. Sizes are above every threshold, with odd
// rows and columns so that the products' tails (rows that are not a whole panel) are split too.
TEST_F(ParallelFor, KernelResultsAreIdenticalForOneAndSeveralThreads) {
  Generator gen(11);
  const Tensor x = randn({517, 301}, gen), w = randn({263, 301}, gen), v = randn({301, 263}, gen);
  const Tensor wide = randn({37, 300}, gen), tall = randn({300, 2001}, gen);
  const Tensor column = randn({301, 1}, gen), big = randn({4001, 301}, gen);
  const Tensor batch_a = randn({6, 120, 130}, gen), batch_b = randn({6, 130, 140}, gen);
  const Tensor bias = randn({263}, gen), x64 = randn({517, 301}, gen).to(f64);
  const Tensor a = randn({517, 301}, gen).requires_grad(true);
  const Tensor b = randn({301, 263}, gen).requires_grad(true);
  const Tensor cotangent = randn({517, 263}, gen);
  const auto compute = [&] {
    // The backward pass multiplies by transposed operands: a's gradient is g·bᵀ, b's is aᵀ·g.
    const std::vector<Tensor> ab = grad(matmul(a, b), {a, b}, cotangent);
    return std::vector<Tensor>{ab[0],
                               ab[1],
                               softmax(x, 1),
                               log_softmax(x, 0),
                               exp(x),
                               x * x + x,
                               matmul(x, v),
                               matmul(transpose(x), x),
                               matmul(wide, tall),
                               matmul(big, column),
                               matmul(batch_a, batch_b),
                               linear(x, w, bias),
                               matmul(x64, v.to(f64))};
  };
  set_num_threads(1);
  const std::vector<Tensor> one = compute();
  for (const int threads : {2, 3}) {
    set_num_threads(threads);
    const std::vector<Tensor> several = compute();
    for (std::size_t i = 0; i < one.size(); ++i) {
      EXPECT_EQ(one[i].to_vector(), several[i].to_vector())
          << "result " << i << " with " << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace tg
