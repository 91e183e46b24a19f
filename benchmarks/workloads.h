#pragma once
// The benchmark workloads W1-W5, shared by the tapegrad suite and the optional libtorch build so
// both run exactly the same sizes and data.
#include <cstdint>

namespace tg::bench {

// W1: softmax over the rows of X, L = Σ softmax(X) ∘ G, forward and backward.
inline constexpr std::int64_t kSoftmaxRows = 256;
inline constexpr std::int64_t kSoftmaxCols = 1000;

// W2: MLP 64 → 128 (tanh) → 128 (relu) → 10, batch 64, softmax cross-entropy, one SGD step.
inline constexpr std::int64_t kBatch = 64;
inline constexpr std::int64_t kInputs = 64;
inline constexpr std::int64_t kHidden = 128;
inline constexpr std::int64_t kClasses = 10;
inline constexpr float kLearningRate = 0.01f;

// W3: a chain of 1000 ops on 16 floats, alternating x·1.0001 + 0.0001 and tanh, sum, backward.
inline constexpr int kChainOps = 1000;
inline constexpr std::int64_t kChainWidth = 16;

// W4: C = A·B for 512 × 512 matrices, L = Σ C, forward and backward (three GEMMs).
inline constexpr std::int64_t kGemmSize = 512;
inline constexpr double kGemmFlops = 3.0 * 2.0 * kGemmSize * kGemmSize * kGemmSize;

}  // namespace tg::bench
