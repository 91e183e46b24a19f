// The attention modules and the GPT (nn/transformer.h) against PyTorch 1.13
// (tests/reference/transformer_modules.json, written by scripts/make_transformer_reference.py):
// reprs, state_dict names, outputs, attention weights and the gradients of every input and
// parameter; the GPT's loss, gradients (the tied weight's is the sum of both uses) and three
// AdamW steps with weight_decay_groups. Then weight tying through save/load and to(), gradient
// accumulation, clipping, LayerNorm/Embedding options, generation and the errors.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad.h"
#include "tests/expect_error.h"
#include "tests/reference_fixture.h"

namespace tg::nn {
namespace {

using test_support::expect_error_containing;
using test_support::json;
using test_support::number;
using test_support::numbers;

constexpr const char* kFixture = "transformer_modules.json";

DType dtype_of(const json& c) {
  return test_support::dtype_named(c.at("dtype"));
}

Tensor tensor_of(const json& record, DType dtype) {
  return from_vector(numbers(record.at("values")), test_support::shape_of(record.at("shape")),
                     dtype);
}

// A fixture mask: bool entries, or a floating tensor; null = none.
Tensor mask_of(const json& record, DType dtype) {
  if (record.is_null()) return {};
  if (!record.contains("bool")) return tensor_of(record, dtype);
  std::vector<double> ones;
  for (const json& v : record.at("bool")) ones.push_back(v.get<bool>() ? 1.0 : 0.0);
  return ne(from_vector(ones, test_support::shape_of(record.at("shape")), f64), 0.0);
}

std::string repr(const Module& module) {
  std::ostringstream out;
  out << module;
  return out.str();
}

// Writes the fixture's state_dict into the module's storage (tied slots share it), after
// checking names, order and shapes are PyTorch's.
std::string load_state(Module& module, const json& state) {
  const auto ours = module.state_dict();
  if (ours.size() != state.size()) {
    return fmt::format("state_dict has {} entries, PyTorch's {}\n", ours.size(), state.size());
  }
  std::string report;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const auto& [name, t] = ours[i];
    const json& entry = state[i];
    if (name != entry[0].get<std::string>() || !(t.shape() == test_support::shape_of(entry[1]))) {
      report +=
          fmt::format("state_dict entry {}: {} {}, PyTorch's {} {}\n", i, name, t.shape().str(),
                      entry[0].get<std::string>(), test_support::shape_of(entry[1]).str());
      continue;
    }
    const std::vector<double> values = numbers(entry[2]);
    dispatch_floating(t.dtype(), "load_state", [&]<class T>() {
      T* p = Tensor(t).data<T>();
      for (std::size_t j = 0; j < values.size(); ++j) p[j] = T(values[j]);
    });
  }
  return report;
}

// |got − expected| ≤ tol·(|expected| + max |expected|), tol 1e-10 in float64 and 1e-5 in
// float32: a few layers of sums of dozens of terms, rounded differently from PyTorch's.
std::string compare(const std::string& what, const Tensor& got, const json& expected, DType dtype) {
  if (!got.defined()) return what + ": no tensor\n";
  const std::vector<double> want = numbers(expected);
  const std::vector<double> have = got.to_vector();
  if (have.size() != want.size()) {
    return fmt::format("{}: {} values, expected {}\n", what, have.size(), want.size());
  }
  double largest = 0;
  for (const double v : want) largest = std::max(largest, std::abs(v));
  const double tol = dtype == f64 ? 1e-10 : 1e-5;
  std::string report;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double tolerance = tol * (std::abs(want[i]) + largest);
    if (std::abs(have[i] - want[i]) <= tolerance) continue;
    if (++bad <= 3) {
      report += fmt::format("{} [{}]: expected {}, got {} (tolerance {:.3g})\n", what, i, want[i],
                            have[i], tolerance);
    }
  }
  if (bad > 3) report += fmt::format("{}: {} of {} differ\n", what, bad, want.size());
  return report;
}

// ⟨outputs, cotangents⟩'s gradients with respect to the named inputs and the module's
// parameters, compared with the record's.
std::string compare_gradients(const std::vector<Tensor>& outputs,
                              const std::vector<Tensor>& cotangents,
                              const std::vector<std::pair<std::string, Tensor>>& inputs,
                              const Module& module, const json& expected, DType dtype) {
  Tensor objective = sum(outputs[0] * cotangents[0]);
  for (std::size_t i = 1; i < outputs.size(); ++i) {
    objective = objective + sum(outputs[i] * cotangents[i]);
  }
  std::vector<std::pair<std::string, Tensor>> wrt = inputs;
  for (const auto& named : module.named_parameters()) wrt.push_back(named);
  std::vector<Tensor> tensors;
  for (const auto& [name, t] : wrt) tensors.push_back(t);
  const std::vector<Tensor> grads = grad(objective, tensors);
  std::string report;
  if (wrt.size() != expected.size()) report += "another number of gradients than PyTorch's\n";
  for (std::size_t i = 0; i < wrt.size(); ++i) {
    if (!expected.contains(wrt[i].first)) {
      report += "no PyTorch gradient for " + wrt[i].first + "\n";
      continue;
    }
    report += compare("grad " + wrt[i].first, grads[i], expected.at(wrt[i].first), dtype);
  }
  return report;
}

std::vector<std::size_t> cases_of(const std::string& op) {
  std::vector<std::size_t> found;
  const json& index = test_support::fixture(kFixture).header.at("index");
  for (std::size_t i = 0; i < index.size(); ++i) {
    if (index[i][0] == op) found.push_back(i);
  }
  return found;
}

std::string replay_attention(const json& c) {
  const DType dtype = dtype_of(c);
  const json& o = c.at("options");
  Generator gen(1);
  MultiheadAttention mha(o.at("embed_dim"), o.at("num_heads"), 0.0, o.at("bias"),
                         o.at("batch_first"), gen, dtype);
  std::string report;
  if (repr(mha) != c.at("repr").get<std::string>()) {
    report += "repr:\n" + repr(mha) + "\nPyTorch's:\n" + c.at("repr").get<std::string>() + "\n";
  }
  report += load_state(mha, c.at("state_dict"));
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (const char* name : {"x", "query", "key", "value"}) {
    if (c.at("inputs").contains(name)) {
      inputs.emplace_back(name, tensor_of(c.at("inputs").at(name), dtype).requires_grad(true));
    }
  }
  const bool self = inputs.size() == 1;
  const Tensor& q = inputs[0].second;
  const Tensor& k = self ? q : inputs[1].second;
  const Tensor& v = self ? q : inputs[2].second;
  const json& call = c.at("call");
  const AttentionOutput out =
      mha.attend(q, k, v,
                 {.key_padding_mask = mask_of(call.at("key_padding_mask"), dtype),
                  .attn_mask = mask_of(call.at("attn_mask"), dtype),
                  .need_weights = call.at("need_weights"),
                  .average_attn_weights = call.at("average_attn_weights")});
  report += compare("output", out.output, c.at("output").at("values"), dtype);
  std::vector<Tensor> outputs{out.output};
  std::vector<Tensor> cotangents{
      from_vector(numbers(c.at("cotangent")), out.output.shape(), dtype)};
  if (c.contains("weights")) {
    report += compare("weights", out.weights, c.at("weights").at("values"), dtype);
    if (!out.weights.defined()) return report;
    outputs.push_back(out.weights);
    cotangents.push_back(
        from_vector(numbers(c.at("weights_cotangent")), out.weights.shape(), dtype));
  } else if (out.weights.defined()) {
    report += "weights returned without need_weights\n";
  }
  if (!report.empty()) return report;
  return compare_gradients(outputs, cotangents, inputs, mha, c.at("grads"), dtype);
}

TEST(MultiheadAttention, MatchesPyTorch) {
  const std::vector<std::size_t> cases = cases_of("MultiheadAttention");
  ASSERT_EQ(cases.size(), 14u);
  for (const std::size_t i : cases) {
    const json c = test_support::fixture_case(kFixture, i);
    SCOPED_TRACE(c.at("case").get<std::string>() + " " + c.at("dtype").get<std::string>());
    EXPECT_EQ(replay_attention(c), "");
  }
}

std::string replay_encoder(const json& c) {
  const DType dtype = dtype_of(c);
  const json& o = c.at("options");
  Generator gen(2);
  TransformerEncoderLayer layer(
      o.at("d_model"), o.at("nhead"),
      {.dim_feedforward = o.at("dim_feedforward"),
       .dropout = number(o.at("dropout")),
       .activation =
           o.at("activation") == "relu" ? TransformerActivation::relu : TransformerActivation::gelu,
       .layer_norm_eps = number(o.at("layer_norm_eps")),
       .batch_first = o.at("batch_first"),
       .norm_first = o.at("norm_first")},
      gen, dtype);
  layer.eval();
  std::string report;
  if (repr(layer) != c.at("repr").get<std::string>()) {
    report += "repr:\n" + repr(layer) + "\nPyTorch's:\n" + c.at("repr").get<std::string>() + "\n";
  }
  report += load_state(layer, c.at("state_dict"));
  const Tensor x = tensor_of(c.at("inputs").at("x"), dtype).requires_grad(true);
  const json& call = c.at("call");
  const Tensor y = layer.forward(x, mask_of(call.at("src_mask"), dtype),
                                 mask_of(call.at("src_key_padding_mask"), dtype));
  report += compare("output", y, c.at("output").at("values"), dtype);
  if (!report.empty()) return report;
  return compare_gradients({y}, {from_vector(numbers(c.at("cotangent")), y.shape(), dtype)},
                           {{"x", x}}, layer, c.at("grads"), dtype);
}

TEST(TransformerEncoderLayer, MatchesPyTorchInEvaluation) {
  const std::vector<std::size_t> cases = cases_of("TransformerEncoderLayer");
  ASSERT_EQ(cases.size(), 8u);
  for (const std::size_t i : cases) {
    const json c = test_support::fixture_case(kFixture, i);
    SCOPED_TRACE(c.at("case").get<std::string>() + " " + c.at("dtype").get<std::string>());
    EXPECT_EQ(replay_encoder(c), "");
  }
}

GPTConfig small_config(bool bias = true) {
  return {.vocab_size = 11,
          .block_size = 8,
          .n_layer = 2,
          .n_head = 2,
          .n_embd = 16,
          .dropout = 0.0,
          .bias = bias};
}

Tensor tokens(const json& values, const json& shape) {
  return int64_tensor(values.get<std::vector<std::int64_t>>(), test_support::shape_of(shape));
}

TEST(GPT, LossGradientsAndAdamWStepsMatchPyTorch) {
  const std::vector<std::size_t> cases = cases_of("GPT");
  ASSERT_EQ(cases.size(), 4u);
  for (const std::size_t i : cases) {
    const json c = test_support::fixture_case(kFixture, i);
    SCOPED_TRACE(c.at("case").get<std::string>() + " " + c.at("dtype").get<std::string>());
    const DType dtype = dtype_of(c);
    Generator gen(3);
    GPT model(small_config(c.at("config").at("bias")), gen, dtype);
    ASSERT_EQ(load_state(model, c.at("state_dict")), "");
    const Tensor idx = tokens(c.at("idx"), c.at("shape"));
    const Tensor targets = tokens(c.at("targets"), c.at("shape"));
    const Tensor logits = model(idx);
    EXPECT_EQ(compare("logits", logits, c.at("logits").at("values"), dtype), "");
    const Tensor loss = model.loss(logits, targets);
    EXPECT_EQ(compare("loss", loss, c.at("loss"), dtype), "");
    // Every parameter once, the tied one under its first name; its gradient sums both uses.
    EXPECT_EQ(compare_gradients({loss}, {ones({}, dtype)}, {}, model, c.at("grads"), dtype), "");

    const json& a = c.at("adamw");
    std::vector<ParamGroup<AdamWOptions>> groups =
        weight_decay_groups(model, AdamWOptions{.lr = number(a.at("lr")),
                                                .beta1 = number(a.at("betas")[0]),
                                                .beta2 = number(a.at("betas")[1]),
                                                .eps = number(a.at("eps")),
                                                .weight_decay = number(a.at("weight_decay"))});
    std::vector<std::string> decayed;
    for (const auto& [name, p] : model.named_parameters()) {
      for (const Tensor& q : groups[0].params) {
        if (q.impl() == p.impl()) decayed.push_back(name);
      }
    }
    EXPECT_EQ(decayed, c.at("decayed").get<std::vector<std::string>>());
    AdamW optimizer(groups);
    for (int step = 0; step < a.at("steps").get<int>(); ++step) {
      optimizer.zero_grad();
      model.loss(model(idx), targets).backward();
      optimizer.step();
    }
    const std::int64_t e = small_config().n_embd;
    for (const auto& [name, p] : model.named_parameters()) {
      const json& expected = c.at("after_adamw").at(name);
      if (!name.ends_with("attn.c_attn.bias")) {
        EXPECT_EQ(compare(name + " after AdamW", p, expected, dtype), "");
        continue;
      }
      // The key bias's gradient is 0 up to rounding (softmax ignores a shift common to a row),
      // which Adam's m/√v turns into steps of size lr in either direction: compare q's and v's.
      const std::vector<double> all = numbers(expected);
      for (const std::int64_t part : {0, 2}) {
        EXPECT_EQ(
            compare(fmt::format("{} after AdamW, part {}", name, part), narrow(p, 0, part * e, e),
                    json(std::vector<double>(all.begin() + part * e, all.begin() + (part + 1) * e)),
                    dtype),
            "");
      }
    }
    EXPECT_EQ(model.lm_head->weight.impl(), model.wte->weight.impl());
  }
}

TEST(GPT, TiedWeightIsOneParameterWithBothStateDictNames) {
  Generator gen(4);
  GPT model(small_config(), gen, f64);
  EXPECT_EQ(model.lm_head->weight.impl(), model.wte->weight.impl());
  const auto named = model.named_parameters();
  const auto state = model.state_dict();
  EXPECT_EQ(named.size() + 1, state.size());
  EXPECT_EQ(named.front().first, "transformer.wte.weight");
  EXPECT_EQ(state.back().first, "lm_head.weight");
  EXPECT_EQ(state.back().second.impl(), named.front().second.impl());
  EXPECT_EQ(model.parameters().size(), named.size());
  // An optimizer over parameters() sees it once (AdamW would refuse nothing, but would step the
  // tensor twice per step if it were listed twice).
  AdamW optimizer(model.parameters());
  EXPECT_EQ(optimizer.parameters().size(), named.size());
}

TEST(GPT, InitialisationIsNanoGPTs) {
  Generator gen(5);
  GPTConfig config = small_config();
  config.n_embd = 64;
  config.vocab_size = 200;
  GPT model(config, gen, f64);
  const auto std_of = [](const Tensor& t) {
    const std::vector<double> v = t.to_vector();
    double s = 0;
    for (const double x : v) s += x * x;
    return std::sqrt(s / double(v.size()));
  };
  EXPECT_NEAR(std_of(model.wte->weight), 0.02, 0.001);
  EXPECT_NEAR(std_of(model.wpe->weight), 0.02, 0.003);
  const auto& block = dynamic_cast<GPTBlock&>(*(*model.h)[0]);
  EXPECT_NEAR(std_of(block.attn->c_attn->weight), 0.02, 0.001);
  EXPECT_NEAR(std_of(block.attn->c_proj->weight), 0.02 / std::sqrt(4.0), 0.0007);
  EXPECT_NEAR(std_of(block.mlp->c_proj->weight), 0.02 / std::sqrt(4.0), 0.0004);
  EXPECT_EQ(std_of(block.attn->c_attn->bias), 0.0);
  EXPECT_EQ(std_of(block.ln_1->weight - 1.0), 0.0);
}

TEST(GPT, SaveAndLoadKeepTheTie) {
  Generator gen(6);
  GPT saved(small_config(), gen, f64);
  const std::string path =
      (std::filesystem::temp_directory_path() / "tapegrad_gpt_tie.safetensors").string();
  save(saved, path);
  const NamedTensors file = load_safetensors(path);
  EXPECT_EQ(file.size(), saved.state_dict().size());
  Generator other(7);
  GPT loaded(small_config(), other, f64);
  load(loaded, path);
  std::filesystem::remove(path);
  EXPECT_EQ(loaded.lm_head->weight.impl(), loaded.wte->weight.impl());
  EXPECT_EQ(loaded.wte->weight.to_vector(), saved.wte->weight.to_vector());
  const Tensor idx = int64_tensor({1, 2, 3, 4, 5, 6}, Shape({2, 3}));
  EXPECT_EQ(loaded(idx).to_vector(), saved(idx).to_vector());
  // Still one tensor: a step through the embedding's handle moves the output layer too.
  SGD optimizer(loaded.parameters(), {.lr = 0.5});
  loaded.loss(loaded(idx), idx).backward();
  optimizer.step();
  EXPECT_EQ(loaded.lm_head->weight.to_vector(), loaded.wte->weight.to_vector());
  EXPECT_NE(loaded.lm_head->weight.to_vector(), saved.lm_head->weight.to_vector());
}

TEST(GPT, ConversionKeepsTheTie) {
  Generator gen(8);
  GPT model(small_config(), gen, f32);
  model.to(f64);
  EXPECT_EQ(model.wte->weight.dtype(), f64);
  EXPECT_EQ(model.lm_head->weight.impl(), model.wte->weight.impl());
  EXPECT_EQ(model.parameters().size() + 1, model.state_dict().size());
}

std::vector<double> flat_gradients(const Module& model) {
  std::vector<double> all;
  for (const Tensor& p : model.parameters()) {
    const std::vector<double> g = p.grad().to_vector();
    all.insert(all.end(), g.begin(), g.end());
  }
  return all;
}

TEST(GPT, TwoHalfMicroBatchesAccumulateTheFullBatchGradient) {
  Generator gen(9);
  GPT model(small_config(), gen, f64);
  std::vector<std::int64_t> x, y;
  Generator data(10);
  for (int i = 0; i < 4 * 6; ++i) {
    x.push_back(std::int64_t(data.next() % 11));
    y.push_back(std::int64_t(data.next() % 11));
  }
  const Tensor idx = int64_tensor(x, Shape({4, 6}));
  const Tensor targets = int64_tensor(y, Shape({4, 6}));
  model.loss(model(idx), targets).backward();
  const std::vector<double> full = flat_gradients(model);
  model.zero_grad();
  for (std::int64_t half = 0; half < 2; ++half) {
    const Tensor xi = narrow(idx, 0, 2 * half, 2);
    const Tensor yi = narrow(targets, 0, 2 * half, 2);
    (model.loss(model(xi), yi) / 2.0).backward();
  }
  const std::vector<double> accumulated = flat_gradients(model);
  ASSERT_EQ(full.size(), accumulated.size());
  double largest = 0;
  for (const double g : full) largest = std::max(largest, std::abs(g));
  ASSERT_GT(largest, 0.0);
  for (std::size_t i = 0; i < full.size(); ++i) {
    EXPECT_NEAR(accumulated[i], full[i], 1e-12 * largest) << i;
  }
}

TEST(GPT, ClipGradNormCountsTheTiedGradientOnce) {
  Generator gen(11);
  GPT model(small_config(), gen, f64);
  const Tensor idx = int64_tensor({1, 5, 2, 7, 3, 9, 0, 10}, Shape({2, 4}));
  model.loss(model(idx), idx).backward();
  double squares = 0;
  for (const double g : flat_gradients(model)) squares += g * g;
  const double norm = clip_grad_norm(model.parameters(), 1e-3);
  EXPECT_NEAR(norm, std::sqrt(squares), 1e-12 * norm);
  double clipped = 0;
  for (const double g : flat_gradients(model)) clipped += g * g;
  EXPECT_NEAR(std::sqrt(clipped), 1e-3, 1e-8);
}

TEST(GPT, ForwardErrorsNameTheShapes) {
  Generator gen(12);
  GPT model(small_config(), gen, f64);
  expect_error_containing(
      [&] {
        model(zeros({1, 9}, DType::i64));
      },
      "GPT: cannot forward a sequence of length T = 9 (idx [1, 9]): "
      "block_size is only 8");
  expect_error_containing([&] { model(zeros({1, 3}, f64)); }, "GPT: expected int64 token");
  expect_error_containing(
      [&] {
        model.loss(zeros({2, 3, 11}, f64), zeros({2, 4}, DType::i64));
      },
      "GPT::loss: expected logits [B, T, 11] and targets [B, T], got [2, 3, 11] and [2, 4]");
  GPTConfig bad = small_config();
  bad.n_head = 3;
  expect_error_containing([&] { GPT g(bad, gen); }, "n_embd = 16");
}

TEST(MultiheadAttention, ErrorsNameTheModuleAndShapes) {
  Generator gen(13);
  expect_error_containing([&] { MultiheadAttention m(10, 3, 0.0, true, false, gen); },
                          "MultiheadAttention(embed_dim=10, num_heads=3): expected positive "
                          "sizes with embed_dim divisible by num_heads");
  MultiheadAttention mha(8, 2, 0.0, true, true, gen, f64);
  const Tensor x = zeros({2, 3, 8}, f64);
  expect_error_containing(
      [&] {
        mha.attend(x, x, x, {.attn_mask = zeros({3, 4}, f64)});
      },
      "MultiheadAttention(embed_dim=8, num_heads=2): attn_mask of shape [3, 4] should be [L, S] "
      "= [3, 3] or [N·num_heads, L, S] = [4, 3, 3]");
  expect_error_containing(
      [&] {
        mha.attend(x, x, x, {.key_padding_mask = zeros({3, 2}, f64)});
      },
      "key_padding_mask of shape [3, 2] should be [2, 3]");
  expect_error_containing(
      [&] {
        mha.attend(x, x, x, {.attn_mask = zeros({3, 3}, f32)});
      },
      "attn_mask is float32, expected bool or the query's float64");
  expect_error_containing(
      [&] {
        mha.attend(zeros({2, 3, 6}, f64), x, x);
      },
      "query [2, 3, 6], key [2, 3, 8] and value [2, 3, 8] do not fit");
  expect_error_containing(
      [&] {
        mha.attend(x, x, x, {.attn_mask = zeros({3, 3}, f64), .is_causal = true});
      },
      "is_causal and attn_mask given together");
}

TEST(MultiheadAttention, CausalMaskAndBothPathsAgree) {
  Generator gen(14);
  MultiheadAttention mha(8, 2, 0.0, true, true, gen, f64);
  const Tensor x = randn({2, 4, 8}, gen, f64);
  // is_causal is the mask that forbids j > i, with or without the weights formed explicitly.
  const Tensor forbidden = logical_not(tril(ones({4, 4}, f64) > 0.0));
  const Tensor explicit_mask = mha.attend(x, x, x, {.attn_mask = forbidden}).output;
  const AttentionOutput causal = mha.attend(x, x, x, {.need_weights = false, .is_causal = true});
  const AttentionOutput weighted = mha.attend(x, x, x, {.is_causal = true});
  const std::vector<double> a = explicit_mask.to_vector(), b = causal.output.to_vector(),
                            w = weighted.output.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(b[i], a[i], 1e-13);
    EXPECT_NEAR(w[i], a[i], 1e-13);
  }
  // Query 0 sees only key 0.
  const std::vector<double> weights = weighted.weights.to_vector();
  EXPECT_DOUBLE_EQ(weights[0], 1.0);
  EXPECT_EQ(weights[1], 0.0);
}

TEST(MultiheadAttention, AFullyPaddedSequenceGivesZerosOnBothPaths) {
  // Batch 1's keys are all padding: its queries attend to nothing. With or without the weights,
  // the attention output is 0 (out_proj's bias follows), and no NaN reaches any gradient.
  Generator gen(15);
  MultiheadAttention mha(4, 2, 0.0, true, true, gen, f64);
  const Tensor x = randn({2, 3, 4}, gen, f64);
  const Tensor padding = from_vector({0, 0, 0, 1, 1, 1}, {2, 3}, b8);
  for (bool need_weights : {false, true}) {
    mha.zero_grad();
    const AttentionOutput out =
        mha.attend(x, x, x, {.key_padding_mask = padding, .need_weights = need_weights});
    const std::vector<double> y = out.output.to_vector(), bias = mha.out_proj->bias.to_vector();
    for (std::size_t i = 12; i < 24; ++i) EXPECT_EQ(y[i], bias[i % 4]) << need_weights;
    if (need_weights) {
      for (double w : narrow(out.weights, 0, 1, 1).to_vector()) EXPECT_EQ(w, 0.0);
    }
    sum(out.output * out.output).backward();
    for (const Tensor& p : mha.parameters()) {
      for (double g : p.grad().to_vector()) EXPECT_TRUE(std::isfinite(g)) << need_weights;
    }
  }
}

TEST(MultiheadAttention, DropoutActsInTrainingOnly) {
  Generator gen(15);
  MultiheadAttention mha(8, 2, 0.5, true, true, gen, f64);
  const Tensor x = randn({2, 4, 8}, gen, f64);
  const std::vector<double> trained = mha.forward(x).to_vector();
  mha.eval();
  const std::vector<double> evaluated = mha.forward(x).to_vector();
  EXPECT_NE(trained, evaluated);
  EXPECT_EQ(mha.forward(x).to_vector(), evaluated);
  // Weights in training are the dropped ones: each row sums to 0 or a multiple of 1/(1 − p)'s
  // share, not 1 any more.
  mha.train();
  const AttentionOutput out = mha.attend(x, x, x, {.average_attn_weights = false});
  const std::vector<double> w = out.weights.to_vector();
  const bool any_zero = std::any_of(w.begin(), w.end(), [](double v) { return v == 0.0; });
  EXPECT_TRUE(any_zero);
}

TEST(LayerNorm, NormalizedShapeAndNoBias) {
  LayerNorm norm(std::vector<std::int64_t>{2, 3}, 1e-5, true, false, f64);
  EXPECT_EQ(norm.describe(), "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True)");
  ASSERT_EQ(norm.named_parameters().size(), 1u);
  EXPECT_EQ(norm.named_parameters()[0].first, "weight");
  EXPECT_EQ(norm.weight.shape(), Shape({2, 3}));
  EXPECT_FALSE(norm.bias.defined());
  const Tensor x = tensor({{1, 2, 3, 4, 5, 6}, {0, 0, 0, 0, 0, 6}}, f64);
  const std::vector<double> y = norm(reshape(x, {2, 2, 3})).to_vector();
  // Row 0 is 1..6: mean 3.5, biased variance 35/12.
  EXPECT_NEAR(y[0], (1 - 3.5) / std::sqrt(35.0 / 12 + 1e-5), 1e-12);
  // Row 1: five zeros and a 6: mean 1, variance 5.
  EXPECT_NEAR(y[11], 5 / std::sqrt(5 + 1e-5), 1e-12);
  expect_error_containing(
      [&] {
        norm(zeros({2, 3, 2}, f64));
      },
      "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True): expected an "
      "input of shape [..., 2, 3], got [2, 3, 2]");
  EXPECT_EQ(LayerNorm(4, 1e-6, false).describe(),
            "LayerNorm((4,), eps=1e-06, elementwise_affine=False)");
}

TEST(Embedding, PaddingRowStartsAtZeroAndPrintsAsPyTorch) {
  Generator gen(16);
  Embedding embedding(5, 3, gen, f64, -1);
  EXPECT_EQ(embedding.padding_idx(), 4);
  EXPECT_EQ(embedding.describe(), "Embedding(5, 3, padding_idx=4)");
  const std::vector<double> w = embedding.weight.to_vector();
  EXPECT_EQ(std::vector<double>(w.begin() + 12, w.end()), std::vector<double>(3, 0.0));
  EXPECT_NE(w[0], 0.0);
  // The padding row reads as zeros and gets no gradient; the others sum their uses.
  const Tensor y = embedding(int64_tensor({4, 1, 4, 1}, Shape({2, 2})));
  EXPECT_EQ(y.shape(), Shape({2, 2, 3}));
  y.backward(ones_like(y));
  const std::vector<double> g = embedding.weight.grad().to_vector();
  EXPECT_EQ(std::vector<double>(g.begin() + 3, g.begin() + 6), std::vector<double>(3, 2.0));
  EXPECT_EQ(std::vector<double>(g.begin() + 12, g.end()), std::vector<double>(3, 0.0));
  expect_error_containing([&] { Embedding e(5, 3, gen, f64, 5); },
                          "Embedding(5, 3): padding_idx 5 is outside [-5, 5)");
}

TEST(WeightDecayGroups, ExcludingEmbeddingsIsAnOption) {
  Generator gen(17);
  GPT model(small_config(), gen, f64);
  const auto names_of = [&](const std::vector<Tensor>& group) {
    std::vector<std::string> names;
    for (const auto& [name, p] : model.named_parameters()) {
      for (const Tensor& q : group) {
        if (q.impl() == p.impl()) names.push_back(name);
      }
    }
    return names;
  };
  const auto groups = weight_decay_groups(model, AdamWOptions{.weight_decay = 0.1});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].options->weight_decay, 0.1);
  EXPECT_EQ(groups[1].options->weight_decay, 0.0);
  const std::vector<std::string> decayed = names_of(groups[0].params);
  EXPECT_EQ(decayed.front(), "transformer.wte.weight");  // tied to lm_head: decayed
  EXPECT_EQ(std::count(decayed.begin(), decayed.end(), "transformer.wpe.weight"), 0);
  const std::vector<std::string> rest = names_of(groups[1].params);
  EXPECT_EQ(rest.front(), "transformer.wpe.weight");
  EXPECT_EQ(rest.back(), "transformer.ln_f.bias");
  // nanoGPT's own rule: every matrix, both embeddings.
  const auto nanogpt = weight_decay_groups(model, AdamWOptions{.weight_decay = 0.1}, false);
  EXPECT_EQ(nanogpt[0].params.size(), groups[0].params.size() + 1);
  EXPECT_EQ(nanogpt[0].params.size() + nanogpt[1].params.size(), model.parameters().size());
  // A module without biases or norms leaves group 1 empty, which an optimizer accepts.
  Linear linear(3, 2, false, gen, f64);
  const auto only_matrices = weight_decay_groups(linear, AdamWOptions{.weight_decay = 0.5});
  EXPECT_TRUE(only_matrices[1].params.empty());
  AdamW optimizer(only_matrices);
  const std::vector<double> before = linear.weight.to_vector();
  (sum(linear(ones({1, 3}, f64))) * 0.0).backward();
  optimizer.step();
  // A zero gradient leaves only the decoupled decay: p(1 − lr·λ).
  EXPECT_DOUBLE_EQ(linear.weight.to_vector()[0], before[0] * (1 - 1e-3 * 0.5));
}

TEST(GPT, GenerateAppendsTokensGreedilyWithTopK1) {
  Generator gen(18);
  GPT model(small_config(), gen, f64);
  // A context longer than block_size is cropped to its last block_size tokens.
  std::vector<std::int64_t> context;
  for (int i = 0; i < 10; ++i) context.push_back(i % 11);
  const Tensor idx = int64_tensor(context, Shape({1, 10}));
  Generator sampler(19);
  const Tensor out = model.generate(idx, 3, sampler, 1.0, 1);
  ASSERT_EQ(out.shape(), Shape({1, 13}));
  const std::vector<double> tokens_out = out.to_vector();
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(tokens_out[std::size_t(i)], double(context[std::size_t(i)]));
  // top_k = 1: each new token is the arg-max of the last position's logits.
  Tensor running = idx;
  for (int i = 0; i < 3; ++i) {
    const std::int64_t t = running.shape()[1];
    const Tensor logits = model(narrow(running, 1, t - 8, 8));
    const Tensor next = argmax(narrow(logits, 1, 7, 1), -1);
    EXPECT_EQ(next.to_vector()[0], tokens_out[std::size_t(10 + i)]);
    running = concat({running, reshape(next, {1, 1})}, 1);
  }
  const Tensor sampled = model.generate(idx, 4, sampler, 0.8, 3);
  for (const double token : sampled.to_vector()) {
    EXPECT_GE(token, 0.0);
    EXPECT_LT(token, 11.0);
  }
  expect_error_containing([&] { model.generate(idx, 1, sampler, 0.0); }, "temperature > 0");
}

}  // namespace
}  // namespace tg::nn
