// RNN, LSTM and GRU: PyTorch's names, layouts and initialisation; outputs against a scalar
// reference written from the formulas; states carried across calls; gradients against finite
// differences; errors; and two small sequence tasks that need memory.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <ostream>
#include <sstream>

#include "module_gradcheck.h"
#include "tapegrad.h"

namespace tg::nn {
namespace {

enum class Kind { rnn, lstm, gru };

std::shared_ptr<Recurrent> make(Kind kind, std::int64_t input, std::int64_t hidden, Generator& gen,
                                DType dtype = f64) {
  switch (kind) {
    case Kind::rnn:
      return std::make_shared<RNN>(input, hidden, gen, dtype);
    case Kind::lstm:
      return std::make_shared<LSTM>(input, hidden, gen, dtype);
    default:
      return std::make_shared<GRU>(input, hidden, gen, dtype);
  }
}

double sigmoid(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}

struct ReferenceRun {
  std::vector<double> outputs;  // [batch, time, hidden]
  std::vector<double> final_c;  // [batch, hidden], LSTM only
};

// The recurrences one scalar at a time, from the parameters' values: no tapegrad op involved.
ReferenceRun reference(Kind kind, const Recurrent& m, const Tensor& x) {
  const std::int64_t batch = x.shape()[0], steps = x.shape()[1], in = x.shape()[2];
  const std::int64_t hidden = m.hidden_size();
  const std::int64_t width = m.weight_ih.shape()[0];
  const std::vector<double> w_ih = m.weight_ih.to_vector(), w_hh = m.weight_hh.to_vector();
  const std::vector<double> b_ih = m.bias_ih.to_vector(), b_hh = m.bias_hh.to_vector();
  const std::vector<double> xs = x.to_vector();
  ReferenceRun run;
  for (std::int64_t b = 0; b < batch; ++b) {
    std::vector<double> h(static_cast<std::size_t>(hidden), 0.0), c(h.size(), 0.0);
    for (std::int64_t t = 0; t < steps; ++t) {
      std::vector<double> gx(static_cast<std::size_t>(width)), gh(gx.size());
      for (std::int64_t j = 0; j < width; ++j) {
        double sx = b_ih[std::size_t(j)], sh = b_hh[std::size_t(j)];
        for (std::int64_t k = 0; k < in; ++k) {
          sx += w_ih[std::size_t(j * in + k)] * xs[std::size_t((b * steps + t) * in + k)];
        }
        for (std::int64_t k = 0; k < hidden; ++k) {
          sh += w_hh[std::size_t(j * hidden + k)] * h[std::size_t(k)];
        }
        gx[std::size_t(j)] = sx;
        gh[std::size_t(j)] = sh;
      }
      for (std::int64_t j = 0; j < hidden; ++j) {
        auto at = [&](const std::vector<double>& v, std::int64_t g) {
          return v[std::size_t(g * hidden + j)];
        };
        double& hj = h[std::size_t(j)];
        if (kind == Kind::rnn) {
          hj = std::tanh(at(gx, 0) + at(gh, 0));
        } else if (kind == Kind::lstm) {
          const double i = sigmoid(at(gx, 0) + at(gh, 0)), f = sigmoid(at(gx, 1) + at(gh, 1));
          const double g = std::tanh(at(gx, 2) + at(gh, 2)), o = sigmoid(at(gx, 3) + at(gh, 3));
          double& cj = c[std::size_t(j)];
          cj = f * cj + i * g;
          hj = o * std::tanh(cj);
        } else {
          const double r = sigmoid(at(gx, 0) + at(gh, 0)), z = sigmoid(at(gx, 1) + at(gh, 1));
          const double n = std::tanh(at(gx, 2) + r * at(gh, 2));
          hj = (1 - z) * n + z * hj;
        }
      }
      run.outputs.insert(run.outputs.end(), h.begin(), h.end());
    }
    run.final_c.insert(run.final_c.end(), c.begin(), c.end());
  }
  return run;
}

TEST(Recurrent, ParameterNamesShapesAndInitialisationMatchPyTorch) {
  Generator gen(0);
  LSTM lstm(3, 5, gen);
  const auto named = lstm.named_parameters();
  ASSERT_EQ(named.size(), 4u);
  const std::vector<std::string> names = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                          "bias_hh_l0"};
  const std::vector<Shape> shapes = {{20, 3}, {20, 5}, {20}, {20}};
  const double bound = 1 / std::sqrt(5.0);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(named[i].first, names[i]);
    EXPECT_EQ(named[i].second.shape(), shapes[i]);
    EXPECT_EQ(named[i].second.dtype(), f32);
    for (double v : named[i].second.to_vector()) EXPECT_LE(std::abs(v), bound);
  }
  EXPECT_EQ(GRU(3, 5, gen).weight_hh.shape(), Shape({15, 5}));
  EXPECT_EQ(RNN(3, 5, gen).weight_ih.shape(), Shape({5, 3}));
  std::ostringstream text;
  text << lstm;
  EXPECT_EQ(text.str(), "LSTM(3, 5, batch_first=True)");
}

class EachKind : public ::testing::TestWithParam<Kind> {};

TEST_P(EachKind, OutputsMatchTheScalarReference) {
  Generator gen(1);
  const auto m = make(GetParam(), 3, 4, gen);
  const Tensor x = randn({2, 5, 3}, gen, f64);
  const RecurrentOutput out = m->run(x);
  const ReferenceRun expected = reference(GetParam(), *m, x);
  ASSERT_EQ(out.outputs.shape(), Shape({2, 5, 4}));
  const std::vector<double> got = out.outputs.to_vector();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected.outputs[i], 1e-13);
  // The final hidden state is the last step's output.
  EXPECT_EQ(out.final.h.to_vector(), slice(out.outputs, 1, 4, 5).to_vector());
  if (GetParam() == Kind::lstm) {
    const std::vector<double> c = out.final.c.to_vector();
    for (std::size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], expected.final_c[i], 1e-13);
  } else {
    EXPECT_FALSE(out.final.c.defined());
  }
}

TEST_P(EachKind, StatesCarryAcrossCallsAndStepsAgreeWithTheWholeSequence) {
  Generator gen(2);
  const auto m = make(GetParam(), 2, 3, gen);
  const Tensor x = randn({2, 4, 2}, gen, f64);
  const RecurrentOutput whole = m->run(x);
  const RecurrentOutput first = m->run(slice(x, 1, 0, 2));
  const RecurrentOutput second = m->run(slice(x, 1, 2, 4), first.final);
  const std::vector<double> expected = whole.outputs.to_vector();
  const std::vector<double> joined = concat({first.outputs, second.outputs}, 1).to_vector();
  for (std::size_t i = 0; i < joined.size(); ++i) EXPECT_NEAR(joined[i], expected[i], 1e-15);
  RecurrentState state;
  for (std::int64_t t = 0; t < 4; ++t)
    state = m->step(reshape(slice(x, 1, t, t + 1), {2, 2}), state);
  const std::vector<double> stepped = state.h.to_vector();
  const std::vector<double> last = whole.final.h.to_vector();
  for (std::size_t i = 0; i < last.size(); ++i) EXPECT_NEAR(stepped[i], last[i], 1e-15);
}

TEST_P(EachKind, PassesGradcheckWithRespectToInputAndParameters) {
  Generator gen(3);
  const auto m = make(GetParam(), 2, 3, gen);
  EXPECT_TRUE(module_gradcheck(*m, randn({2, 3, 2}, gen, f64)));
}

TEST_P(EachKind, PassesGradgradcheckThroughTheRecurrence) {
  Generator gen(4);
  const auto m = make(GetParam(), 2, 2, gen);
  const Tensor x = randn({1, 3, 2}, gen, f64);
  const std::vector<Tensor> params = m->parameters();
  std::vector<Tensor> inputs = {x};
  inputs.push_back(params[1].detach().copy());  // the recurrent weight: second order matters most
  const GradcheckResult r = gradgradcheck(
      [&](const std::vector<Tensor>& in) {
        return functional_call(*m, {params[0], in[1], params[2], params[3]}, in[0]);
      },
      inputs);
  EXPECT_TRUE(testing::as_assertion(r));
}

// gtest prints a parameter with operator<<, and names each case after it.
std::ostream& operator<<(std::ostream& out, Kind kind) {
  switch (kind) {
    case Kind::rnn:
      return out << "RNN";
    case Kind::lstm:
      return out << "LSTM";
    default:
      return out << "GRU";
  }
}

std::string kind_name(const ::testing::TestParamInfo<Kind>& info) {
  return ::testing::PrintToString(info.param);
}

INSTANTIATE_TEST_SUITE_P(Recurrent, EachKind, ::testing::Values(Kind::rnn, Kind::lstm, Kind::gru),
                         kind_name);

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Recurrent, BadInputsAndStatesAreErrorsThatSayWhatWasExpected) {
  Generator gen(5);
  LSTM lstm(3, 4, gen);
  EXPECT_EQ(error_of([&] {
              lstm(zeros({2, 3}));
            }),
            "LSTM: expected a batch-first input of shape [batch, time, 3], got [2, 3]");
  EXPECT_EQ(error_of([&] {
              lstm(zeros({2, 5, 2}));
            }),
            "LSTM: expected a batch-first input of shape [batch, time, 3], got [2, 5, 2]");
  EXPECT_EQ(error_of([&] {
              lstm(zeros({2, 5, 3}, f64));
            }),
            "LSTM: the input is float64 but the parameters are float32");
  EXPECT_EQ(error_of([&] {
              lstm.run(zeros({2, 5, 3}), {zeros({3, 4}), Tensor()});
            }),
            "LSTM: expected a hidden state of shape [2, 4], got [3, 4]");
  EXPECT_EQ(error_of([&] {
              lstm.run(zeros({2, 5, 3}), {Tensor(), zeros({2, 5})});
            }),
            "LSTM: expected a cell state of shape [2, 4], got [2, 5]");
  EXPECT_EQ(error_of([&] {
              lstm.step(zeros({2, 5, 3}), {});
            }),
            "LSTM: expected a step input of shape [batch, 3], got [2, 5, 3]");
  EXPECT_EQ(error_of([&] { GRU(0, 4, gen); }),
            "GRU: expected positive sizes, got input_size = 0, hidden_size = 4");
  // An empty sequence is no error: no outputs, and the initial state comes back.
  const RecurrentOutput none = lstm.run(zeros({2, 0, 3}));
  EXPECT_EQ(none.outputs.shape(), Shape({2, 0, 4}));
  EXPECT_EQ(none.final.h.to_vector(), std::vector<double>(8, 0.0));
}

// Classifies a sequence of ±1 by its first element, which the last step must remember across
// the seven after it: a task a feed-forward layer on the last input cannot do better than chance.
class FirstElementClassifier : public Module {
 public:
  FirstElementClassifier(Kind kind, Generator& gen)
      : recurrent_(register_module("recurrent", make(kind, 1, 8, gen, f32))),
        head_(register_module("head", std::make_shared<Linear>(8, 2, true, gen))) {}
  Tensor forward(const Tensor& input) override { return (*head_)(recurrent_->run(input).final.h); }
  std::string describe() const override { return "FirstElementClassifier"; }

 private:
  std::shared_ptr<Recurrent> recurrent_;
  std::shared_ptr<Linear> head_;
};

Dataset first_element_task(std::int64_t n, Generator& gen) {
  std::vector<double> values;
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < n; ++i) {
    for (int t = 0; t < 8; ++t) values.push_back(gen.uniform() < 0.5 ? -1.0 : 1.0);
    labels.push_back(values[std::size_t(i * 8)] > 0 ? 1 : 0);
  }
  return {from_vector(values, {n, 8, 1}, f32), int64_tensor(labels)};
}

class Remembers : public ::testing::TestWithParam<Kind> {};

TEST_P(Remembers, TheFirstElementOfASequenceAfterTraining) {
  Generator gen(6);
  const Dataset train = first_element_task(512, gen);
  const Dataset test = first_element_task(256, gen);
  FirstElementClassifier model(GetParam(), gen);
  Adam optimizer(model.parameters(), {.lr = 0.02});
  DataLoader loader(train, 64, true, 7);
  for (int epoch = 0; epoch < 15; ++epoch) {
    for (const Dataset& batch : loader) {
      optimizer.zero_grad();
      cross_entropy(model(batch.features), batch.labels).backward();
      optimizer.step();
    }
  }
  model.eval();
  EXPECT_GE(accuracy(model(test.features), test.labels), 0.97);
}

INSTANTIATE_TEST_SUITE_P(Recurrent, Remembers, ::testing::Values(Kind::lstm, Kind::gru), kind_name);

}  // namespace
}  // namespace tg::nn
