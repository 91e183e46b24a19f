#pragma once
// Attention modules with PyTorch's names, parameter names, layouts and initialisation, and a
// GPT-2-style language model (nanoGPT's names) built from them.
#include <cstdint>
#include <optional>
#include <string>

#include "nn/container.h"
#include "nn/module.h"
#include "ops/transformer.h"

namespace tg::nn {

// What one call of MultiheadAttention::attend takes besides query, key and value.
// key_padding_mask [N, S] (bool: true = ignore that key; or floating, added); attn_mask [L, S] or
// [N·num_heads, L, S] (bool: true = not allowed, as nn.MultiheadAttention — the opposite of
// scaled_dot_product_attention's bool mask; or floating, added). need_weights returns the
// attention weights, averaged over heads when average_attn_weights.
struct AttentionCall {
  Tensor key_padding_mask{};
  Tensor attn_mask{};
  bool need_weights = true;
  bool average_attn_weights = true;
  bool is_causal = false;
};

struct AttentionOutput {
  Tensor output;
  Tensor weights;  // undefined unless need_weights
};

// The Linear PyTorch's MultiheadAttention uses as out_proj: a Linear that prints under its name.
class NonDynamicallyQuantizableLinear : public Linear {
 public:
  using Linear::Linear;
  std::string describe() const override { return "NonDynamicallyQuantizable" + Linear::describe(); }
};

// torch.nn.MultiheadAttention as PyTorch 1.13 (embed_dim = kdim = vdim): in_proj_weight [3E, E]
// xavier_uniform, in_proj_bias [3E] zeros, out_proj (a Linear E -> E, bias zeroed). Inputs
// [L, N, E], or [N, L, E] when batch_first, or unbatched [L, E] (then key_padding_mask is [S] and
// a 3-D attn_mask [num_heads, L, S]). Output as the query; weights [N, L, S] averaged over heads
// or [N, num_heads, L, S] (unbatched without N). Dropout acts on the attention weights in
// training only. is_causal masks key j > i (the causal mask itself, not PyTorch 2's hint: an
// error together with attn_mask). Without need_weights one scaled_dot_product_attention call;
// with it the weights are formed explicitly. A query whose every key is masked gets output 0
// (scaled_dot_product_attention's rule; PyTorch 1.13 gives NaN). A floating key_padding_mask is
// added, also together with a floating attn_mask (PyTorch 1.13 refuses that pair).
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads, double dropout = 0.0,
                     bool bias = true, bool batch_first = false,
                     Generator& generator = default_generator(), DType dtype = f32);
  AttentionOutput attend(const Tensor& query, const Tensor& key, const Tensor& value,
                         const AttentionCall& call = {});
  // Self-attention without masks: attend(x, x, x).output.
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Tensor in_proj_weight;
  Tensor in_proj_bias;
  ModuleHolder<Linear> out_proj{nullptr};

 private:
  // "MultiheadAttention(embed_dim=E, num_heads=H)": what errors are headed by.
  std::string name() const;
  std::int64_t embed_dim_;
  std::int64_t num_heads_;
  double dropout_;
  bool batch_first_;
  Generator dropout_generator_;
};

enum class TransformerActivation { relu, gelu };

struct TransformerEncoderLayerOptions {
  std::int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  TransformerActivation activation = TransformerActivation::relu;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;
};

// torch.nn.TransformerEncoderLayer: self_attn, linear1, dropout, linear2, norm1, norm2, dropout1,
// dropout2, with PyTorch's names and order; post-norm by default, pre-norm with norm_first.
class TransformerEncoderLayer : public Module {
 public:
  TransformerEncoderLayer(std::int64_t d_model, std::int64_t nhead,
                          const TransformerEncoderLayerOptions& options = {},
                          Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& src) override;
  Tensor forward(const Tensor& src, const Tensor& src_mask, const Tensor& src_key_padding_mask = {},
                 bool is_causal = false);
  std::string describe() const override;
  ModuleHolder<MultiheadAttention> self_attn{nullptr};
  ModuleHolder<Linear> linear1{nullptr};
  ModuleHolder<Dropout> dropout{nullptr};
  ModuleHolder<Linear> linear2{nullptr};
  ModuleHolder<LayerNorm> norm1{nullptr};
  ModuleHolder<LayerNorm> norm2{nullptr};
  ModuleHolder<Dropout> dropout1{nullptr};
  ModuleHolder<Dropout> dropout2{nullptr};

 private:
  TransformerEncoderLayerOptions options_;
};

// nanoGPT's model configuration; the defaults are its train_shakespeare_char CPU settings.
struct GPTConfig {
  std::int64_t vocab_size = 65;
  std::int64_t block_size = 64;  // context length
  std::int64_t n_layer = 4;
  std::int64_t n_head = 4;
  std::int64_t n_embd = 128;
  double dropout = 0.0;
  bool bias = true;
};

// nanoGPT's CausalSelfAttention: c_attn (Linear E -> 3E), causal scaled_dot_product_attention
// over n_head heads, c_proj (Linear E -> E), residual dropout. Input [B, T, E].
class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(const GPTConfig& config, Generator& generator = default_generator(),
                      DType dtype = f32);
  Tensor forward(const Tensor& x) override;
  ModuleHolder<Linear> c_attn{nullptr};
  ModuleHolder<Linear> c_proj{nullptr};
  ModuleHolder<Dropout> resid_dropout{nullptr};

 private:
  std::int64_t n_embd_;
  std::int64_t n_head_;
  double dropout_;
  Generator attention_generator_;
};

// nanoGPT's MLP: c_fc (E -> 4E), GELU (tanh approximation), c_proj (4E -> E), dropout.
class GPTMLP : public Module {
 public:
  GPTMLP(const GPTConfig& config, Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& x) override;
  ModuleHolder<Linear> c_fc{nullptr};
  ModuleHolder<Linear> c_proj{nullptr};
  ModuleHolder<Dropout> dropout{nullptr};
};

// A pre-LayerNorm GPT-2 block: x + attn(ln_1(x)), then + mlp(ln_2(x)).
class GPTBlock : public Module {
 public:
  GPTBlock(const GPTConfig& config, Generator& generator = default_generator(), DType dtype = f32);
  Tensor forward(const Tensor& x) override;
  ModuleHolder<LayerNorm> ln_1{nullptr};
  ModuleHolder<CausalSelfAttention> attn{nullptr};
  ModuleHolder<LayerNorm> ln_2{nullptr};
  ModuleHolder<GPTMLP> mlp{nullptr};
};

// nanoGPT's GPT: token (wte) and learned position (wpe) embeddings, dropout, n_layer blocks
// (h.0, h.1, ...), ln_f, all in the ModuleDict `transformer` (so the state_dict names are
// nanoGPT's: transformer.wte.weight, transformer.h.0.attn.c_attn.weight, ..., lm_head.weight),
// and lm_head whose weight IS wte's (weight tying: one parameter, listed once by parameters() as
// transformer.wte.weight, its gradient the sum of both uses; state_dict has both names, as
// PyTorch's). Initialisation as nanoGPT: N(0, 0.02) Linear and Embedding weights, zero biases,
// c_proj weights N(0, 0.02/√(2·n_layer)). Input int64 [B, T] with T ≤ block_size -> logits
// [B, T, vocab] (every position, also in generate).
class GPT : public Module {
 public:
  explicit GPT(const GPTConfig& config, Generator& generator = default_generator(),
               DType dtype = f32);
  Tensor forward(const Tensor& idx) override;
  // Mean cross-entropy of the logits [B, T, V] reshaped to [B·T, V] against int64 targets [B, T];
  // a target of −1 is ignored, as nanoGPT's.
  Tensor loss(const Tensor& logits, const Tensor& targets) const;
  // Appends max_new_tokens tokens to idx [B, T], each drawn from the last position's softmax of
  // logits/temperature, restricted to the top_k (0 = all) most likely; the context is cropped to
  // block_size. Runs without recording.
  Tensor generate(const Tensor& idx, std::int64_t max_new_tokens, Generator& generator,
                  double temperature = 1.0, std::int64_t top_k = 0);
  const GPTConfig& config() const { return config_; }
  ModuleHolder<ModuleDict> transformer{nullptr};
  ModuleHolder<Embedding> wte{nullptr};
  ModuleHolder<Embedding> wpe{nullptr};
  ModuleHolder<Dropout> drop{nullptr};
  ModuleHolder<ModuleList> h{nullptr};
  ModuleHolder<LayerNorm> ln_f{nullptr};
  ModuleHolder<Linear> lm_head{nullptr};

 private:
  GPTConfig config_;
};

}  // namespace tg::nn
