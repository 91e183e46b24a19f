// Optimizers, clipping and schedules: hand-worked steps from PyTorch's documented formulas, and
// ten-step trajectories from PyTorch 1.13's torch.optim itself, with parameters that miss
// gradients on some steps.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tapegrad.h"

namespace tg::nn {
namespace {

const std::vector<std::vector<double>> kGradients = {{0.5, 1.0}, {-0.5, 2.0}, {0.25, -1.0}};

// For p₀ = [1, −2], lr = 0.1 and the gradients above in turn: the parameter after each step.
template <class MakeOptimizer>
std::vector<std::vector<double>> run(MakeOptimizer make) {
  Tensor p = tensor({1.0, -2.0}, f64).requires_grad(true);
  auto optimizer = make(std::vector<Tensor>{p});
  std::vector<std::vector<double>> trajectory;
  for (const std::vector<double>& g : kGradients) {
    optimizer->zero_grad();
    sum(p * from_vector(g, {2}, f64)).backward();  // grad(p) = g
    optimizer->step();
    trajectory.push_back(p.to_vector());
  }
  return trajectory;
}

void expect_trajectory(const std::vector<std::vector<double>>& got,
                       const std::vector<std::vector<double>>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t step = 0; step < want.size(); ++step) {
    for (std::size_t i = 0; i < 2; ++i) {
      EXPECT_NEAR(got[step][i], want[step][i], 1e-12) << "step " << step + 1 << ", element " << i;
    }
  }
}

TEST(SGD, PlainMomentumNesterovDampeningAndWeightDecay) {
  const auto sgd = [](SGDOptions o) {
    return [o](std::vector<Tensor> p) { return std::make_unique<SGD>(std::move(p), o); };
  };
  // p ← p − 0.1 g.
  expect_trajectory(run(sgd({.lr = 0.1})), {{0.95, -2.1}, {1.0, -2.3}, {0.975, -2.2}});
  // b₁ = g₁; b₂ = 0.9 b₁ + g₂ = [−0.05, 2.9]; b₃ = 0.9 b₂ + g₃ = [0.205, 1.61].
  expect_trajectory(run(sgd({.lr = 0.1, .momentum = 0.9})),
                    {{0.95, -2.1}, {0.955, -2.39}, {0.9345, -2.551}});
  // Nesterov: p ← p − 0.1 (g + 0.9 b).
  expect_trajectory(run(sgd({.lr = 0.1, .momentum = 0.9, .nesterov = true})),
                    {{0.905, -2.19}, {0.9595, -2.651}, {0.91605, -2.6959}});
  // Dampening 0.5: b ← 0.9 b + 0.5 g after the first step.
  expect_trajectory(run(sgd({.lr = 0.1, .momentum = 0.9, .dampening = 0.5})),
                    {{0.95, -2.1}, {0.93, -2.29}, {0.8995, -2.411}});
  // Weight decay 0.1: g ← g + 0.1 p.
  expect_trajectory(run(sgd({.lr = 0.1, .weight_decay = 0.1})),
                    {{0.94, -2.08}, {0.9806, -2.2592}, {0.945794, -2.136608}});
}

TEST(Adam, BiasCorrectedMomentsAndL2WeightDecay) {
  // Step 1: m̂ = g, v̂ = g², so p moves by 0.1 in each coordinate (less ε's share).
  // Step 2: m = [−0.005, 0.29], v = [0.00049975, 0.004999], m̂ = m / 0.19, v̂ = v / 0.001999.
  expect_trajectory(run([](std::vector<Tensor> p) {
                      return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 0.1});
                    }),
                    {{0.900000002, -2.099999999},
                     {0.9052631597894735, -2.1965182009718336},
                     {0.8877906067738799, -2.2385271310318133}});
  expect_trajectory(run([](std::vector<Tensor> p) {
                      return std::make_unique<Adam>(std::move(p),
                                                    AdamOptions{.lr = 0.1, .weight_decay = 0.1});
                    }),
                    {{0.9000000016666666, -2.09999999875},
                     {0.8866836230649792, -2.1952720095868674},
                     {0.8503518619580189, -2.2240427812194343}});
}

TEST(AdamW, DecoupledWeightDecay) {
  // p ← p(1 − 0.1·0.1) first: p₁ = [0.99 − 0.1, −1.98 − 0.1].
  expect_trajectory(run([](std::vector<Tensor> p) {
                      return std::make_unique<AdamW>(std::move(p),
                                                     AdamWOptions{.lr = 0.1, .weight_decay = 0.1});
                    }),
                    {{0.890000002, -2.079999999},
                     {0.8863631597694734, -2.1557182009818336},
                     {0.8600269751561851, -2.176169949031995}});
}

// ---- against PyTorch 1.13, ten steps ----
//
// The expected values come from this run of torch.optim (Debian's python3-torch), for each
// optimizer in float64 and float32, with zero_grad(set_to_none=True) and (False):
//
//   INIT = [[1.0, -2.0], [0.5, -0.25, 3.0], [0.1, -0.2, 0.3, -0.4]]
//   def has_grad(t, j): return j == 0 or (j == 1 and t >= 3 and t != 6) or (j == 2 and t % 2 == 0)
//   def G(t, j, n): return [math.sin(0.9 * t + 1.7 * j + 0.3 * i) * (1 + j) for i in range(n)]
//   ps = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in INIT]; opt = make(ps)
//   for t in range(1, 11):
//       opt.zero_grad(set_to_none=set_to_none)
//       sum((p * torch.tensor(G(t, j, p.numel()), dtype=dtype)).sum()
//           for j, p in enumerate(ps) if has_grad(t, j)).backward()
//       opt.step()
//
// Parameter 1 first gets a gradient at step 3 and misses step 6; parameter 2 gets one on even
// steps only. With set_to_none=False a parameter that had a gradient keeps a zero one.

using Params = std::vector<std::vector<double>>;
using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;

const Params kInitial = {{1.0, -2.0}, {0.5, -0.25, 3.0}, {0.1, -0.2, 0.3, -0.4}};

bool has_grad(int step, std::size_t j) {
  return j == 0 || (j == 1 && step >= 3 && step != 6) || (j == 2 && step % 2 == 0);
}

struct TenSteps {
  Params final;
  std::unique_ptr<Optimizer> optimizer;
};

TenSteps ten_steps(const MakeOptimizer& make, DType dtype, bool set_to_none) {
  std::vector<Tensor> ps;
  for (const std::vector<double>& v : kInitial) {
    ps.push_back(from_vector(v, {std::int64_t(v.size())}, dtype).requires_grad(true));
  }
  TenSteps result{{}, make(ps)};
  for (int t = 1; t <= 10; ++t) {
    result.optimizer->zero_grad(set_to_none);
    Tensor loss;
    for (std::size_t j = 0; j < ps.size(); ++j) {
      if (!has_grad(t, j)) continue;
      std::vector<double> g(kInitial[j].size());
      for (std::size_t i = 0; i < g.size(); ++i) {
        g[i] = std::sin(0.9 * t + 1.7 * double(j) + 0.3 * double(i)) * double(1 + j);
      }
      const Tensor term = sum(ps[j] * from_vector(g, ps[j].shape(), dtype));
      loss = loss.defined() ? loss + term : term;
    }
    loss.backward();
    result.optimizer->step();
  }
  for (const Tensor& p : ps) result.final.push_back(p.to_vector());
  return result;
}

// PyTorch's results: float64 with set_to_none, float64 zeroed, float32 with set_to_none, float32
// zeroed.
using Expected = std::array<Params, 4>;

void expect_torch(const MakeOptimizer& make, const Expected& expected) {
  int k = 0;
  for (const DType dtype : {f64, f32}) {
    for (const bool set_to_none : {true, false}) {
      const Params got = ten_steps(make, dtype, set_to_none).final;
      const Params& want = expected[std::size_t(k++)];
      // float64 agrees to rounding; float32 to a few ulps of each of ten steps.
      const double tolerance = dtype == f64 ? 1e-13 : 2e-6;
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t j = 0; j < want.size(); ++j) {
        for (std::size_t i = 0; i < want[j].size(); ++i) {
          EXPECT_NEAR(got[j][i], want[j][i], tolerance * std::max(1.0, std::abs(want[j][i])))
              << dtype_name(dtype) << (set_to_none ? ", set_to_none" : ", zeroed") << ", parameter "
              << j << "[" << i << "]";
        }
      }
    }
  }
}

template <class O, class Options>
MakeOptimizer make(Options options) {
  return [options](std::vector<Tensor> ps) { return std::make_unique<O>(std::move(ps), options); };
}

TEST(OptimizersAgainstPyTorch, SGD) {
  expect_torch(
      make<SGD>(SGDOptions{.lr = 0.1}),
      Expected{
          {{{0.7815770567356083, -2.1930346821941975},
            {0.8399387922743525, 0.13321380298713068, 3.392257465986041},
            {0.31897913835121544, -0.08053713365632686, 0.3092753322760769, -0.5017407395994719}},
           {{0.7815770567356083, -2.1930346821941975},
            {0.8399387922743525, 0.13321380298713068, 3.392257465986041},
            {0.31897913835121544, -0.08053713365632686, 0.3092753322760769, -0.5017407395994719}},
           {{0.7815769910812378, -2.1930346488952637},
            {0.8399388194084167, 0.13321378827095032, 3.3922572135925293},
            {0.3189791440963745, -0.0805371031165123, 0.309275358915329, -0.5017406940460205}},
           {{0.7815769910812378, -2.1930346488952637},
            {0.8399388194084167, 0.13321378827095032, 3.3922572135925293},
            {0.3189791440963745, -0.0805371031165123, 0.309275358915329, -0.5017406940460205}}}});
}

TEST(OptimizersAgainstPyTorch, SGDMomentumDampeningWeightDecay) {
  // The momentum buffer starts at a parameter's first gradient (step 3 for parameter 1).
  expect_torch(
      make<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}),
      Expected{
          {{{0.2113891674335825, -2.6056868159328817},
            {1.6763715700995925, 0.8902564765992832, 3.9180530086387426},
            {0.6618741150163681, 0.11941495906361037, 0.338871550801376, -0.6308163393532328}},
           {{0.2113891674335825, -2.6056868159328817},
            {1.8479339120067886, 1.0202334363362497, 3.974461863167121},
            {0.8565078714693235, 0.23790569566547978, 0.3553274369113475, -0.6949041499785799}},
           {{0.21138913929462433, -2.605686664581299},
            {1.6763715744018555, 0.890256404876709, 3.918052911758423},
            {0.6618741750717163, 0.11941495537757874, 0.338871568441391, -0.6308164596557617}},
           {{0.21138913929462433, -2.605686664581299},
            {1.8479340076446533, 1.020233392715454, 3.974461793899536},
            {0.8565077781677246, 0.23790572583675385, 0.35532745718955994, -0.6949039697647095}}}});
}

TEST(OptimizersAgainstPyTorch, SGDNesterov) {
  expect_torch(
      make<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true}),
      Expected{
          {{{0.5232691362480616, -1.938260434316462},
            {0.9512114424387412, 0.2994526509403443, 3.1682609520014378},
            {0.3664276333687725, -0.041043773464804256, 0.2826553143537776, -0.5101506201511548}},
           {{0.5232691362480616, -1.938260434316462},
            {0.9639050415165612, 0.3186279902422406, 3.112627332034025},
            {0.37285641120973445, -0.011325142839176775, 0.2715065787575744, -0.46891702525873025}},
           {{0.5232691168785095, -1.938260555267334},
            {0.9512114524841309, 0.29945266246795654, 3.1682610511779785},
            {0.36642760038375854, -0.04104376211762428, 0.2826553285121918, -0.5101506114006042}},
           {{0.5232691168785095, -1.938260555267334},
            {0.9639051556587219, 0.3186280131340027, 3.1126275062561035},
            {0.372856467962265, -0.011325106956064701, 0.2715066075325012,
             -0.46891701221466064}}}});
}

TEST(OptimizersAgainstPyTorch, Adam) {
  expect_torch(
      make<Adam>(AdamOptions{.lr = 0.1}),
      Expected{
          {{{0.6082349884442798, -2.348171742762855},
            {0.8334419696253884, 0.0669617863200869, 3.2824108065666824},
            {0.22659095824449682, -0.1102038220199429, 0.3528873211365493, -0.38118979530194563}},
           {{0.6082349884442798, -2.348171742762855},
            {0.8828988747363616, 0.10447120103102192, 3.303054287488043},
            {0.27694735358505396, -0.06567002013609624, 0.3940909743855349, -0.3409462404009756}},
           {{0.6082350611686707, -2.3481717109680176},
            {0.8334420323371887, 0.06696175038814545, 3.2824106216430664},
            {0.22659093141555786, -0.1102038323879242, 0.3528873324394226, -0.3811897933483124}},
           {{0.6082350611686707, -2.3481717109680176},
            {0.8828989267349243, 0.10447116196155548, 3.303053855895996},
            {0.2769472897052765, -0.06567002832889557, 0.3940909802913666, -0.3409462869167328}}}});
}

TEST(OptimizersAgainstPyTorch, AdamWithOptions) {
  expect_torch(
      make<Adam>(
          AdamOptions{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1}),
      Expected{
          {{{0.7880789936244172, -2.053628613036842},
            {0.6398475697099023, -0.10439857966262131, 3.0711195705871797},
            {0.15754895223970322, -0.15636383783872562, 0.323117833847302, -0.384988036419711}},
           {{0.7880789936244172, -2.053628613036842},
            {0.654151919072439, -0.09162458729306423, 3.0595013867997634},
            {0.17282430161473378, -0.13652016564991484, 0.3380413123395547, -0.35402688965137813}},
           {{0.7880789637565613, -2.053628921508789},
            {0.6398476362228394, -0.10439853370189667, 3.071119785308838},
            {0.1575489491224289, -0.1563638150691986, 0.32311782240867615, -0.38498806953430176}},
           {{0.7880789637565613, -2.053628921508789},
            {0.654151976108551, -0.09162455797195435, 3.0595016479492188},
            {0.17282426357269287, -0.1365201771259308, 0.3380413353443146, -0.3540268540382385}}}});
}

TEST(OptimizersAgainstPyTorch, AdamWWithPyTorchsDefaultDecay) {
  // AdamWOptions{.lr = 0.1} keeps PyTorch's λ = 0.01.
  expect_torch(
      make<AdamW>(AdamWOptions{.lr = 0.1}),
      Expected{
          {{{0.6009186175094723, -2.32589355754372},
            {0.8284830439139906, 0.06735265672785976, 3.26029512545382},
            {0.22569272332674, -0.10952513790642818, 0.3511464783081986, -0.37937034773540246}},
           {{0.6009186175094723, -2.32589355754372},
            {0.8769290991138258, 0.10467276505722359, 3.2776342494503488},
            {0.27486077970871575, -0.0648624971785101, 0.39060270494809235, -0.3380004878445926}},
           {{0.6009187698364258, -2.3258938789367676},
            {0.8284831643104553, 0.06735262274742126, 3.2602949142456055},
            {0.2256927341222763, -0.10952514410018921, 0.35114651918411255, -0.3793703317642212}},
           {{0.6009187698364258, -2.3258938789367676},
            {0.8769291639328003, 0.10467272251844406, 3.2776339054107666},
            {0.27486076951026917, -0.06486251205205917, 0.39060279726982117,
             -0.33800050616264343}}}});
}

TEST(OptimizersAgainstPyTorch, AdamWWithOptions) {
  expect_torch(
      make<AdamW>(AdamWOptions{.lr = 0.05, .beta1 = 0.85, .beta2 = 0.95, .weight_decay = 0.2}),
      Expected{
          {{{0.7320135076833405, -1.9622652553562214},
            {0.6171086822149043, -0.08822744016241793, 2.9263445161708765},
            {0.1541566051003217, -0.1483803764306729, 0.31026944391590516, -0.3705019768849351}},
           {{0.7320135076833405, -1.9622652553562214},
            {0.6314107642546428, -0.07200857221804326, 2.905130006688236},
            {0.16793828596485844, -0.1241723923066322, 0.31686577777980185, -0.33498950035205344}},
           {{0.7320135235786438, -1.9622656106948853},
            {0.6171087622642517, -0.08822743594646454, 2.926344633102417},
            {0.1541566103696823, -0.14838038384914398, 0.31026947498321533, -0.37050196528434753}},
           {{0.7320135235786438, -1.9622656106948853},
            {0.6314108371734619, -0.07200856506824493, 2.905129909515381},
            {0.16793832182884216, -0.12417241185903549, 0.31686583161354065,
             -0.3349895477294922}}}});
}

TEST(Adam, CountsStepsPerParameter) {
  for (const bool set_to_none : {true, false}) {
    const TenSteps run = ten_steps(make<Adam>(AdamOptions{.lr = 0.1}), f64, set_to_none);
    const auto& adam = dynamic_cast<const Adam&>(*run.optimizer);
    EXPECT_EQ(adam.steps(0), 10);
    // Dropped gradients skip steps 1, 2 and 6 (and the odd ones); zeroed ones count once present.
    EXPECT_EQ(adam.steps(1), set_to_none ? 7 : 8);
    EXPECT_EQ(adam.steps(2), set_to_none ? 5 : 9);
  }
}

TEST(Optimizer, SkipsParametersWithoutGradientAndZeroGradClears) {
  Tensor a = tensor({1.0}, f64).requires_grad(true);
  Tensor b = tensor({1.0}, f64).requires_grad(true);
  SGD sgd({a, b}, {.lr = 0.5});
  sum(a * 2.0).backward();
  sgd.step();
  EXPECT_EQ(a.item(), 0.0);
  EXPECT_EQ(b.item(), 1.0);
  sgd.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optimizer, ZeroGradInPlaceKeepsZerosWhereTheGradientWas) {
  Tensor a = tensor({1.0, 2.0}, f64).requires_grad(true);
  Tensor b = tensor({1.0}, f64).requires_grad(true);
  SGD sgd({a, b}, {.lr = 0.5});
  sum(a * 3.0).backward();
  const Tensor held = a.grad();
  const std::uint64_t version = held.version();
  sgd.zero_grad(false);
  ASSERT_TRUE(a.grad().defined());
  EXPECT_EQ(a.grad().to_vector(), std::vector<double>({0.0, 0.0}));
  EXPECT_EQ(held.to_vector(), std::vector<double>({0.0, 0.0}));  // in place: the same storage
  EXPECT_GT(held.version(), version);
  EXPECT_FALSE(b.grad().defined());  // no gradient yet: stays none, as PyTorch's
  sum(a * 2.0).backward();
  EXPECT_EQ(a.grad().to_vector(), std::vector<double>({2.0, 2.0}));
}

TEST(Optimizer, ZeroGradInPlaceDetachesAGradientWithAGraph) {
  Tensor x = tensor({1.5}, f64).requires_grad(true);
  sum(x * x * x).backward({}, {.create_graph = true});  // grad 3x², recorded
  ASSERT_TRUE(x.grad().requires_grad());
  zero_grad({x}, false);
  EXPECT_FALSE(x.grad().requires_grad());
  EXPECT_EQ(x.grad().item(), 0.0);
}

TEST(Module, ZeroGradBothWays) {
  manual_seed(3);
  Linear layer(2, 1);
  sum(layer(tensor({{1.0, 2.0}}))).backward();
  layer.zero_grad(false);
  for (const Tensor& p : layer.parameters()) {
    ASSERT_TRUE(p.grad().defined());
    for (double g : p.grad().to_vector()) EXPECT_EQ(g, 0.0);
  }
  layer.zero_grad();
  for (const Tensor& p : layer.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Optimizer, AZeroWeightDecayAddsNothingNotEvenZeroTimesInfinity) {
  for (const bool adam : {false, true}) {
    Tensor p = tensor({INFINITY, 1.0}, f64).requires_grad(true);
    std::unique_ptr<Optimizer> o;
    if (adam) {
      o = std::make_unique<Adam>(std::vector<Tensor>{p}, AdamOptions{.lr = 0.1});
    } else {
      o = std::make_unique<SGD>(std::vector<Tensor>{p}, SGDOptions{.lr = 0.1, .momentum = 0.9});
    }
    sum(p * tensor({1.0, 1.0}, f64)).backward();
    o->step();
    EXPECT_EQ(p.at({0}), INFINITY) << (adam ? "Adam" : "SGD");
  }
}

// Each message names the optimizer, the option and the bad value, as PyTorch's ValueError.
void expect_error(const std::function<void()>& make, const std::string& message) {
  try {
    make();
    ADD_FAILURE() << "no error; expected: " << message;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

TEST(Optimizer, ValidatesItsOptionsAsPyTorch) {
  const auto p = [] { return std::vector<Tensor>{tensor({1.0}).requires_grad(true)}; };
  expect_error([&] { SGD(p(), {.lr = -0.1}); }, "SGD: expected lr ≥ 0, got -0.1");
  expect_error([&] { SGD(p(), {.lr = NAN}); }, "SGD: expected lr ≥ 0, got nan");
  expect_error([&] { SGD(p(), {.momentum = -0.5}); }, "SGD: expected momentum ≥ 0, got -0.5");
  expect_error([&] { SGD(p(), {.weight_decay = -1}); }, "SGD: expected weight_decay ≥ 0, got -1");
  expect_error([&] { SGD(p(), {.nesterov = true}); },
               "SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum = 0, "
               "dampening = 0");
  expect_error([&] { SGD(p(), {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
               "got momentum = 0.9, dampening = 0.1");
  expect_error([&] { SGD(std::vector<Tensor>{}, {}); }, "SGD: got an empty parameter list");
  expect_error([&] { SGD({int64_tensor({1})}, {}); },
               "SGD: parameter 0 is undefined or not floating");
  expect_error(
      [&] {
        SGD({tensor({1.0}), Tensor()}, {});
      },
      "SGD: parameter 1 is undefined or not floating");
  expect_error([&] { Adam(p(), {.lr = -1}); }, "Adam: expected lr ≥ 0, got -1");
  expect_error([&] { Adam(p(), {.eps = -1e-8}); }, "Adam: expected eps ≥ 0, got -1e-08");
  expect_error([&] { Adam(p(), {.beta1 = 1.0}); }, "Adam: expected beta1 in [0, 1), got 1");
  expect_error([&] { Adam(p(), {.beta1 = -0.1}); }, "Adam: expected beta1 in [0, 1), got -0.1");
  expect_error([&] { Adam(p(), {.beta2 = 1.0}); }, "Adam: expected beta2 in [0, 1), got 1");
  expect_error([&] { Adam(p(), {.beta2 = -0.5}); }, "Adam: expected beta2 in [0, 1), got -0.5");
  expect_error([&] { Adam(p(), {.weight_decay = -0.1}); },
               "Adam: expected weight_decay ≥ 0, got -0.1");
  expect_error([&] { AdamW(p(), {.lr = -1}); }, "AdamW: expected lr ≥ 0, got -1");
  expect_error([&] { AdamW(p(), {.beta2 = 1.5}); }, "AdamW: expected beta2 in [0, 1), got 1.5");
  expect_error([&] { AdamW(p(), {.weight_decay = -0.01}); },
               "AdamW: expected weight_decay ≥ 0, got -0.01");
  // The boundaries PyTorch accepts.
  EXPECT_NO_THROW(SGD(p(), {.lr = 0.0, .momentum = 0.0, .weight_decay = 0.0}));
  EXPECT_NO_THROW(Adam(p(), {.lr = 0.0, .beta1 = 0.0, .beta2 = 0.0, .eps = 0.0}));
}

// ---- clip_grad_norm, against torch.nn.utils.clip_grad_norm_ ----

struct Clipped {
  double norm;
  std::vector<std::vector<double>> grads;
};

Clipped clip(const std::vector<std::vector<double>>& grads, double max_norm, double norm_type = 2.0,
             DType dtype = f64) {
  std::vector<Tensor> ps;
  for (const std::vector<double>& g : grads) {
    Tensor p = zeros({std::int64_t(g.size())}, dtype).requires_grad(true);
    sum(p * from_vector(g, p.shape(), dtype)).backward();  // grad(p) = g, infinities included
    ps.push_back(p);
  }
  Clipped out{clip_grad_norm(ps, max_norm, norm_type), {}};
  for (const Tensor& p : ps) out.grads.push_back(p.grad().to_vector());
  return out;
}

void expect_clipped(const Clipped& got, double norm, const std::vector<std::vector<double>>& grads,
                    double tolerance = 1e-15) {
  if (std::isnan(norm)) {
    EXPECT_TRUE(std::isnan(got.norm)) << got.norm;
  } else if (std::isinf(norm)) {
    EXPECT_EQ(got.norm, norm);
  } else {
    EXPECT_NEAR(got.norm, norm, tolerance * std::max(1.0, std::abs(norm)));
  }
  ASSERT_EQ(got.grads.size(), grads.size());
  for (std::size_t j = 0; j < grads.size(); ++j) {
    for (std::size_t i = 0; i < grads[j].size(); ++i) {
      if (std::isnan(grads[j][i])) {
        EXPECT_TRUE(std::isnan(got.grads[j][i])) << j << ", " << i << ": " << got.grads[j][i];
      } else {
        EXPECT_NEAR(got.grads[j][i], grads[j][i], tolerance) << j << ", " << i;
      }
    }
  }
}

TEST(ClipGradNorm, MatchesPyTorch) {
  // Above, at and below max_norm: at it, the 1e-6 still shrinks the gradients.
  expect_clipped(clip({{3, 0}, {4}}, 1), 5, {{0.599999880000024, 0}, {0.799999840000032}});
  expect_clipped(clip({{3, 0}, {4}}, 5), 5, {{2.99999940000012, 0}, {3.99999920000016}});
  expect_clipped(clip({{3, 0}, {4}}, 10), 5, {{3, 0}, {4}});
  // Orders ∞, 1 and 3.
  expect_clipped(clip({{3, -7}, {4}}, 1, INFINITY), 7,
                 {{0.42857136734694745, -0.9999998571428774}, {0.57142848979593}});
  expect_clipped(clip({{3, -7}, {4}}, 1, 1), 14,
                 {{0.21428569897959293, -0.49999996428571686}, {0.2857142653061239}});
  expect_clipped(clip({{3, -7}, {4}}, 1, 3), 7.571174278190852,
                 {{0.3962396708264897, -0.924559231928476}, {0.5283195611019863}});
  // A NaN norm makes every gradient NaN; an infinite one zeroes the finite gradients.
  expect_clipped(clip({{NAN, 1}, {2}}, 1), NAN, {{NAN, NAN}, {NAN}});
  expect_clipped(clip({{NAN, 1}, {2}}, 1, INFINITY), NAN, {{NAN, NAN}, {NAN}});
  expect_clipped(clip({{1, NAN}, {2}}, 1, INFINITY), NAN, {{NAN, NAN}, {NAN}});
  expect_clipped(clip({{INFINITY, 1}, {2}}, 1), INFINITY, {{NAN, 0}, {0}});
  expect_clipped(clip({{INFINITY, 1}, {2}}, 1, INFINITY), INFINITY, {{NAN, 0}, {0}});
  expect_clipped(clip({{0, 0}, {0}}, 0), 0, {{0, 0}, {0}});
  // float32 gradients, to float32 rounding.
  expect_clipped(clip({{3, 0}, {4}}, 1, 2, f32), 5, {{0.5999999046325684, 0}, {0.7999998331069946}},
                 1e-7);
  expect_clipped(clip({{0.1, 0.2}, {0.3}}, 0.2, 2, f32), 0.37416574358940125,
                 {{0.053452104330062866, 0.10690420866012573}, {0.1603563129901886}}, 1e-7);
}

TEST(ClipGradNorm, SkipsMissingGradientsAndChecksItsArguments) {
  Tensor a = tensor({1.0}, f64).requires_grad(true);
  Tensor b = tensor({1.0, 1.0}, f64).requires_grad(true);
  EXPECT_EQ(clip_grad_norm({a, b}, 1.0), 0.0);  // no gradients at all
  sum(b * tensor({6.0, 8.0}, f64)).backward();
  EXPECT_NEAR(clip_grad_norm({a, b}, 5.0), 10.0, 1e-15);
  EXPECT_FALSE(a.grad().defined());
  EXPECT_NEAR(b.grad().at({1}), 8 * 5 / (10 + 1e-6), 1e-15);
  const std::uint64_t version = b.grad().version();
  clip_grad_norm({a, b}, 100.0);  // scaled by 1, still a write, as PyTorch's mul_
  EXPECT_GT(b.grad().version(), version);
  expect_error([&] { clip_grad_norm({b}, -1.0); }, "clip_grad_norm: expected max_norm ≥ 0, got -1");
  expect_error([&] { clip_grad_norm({b}, NAN); }, "clip_grad_norm: expected max_norm ≥ 0, got nan");
  expect_error([&] { clip_grad_norm({b}, 1.0, 0.0); },
               "clip_grad_norm: expected norm_type > 0 (or INFINITY), got 0");
  expect_error([&] { clip_grad_norm({b}, 1.0, -2.0); }, "got -2");
}

TEST(ClipGradNorm, ErrorIfNonfinite) {
  for (const double bad : {NAN, INFINITY}) {
    Tensor p = zeros({2}, f64).requires_grad(true);
    sum(p * tensor({bad, 1.0}, f64)).backward();
    expect_error([&] { clip_grad_norm({p}, 1.0, 2.0, true); },
                 "clip_grad_norm: the total norm of order 2 of the gradients is ");
    EXPECT_EQ(p.grad().at({1}), 1.0);  // untouched
  }
  Tensor fine = zeros({1}, f64).requires_grad(true);
  sum(fine * 3.0).backward();
  EXPECT_NEAR(clip_grad_norm({fine}, 1.0, 2.0, true), 3.0, 1e-15);
}

TEST(ClipGradNorm, GradientsSharedByTwoLeavesAreClippedOnce) {
  // add hands the same cotangent to both inputs; each leaf must own its gradient.
  Tensor a = tensor({3.0}, f64).requires_grad(true);
  Tensor b = tensor({4.0}, f64).requires_grad(true);
  sum(a + b).backward();
  clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(a.grad().item(), 1.0 / (std::sqrt(2.0) + 1e-6), 1e-12);
  EXPECT_NEAR(b.grad().item(), 1.0 / (std::sqrt(2.0) + 1e-6), 1e-12);
}

// ---- parameter groups ----

TEST(ParamGroups, TurnWeightDecayOffForBiasesAndNorms) {
  Generator gen(4);
  Sequential model(std::make_shared<Linear>(3, 4, true, gen, f64),
                   std::make_shared<LayerNorm>(4, 1e-5, true, f64),
                   std::make_shared<Linear>(4, 1, true, gen, f64));
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, p] : model.named_parameters()) {
    (p.rank() == 1 ? no_decay : decay).push_back(p);  // biases and the norm's γ, β
  }
  AdamW adamw({{.params = decay}, {.params = no_decay, .options = AdamWOptions{.weight_decay = 0}}},
              {.lr = 0.1, .weight_decay = 0.5});
  ASSERT_EQ(adamw.group_count(), 2u);
  EXPECT_EQ(adamw.parameters(0).size(), 2u);
  EXPECT_EQ(adamw.parameters(1).size(), 4u);
  EXPECT_EQ(adamw.parameters().size(), 6u);
  // The second group took its own options whole: lr 1e-3 (AdamWOptions' default), no decay.
  EXPECT_EQ(adamw.lr(0), 0.1);
  EXPECT_EQ(adamw.lr(1), 1e-3);
  // With a zero gradient Adam's step is 0, so only the decay moves a parameter.
  const Tensor w = decay[0], b = no_decay[0];
  const std::vector<double> w0 = w.to_vector(), b0 = b.to_vector();
  w.impl()->grad = zeros_like(w);
  b.impl()->grad = zeros_like(b);
  adamw.step();
  EXPECT_NEAR(w.to_vector()[0], w0[0] * (1 - 0.1 * 0.5), 1e-15);
  EXPECT_EQ(b.to_vector(), b0);
}

TEST(ParamGroups, HaveTheirOwnRatesAndAreChecked) {
  const Tensor a = tensor({1.0}, f64).requires_grad(true);
  const Tensor b = tensor({1.0}, f64).requires_grad(true);
  SGD sgd({{.params = {a}}, {.params = {b}, .options = SGDOptions{.lr = 0.5}}}, {.lr = 0.1});
  sum(a + b).backward();
  sgd.step();
  EXPECT_EQ(a.item(), 1.0 - 0.1);
  EXPECT_EQ(b.item(), 1.0 - 0.5);
  sgd.set_lr(1, 0.25);
  EXPECT_EQ(sgd.lr(), 0.1);  // the first group's
  EXPECT_EQ(sgd.lr(1), 0.25);
  sgd.set_lr(2.0);  // every group's
  EXPECT_EQ(sgd.lr(0), 2.0);
  EXPECT_EQ(sgd.lr(1), 2.0);
  expect_error([&] { sgd.lr(2); }, "SGD: no group 2 (it has 2)");
  expect_error([&] { sgd.set_lr(3, 0.1); }, "SGD: no group 3 (it has 2)");
  expect_error(
      [&] {
        SGD({{.params = {a}}, {.params = {b, a}}});
      },
      "SGD: parameter 2 (of group 1) appears in more than one parameter group");
  expect_error(
      [&] {
        Adam({{.params = {a}}, {.params = {b}, .options = AdamOptions{.lr = -1}}});
      },
      "Adam: expected lr ≥ 0, got -1");
  expect_error([&] { Adagrad(std::vector<ParamGroup<AdagradOptions>>{{.params = {}}}); },
               "Adagrad: got an empty parameter list");
}

TEST(Optimizer, NewOptionsAreValidatedAsPyTorch) {
  const auto p = [] { return std::vector<Tensor>{tensor({1.0}).requires_grad(true)}; };
  expect_error([&] { RMSprop(p(), {.lr = -1}); }, "RMSprop: expected lr ≥ 0, got -1");
  expect_error([&] { RMSprop(p(), {.alpha = -0.5}); }, "RMSprop: expected alpha ≥ 0, got -0.5");
  expect_error([&] { RMSprop(p(), {.eps = NAN}); }, "RMSprop: expected eps ≥ 0, got nan");
  expect_error([&] { RMSprop(p(), {.weight_decay = -1}); },
               "RMSprop: expected weight_decay ≥ 0, got -1");
  expect_error([&] { RMSprop(p(), {.momentum = -0.1}); },
               "RMSprop: expected momentum ≥ 0, got -0.1");
  expect_error([&] { Adagrad(p(), {.lr_decay = -1}); }, "Adagrad: expected lr_decay ≥ 0, got -1");
  expect_error([&] { Adagrad(p(), {.initial_accumulator_value = -1}); },
               "Adagrad: expected initial_accumulator_value ≥ 0, got -1");
  expect_error([&] { Adagrad(p(), {.weight_decay = -1}); },
               "Adagrad: expected weight_decay ≥ 0, got -1");
  expect_error([&] { Adagrad(p(), {.eps = -1}); }, "Adagrad: expected eps ≥ 0, got -1");
}

// A per-group initial_accumulator_value is the group's (PyTorch 1.13 fills every accumulator
// with the constructor's): s = 4 + g², so the first step is lr·g/(√(4 + g²) + ε).
TEST(Adagrad, TakesEachGroupsInitialAccumulatorValue) {
  const Tensor a = tensor({0.0}, f64).requires_grad(true);
  const Tensor b = tensor({0.0}, f64).requires_grad(true);
  Adagrad adagrad(
      {{.params = {a}},
       {.params = {b}, .options = AdagradOptions{.lr = 0.1, .initial_accumulator_value = 4}}},
      {.lr = 0.1});
  sum(a * 3.0 + b * 3.0).backward();
  adagrad.step();
  EXPECT_NEAR(a.item(), -0.1 * 3 / (3 + 1e-10), 1e-16);
  EXPECT_NEAR(b.item(), -0.1 * 3 / (std::sqrt(13.0) + 1e-10), 1e-16);
}

// ---- schedules, against torch.optim.lr_scheduler ----

TEST(Schedulers, StepLRAsPyTorch) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 1.0});
  StepLR step(sgd, 3, 0.1);
  EXPECT_EQ(sgd.lr(), 1.0);
  // PyTorch 1.13, StepLR(step_size=3, gamma=0.1) from lr 1, after each of ten epochs.
  const std::vector<double> torch = {1.0,
                                     1.0,
                                     0.1,
                                     0.1,
                                     0.1,
                                     0.010000000000000002,
                                     0.010000000000000002,
                                     0.010000000000000002,
                                     0.0010000000000000002,
                                     0.0010000000000000002};
  for (std::size_t e = 0; e < torch.size(); ++e) {
    step.step();
    EXPECT_NEAR(sgd.lr(), torch[e], 1e-18) << "epoch " << e + 1;
    EXPECT_EQ(step.epoch(), std::int64_t(e + 1));
  }
}

TEST(Schedulers, CosineAnnealingLRAsPyTorchAlsoPastTMax) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 1.0});
  CosineAnnealingLR cosine(sgd, 4, 0.1);
  // PyTorch 1.13, CosineAnnealingLR(T_max=4, eta_min=0.1) from lr 1: back up after T_max.
  const std::vector<double> torch = {0.8681980515339464,  0.55,
                                     0.23180194846605368, 0.1,
                                     0.2318019484660536,  0.55,
                                     0.8681980515339467,  1.0000000000000004,
                                     0.8681980515339468,  0.5500000000000004,
                                     0.2318019484660541,  0.1};
  for (std::size_t e = 0; e < torch.size(); ++e) {
    cosine.step();
    // PyTorch's recursive form drifts from the closed form by a few ulps.
    EXPECT_NEAR(sgd.lr(), torch[e], 1e-15) << "epoch " << e + 1;
  }
}

TEST(Schedulers, ValidateTheirArguments) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 1.0});
  expect_error([&] { StepLR(sgd, 0); }, "StepLR: expected step_size > 0, got 0");
  expect_error([&] { StepLR(sgd, -2); }, "StepLR: expected step_size > 0, got -2");
  expect_error([&] { StepLR(sgd, 2, -0.5); }, "StepLR: expected gamma ≥ 0, got -0.5");
  expect_error([&] { StepLR(sgd, 2, NAN); }, "StepLR: expected gamma ≥ 0, got nan");
  expect_error([&] { CosineAnnealingLR(sgd, 0); }, "CosineAnnealingLR: expected T_max > 0, got 0");
  expect_error([&] { CosineAnnealingLR(sgd, -1); },
               "CosineAnnealingLR: expected T_max > 0, got -1");
  expect_error([&] { CosineAnnealingLR(sgd, 4, -0.1); },
               "CosineAnnealingLR: expected eta_min ≥ 0, got -0.1");
  EXPECT_NO_THROW(StepLR(sgd, 1, 0.0));
  EXPECT_NO_THROW(CosineAnnealingLR(sgd, 1, 0.0));
  EXPECT_EQ(sgd.lr(), 1.0);  // constructing a schedule does not change the rate
}

TEST(Schedulers, NewSchedulesValidateTheirArguments) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 1.0});
  expect_error([&] { LinearLR(sgd, 0.0); }, "LinearLR: expected start_factor in (0, 1], got 0");
  expect_error([&] { LinearLR(sgd, 0.5, 1.5); },
               "LinearLR: expected end_factor in [0, 1], got 1.5");
  expect_error([&] { LinearLR(sgd, 0.5, 1.0, 0); }, "LinearLR: expected total_iters > 0, got 0");
  expect_error([&] { OneCycleLR(sgd, 1.0, 0); }, "OneCycleLR: expected total_steps > 0, got 0");
  expect_error([&] { OneCycleLR(sgd, 1.0, 10, 1.5); },
               "OneCycleLR: expected pct_start in [0, 1], got 1.5");
  expect_error([&] { OneCycleLR(sgd, 1.0, 10, 0.1); },
               "OneCycleLR: pct_start = 0.1 with total_steps = 10 leaves a phase of no steps");
  expect_error([&] { OneCycleLR(sgd, 1.0, 10, 0.3, Anneal::cos, 0.0); },
               "OneCycleLR: expected div_factor > 0, got 0");
  auto warmup = std::make_shared<LinearLR>(sgd, 0.5);
  expect_error([&] { SequentialLR(sgd, {warmup}, {3}); },
               "SequentialLR: expected one schedule more than milestones, got 1 schedules and 1 "
               "milestones");
  Tensor q = tensor({1.0}).requires_grad(true);
  SGD other({q}, {.lr = 1.0});
  auto elsewhere = std::make_shared<StepLR>(other, 2);
  expect_error(
      [&] {
        SequentialLR(sgd, {warmup, elsewhere}, {3});
      },
      "SequentialLR: schedule 1 is null or built on another optimizer");
  auto decay = std::make_shared<StepLR>(sgd, 2);
  expect_error(
      [&] {
        SequentialLR(sgd, {warmup, decay, decay}, {3, 3});
      },
      "SequentialLR: expected positive, increasing milestones, got 3 after 3");
  expect_error([&] { ReduceLROnPlateau(sgd, {.factor = 1.0}); },
               "ReduceLROnPlateau: expected factor < 1, got 1");
  expect_error([&] { ReduceLROnPlateau(sgd, {.patience = -1}); },
               "ReduceLROnPlateau: expected patience ≥ 0, got -1");
  expect_error([&] { ReduceLROnPlateau(sgd, {.min_lr = -1}); },
               "ReduceLROnPlateau: expected min_lr ≥ 0, got -1");
}

TEST(Schedulers, WarmUpStartsAtConstructionAndOneCycleStopsAtItsEnd) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 0.8});
  LinearLR warmup(sgd, 0.25, 1.0, 4);
  EXPECT_EQ(sgd.lr(), 0.2);  // as PyTorch's: the first rate is set by the constructor
  for (double want : {0.35, 0.5, 0.65, 0.8, 0.8}) {
    warmup.step();
    EXPECT_NEAR(sgd.lr(), want, 1e-15);
  }
  OneCycleLR cycle(sgd, 1.0, 4, 0.5, Anneal::linear, 10.0, 1.0);
  // Up from 0.1 to 1 by step 1, down to 0.1 by step 3, and step 4 goes on along the line.
  EXPECT_NEAR(sgd.lr(), 0.1, 1e-15);
  for (double want : {1.0, 0.55, 0.1, -0.35}) {
    cycle.step();
    EXPECT_NEAR(sgd.lr(), want, 1e-15);
  }
  expect_error([&] { cycle.step(); }, "OneCycleLR: stepped 6 times, past total_steps = 4");
  EXPECT_NEAR(sgd.lr(), -0.35, 1e-15);  // unchanged by the refused step
  EXPECT_EQ(cycle.epoch(), 4);
}

TEST(Schedulers, LaterSchedulesStartFromTheRateOfTheFirst) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 1.0});
  auto warmup = std::make_shared<LinearLR>(sgd, 0.1, 1.0, 2);  // sets lr to 0.1
  auto decay = std::make_shared<StepLR>(sgd, 1, 0.5);  // yet decays from 1, torch's initial_lr
  SequentialLR schedule(sgd, {warmup, decay}, {2});
  for (double want : {0.55, 1.0, 0.5, 0.25}) {
    schedule.step();
    EXPECT_NEAR(sgd.lr(), want, 1e-15);
  }
}

TEST(Schedulers, ReduceLROnPlateauWaitsOutPatienceAndCooldown) {
  Tensor p = tensor({1.0}).requires_grad(true);
  SGD sgd({p}, {.lr = 1.0});
  ReduceLROnPlateau plateau(sgd, {.factor = 0.5, .patience = 1, .cooldown = 1, .min_lr = 0.3});
  const std::vector<double> metrics = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, NAN, 0.5, 1.0};
  const std::vector<double> lrs = {1.0, 1.0, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3};
  for (std::size_t e = 0; e < metrics.size(); ++e) {
    plateau.step(metrics[e]);
    EXPECT_EQ(sgd.lr(), lrs[e]) << "epoch " << e + 1;
  }
  EXPECT_EQ(plateau.best(), 0.5);
}

}  // namespace
}  // namespace tg::nn
