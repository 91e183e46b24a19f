#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "../expect_error.h"
#include "tapegrad.h"

namespace tg {
namespace {

std::vector<double> values(const Tensor& t) {
  return t.to_vector();
}

TEST(Backward, AccumulatesIntoLeavesUntilZeroGrad) {
  Tensor x = tensor({1, 2, 3}, f64).requires_grad(true);
  Tensor loss = sum(x * x);
  loss.backward(Tensor(), {.retain_graph = true});
  EXPECT_EQ(values(x.grad()), std::vector<double>({2, 4, 6}));
  loss.backward();
  EXPECT_EQ(values(x.grad()), std::vector<double>({4, 8, 12}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(x * 3.0).backward();
  EXPECT_EQ(values(x.grad()), std::vector<double>({3, 3, 3}));
}

TEST(Backward, GradReturnsGradientsWithoutTouchingGrad) {
  Tensor a = tensor({1, 2}, f64).requires_grad(true);
  Tensor b = tensor({3, 4}, f64).requires_grad(true);
  Tensor h = a * b;
  const std::vector<Tensor> g = grad(sum(h * h), {a, b, h});
  EXPECT_EQ(values(g[0]), std::vector<double>({2 * 3 * 3, 2 * 8 * 4}));
  EXPECT_EQ(values(g[1]), std::vector<double>({2 * 3 * 1, 2 * 8 * 2}));
  EXPECT_EQ(values(g[2]), std::vector<double>({6, 16}));  // an intermediate tensor
  EXPECT_FALSE(a.grad().defined());
  Tensor unused = tensor({5}, f64).requires_grad(true);
  EXPECT_EQ(values(grad(sum(a), {unused})[0]), std::vector<double>({0}));
}

// A lazy rule that sets a gradient for every input, needed or not: the engine must drop the
// ones for inputs that need none (constants, int64 indices).
const CustomOp scale_by{"scale_by", "da = g ⊙ b, db = g ⊙ a",
                        [](ForwardContext& ctx) { return ctx.input(0) * ctx.input(1).to(f64); },
                        [](BackwardContext& ctx) {
                          const Tensor& g = ctx.grad_output();
                          ctx.set_grad(0, g * ctx.input(1).to(f64));
                          ctx.set_grad(1, g * ctx.input(0));
                        }};

TEST(Backward, InputsThatNeedNoGradientGetNone) {
  Tensor x = tensor({1, 2}, f64).requires_grad(true);
  const Tensor c = tensor({3, 4}, f64);
  sum(x + c).backward();
  EXPECT_EQ(values(x.grad()), std::vector<double>({1, 1}));
  EXPECT_FALSE(c.grad().defined());
  x.zero_grad();
  sum(scale_by(x, c)).backward();
  EXPECT_EQ(values(x.grad()), std::vector<double>({3, 4}));
  EXPECT_FALSE(c.grad().defined());
  // int64 indices: the rule's float gradient for them must not even reach the dtype check.
  x.zero_grad();
  const Tensor index = int64_tensor({5, 6});
  sum(scale_by(x, index)).backward();
  EXPECT_EQ(values(x.grad()), std::vector<double>({5, 6}));
  EXPECT_FALSE(index.grad().defined());
  // tg::grad: a constant in wrt gets zeros, not the gradient its rule computed.
  const std::vector<Tensor> g = grad(sum(scale_by(x, c)), {x, c});
  EXPECT_EQ(values(g[0]), std::vector<double>({3, 4}));
  EXPECT_EQ(values(g[1]), std::vector<double>({0, 0}));
  EXPECT_FALSE(c.grad().defined());
}

TEST(Backward, TheSeedMustMatchTheOutputsShapeAndDtype) {
  const Tensor x = tensor({1, 2}, f64).requires_grad(true);
  const Tensor y = x * x;
  const auto expect_seed_error = [&](const Tensor& seed, const std::string& message) {
    for (const bool through_grad : {false, true}) {
      try {
        if (through_grad) {
          grad(y, {x}, seed, {.retain_graph = true});
        } else {
          y.backward(seed, {.retain_graph = true});
        }
        ADD_FAILURE() << "expected an error: " << message;
      } catch (const Error& e) {
        const std::string what = (through_grad ? "grad: " : "backward: ") + message;
        EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      }
    }
  };
  expect_seed_error(tensor({1, 1, 1}, f64),
                    "the seed gradient is float64 [3] but the output is float64 [2]");
  expect_seed_error(tensor({1, 1}, f32),
                    "the seed gradient is float32 [2] but the output is float64 [2]");
  expect_seed_error(tensor({{1, 1}}, f64),
                    "the seed gradient is float64 [1, 2] but the output is float64 [2]");
  EXPECT_FALSE(x.grad().defined());  // nothing accumulated by a refused pass
  y.backward(tensor({1, 10}, f64));
  EXPECT_EQ(values(x.grad()), std::vector<double>({2, 40}));
}

TEST(Backward, AnUndefinedOutputIsAnError) {
  const auto& expect_message = test_support::expect_error_containing;
  expect_message([] { Tensor().backward(); }, "backward: the output tensor is undefined");
  const Tensor x = tensor({1.0}, f64).requires_grad(true);
  expect_message([&] { grad(Tensor(), {x}); }, "grad: the output tensor is undefined");
  expect_message([&] { grad(sum(x * x), {Tensor()}); },
                 "grad: input 0 to differentiate with respect to is undefined");
}

TEST(Anomaly, Int64OutputsAreNotCheckedForNaN) {
  const AnomalyGuard anomaly;
  const Tensor index = int64_tensor({1, 0, 2, 3});
  EXPECT_EQ(values(reshape(index, {2, 2})), std::vector<double>({1, 0, 2, 3}));
  // And through a recorded graph with int64 labels, forward and backward.
  const Tensor logits = tensor({{0.0, 1.0}, {2.0, 0.5}}, f64).requires_grad(true);
  const Tensor labels = int64_tensor({1, 0});
  cross_entropy(logits, labels).backward();
  EXPECT_TRUE(logits.grad().defined());
  EXPECT_FALSE(labels.grad().defined());
}

TEST(Backward, BroadcastGradientsAreSummedBackToEachInput) {
  Tensor a = ones({2, 3}, f64).requires_grad(true);
  Tensor b = tensor({1, 2, 3}, f64).requires_grad(true);
  Tensor c = full({}, 2.0, f64).requires_grad(true);
  sum((a * b) * c).backward();
  EXPECT_EQ(values(a.grad()), std::vector<double>({2, 4, 6, 2, 4, 6}));
  EXPECT_EQ(values(b.grad()), std::vector<double>({4, 4, 4}));
  EXPECT_EQ(c.grad().shape(), Shape({}));
  EXPECT_EQ(c.grad().item(), 12.0);
}

TEST(Backward, NonScalarOutputNeedsASeed) {
  Tensor x = tensor({1, 2}, f64).requires_grad(true);
  Tensor y = x * x;
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape [2], not a single element; pass a seed"),
              std::string::npos)
        << e.what();
  }
  y.backward(tensor({1, 10}, f64));
  EXPECT_EQ(values(x.grad()), std::vector<double>({2, 40}));
  EXPECT_THROW(y.backward(tensor({1, 10, 100}, f64)), Error);
}

TEST(Backward, SecondBackwardAfterResidualsWereFreedThrows) {
  Tensor x = tensor({1, 2}, f64).requires_grad(true);
  Tensor loss = sum(tanh(x));
  loss.backward();
  try {
    loss.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
}

TEST(Backward, ThroughATensorWhoseTapeIsGoneThrows) {
  Tensor x = tensor({1, 2}, f64).requires_grad(true);
  Tensor loss;
  {
    Tape tape;
    loss = sum(x * x);
  }
  try {
    loss.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tape was cleared or destroyed"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(loss * 2.0, Error);  // recording on top of a gone graph
  EXPECT_NO_THROW(loss.detach() * 2.0);
  EXPECT_EQ(loss.item(), 5.0);  // the value outlives the graph
}

TEST(Backward, WithoutGradOrAfterDetachThereIsNothingToDifferentiate) {
  Tensor x = tensor({1, 2}).requires_grad(true);
  {
    NoGradGuard no_grad;
    Tensor y = x * x;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_THROW(sum(y).backward(), Error);
  }
  Tensor y = (x * x).detach();
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(sum(y).backward(), Error);
  EXPECT_TRUE(grad_enabled());
}

TEST(Backward, CreateGraphGivesGradientsOfGradients) {
  Tensor x = tensor({0.5, -1.5, 2.0}, f64).requires_grad(true);
  const Tensor y = sum(pow(x, 3.0));
  const Tensor dx = grad(y, {x}, Tensor(), {.create_graph = true})[0];
  const Tensor d2x = grad(sum(dx), {x}, Tensor(), {.retain_graph = true})[0];
  const Tensor d3x = grad(sum(grad(sum(dx), {x}, Tensor(), {.create_graph = true})[0]), {x})[0];
  for (int i = 0; i < 3; ++i) {
    const double v = x.at({i});
    EXPECT_DOUBLE_EQ(dx.at({i}), 3 * v * v);
    EXPECT_DOUBLE_EQ(d2x.at({i}), 6 * v);
    EXPECT_DOUBLE_EQ(d3x.at({i}), 6.0);
  }
}

TEST(Backward, CreateGraphThroughBackwardIntoGrad) {
  // d/dx of ‖∇ₓ f‖² with f = Σ sin-free tanh(x)·x: the gradient penalty pattern.
  Tensor x = tensor({0.3, -0.7}, f64).requires_grad(true);
  sum(tanh(x) * x).backward(Tensor(), {.create_graph = true});
  const Tensor g = x.grad();
  EXPECT_TRUE(g.requires_grad());
  const Tensor penalty_grad = grad(sum(g * g), {x})[0];
  for (int i = 0; i < 2; ++i) {
    const double v = x.at({i});
    const double t = std::tanh(v), s = 1 - t * t;  // g = t + v·s
    const double gv = t + v * s;
    const double dg = s + s - 2 * v * t * s;  // d/dv (t + v s)
    EXPECT_NEAR(penalty_grad.at({i}), 2 * gv * dg, 1e-12);
  }
  // x holds a gradient whose graph holds x: as in PyTorch, clearing it breaks the cycle.
  x.zero_grad();
}

TEST(Backward, HundredThousandOpChainDoesNotOverflowTheStack) {
  Tensor x = tensor({0.5}, f64).requires_grad(true);
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = i % 2 == 0 ? y * 1.00001 : y - 1e-6;
  sum(y).backward();
  EXPECT_NEAR(x.grad().item(), std::pow(1.00001, 50000), 1e-9);
}

TEST(Tape, RecordsEntriesInOrderWithInputsAndLocations) {
  Tape tape;
  Tensor a = tensor({1, 2}, f64).requires_grad(true);
  Tensor b = tensor({3}, f64);
  const int line = __LINE__ + 1;
  Tensor c = a * b;
  Tensor d = exp(c);
  Tensor e = sum(d);
  ASSERT_EQ(tape.size(), 3u);
  const std::vector<TapeEntryView> entries = tape.entries();
  EXPECT_STREQ(entries[0].op, "mul");
  EXPECT_EQ(entries[0].location.line(), unsigned(line));
  EXPECT_NE(std::string(entries[0].location.file_name()).find("tape_test.cpp"), std::string::npos);
  EXPECT_EQ(entries[0].input_entries, std::vector<std::int64_t>({-1, -1}));
  EXPECT_EQ(values(entries[0].inputs[1]), std::vector<double>({3}));
  EXPECT_STREQ(entries[1].op, "exp");
  EXPECT_STREQ(entries[1].formula, "dx = g ⊙ y");
  EXPECT_EQ(entries[1].input_entries, std::vector<std::int64_t>({entries[0].index}));
  EXPECT_STREQ(entries[2].op, "sum");
  EXPECT_EQ(entries[2].output.shape(), Shape({}));
  EXPECT_FALSE(entries[2].freed);
  e.backward();
  EXPECT_TRUE(tape.entry(entries[2].index).freed);
  EXPECT_EQ(&Tape::current(), &tape);
}

TEST(Tape, NestedTapesRecordSeparatelyAndStopGradientsAtTheirBoundary) {
  Tensor x = tensor({2}, f64).requires_grad(true);
  Tape outer;
  Tensor h = x * x;
  {
    Tape inner;
    Tensor y = h * 3.0;
    EXPECT_EQ(inner.size(), 1u);
    EXPECT_EQ(outer.size(), 1u);
    y.backward();
  }
  EXPECT_EQ(h.grad().item(), 3.0);  // h is a leaf of the inner tape
  EXPECT_FALSE(x.grad().defined());
  sum(h).backward();
  EXPECT_EQ(x.grad().item(), 4.0);
}

TEST(Tape, DefaultTapeStaysSmallOverATrainingLoop) {
  EXPECT_EQ(default_tape().size(), 0u);  // no earlier test left a graph behind
  Generator gen(3);
  Tensor w = randn({4, 3}, gen).requires_grad(true);
  const Tensor x = randn({8, 4}, gen);
  const Tensor labels = int64_tensor({0, 1, 2, 0, 1, 2, 0, 1});
  std::size_t largest = 0;
  for (int step = 0; step < 3000; ++step) {
    w.zero_grad();
    Tensor loss = cross_entropy(tanh(matmul(x, w)), labels);
    loss.backward();
    {
      NoGradGuard no_grad;
      w = (w - w.grad() * 0.1).detach().requires_grad(true);
    }
    largest = std::max(largest, default_tape().size());
  }
  EXPECT_LE(largest, 3u);  // one step's entries at most
}

TEST(Tape, DefaultTapeReclaimsForwardPassesThatAreNeverBackpropagated) {
  Tensor w = tensor({0.5, -0.5}).requires_grad(true);
  Tensor kept;  // a handle carried from one iteration to the next
  std::size_t largest = 0;
  for (int step = 0; step < 5000; ++step) {
    kept = sum(tanh(w * float(step)));
    largest = std::max(largest, default_tape().size());
  }
  EXPECT_LE(largest, 600u);
  kept.backward();  // the newest graph is intact
  EXPECT_TRUE(w.grad().defined());
}

// Found when the suite first ran in shards: after one huge graph, the default tape waited for
// twice that graph's size before its first reclamation, so this loop held 15,000 entries.
TEST(Tape, DefaultTapeReclaimsEarlyAgainAfterAHugeGraph) {
  Tensor x = tensor({0.5}, f64).requires_grad(true);
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0001;
  sum(y).backward();
  y = Tensor();
  Tensor w = tensor({0.5, -0.5}).requires_grad(true);
  Tensor kept;
  std::size_t largest = 0;
  for (int step = 0; step < 5000; ++step) {
    kept = sum(tanh(w * float(step)));
    largest = std::max(largest, default_tape().size());
  }
  EXPECT_LE(largest, 600u);
}

}  // namespace
}  // namespace tg
