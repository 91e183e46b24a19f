#pragma once
// The benchmark workloads W1-W6, shared by the tapegrad suite and the optional libtorch build so
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

// W6: one training step of examples/train_digits_cnn's network at batch 64 on 1×8×8 images:
// conv 1→16 (3×3, padding 1), batch norm, relu; conv 16→32 (3×3, padding 1), batch norm, relu,
// 2×2 max pool; flatten; linear 512→10; softmax cross-entropy; one Adam step.
inline constexpr std::int64_t kCnnBatch = 64;
inline constexpr std::int64_t kCnnSide = 8;
inline constexpr std::int64_t kCnnChannels1 = 16;
inline constexpr std::int64_t kCnnChannels2 = 32;
inline constexpr double kCnnLearningRate = 1e-3;

// The conv row: conv2d of [32, 64, 32, 32] by [64, 64, 3, 3] with padding 1, forward and backward
// (the input's and the weight's gradients: three GEMMs of the same size).
inline constexpr std::int64_t kConvBatch = 32;
inline constexpr std::int64_t kConvChannels = 64;
inline constexpr std::int64_t kConvSide = 32;
inline constexpr double kConvFlops =
    3.0 * 2.0 * kConvBatch * kConvChannels * kConvChannels * 9 * kConvSide * kConvSide;

}  // namespace tg::bench
