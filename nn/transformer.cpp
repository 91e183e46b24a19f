#include "nn/transformer.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>

#include "autograd/op.h"
#include "nn/init.h"
#include "ops/everyday.h"

namespace tg::nn {
namespace {

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

// [N, T, H·D] -> [N, H, T, D]: the heads as a batch dimension for attention.
Tensor split_heads(const Tensor& x, std::int64_t heads) {
  const Shape& s = x.shape();
  return transpose(reshape(x, {s[0], s[1], heads, s[2] / heads}), 1, 2);
}

// [N, H, T, D] -> [N, T, H·D].
Tensor merge_heads(const Tensor& x) {
  const Shape& s = x.shape();
  return reshape(transpose(x, 1, 2), {s[0], s[2], s[1] * s[3]});
}

// A bool "not allowed" mask as an additive one of `dtype`: −inf where true, 0 elsewhere.
Tensor additive(const Tensor& mask, DType dtype) {
  return mask.dtype() == DType::b8 ? where(mask, full({}, kMinusInf, dtype), 0.0) : mask;
}

void for_each_module(Module& module, const std::function<void(Module&)>& visit) {
  visit(module);
  for (const auto& [name, child] : module.children()) for_each_module(*child, visit);
}

}  // namespace

// ---- MultiheadAttention ----

MultiheadAttention::MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads,
                                       double dropout, bool bias, bool batch_first,
                                       Generator& generator, DType dtype)
    : embed_dim_(embed_dim),
      num_heads_(num_heads),
      dropout_(dropout),
      batch_first_(batch_first),
      dropout_generator_(generator.next()) {
  if (embed_dim <= 0 || num_heads <= 0 || embed_dim % num_heads != 0) {
    fail("{}: expected positive sizes with embed_dim divisible by num_heads", name());
  }
  if (!(dropout >= 0.0 && dropout < 1.0))
    fail("{}: expected 0 <= dropout < 1, got {}", name(), dropout);
  Tensor w = empty({3 * embed_dim, embed_dim}, dtype);
  init::xavier_uniform_(w, generator);
  register_parameter("in_proj_weight", in_proj_weight, w);
  if (bias) register_parameter("in_proj_bias", in_proj_bias, zeros({3 * embed_dim}, dtype));
  out_proj = register_module("out_proj",
                             ModuleHolder<Linear>(std::make_shared<NonDynamicallyQuantizableLinear>(
                                 embed_dim, embed_dim, bias, generator, dtype)));
  if (bias) out_proj->bias = zeros({embed_dim}, dtype).requires_grad(true);
}

std::string MultiheadAttention::name() const {
  return fmt::format("MultiheadAttention(embed_dim={}, num_heads={})", embed_dim_, num_heads_);
}

AttentionOutput MultiheadAttention::attend(const Tensor& query, const Tensor& key,
                                           const Tensor& value, const AttentionCall& call) {
  const bool batched = query.rank() == 3;
  if ((query.rank() != 2 && !batched) || key.rank() != query.rank() ||
      value.rank() != query.rank()) {
    fail(
        "{}: expected query, key and value all [L, N, E] / [N, L, E] (batch_first) or all "
        "unbatched [L, E], got {}, {}, {}",
        name(), query.shape().str(), key.shape().str(), value.shape().str());
  }
  // Everything below is batch-first [N, L, E].
  const auto batch_first = [&](const Tensor& x) {
    return !batched ? unsqueeze(x, 0) : batch_first_ ? x : transpose(x, 0, 1);
  };
  const Tensor q_in = batch_first(query), k_in = batch_first(key), v_in = batch_first(value);
  const std::int64_t n = q_in.shape()[0], l = q_in.shape()[1], s = k_in.shape()[1];
  if (q_in.shape()[2] != embed_dim_ || !(k_in.shape() == v_in.shape()) || k_in.shape()[0] != n ||
      k_in.shape()[2] != embed_dim_) {
    fail(
        "{}: query {}, key {} and value {} do not fit: expected embedding size {}, one batch "
        "size and key and value of one shape",
        name(), query.shape().str(), key.shape().str(), value.shape().str(), embed_dim_);
  }
  const DType dtype = query.dtype();
  const auto check_mask_dtype = [&](const Tensor& mask, const char* what) {
    if (mask.dtype() != DType::b8 && mask.dtype() != dtype) {
      fail("{}: {} is {}, expected bool or the query's {}", name(), what, dtype_name(mask.dtype()),
           dtype_name(dtype));
    }
  };

  // Masks as "not allowed" (bool) or additive (floating), broadcasting to [N, H, L, S].
  Tensor attn_mask = call.attn_mask;
  if (call.is_causal) {
    if (attn_mask.defined()) fail("{}: is_causal and attn_mask given together", name());
    attn_mask = logical_not(tril(ones({l, s}, dtype) > 0.0));
  } else if (attn_mask.defined()) {
    check_mask_dtype(attn_mask, "attn_mask");
    const bool two_d = attn_mask.rank() == 2 && attn_mask.shape() == Shape({l, s});
    const bool three_d =
        attn_mask.rank() == 3 && attn_mask.shape() == Shape({n * num_heads_, l, s});
    if (!two_d && !three_d) {
      fail(
          "{}: attn_mask of shape {} should be [L, S] = [{}, {}] or [N·num_heads, L, S] = [{}, "
          "{}, {}]",
          name(), attn_mask.shape().str(), l, s, n * num_heads_, l, s);
    }
    if (three_d) attn_mask = reshape(attn_mask, {n, num_heads_, l, s});
  }
  Tensor padding = call.key_padding_mask;
  if (padding.defined()) {
    check_mask_dtype(padding, "key_padding_mask");
    const Shape expected = batched ? Shape({n, s}) : Shape({s});
    if (!(padding.shape() == expected)) {
      fail("{}: key_padding_mask of shape {} should be {} ([N, S], or [S] unbatched)", name(),
           padding.shape().str(), expected.str());
    }
    padding = reshape(padding, {n, 1, 1, s});
  }
  Tensor mask;  // "not allowed" (bool) or additive
  if (attn_mask.defined() && padding.defined()) {
    mask = attn_mask.dtype() == DType::b8 && padding.dtype() == DType::b8
               ? logical_or(attn_mask, padding)
               : additive(attn_mask, dtype) + additive(padding, dtype);
  } else {
    mask = attn_mask.defined() ? attn_mask : padding;
  }

  // Self-attention projects once and splits, as PyTorch's fast path does.
  Tensor q, k, v;
  const auto weight = [&](std::int64_t i) {
    return narrow(in_proj_weight, 0, i * embed_dim_, embed_dim_);
  };
  const auto bias = [&](std::int64_t i) {
    return in_proj_bias.defined() ? narrow(in_proj_bias, 0, i * embed_dim_, embed_dim_) : Tensor();
  };
  if (query.impl() == key.impl() && key.impl() == value.impl()) {
    const Tensor qkv = linear(q_in, in_proj_weight, in_proj_bias);
    q = narrow(qkv, 2, 0, embed_dim_);
    k = narrow(qkv, 2, embed_dim_, embed_dim_);
    v = narrow(qkv, 2, 2 * embed_dim_, embed_dim_);
  } else {
    q = linear(q_in, weight(0), bias(0));
    k = linear(k_in, weight(1), bias(1));
    v = linear(v_in, weight(2), bias(2));
  }
  q = split_heads(q, num_heads_);
  k = split_heads(k, num_heads_);
  v = split_heads(v, num_heads_);
  const double p = is_training() ? dropout_ : 0.0;

  AttentionOutput out;
  Tensor heads;
  // nn.MultiheadAttention's bool masks mark what is NOT allowed; scaled_dot_product_attention's
  // what is kept.
  AttentionOptions options{.dropout_p = p, .generator = &dropout_generator_};
  if (call.is_causal && !padding.defined()) {
    options.is_causal = true;
  } else if (mask.defined()) {
    options.attn_mask = mask.dtype() == DType::b8 ? logical_not(mask) : mask;
  }
  if (call.need_weights) {
    const Tensor weights = scaled_dot_product_attention_weights(q, k, options);
    heads = matmul(weights, v);
    out.weights = call.average_attn_weights ? mean(weights, 1) : weights;
    if (!batched) out.weights = squeeze(out.weights, 0);
  } else {
    heads = scaled_dot_product_attention(q, k, v, options);
  }
  Tensor y = out_proj(merge_heads(heads));
  out.output = !batched ? squeeze(y, 0) : batch_first_ ? y : transpose(y, 0, 1);
  return out;
}

Tensor MultiheadAttention::forward(const Tensor& x) {
  return attend(x, x, x, {.need_weights = false}).output;
}

std::string MultiheadAttention::describe() const {
  return "MultiheadAttention";
}

// ---- TransformerEncoderLayer ----

TransformerEncoderLayer::TransformerEncoderLayer(std::int64_t d_model, std::int64_t nhead,
                                                 const TransformerEncoderLayerOptions& options,
                                                 Generator& generator, DType dtype)
    : options_(options) {
  if (options.dim_feedforward <= 0) {
    fail("TransformerEncoderLayer: expected dim_feedforward > 0, got {}", options.dim_feedforward);
  }
  self_attn = register_module(
      "self_attn", ModuleHolder<MultiheadAttention>(d_model, nhead, options.dropout, true,
                                                    options.batch_first, generator, dtype));
  linear1 = register_module(
      "linear1", ModuleHolder<Linear>(d_model, options.dim_feedforward, true, generator, dtype));
  dropout = register_module("dropout", ModuleHolder<Dropout>(options.dropout, generator.next()));
  linear2 = register_module(
      "linear2", ModuleHolder<Linear>(options.dim_feedforward, d_model, true, generator, dtype));
  const std::vector<std::int64_t> shape{d_model};
  norm1 = register_module(
      "norm1", ModuleHolder<LayerNorm>(shape, options.layer_norm_eps, true, true, dtype));
  norm2 = register_module(
      "norm2", ModuleHolder<LayerNorm>(shape, options.layer_norm_eps, true, true, dtype));
  dropout1 = register_module("dropout1", ModuleHolder<Dropout>(options.dropout, generator.next()));
  dropout2 = register_module("dropout2", ModuleHolder<Dropout>(options.dropout, generator.next()));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src) {
  return forward(src, Tensor());
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& src_mask,
                                        const Tensor& src_key_padding_mask, bool is_causal) {
  const auto self_attention = [&](const Tensor& x) {
    return dropout1(self_attn
                        ->attend(x, x, x,
                                 {.key_padding_mask = src_key_padding_mask,
                                  .attn_mask = src_mask,
                                  .need_weights = false,
                                  .is_causal = is_causal})
                        .output);
  };
  const auto feed_forward = [&](const Tensor& x) {
    const Tensor hidden = linear1(x);
    return dropout2(linear2(
        dropout(options_.activation == TransformerActivation::relu ? relu(hidden) : gelu(hidden))));
  };
  if (options_.norm_first) {
    const Tensor x = src + self_attention(norm1(src));
    return x + feed_forward(norm2(x));
  }
  const Tensor x = norm1(src + self_attention(src));
  return norm2(x + feed_forward(x));
}

std::string TransformerEncoderLayer::describe() const {
  return "TransformerEncoderLayer";
}

// ---- nanoGPT ----

namespace {

void check_config(const GPTConfig& c, const char* module) {
  if (c.vocab_size <= 0 || c.block_size <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_embd <= 0 ||
      c.n_embd % c.n_head != 0) {
    fail(
        "{}: expected positive vocab_size, block_size, n_layer, n_head and n_embd with n_embd "
        "divisible by n_head, got vocab_size = {}, block_size = {}, n_layer = {}, n_head = {}, "
        "n_embd = {}",
        module, c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd);
  }
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) {
    fail("{}: expected 0 <= dropout < 1, got {}", module, c.dropout);
  }
}

}  // namespace

CausalSelfAttention::CausalSelfAttention(const GPTConfig& config, Generator& generator, DType dtype)
    : n_embd_(config.n_embd),
      n_head_(config.n_head),
      dropout_(config.dropout),
      attention_generator_(generator.next()) {
  check_config(config, "CausalSelfAttention");
  c_attn = register_module("c_attn", ModuleHolder<Linear>(config.n_embd, 3 * config.n_embd,
                                                          config.bias, generator, dtype));
  c_proj = register_module(
      "c_proj", ModuleHolder<Linear>(config.n_embd, config.n_embd, config.bias, generator, dtype));
  resid_dropout =
      register_module("resid_dropout", ModuleHolder<Dropout>(config.dropout, generator.next()));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  if (x.rank() != 3 || x.shape()[2] != n_embd_) {
    fail("CausalSelfAttention(n_embd={}, n_head={}): expected an input [B, T, {}], got {}", n_embd_,
         n_head_, n_embd_, x.shape().str());
  }
  const Tensor qkv = c_attn(x);
  const Tensor q = split_heads(narrow(qkv, 2, 0, n_embd_), n_head_);
  const Tensor k = split_heads(narrow(qkv, 2, n_embd_, n_embd_), n_head_);
  const Tensor v = split_heads(narrow(qkv, 2, 2 * n_embd_, n_embd_), n_head_);
  const Tensor y = scaled_dot_product_attention(q, k, v,
                                                {.dropout_p = is_training() ? dropout_ : 0.0,
                                                 .is_causal = true,
                                                 .generator = &attention_generator_});
  return resid_dropout(c_proj(merge_heads(y)));
}

GPTMLP::GPTMLP(const GPTConfig& config, Generator& generator, DType dtype) {
  check_config(config, "GPTMLP");
  c_fc = register_module("c_fc", ModuleHolder<Linear>(config.n_embd, 4 * config.n_embd, config.bias,
                                                      generator, dtype));
  c_proj = register_module("c_proj", ModuleHolder<Linear>(4 * config.n_embd, config.n_embd,
                                                          config.bias, generator, dtype));
  dropout = register_module("dropout", ModuleHolder<Dropout>(config.dropout, generator.next()));
}

Tensor GPTMLP::forward(const Tensor& x) {
  return dropout(c_proj(gelu(c_fc(x), GeluApproximate::tanh)));
}

GPTBlock::GPTBlock(const GPTConfig& config, Generator& generator, DType dtype) {
  check_config(config, "GPTBlock");
  const std::vector<std::int64_t> shape{config.n_embd};
  ln_1 = register_module("ln_1", ModuleHolder<LayerNorm>(shape, 1e-5, true, config.bias, dtype));
  attn = register_module("attn", ModuleHolder<CausalSelfAttention>(config, generator, dtype));
  ln_2 = register_module("ln_2", ModuleHolder<LayerNorm>(shape, 1e-5, true, config.bias, dtype));
  mlp = register_module("mlp", ModuleHolder<GPTMLP>(config, generator, dtype));
}

Tensor GPTBlock::forward(const Tensor& x) {
  const Tensor y = x + attn(ln_1(x));
  return y + mlp(ln_2(y));
}

GPT::GPT(const GPTConfig& config, Generator& generator, DType dtype) : config_(config) {
  check_config(config, "GPT");
  wte = ModuleHolder<Embedding>(config.vocab_size, config.n_embd, generator, dtype);
  wpe = ModuleHolder<Embedding>(config.block_size, config.n_embd, generator, dtype);
  drop = ModuleHolder<Dropout>(config.dropout, generator.next());
  h = ModuleHolder<ModuleList>();
  for (std::int64_t i = 0; i < config.n_layer; ++i) {
    h->push_back(ModuleHolder<GPTBlock>(config, generator, dtype));
  }
  ln_f = ModuleHolder<LayerNorm>(std::vector<std::int64_t>{config.n_embd}, 1e-5, true, config.bias,
                                 dtype);
  transformer = register_module(
      "transformer", ModuleHolder<ModuleDict>(std::make_shared<ModuleDict>(
                         std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>>{
                             {"wte", wte.ptr()},
                             {"wpe", wpe.ptr()},
                             {"drop", drop.ptr()},
                             {"h", h.ptr()},
                             {"ln_f", ln_f.ptr()}})));
  lm_head = register_module(
      "lm_head", ModuleHolder<Linear>(config.n_embd, config.vocab_size, false, generator, dtype));
  lm_head->weight = wte->weight;
  for_each_module(*this, [&](Module& m) {
    if (auto* linear = dynamic_cast<Linear*>(&m)) {
      init::normal_(linear->weight, generator, 0.0, 0.02);
      if (linear->bias.defined()) linear->bias = zeros_like(linear->bias).requires_grad(true);
    } else if (auto* embedding = dynamic_cast<Embedding*>(&m)) {
      init::normal_(embedding->weight, generator, 0.0, 0.02);
    }
  });
  // GPT-2's scaling of the residual projections by the depth.
  const double residual_std = 0.02 / std::sqrt(2.0 * double(config.n_layer));
  for (const auto& [name, block] : h->children()) {
    auto& b = dynamic_cast<GPTBlock&>(*block);
    init::normal_(b.attn->c_proj->weight, generator, 0.0, residual_std);
    init::normal_(b.mlp->c_proj->weight, generator, 0.0, residual_std);
  }
}

Tensor GPT::forward(const Tensor& idx) {
  if (idx.rank() != 2 || idx.dtype() != DType::i64) {
    fail("GPT: expected int64 token indices [B, T], got {} {}", dtype_name(idx.dtype()),
         idx.shape().str());
  }
  const std::int64_t t = idx.shape()[1];
  if (t > config_.block_size) {
    fail("GPT: cannot forward a sequence of length T = {} (idx {}): block_size is only {}", t,
         idx.shape().str(), config_.block_size);
  }
  Tensor x = drop(wte(idx) + wpe(arange(t, DType::i64)));
  for (const auto& [name, block] : h->children()) x = block->forward(x);
  return lm_head(ln_f(x));
}

Tensor GPT::loss(const Tensor& logits, const Tensor& targets) const {
  const std::int64_t vocab = config_.vocab_size;
  if (logits.rank() != 3 || logits.shape()[2] != vocab || targets.rank() != 2 ||
      targets.shape()[0] != logits.shape()[0] || targets.shape()[1] != logits.shape()[1]) {
    fail("GPT::loss: expected logits [B, T, {}] and targets [B, T], got {} and {}", vocab,
         logits.shape().str(), targets.shape().str());
  }
  return cross_entropy(reshape(logits, {-1, vocab}), reshape(targets, {-1}),
                       CrossEntropyOptions{.ignore_index = -1});
}

Tensor GPT::generate(const Tensor& idx, std::int64_t max_new_tokens, Generator& generator,
                     double temperature, std::int64_t top_k) {
  if (idx.rank() != 2 || idx.dtype() != DType::i64 || idx.shape()[1] == 0) {
    fail("GPT::generate: expected int64 token indices [B, T] with T >= 1, got {} {}",
         dtype_name(idx.dtype()), idx.shape().str());
  }
  if (max_new_tokens < 0 || !(temperature > 0.0) || top_k < 0) {
    fail(
        "GPT::generate: expected max_new_tokens >= 0, temperature > 0 and top_k >= 0, got {}, "
        "{} and {}",
        max_new_tokens, temperature, top_k);
  }
  const NoGradGuard no_grad;
  Tensor out = idx;
  for (std::int64_t i = 0; i < max_new_tokens; ++i) {
    const std::int64_t t = out.shape()[1];
    const std::int64_t context = std::min(t, config_.block_size);
    const Tensor logits = forward(narrow(out, 1, t - context, context));
    Tensor last = squeeze(narrow(logits, 1, context - 1, 1), 1) / temperature;
    if (top_k > 0) {
      const std::int64_t k = std::min(top_k, config_.vocab_size);
      const Tensor kth = narrow(topk(last, k).values, 1, k - 1, 1);
      last = masked_fill(last, lt(last, kth), kMinusInf);
    }
    out = concat({out, multinomial(softmax(last, -1), 1, generator)}, 1);
  }
  return out;
}

}  // namespace tg::nn
