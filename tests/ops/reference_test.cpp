// Replays the reference suite: PyTorch's answers for every registered op, written to
// tests/reference/*.json by scripts/make_reference.py (run by hand with Debian's python3-torch;
// this test needs no PyTorch). Each op record holds one case in one dtype: the call, the inputs,
// the output, the VJP for a random cotangent g and the second-order product ∇ₓ⟨gᵀJ, v⟩ for a
// random direction v. An element passes when
//     |got − expected| ≤ rtol · (|expected| + scale),  rtol = 1e-12 (float64), 4·2⁻²³ (float32),
// where the fixture's per-element scale (absent: 0) is the sum of the absolute values of the
// summed terms and, in float32, twice PyTorch's own float32 error (see the script). Non-finite
// values must match exactly.
#include <gtest/gtest.h>

#include <fmt/ranges.h>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ops/everyday.h"
#include "tapegrad.h"
#include "tests/reference_fixture.h"

namespace tg {
namespace {

using nlohmann::json;
using namespace test_support;

Reduction reduction_named(const std::string& name) {
  if (name == "mean") return Reduction::mean;
  if (name == "sum") return Reduction::sum;
  if (name == "none") return Reduction::none;
  fail("reference fixture: unknown reduction {}", name);
}

KlReduction kl_reduction_named(const std::string& name) {
  if (name == "batchmean") return KlReduction::batchmean;
  const Reduction r = reduction_named(name);
  return r == Reduction::mean  ? KlReduction::mean
         : r == Reduction::sum ? KlReduction::sum
                               : KlReduction::none;
}

// The ops of ops/everyday.h (tests/reference/everyday.json).
Tensor call_everyday_op(const json& call, const std::vector<Tensor>& in) {
  const std::string fn = call.at("fn");
  const auto integer = [&](const char* key) { return call.at(key).get<std::int64_t>(); };
  const auto integers = [&](const char* key) {
    return call.at(key).get<std::vector<std::int64_t>>();
  };
  const auto real = [&](const char* key) { return number(call.at(key)); };
  const auto keepdim = [&] { return call.at("keepdim").get<bool>(); };
  const auto reduction = [&] { return reduction_named(call.at("reduction")); };
  static const std::map<std::string, Tensor (*)(const Tensor&, SourceLocation)> unary = {
      {"sign", sign}, {"rsqrt", rsqrt}, {"square", square}, {"silu", silu}};
  if (auto it = unary.find(fn); it != unary.end()) return it->second(in.at(0), {});
  if (fn == "argmax" || fn == "argmin") {
    const bool max = fn == "argmax";
    if (!call.contains("axis")) return max ? argmax(in.at(0)) : argmin(in.at(0));
    return max ? argmax(in.at(0), integer("axis"), keepdim())
               : argmin(in.at(0), integer("axis"), keepdim());
  }
  if (fn == "slice_step") {
    const auto bound = [&](const char* key, std::int64_t open) {
      return call.at(key).is_null() ? open : integer(key);
    };
    return slice(in.at(0), integer("axis"), bound("start", 0), bound("end", kEnd), integer("step"));
  }
  if (fn == "narrow") return narrow(in.at(0), integer("axis"), integer("start"), integer("length"));
  if (fn == "gather") return gather(in.at(0), integer("axis"), in.at(1));
  if (fn == "scatter_add") return scatter_add(in.at(0), integer("axis"), in.at(1), in.at(2));
  if (fn == "index_add") return index_add(in.at(0), integer("axis"), in.at(1), in.at(2));
  if (fn == "stack") return stack(in, integer("axis"));
  if (fn == "unsqueeze") return unsqueeze(in.at(0), integer("axis"));
  if (fn == "squeeze")
    return call.contains("axis") ? squeeze(in.at(0), integer("axis")) : squeeze(in.at(0));
  if (fn == "flatten") return flatten(in.at(0), integer("start"), integer("end"));
  if (fn == "unflatten") return unflatten(in.at(0), integer("axis"), integers("sizes"));
  if (fn == "reshape_infer") return reshape(in.at(0), integers("dims"));
  if (fn == "expand") return expand(in.at(0), integers("sizes"));
  if (fn == "amax") return amax(in.at(0), integer("axis"), keepdim());
  if (fn == "amin") return amin(in.at(0), integer("axis"), keepdim());
  if (fn == "min") return min(in.at(0), integer("axis"), keepdim());
  if (fn == "var") {
    return call.contains("axis") ? var(in.at(0), integer("axis"), real("correction"), keepdim())
                                 : var(in.at(0));
  }
  if (fn == "std") {
    return call.contains("axis") ? std(in.at(0), integer("axis"), real("correction"), keepdim())
                                 : std(in.at(0));
  }
  if (fn == "prod")
    return call.contains("axis") ? prod(in.at(0), integer("axis"), keepdim()) : prod(in.at(0));
  if (fn == "cumsum") return cumsum(in.at(0), integer("axis"));
  if (fn == "norm") {
    return call.contains("axis") ? norm(in.at(0), real("p"), integer("axis"), keepdim())
                                 : norm(in.at(0), real("p"));
  }
  if (fn == "gelu") {
    return gelu(in.at(0),
                call.at("approximate") == "tanh" ? GeluApproximate::tanh : GeluApproximate::none);
  }
  if (fn == "hardtanh") return hardtanh(in.at(0), real("low"), real("high"));
  if (fn == "elu") return elu(in.at(0), real("alpha"));
  if (fn == "l1_loss") return l1_loss(in.at(0), in.at(1), reduction());
  if (fn == "smooth_l1_loss") return smooth_l1_loss(in.at(0), in.at(1), reduction(), real("beta"));
  if (fn == "huber_loss") return huber_loss(in.at(0), in.at(1), reduction(), real("delta"));
  if (fn == "kl_div") {
    return kl_div(in.at(0), in.at(1), kl_reduction_named(call.at("reduction")),
                  call.at("log_target").get<bool>());
  }
  if (fn == "where" && call.contains("scalar")) {
    return call.at("scalar_side") == "a" ? where(in.at(0), real("scalar"), in.at(1))
                                         : where(in.at(0), in.at(1), real("scalar"));
  }
  if (fn == "where") return where(in.at(0), in.at(1), in.at(2));
  if (fn == "masked_fill") return masked_fill(in.at(0), in.at(1), real("value"));
  if (fn == "masked_select") return masked_select(in.at(0), in.at(1));
  fail("reference fixture: no tapegrad call for fn '{}'", fn);
}

// The one place that maps a fixture's call to tapegrad.
// cross_entropy and nll_loss with their options (tests/reference/matmul_loss.json).
Tensor call_class_loss(const json& call, const std::vector<Tensor>& in) {
  const json& w = call.at("weight");
  const Tensor weight =
      w.is_null() ? Tensor() : from_vector(numbers(w), {std::int64_t(w.size())}, in.at(0).dtype());
  const Reduction reduction = reduction_named(call.at("reduction"));
  const std::int64_t ignore = call.at("ignore_index").get<std::int64_t>();
  if (call.at("fn") == "nll_loss") {
    return nll_loss(in.at(0), in.at(1),
                    {.reduction = reduction, .ignore_index = ignore, .weight = weight});
  }
  return cross_entropy(in.at(0), in.at(1),
                       {.reduction = reduction,
                        .ignore_index = ignore,
                        .label_smoothing = number(call.at("label_smoothing")),
                        .weight = weight});
}

Tensor call_op(const json& call, const std::vector<Tensor>& in) {
  const std::string fn = call.at("fn");
  const auto axis = [&] { return call.at("axis").get<std::int64_t>(); };
  const auto keepdim = [&] { return call.at("keepdim").get<bool>(); };
  const auto shape = [&] { return shape_of(call.at("shape")); };
  const auto reduction = [&] { return reduction_named(call.at("reduction")); };
  static const std::map<std::string, Tensor (*)(const Tensor&, const Tensor&, SourceLocation)>
      binary = {{"add", add},         {"sub", sub},         {"mul", mul},      {"div", div},
                {"maximum", maximum}, {"minimum", minimum}, {"matmul", matmul}};
  static const std::map<std::string, Tensor (*)(const Tensor&, SourceLocation)> unary = {
      {"neg", neg},   {"exp", exp},         {"log", log},          {"sqrt", sqrt}, {"abs", abs},
      {"tanh", tanh}, {"sigmoid", sigmoid}, {"erf", erf},          {"relu", relu}, {"sin", sin},
      {"cos", cos},   {"log1p", log1p},     {"softplus", softplus}};
  const SourceLocation here = SourceLocation::current();
  if (auto it = binary.find(fn); it != binary.end()) return it->second(in.at(0), in.at(1), here);
  if (auto it = unary.find(fn); it != unary.end()) return it->second(in.at(0), here);
  if (fn == "add_scalar") return add(in.at(0), call.at("scalar").get<double>());
  if (fn == "mul_scalar") return mul(in.at(0), call.at("scalar").get<double>());
  if (fn == "leaky_relu") return leaky_relu(in.at(0), call.at("negative_slope").get<double>());
  if (fn == "clamp")
    return clamp(in.at(0), call.at("low").get<double>(), call.at("high").get<double>());
  if (fn == "pow") return pow(in.at(0), call.at("exponent").get<double>());
  if (fn == "cast") return cast(in.at(0), dtype_named(call.at("to")));
  if (fn == "sum") return call.contains("axis") ? sum(in.at(0), axis(), keepdim()) : sum(in.at(0));
  if (fn == "mean")
    return call.contains("axis") ? mean(in.at(0), axis(), keepdim()) : mean(in.at(0));
  if (fn == "max") return max(in.at(0), axis(), keepdim());
  if (fn == "logsumexp") return logsumexp(in.at(0), axis(), keepdim());
  if (fn == "sum_to") return sum_to(in.at(0), shape());
  if (fn == "broadcast_to") return broadcast_to(in.at(0), shape());
  if (fn == "reshape") return reshape(in.at(0), shape());
  if (fn == "permute") return permute(in.at(0), call.at("axes").get<std::vector<std::int64_t>>());
  if (fn == "transpose") {
    return transpose(in.at(0), call.at("axis0").get<std::int64_t>(),
                     call.at("axis1").get<std::int64_t>());
  }
  if (fn == "slice") {
    return slice(in.at(0), axis(), call.at("start").get<std::int64_t>(),
                 call.at("end").get<std::int64_t>());
  }
  if (fn == "concat") return concat(in, axis());
  if (fn == "index_select") return index_select(in.at(0), axis(), in.at(1));
  if (fn == "linear")
    return in.size() == 3 ? linear(in[0], in[1], in[2]) : linear(in.at(0), in.at(1));
  if (fn == "softmax") return softmax(in.at(0), axis());
  if (fn == "log_softmax") return log_softmax(in.at(0), axis());
  if (fn == "bmm") return bmm(in.at(0), in.at(1));
  if (call.contains("ignore_index")) return call_class_loss(call, in);
  if (fn == "cross_entropy") return cross_entropy(in.at(0), in.at(1), reduction());
  if (fn == "nll_loss") return nll_loss(in.at(0), in.at(1), reduction());
  if (fn == "binary_cross_entropy_with_logits") {
    return binary_cross_entropy_with_logits(in.at(0), in.at(1), reduction());
  }
  if (fn == "mse_loss") return mse_loss(in.at(0), in.at(1), reduction());
  return call_everyday_op(call, in);
}

// ---- op records ----

struct Record {
  std::string file;
  std::size_t index;
  std::string op;
  std::string name;
  std::string dtype;
};

void PrintTo(const Record& r, std::ostream* out) {
  *out << r.op << " / " << r.name << " / " << r.dtype;
}

std::vector<Record> records(const std::string& file) {
  std::vector<Record> out;
  const json& index = fixture(file).header.at("index");
  for (std::size_t i = 0; i < index.size(); ++i) {
    out.push_back({file, i, index[i].at(0), index[i].at(1), index[i].at(2)});
  }
  return out;
}

std::vector<Record> op_records() {
  std::vector<Record> all = records("ops.json");
  for (const char* file : {"losses.json", "everyday.json", "masks.json"}) {
    for (Record& r : records(file)) all.push_back(std::move(r));
  }
  // matmul's full rules, bmm, the class losses' options, axis ops on a scalar.
  for (Record& r : records("matmul_loss.json")) all.push_back(std::move(r));
  return all;
}

// The op records above, replayed here, and those of the convolutional-network and transformer
// families, which their own tests replay (tests/ops/conv_test.cpp, pool_test.cpp, norm_test.cpp,
// attention_test.cpp, language_test.cpp: the same record format, their own calls).
std::vector<Record> all_op_records() {
  std::vector<Record> all = op_records();
  for (const char* file :
       {"conv.json", "pool.json", "norm.json", "attention.json", "language.json"}) {
    for (Record& r : records(file)) all.push_back(std::move(r));
  }
  return all;
}

nn::Activation activation_named(const std::string& name) {
  static const std::map<std::string, nn::Activation> kinds = {
      {"relu", nn::Activation::relu},
      {"tanh", nn::Activation::tanh},
      {"sigmoid", nn::Activation::sigmoid},
      {"gelu", nn::Activation::gelu},
      {"leaky_relu", nn::Activation::leaky_relu},
      {"softplus", nn::Activation::softplus}};
  return kinds.at(name);
}

std::shared_ptr<nn::Module> make_module(const json& call, DType dtype) {
  const std::string kind = call.at("module");
  const auto size = [&](const char* key) { return call.at(key).get<std::int64_t>(); };
  Generator generator(0);  // every parameter is replaced by the fixture's
  if (kind == "Linear") {
    return std::make_shared<nn::Linear>(size("in_features"), size("out_features"),
                                        call.at("bias").get<bool>(), generator, dtype);
  }
  if (kind == "LayerNorm") {
    return std::make_shared<nn::LayerNorm>(size("features"), call.at("eps").get<double>(),
                                           call.at("elementwise_affine").get<bool>(), dtype);
  }
  if (kind == "Embedding") {
    return std::make_shared<nn::Embedding>(size("num_embeddings"), size("dim"), generator, dtype);
  }
  if (kind == "RNN")
    return std::make_shared<nn::RNN>(size("input_size"), size("hidden_size"), generator, dtype);
  if (kind == "LSTM")
    return std::make_shared<nn::LSTM>(size("input_size"), size("hidden_size"), generator, dtype);
  if (kind == "GRU")
    return std::make_shared<nn::GRU>(size("input_size"), size("hidden_size"), generator, dtype);
  if (kind == "MLP") {
    return nn::MLP(call.at("sizes").get<std::vector<std::int64_t>>(),
                   activation_named(call.at("activation")), generator, dtype);
  }
  fail("reference fixture: no module '{}'", kind);
}

// The module of a module record, run by functional_call with the fixture's parameters (the
// inputs before the last) on its input (the last).
Tensor call_module(const json& c, const std::vector<Tensor>& inputs, DType dtype) {
  const std::shared_ptr<nn::Module> module = make_module(c.at("call"), dtype);
  std::vector<std::string> names;
  for (const auto& [name, parameter] : module->named_parameters()) names.push_back(name);
  const auto expected = c.at("parameters").get<std::vector<std::string>>();
  if (names != expected) {
    fail("module parameters are [{}], the fixture has [{}]", fmt::join(names, ", "),
         fmt::join(expected, ", "));
  }
  const std::vector<Tensor> parameters(inputs.begin(), inputs.end() - 1);
  return nn::functional_call(*module, parameters, inputs.back());
}

std::string replay(const json& c) {
  const DType dtype = dtype_named(c.at("dtype"));
  std::vector<Tensor> inputs;
  std::vector<Tensor> floating;
  for (const json& in : c.at("inputs")) {
    const Shape shape = shape_of(in.at("shape"));
    if (in.contains("int64")) {
      inputs.push_back(int64_tensor(in.at("int64").get<std::vector<std::int64_t>>(), shape));
    } else if (in.contains("bool")) {  // masks (scripts/make_mask_reference.py)
      const auto truth = in.at("bool").get<std::vector<bool>>();
      inputs.push_back(from_vector(std::vector<double>(truth.begin(), truth.end()), shape, b8));
    } else {
      inputs.push_back(from_vector(numbers(in.at("values")), shape, dtype).requires_grad(true));
      floating.push_back(inputs.back());
    }
  }
  std::string report;
  const json& output = c.at("output");
  const Tensor y = c.at("call").contains("module") ? call_module(c, inputs, dtype)
                                                   : call_op(c.at("call"), inputs);
  const Shape out_shape = shape_of(output.at("shape"));
  if (output.contains("int64")) {  // positions (argmax): exact, nothing to differentiate
    const auto want = output.at("int64").get<std::vector<std::int64_t>>();
    if (!y.defined() || y.dtype() != i64 || !(y.shape() == out_shape)) {
      return "output: expected int64 " + out_shape.str() + "\n";
    }
    const std::int64_t* got = y.data<std::int64_t>();
    if (!std::equal(want.begin(), want.end(), got)) {
      return fmt::format("output: expected [{}], got [{}]\n", fmt::join(want, ", "),
                         fmt::join(got, got + y.numel(), ", "));
    }
    return report;
  }
  const DType out_dtype = dtype_named(output.at("dtype"));
  report += compare("output", y, output, out_shape, out_dtype);
  if (!report.empty() || floating.empty()) return report;

  const bool second_order = c.contains("second_order");
  const Tensor g = from_vector(numbers(c.at("cotangent")), out_shape, out_dtype);
  const std::vector<Tensor> vjps = grad(y, floating, g, {.create_graph = second_order});
  for (std::size_t i = 0; i < floating.size(); ++i) {
    report += compare(fmt::format("vjp of input {}", i), vjps[i], c.at("vjp")[i],
                      floating[i].shape(), dtype);
  }
  if (!second_order) return report;
  Tensor s;
  for (std::size_t i = 0; i < floating.size(); ++i) {
    if (!vjps[i].requires_grad()) continue;
    const Tensor v = from_vector(numbers(c.at("direction")[i]), floating[i].shape(), dtype);
    const Tensor term = sum(vjps[i] * v);
    s = s.defined() ? s + term : term;
  }
  std::vector<Tensor> second;
  if (s.defined()) {
    second = grad(s, floating);
  } else {
    // No VJP depends on the inputs: the second derivative is zero.
    for (const Tensor& x : floating) second.push_back(zeros(x.shape(), dtype));
  }
  for (std::size_t i = 0; i < floating.size(); ++i) {
    report += compare(fmt::format("second order of input {}", i), second[i],
                      c.at("second_order")[i], floating[i].shape(), dtype);
  }
  return report;
}

// Replays one op or module record; a failure names the op, the case, the dtype and each element.
void expect_replay(const Record& r, const char* kind) {
  const json c = fixture_case(r.file, r.index);
  std::string report;
  try {
    report = replay(c);
  } catch (const Error& e) {
    report = std::string("threw: ") + e.what() + "\n";
  }
  if (!report.empty() && c.contains("differs")) {
    report += "(expected is tapegrad's documented convention, not PyTorch's: " +
              c.at("differs").get<std::string>() + ")\n";
  }
  EXPECT_TRUE(report.empty()) << kind << " " << r.op << ", case '" << r.name << "', " << r.dtype
                              << ":\n"
                              << report;
}

// A test name from a case's description: letters and digits, the rest '_'.
std::string identifier(std::string name) {
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

std::string test_name(const ::testing::TestParamInfo<Record>& info) {
  return identifier(std::to_string(info.index) + "_" + info.param.op + "_" + info.param.name + "_" +
                    info.param.dtype);
}

class ReferenceOps : public ::testing::TestWithParam<Record> {};

TEST_P(ReferenceOps, MatchesPyTorch) {
  expect_replay(GetParam(), "op");
}

// An unreadable fixture instantiates nothing here; the coverage tests then fail with the reason.
std::vector<Record> op_records_or_none() {
  try {
    return op_records();
  } catch (const std::exception&) {
    return {};
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceOps, ::testing::ValuesIn(op_records_or_none()),
                         test_name);

class ReferenceModules : public ::testing::TestWithParam<Record> {};

TEST_P(ReferenceModules, MatchesPyTorch) {
  expect_replay(GetParam(), "module");
}

std::vector<Record> module_records_or_none() {
  try {
    return records("modules.json");
  } catch (const std::exception&) {
    return {};
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceModules, ::testing::ValuesIn(module_records_or_none()),
                         test_name);

// Not differentiable, so not registered: their cases check positions.
const std::set<std::string> kPositionOps = {"argmax", "argmin"};

// ---- optimizers, schedules, gradient clipping ----

struct OptimizerRecord {
  std::size_t index;
  std::string name;  // "SGD / momentum 0.9 / float32"
};

void PrintTo(const OptimizerRecord& r, std::ostream* out) {
  *out << r.name;
}

std::vector<OptimizerRecord> optimizer_records() {
  std::vector<OptimizerRecord> out;
  try {
    for (const Record& r : records("optim.json")) {
      out.push_back({r.index, r.op + " / " + r.name + " / " + r.dtype});
    }
  } catch (const std::exception&) {
    // The coverage test reports an unreadable fixture.
  }
  return out;
}

std::unique_ptr<nn::Optimizer> make_optimizer(const json& c,
                                              const std::vector<Tensor>& parameters) {
  const std::string kind = c.at("optimizer");
  const json& o = c.at("options");
  if (kind == "SGD") {
    return std::make_unique<nn::SGD>(parameters,
                                     nn::SGDOptions{.lr = o.at("lr"),
                                                    .momentum = o.value("momentum", 0.0),
                                                    .dampening = o.value("dampening", 0.0),
                                                    .weight_decay = o.value("weight_decay", 0.0),
                                                    .nesterov = o.value("nesterov", false)});
  }
  if (kind == "Adam") {
    return std::make_unique<nn::Adam>(
        parameters, nn::AdamOptions{.lr = o.at("lr"),
                                    .beta1 = o.value("beta1", 0.9),
                                    .beta2 = o.value("beta2", 0.999),
                                    .eps = o.value("eps", 1e-8),
                                    .weight_decay = o.value("weight_decay", 0.0)});
  }
  if (kind == "AdamW") {
    return std::make_unique<nn::AdamW>(
        parameters, nn::AdamWOptions{.lr = o.at("lr"),
                                     .beta1 = o.value("beta1", 0.9),
                                     .beta2 = o.value("beta2", 0.999),
                                     .eps = o.value("eps", 1e-8),
                                     .weight_decay = o.value("weight_decay", 0.01)});
  }
  fail("reference fixture: no optimizer '{}'", kind);
}

std::unique_ptr<nn::LRScheduler> make_scheduler(const json& c, nn::Optimizer& optimizer) {
  if (!c.contains("schedule")) return nullptr;
  const json& s = c.at("schedule");
  const std::string kind = s.at("kind");
  if (kind == "StepLR") {
    return std::make_unique<nn::StepLR>(optimizer, s.at("step_size"), s.at("gamma"));
  }
  if (kind == "CosineAnnealingLR") {
    return std::make_unique<nn::CosineAnnealingLR>(optimizer, s.at("T_max"), s.at("eta_min"));
  }
  fail("reference fixture: no schedule '{}'", kind);
}

// Gives each parameter its gradient for this step (none where the fixture has null) by one
// backward pass through Σ sum(p ⊙ g), whose gradient is exactly g.
void set_gradients(const std::vector<Tensor>& parameters, const json& grads, DType dtype) {
  Tensor loss;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    if (grads[i].is_null()) continue;
    const Tensor g = from_vector(numbers(grads[i]), parameters[i].shape(), dtype);
    const Tensor term = sum(parameters[i] * g);
    loss = loss.defined() ? loss + term : term;
  }
  if (loss.defined()) loss.backward();
}

std::vector<Tensor> fixture_parameters(const json& list, DType dtype) {
  std::vector<Tensor> out;
  for (const json& p : list) {
    out.push_back(
        from_vector(numbers(p.at("values")), shape_of(p.at("shape")), dtype).requires_grad(true));
  }
  return out;
}

std::string replay_optimizer(const json& c) {
  const DType dtype = dtype_named(c.at("dtype"));
  const std::vector<Tensor> parameters = fixture_parameters(c.at("parameters"), dtype);
  const std::unique_ptr<nn::Optimizer> optimizer = make_optimizer(c, parameters);
  const std::unique_ptr<nn::LRScheduler> scheduler = make_scheduler(c, *optimizer);
  const double base_lr = optimizer->lr();
  std::string report;
  for (std::size_t step = 0; step < c.at("steps").size(); ++step) {
    optimizer->zero_grad(c.at("set_to_none").get<bool>());
    set_gradients(parameters, c.at("grads")[step], dtype);
    optimizer->step();
    if (scheduler) scheduler->step();
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      report += compare(fmt::format("step {} parameter {}", step + 1, i), parameters[i].detach(),
                        c.at("steps")[step][i], parameters[i].shape(), dtype);
    }
    if (c.contains("lr")) {
      const double want = number(c.at("lr")[step]);
      if (!(std::abs(optimizer->lr() - want) <= 1e-12 * base_lr)) {
        report += fmt::format("step {} lr: expected {}, got {}\n", step + 1, want, optimizer->lr());
      }
    }
    if (!report.empty()) break;  // later steps only repeat the first difference
  }
  return report;
}

std::string replay_clip(const json& c) {
  const DType dtype = dtype_named(c.at("dtype"));
  std::vector<Tensor> parameters;
  json grads = c.at("grads");
  for (const json& g : grads) {
    parameters.push_back(zeros({std::int64_t(g.size())}, dtype).requires_grad(true));
  }
  parameters.push_back(zeros({3}, dtype).requires_grad(true));  // no gradient: skipped
  grads.push_back(nullptr);
  set_gradients(parameters, grads, dtype);
  const double norm =
      nn::clip_grad_norm(parameters, number(c.at("max_norm")), number(c.at("norm_type")));
  std::string report;
  const double want = number(c.at("norm"));
  if (!(std::abs(norm - want) <= rtol(dtype) * std::abs(want))) {
    report += fmt::format("norm: expected {}, got {}\n", want, norm);
  }
  for (std::size_t i = 0; i + 1 < parameters.size(); ++i) {
    report += compare(fmt::format("clipped gradient {}", i), parameters[i].grad(),
                      {{"values", c.at("clipped")[i]}}, parameters[i].shape(), dtype);
  }
  if (parameters.back().grad().defined()) report += "the parameter without a gradient got one\n";
  return report;
}

class ReferenceOptimizers : public ::testing::TestWithParam<OptimizerRecord> {};

TEST_P(ReferenceOptimizers, MatchesPyTorch) {
  const OptimizerRecord& r = GetParam();
  const json c = fixture_case("optim.json", r.index);
  std::string report;
  try {
    report = c.contains("optimizer") ? replay_optimizer(c) : replay_clip(c);
  } catch (const Error& e) {
    report = std::string("threw: ") + e.what() + "\n";
  }
  EXPECT_TRUE(report.empty()) << r.name << ":\n" << report;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceOptimizers, ::testing::ValuesIn(optimizer_records()),
                         [](const ::testing::TestParamInfo<OptimizerRecord>& info) {
                           return identifier(std::to_string(info.index) + "_" + info.param.name);
                         });

TEST(ReferenceCoverage, EveryFixtureFileHasCases) {
  for (const char* file : {"ops.json", "losses.json", "modules.json", "optim.json", "everyday.json",
                           "masks.json", "matmul_loss.json", "conv.json", "pool.json", "norm.json",
                           "attention.json", "language.json", "transformer_modules.json"}) {
    EXPECT_FALSE(fixture(file).case_lines.empty()) << file;
  }
}

TEST(ReferenceCoverage, EveryRegisteredOpHasAFixtureInBothDtypes) {
  std::map<std::string, std::set<std::string>> dtypes;
  for (const Record& r : all_op_records()) dtypes[r.op].insert(r.dtype);
  std::vector<std::string> missing;
  for (const OpRegistration& op : op_registry().ops()) {
    if (dtypes[op.name].size() < 2) missing.push_back(op.name);
  }
  for (const std::string& op : kPositionOps) {
    if (dtypes[op].size() < 2) missing.push_back(op);
  }
  EXPECT_TRUE(missing.empty()) << "registered ops without a reference case in float64 and float32 "
                                  "(add them to a scripts/make_*reference.py): "
                               << fmt::format("{}", fmt::join(missing, ", "));
}

TEST(ReferenceCoverage, EveryFixtureOpIsRegistered) {
  std::set<std::string> known = kPositionOps;
  for (const OpRegistration& op : op_registry().ops()) known.insert(op.name);
  std::set<std::string> unknown;
  for (const Record& r : all_op_records()) {
    if (!known.contains(r.op)) unknown.insert(r.op);
  }
  EXPECT_TRUE(unknown.empty()) << "fixture cases name ops that are not registered: "
                               << fmt::format("{}", fmt::join(unknown, ", "));
}

}  // namespace
}  // namespace tg
