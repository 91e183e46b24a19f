#pragma once
// The benchmark workloads W1-W8, shared by the tapegrad suite and the optional libtorch build so
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

// W5: one epoch of examples/train_digits: MLP 64 → 256 (relu) → 10 over the 1,438 training rows
// of digits.csv.gz (80 % of 1,797), shuffled batches of 32 (the last one 30), cross-entropy, AdamW
// (lr 1e-3, decay 0.01). libtorch and PyTorch train on random rows of the same shapes: the time
// of a step does not depend on the values.
inline constexpr std::int64_t kDigitsTrainRows = 1438;
inline constexpr std::int64_t kDigitsFeatures = 64;
inline constexpr std::int64_t kDigitsHidden = 256;
inline constexpr std::int64_t kDigitsBatch = 32;

// W8: one training step of examples/sequence_prediction: an LSTM 1 → 16 over 64 sequences of 23
// steps, a linear head 16 → 1 on every step, mean squared error, one Adam step (lr 0.01). A few
// hundred small ops a step: the per-op overhead decides it.
inline constexpr std::int64_t kLstmSequences = 64;
inline constexpr std::int64_t kLstmLength = 23;
inline constexpr std::int64_t kLstmHidden = 16;
inline constexpr double kLstmLearningRate = 0.01;

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

// W7: one training step of examples/train_char_gpt's model (nanoGPT's train_shakespeare_char on
// a CPU): 4 pre-LayerNorm blocks, 4 heads, 128 channels, context 64, vocabulary 65, no biases,
// tied embeddings, GELU (tanh); batch 12 of random tokens; cross-entropy, backward, gradient
// clipping at 1, one AdamW step (decay 0.1 on matrices, β₂ 0.99).
inline constexpr std::int64_t kGptBatch = 12;
inline constexpr std::int64_t kGptContext = 64;
inline constexpr std::int64_t kGptLayers = 4;
inline constexpr std::int64_t kGptHeads = 4;
inline constexpr std::int64_t kGptChannels = 128;
inline constexpr std::int64_t kGptVocab = 65;
// Multiply-adds ×2 of the step's matrix products: per block the q/k/v, output and two MLP
// projections (24·N·E² for N = B·T positions) and attention's two products (4·B·T²·E), then the
// output head (2·N·E·V); the backward pass costs twice the forward.
inline constexpr double kGptFlops =
    3.0 * (kGptLayers * (24.0 * kGptBatch * kGptContext * kGptChannels * kGptChannels +
                         4.0 * kGptBatch * kGptContext * kGptContext * kGptChannels) +
           2.0 * kGptBatch * kGptContext * kGptChannels * kGptVocab);

// The attention row: scaled_dot_product_attention, causal, [B, H, T, D] = [12, 4, T, 32] for
// T = 64 and 256, forward and backward.
inline constexpr std::int64_t kAttentionBatch = 12;
inline constexpr std::int64_t kAttentionHeads = 4;
inline constexpr std::int64_t kAttentionDim = 32;

}  // namespace tg::bench
