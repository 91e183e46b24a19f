// The ops at the edges of their domains, against std:: and PyTorch 1.13 (values printed by PyTorch
// and written in here): the softmax family at large magnitude, −inf masks at every row length,
// every transcendental kernel at ±inf, ±max, denormals and NaN, derivatives at special points at
// every order, and reductions of nothing.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "tapegrad.h"

namespace tg {
namespace {

template <class T>
constexpr DType dtype_of() {
  return sizeof(T) == 4 ? f32 : f64;
}

// Distance in units in the last place between two values of T: 0 when equal (±0 included) or
// both NaN, the maximum when only one is NaN or they are different infinities.
template <class T>
std::int64_t ulps(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) {
    return std::isnan(a) && std::isnan(b) ? 0 : std::numeric_limits<std::int64_t>::max();
  }
  if (a == b) return 0;
  if (std::isinf(a) || std::isinf(b)) return std::numeric_limits<std::int64_t>::max();
  using Bits = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  const auto ordered = [](T v) {
    const Bits bits = std::bit_cast<Bits>(v);
    return bits < 0 ? std::int64_t(std::numeric_limits<Bits>::min()) - bits : std::int64_t(bits);
  };
  return std::abs(ordered(a) - ordered(b));
}

// Expects `got` (a tensor of T) to hold `want` within `max_ulps` at every position.
template <class T>
void expect_ulps(const Tensor& got, const std::vector<T>& want, std::int64_t max_ulps,
                 const std::string& what) {
  const std::vector<double> g = got.to_vector();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (std::size_t i = 0; i < g.size(); ++i) {
    EXPECT_LE(ulps(T(g[i]), want[i]), max_ulps)
        << what << " [" << i << "]: got " << g[i] << ", want " << double(want[i]);
  }
}

// Expects `got` to hold `want` within an absolute tolerance: for results that are differences
// (gradients that cancel), whose accuracy is a few ulps of their terms, not of the result.
void expect_near(const Tensor& got, const std::vector<long double>& want, double tolerance,
                 const std::string& what) {
  const std::vector<double> g = got.to_vector();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (std::size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(g[i], double(want[i]), tolerance) << what << " [" << i << "]";
  }
}

// The gradient of sum(g ⊙ f(x)) with respect to x, from the fused first-order rule or from the
// composed rule recorded under create_graph.
Tensor vjp(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, const Tensor& g,
           bool create_graph) {
  const Tensor leaf = x.detach().copy().requires_grad(true);
  const Tensor y = f(leaf);
  return grad(y, {leaf}, g, {.create_graph = create_graph})[0];
}

// ---- 1. the softmax family at large magnitude -------------------------------------------------

// Rows of logits at magnitude c: equal, unequal by small steps, and spread over ±c.
template <class T>
std::vector<std::vector<T>> large_rows(T c) {
  std::vector<std::vector<T>> rows = {{c, c}, {c, c, c, c, c}, {c, -c, T(0)}, {-c, -c}};
  // Steps of 1 are representable up to 2^24 (float) and 2^53 (double).
  if (c <= T(1e7)) rows.push_back({c, c - T(1), c - T(3), c + T(2)});
  return rows;
}

// log_softmax of a row in long double: the reference the kernels are held to.
template <class T>
std::vector<long double> reference_log_softmax(const std::vector<T>& row) {
  long double m = -INFINITY;
  for (T v : row) m = std::max(m, static_cast<long double>(v));
  long double total = 0;
  for (T v : row) total += std::exp(static_cast<long double>(v) - m);
  std::vector<long double> out;
  for (T v : row) out.push_back((static_cast<long double>(v) - m) - std::log(total));
  return out;
}

template <class T>
std::vector<T> rounded(const std::vector<long double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <class T>
void check_softmax_family_at(T c) {
  const DType dtype = dtype_of<T>();
  for (const std::vector<T>& row : large_rows(c)) {
    const std::string what = fmt::format("{} row of {} at {}", dtype_name(dtype), row.size(), c);
    const Tensor x = from_vector(std::vector<double>(row.begin(), row.end()),
                                 {1, std::int64_t(row.size())}, dtype);
    const std::vector<long double> ls = reference_log_softmax(row);
    std::vector<long double> s;
    for (long double v : ls) s.push_back(std::exp(v));
    const long double lse = static_cast<long double>(*std::max_element(row.begin(), row.end())) -
                            ls[std::size_t(std::max_element(row.begin(), row.end()) - row.begin())];

    expect_ulps<T>(log_softmax(x, 1), rounded<T>(ls), 4, "log_softmax " + what);
    expect_ulps<T>(softmax(x, 1), rounded<T>(s), 4, "softmax " + what);
    expect_ulps<T>(logsumexp(x, 1), {T(lse)}, 4, "logsumexp " + what);

    // Cotangent g = [1, 2, ...]: softmax's VJP s ⊙ (g − ⟨g, s⟩), log_softmax's g − s Σg, and
    // logsumexp's softmax, each from the fused and the composed rule.
    std::vector<double> gv;
    for (std::size_t i = 0; i < row.size(); ++i) gv.push_back(double(i + 1));
    const Tensor g = from_vector(gv, x.shape(), dtype);
    long double dot = 0, total = 0;
    for (std::size_t i = 0; i < row.size(); ++i) {
      dot += gv[i] * s[i];
      total += gv[i];
    }
    std::vector<long double> d_softmax, d_log_softmax;
    for (std::size_t i = 0; i < row.size(); ++i) {
      d_softmax.push_back(s[i] * (gv[i] - dot));
      d_log_softmax.push_back(gv[i] - s[i] * total);
    }
    // Both VJPs are differences: a few ulps of their largest term, Σg.
    const double tolerance = 4 * std::numeric_limits<T>::epsilon() * double(total);
    for (const bool composed : {false, true}) {
      const std::string how = composed ? " (composed rule) " : " (fused rule) ";
      expect_near(vjp([](const Tensor& t) { return softmax(t, 1); }, x, g, composed), d_softmax,
                  tolerance, "softmax gradient" + how + what);
      expect_near(vjp([](const Tensor& t) { return log_softmax(t, 1); }, x, g, composed),
                  d_log_softmax, tolerance, "log_softmax gradient" + how + what);
      expect_ulps<T>(
          vjp([](const Tensor& t) { return logsumexp(t, 1); }, x, ones({1}, dtype), composed),
          rounded<T>(s), 4, "logsumexp gradient" + how + what);
    }

    // cross_entropy and nll over log_softmax for every label: −log p[y], gradient p − onehot,
    // which sums to 0.
    for (std::int64_t label = 0; label < std::int64_t(row.size()); ++label) {
      const Tensor labels = int64_tensor({label});
      const std::string at = fmt::format(" label {} {}", label, what);
      expect_ulps<T>(cross_entropy(x, labels), {T(-ls[std::size_t(label)])}, 4,
                     "cross_entropy" + at);
      expect_ulps<T>(nll_loss(log_softmax(x, 1), labels), {T(-ls[std::size_t(label)])}, 4,
                     "nll_loss(log_softmax)" + at);
      std::vector<long double> d_ce = s;
      d_ce[std::size_t(label)] -= 1;
      for (const bool composed : {false, true}) {
        const double eps = std::numeric_limits<T>::epsilon();
        const Tensor d = vjp([&](const Tensor& t) { return cross_entropy(t, labels); }, x,
                             ones({}, dtype), composed);
        expect_near(d, d_ce, 2 * eps, "cross_entropy gradient" + at);
        EXPECT_NEAR(sum(d).item(), 0.0, double(row.size()) * eps)
            << "cross_entropy gradient sums to 0" << at;
        expect_near(vjp([&](const Tensor& t) { return nll_loss(log_softmax(t, 1), labels); }, x,
                        ones({}, dtype), composed),
                    d_ce, 2 * eps, "nll_loss(log_softmax) gradient" + at);
      }
    }
  }
}

TEST(SoftmaxFamilyAtLargeMagnitude, Float32WithinAFewUlps) {
  for (const float c : {1e4f, 1e7f, 1e30f, 3e38f}) check_softmax_family_at(c);
}

TEST(SoftmaxFamilyAtLargeMagnitude, Float64WithinAFewUlps) {
  for (const double c : {1e4, 1e7, 1e16, 1e30, 1e300}) check_softmax_family_at(c);
}

TEST(SoftmaxFamilyAtLargeMagnitude, IssueExamples) {
  // float32 [1e4, 1e4] gave −0.69336; [1e7, 1e7] gave loss 1.0 and gradient [−0.632, 0.368].
  EXPECT_EQ(float(log_softmax(tensor({{1e4, 1e4}}), 1).at({0, 0})), -0.693147182f);
  Tensor z = tensor({{1e7, 1e7}}).requires_grad(true);
  const Tensor loss = cross_entropy(z, int64_tensor({0}));
  EXPECT_EQ(float(loss.item()), 0.693147182f);
  loss.backward();
  EXPECT_NEAR(z.grad().at({0, 0}), -0.5, 1e-7);
  EXPECT_NEAR(z.grad().at({0, 1}), 0.5, 1e-7);
  EXPECT_EQ(z.grad().at({0, 0}) + z.grad().at({0, 1}), 0.0);
  EXPECT_EQ(log_softmax(tensor({{1e16, 1e16}}, f64), 1).at({0, 1}), -std::log(2.0));
}

// The losses and softplus at large logits: binary_cross_entropy_with_logits is
// x·(1 − t) or −x·t, plus log1p(e^−|x|); its gradient sigmoid(x) − t.
template <class T>
void check_binary_losses_at(T c) {
  const DType dtype = dtype_of<T>();
  const std::vector<T> xs = {c, -c, T(30), T(-30), T(0), T(1), T(-1)};
  const Tensor x =
      from_vector(std::vector<double>(xs.begin(), xs.end()), {std::int64_t(xs.size())}, dtype);
  for (const T t : {T(0), T(1), T(0.25), T(0.999)}) {
    std::vector<T> loss, soft, d_soft;
    std::vector<long double> d_loss;
    for (T v : xs) {
      const long double xv = v;
      const long double tail = std::log1p(std::exp(-std::abs(xv)));
      loss.push_back(T((xv > 0 ? xv * (1 - static_cast<long double>(t)) : -xv * t) + tail));
      const long double sig = 1 / (1 + std::exp(-xv));
      d_loss.push_back(sig - t);
      soft.push_back(T(std::max(xv, 0.0L) + tail));
      d_soft.push_back(T(sig));
    }
    const Tensor target = full(x.shape(), double(t), dtype);
    const std::string what = fmt::format("{} at {}, target {}", dtype_name(dtype), c, t);
    expect_ulps<T>(binary_cross_entropy_with_logits(x, target, Reduction::none), loss, 4,
                   "binary_cross_entropy_with_logits " + what);
    for (const bool composed : {false, true}) {
      const Tensor g = ones(x.shape(), dtype);
      // sigmoid(x) − t cancels: a few ulps of 1.
      expect_near(vjp(
                      [&](const Tensor& v) {
                        return binary_cross_entropy_with_logits(v, target, Reduction::none);
                      },
                      x, g, composed),
                  d_loss, 4 * std::numeric_limits<T>::epsilon(),
                  "binary_cross_entropy_with_logits gradient " + what);
      expect_ulps<T>(vjp([](const Tensor& v) { return softplus(v); }, x, g, composed), d_soft, 4,
                     "softplus gradient " + what);
    }
    expect_ulps<T>(softplus(x), soft, 4, "softplus " + what);
  }
}

TEST(BinaryLossesAtLargeMagnitude, WithinAFewUlpsInBothDtypes) {
  for (const float c : {1e4f, 1e7f, 1e30f}) check_binary_losses_at(c);
  for (const double c : {1e4, 1e7, 1e30, 1e300}) check_binary_losses_at(c);
}

TEST(BinaryLossesAtLargeMagnitude, InfiniteLogits) {
  // PyTorch: +inf with target 0 → inf, with target 1 → NaN (∞·0); gradient sigmoid(x) − t.
  // −inf with target 0 → NaN as PyTorch; with target > 0 our loss is its limit +inf (PyTorch NaN).
  const Tensor x = tensor({INFINITY, INFINITY, -INFINITY, -INFINITY}, f64);
  const Tensor t = tensor({0, 1, 0, 0.3}, f64);
  const std::vector<double> loss =
      binary_cross_entropy_with_logits(x, t, Reduction::none).to_vector();
  EXPECT_EQ(loss[0], INFINITY);
  EXPECT_TRUE(std::isnan(loss[1]));
  EXPECT_TRUE(std::isnan(loss[2]));
  EXPECT_EQ(loss[3], INFINITY);
  EXPECT_EQ(
      vjp([&](const Tensor& v) { return binary_cross_entropy_with_logits(v, t, Reduction::sum); },
          x, ones({}, f64), false)
          .to_vector(),
      std::vector<double>({1, 0, 0, -0.3}));
}

// ---- 2. −inf masks at every row length --------------------------------------------------------

template <class T>
void check_masks(std::int64_t n, bool along_first_axis) {
  const DType dtype = dtype_of<T>();
  const std::string what =
      fmt::format("{} length {}{}", dtype_name(dtype), n, along_first_axis ? " along axis 0" : "");
  // Row 0 is partially masked (every third entry finite, the first always), row 1 fully masked.
  std::vector<double> v(std::size_t(2 * n));
  std::vector<double> finite;
  for (std::int64_t i = 0; i < n; ++i) {
    const bool kept = i % 3 == 0;
    v[std::size_t(i)] = kept ? 0.25 * double(i) - 1 : -INFINITY;
    if (kept) finite.push_back(v[std::size_t(i)]);
    v[std::size_t(n + i)] = -INFINITY;
  }
  Tensor x = from_vector(v, {2, n}, dtype);
  const std::int64_t axis = along_first_axis ? 0 : 1;
  if (along_first_axis) x = transpose(x, 0, 1).copy();
  const auto row = [&](const Tensor& t, int r) {
    const Tensor rows = along_first_axis ? transpose(t, 0, 1) : t;
    return slice(rows, 0, r, r + 1).to_vector();
  };
  long double m = -INFINITY, total = 0;
  for (double f : finite) m = std::max<long double>(m, f);
  for (double f : finite) total += std::exp(f - m);
  Generator gen(3);
  const Tensor g = randn(x.shape(), gen, dtype);

  for (const bool composed : {false, true}) {
    const std::string how = what + (composed ? " (composed rule)" : " (fused rule)");
    // softmax: masked entries and their gradients exactly 0; the fully masked row NaN.
    const std::vector<double> s = row(softmax(x, axis), 0);
    const std::vector<double> ds =
        row(vjp([&](const Tensor& t) { return softmax(t, axis); }, x, g, composed), 0);
    for (std::int64_t i = 0; i < n; ++i) {
      if (v[std::size_t(i)] == -INFINITY) {
        EXPECT_EQ(s[std::size_t(i)], 0.0) << "softmax " << how << " at " << i;
        EXPECT_EQ(ds[std::size_t(i)], 0.0) << "softmax gradient " << how << " at " << i;
      } else {
        EXPECT_LE(ulps(T(s[std::size_t(i)]), T(std::exp(v[std::size_t(i)] - m) / total)), 4)
            << "softmax " << how << " at " << i;
      }
    }
    for (double e : row(softmax(x, axis), 1)) EXPECT_TRUE(std::isnan(e)) << "softmax " << how;
    for (double e : row(vjp([&](const Tensor& t) { return softmax(t, axis); }, x, g, composed), 1))
      EXPECT_TRUE(std::isnan(e)) << "softmax gradient " << how;

    // log_softmax: −inf at masked entries, gradient g there (as PyTorch); NaN when fully masked.
    const std::vector<double> ls = row(log_softmax(x, axis), 0);
    const std::vector<double> dls =
        row(vjp([&](const Tensor& t) { return log_softmax(t, axis); }, x, g, composed), 0);
    const std::vector<double> g0 = row(g, 0);
    for (std::int64_t i = 0; i < n; ++i) {
      if (v[std::size_t(i)] == -INFINITY) {
        EXPECT_EQ(ls[std::size_t(i)], -INFINITY) << "log_softmax " << how << " at " << i;
        EXPECT_EQ(dls[std::size_t(i)], g0[std::size_t(i)])
            << "log_softmax gradient " << how << " at " << i;
      } else {
        EXPECT_LE(ulps(T(ls[std::size_t(i)]), T((v[std::size_t(i)] - m) - std::log(total))), 4)
            << "log_softmax " << how << " at " << i;
      }
    }
    // With a cotangent that is 0 at the masked entries, their gradient is exactly 0 (the
    // exp(−inf) in g − exp(y) ⊙ Σg is 0, not a denormal).
    std::vector<double> kept(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) kept[i] = v[i] == -INFINITY ? 0.0 : 1.0;
    Tensor kept_mask = from_vector(kept, {2, n}, dtype);
    if (along_first_axis) kept_mask = transpose(kept_mask, 0, 1).copy();
    const std::vector<double> dls_kept = row(
        vjp([&](const Tensor& t) { return log_softmax(t, axis); }, x, g * kept_mask, composed), 0);
    for (std::int64_t i = 0; i < n; ++i) {
      if (v[std::size_t(i)] == -INFINITY) {
        EXPECT_EQ(dls_kept[std::size_t(i)], 0.0) << "log_softmax gradient " << how << " at " << i;
      }
    }
    for (double e : row(log_softmax(x, axis), 1)) EXPECT_TRUE(std::isnan(e)) << how;
    for (double e :
         row(vjp([&](const Tensor& t) { return log_softmax(t, axis); }, x, g, composed), 1))
      EXPECT_TRUE(std::isnan(e)) << "log_softmax gradient " << how;

    // logsumexp: that of the finite entries, −inf when fully masked; gradient 0 at masked
    // entries, NaN in the fully masked row (PyTorch's exp(−inf − (−inf))).
    const std::vector<double> lse = logsumexp(x, axis).to_vector();
    EXPECT_LE(ulps(T(lse[0]), T(m + std::log(total))), 4) << "logsumexp " << how;
    EXPECT_EQ(lse[1], -INFINITY) << "logsumexp " << how;
    const Tensor dlse =
        vjp([&](const Tensor& t) { return logsumexp(t, axis); }, x, ones({2}, dtype), composed);
    const std::vector<double> d0 = row(dlse, 0);
    for (std::int64_t i = 0; i < n; ++i) {
      if (v[std::size_t(i)] == -INFINITY) {
        EXPECT_EQ(d0[std::size_t(i)], 0.0) << "logsumexp gradient " << how << " at " << i;
      } else {
        EXPECT_LE(ulps(T(d0[std::size_t(i)]), T(std::exp(v[std::size_t(i)] - m) / total)), 4)
            << "logsumexp gradient " << how << " at " << i;
      }
    }
    for (double e : row(dlse, 1)) EXPECT_TRUE(std::isnan(e)) << "logsumexp gradient " << how;
  }

  // cross_entropy over the partially masked row: masked classes get gradient exactly 0.
  if (!along_first_axis) {
    const Tensor logits = slice(x, 0, 0, 1);
    const Tensor d = vjp([](const Tensor& t) { return cross_entropy(t, int64_tensor({0})); },
                         logits, ones({}, dtype), false);
    const std::vector<double> dv = d.to_vector();
    for (std::int64_t i = 0; i < n; ++i) {
      if (v[std::size_t(i)] == -INFINITY) {
        EXPECT_EQ(dv[std::size_t(i)], 0.0) << what;
      }
    }
    EXPECT_TRUE(std::isnan(cross_entropy(slice(x, 0, 1, 2), int64_tensor({0})).item())) << what;
  }
}

TEST(Masks, PartialAndFullRowsAtEveryLengthInBothDtypes) {
  for (const std::int64_t n : {1, 2, 3, 7, 8, 9, 16, 17, 33}) {
    for (const bool along_first_axis : {false, true}) {
      check_masks<float>(n, along_first_axis);
      check_masks<double>(n, along_first_axis);
    }
  }
}

TEST(Masks, RowsWithPlusInfinityAreNaNAsInPyTorch) {
  // torch.softmax([[1, inf]]) = [nan, nan]; logsumexp = inf with gradient [0, nan].
  const Tensor x = tensor({{1, INFINITY}, {2, 1}}, f64);
  for (double e : slice(softmax(x, 1), 0, 0, 1).to_vector()) EXPECT_TRUE(std::isnan(e));
  for (double e : slice(log_softmax(x, 1), 0, 0, 1).to_vector()) EXPECT_TRUE(std::isnan(e));
  EXPECT_EQ(logsumexp(x, 1).at({0}), INFINITY);
  for (const bool composed : {false, true}) {
    const Tensor d =
        vjp([](const Tensor& t) { return logsumexp(t, 1); }, x, ones({2}, f64), composed);
    EXPECT_EQ(d.at({0, 0}), 0.0);
    EXPECT_TRUE(std::isnan(d.at({0, 1})));
    EXPECT_NEAR(d.at({1, 0}), 0.7310585786300049, 2e-16);
  }
}

// ---- 3. every transcendental kernel at its extremes -----------------------------------------

template <class T>
std::vector<T> extremes() {
  using L = std::numeric_limits<T>;
  const T big = sizeof(T) == 4 ? T(1e38) : T(1e308);
  const T denormal = L::denorm_min() * T(1000);
  return {L::infinity(), -L::infinity(),  L::quiet_NaN(), big,      -big,     denormal,
          -denormal,     L::denorm_min(), T(0),           T(-0.0),  T(-1000), T(-100),
          T(-90),        T(-88.8),        T(-745),        T(-710),  T(1000),  T(100),
          T(1),          T(-1),           T(0.5),         T(1e-30), L::min(), T(-0.99)};
}

struct UnaryCase {
  std::string name;
  std::function<Tensor(const Tensor&)> op;
};

// Checks op(x) and d op/dx against scalar references at every extreme, at lengths 1 (the scalar
// path), 8, and 17 and 33 (packets and a scalar tail), from the fused and the composed rule.
template <class T, class Value, class Derivative>
void check_unary(const UnaryCase& c, Value value, Derivative derivative, std::int64_t max_ulps) {
  const DType dtype = dtype_of<T>();
  for (const T x : extremes<T>()) {
    for (const std::int64_t n : {1, 8, 17, 33}) {
      const std::string what =
          fmt::format("{} {}({}) at length {}", dtype_name(dtype), c.name, double(x), n);
      const Tensor t = full({n}, double(x), dtype);
      expect_ulps<T>(c.op(t), std::vector<T>(std::size_t(n), value(x)), max_ulps, what);
      for (const bool composed : {false, true}) {
        expect_ulps<T>(vjp(c.op, t, ones({n}, dtype), composed),
                       std::vector<T>(std::size_t(n), derivative(x)), max_ulps,
                       "d/dx " + what + (composed ? " (composed rule)" : " (fused rule)"));
      }
    }
  }
}

template <class T>
void check_every_unary_kernel() {
  using std::abs, std::cos, std::erf, std::exp, std::log, std::log1p, std::pow, std::sin, std::sqrt,
      std::tanh;
  const auto sigmoid_of = [](T x) { return T(1) / (T(1) + exp(-x)); };
  check_unary<T>(
      {"exp", [](const Tensor& t) { return tg::exp(t); }}, [](T x) { return exp(x); },
      [](T x) { return exp(x); }, 2);
  check_unary<T>(
      {"log", [](const Tensor& t) { return tg::log(t); }}, [](T x) { return log(x); },
      [](T x) { return T(1) / x; }, 1);
  check_unary<T>(
      {"sqrt", [](const Tensor& t) { return tg::sqrt(t); }}, [](T x) { return sqrt(x); },
      [](T x) { return T(1) / sqrt(x) * T(0.5); }, 0);
  check_unary<T>(
      {"tanh", [](const Tensor& t) { return tg::tanh(t); }}, [](T x) { return tanh(x); },
      [](T x) { return T(1) - tanh(x) * tanh(x); }, 4);
  check_unary<T>(
      {"sigmoid", [](const Tensor& t) { return tg::sigmoid(t); }}, sigmoid_of,
      [&](T x) { return sigmoid_of(x) * (T(1) - sigmoid_of(x)); }, 2);
  check_unary<T>(
      {"erf", [](const Tensor& t) { return tg::erf(t); }}, [](T x) { return erf(x); },
      [](T x) { return exp(-(x * x)) * T(2 / std::sqrt(M_PI)); }, 2);
  check_unary<T>(
      {"log1p", [](const Tensor& t) { return tg::log1p(t); }}, [](T x) { return log1p(x); },
      [](T x) { return T(1) / (x + T(1)); }, 2);
  check_unary<T>(
      {"softplus", [](const Tensor& t) { return tg::softplus(t); }},
      [](T x) { return std::isnan(x) ? x : std::max(x, T(0)) + log1p(exp(-abs(x))); }, sigmoid_of,
      2);
  check_unary<T>(
      {"sin", [](const Tensor& t) { return tg::sin(t); }}, [](T x) { return sin(x); },
      [](T x) { return cos(x); }, 2);
  check_unary<T>(
      {"cos", [](const Tensor& t) { return tg::cos(t); }}, [](T x) { return cos(x); },
      [](T x) { return -sin(x); }, 2);
  // The piecewise ops: PyTorch's derivatives at 0 and NaN (relu passes g at NaN, abs sends 0).
  check_unary<T>(
      {"abs", [](const Tensor& t) { return tg::abs(t); }}, [](T x) { return abs(x); },
      [](T x) { return x > 0   ? T(1)
                       : x < 0 ? T(-1)
                               : T(0); }, 0);
  check_unary<T>(
      {"relu", [](const Tensor& t) { return tg::relu(t); }},
      [](T x) { return std::isnan(x) ? x : std::max(x, T(0)); },
      [](T x) { return x <= 0 ? T(0) : T(1); }, 0);
  check_unary<T>(
      {"leaky_relu", [](const Tensor& t) { return tg::leaky_relu(t, 0.1); }},
      [](T x) { return x > 0 ? x : x * T(0.1); }, [](T x) { return x > 0 ? T(1) : T(0.1); }, 0);
  check_unary<T>(
      {"clamp", [](const Tensor& t) { return tg::clamp(t, -1, 1); }},
      [](T x) { return std::isnan(x) ? x : std::min(std::max(x, T(-1)), T(1)); },
      [](T x) { return x >= -1 && x <= 1 ? T(1) : T(0); }, 0);
  check_unary<T>(
      {"clamp(lo > hi)", [](const Tensor& t) { return tg::clamp(t, 1, -1); }},
      [](T x) { return std::isnan(x) ? x : T(-1); }, [](T) { return T(0); }, 0);
  for (const double p : {0.0, 1.0, 2.0, 3.0, 0.5, -1.0, 2.5}) {
    check_unary<T>(
        {fmt::format("pow {}", p), [p](const Tensor& t) { return tg::pow(t, p); }},
        // PyTorch computes x^0.5 as √x (NaN at −inf, −0 at −0) and its derivative 0.5·x^−0.5
        // as 0.5/√x (−inf at −0).
        [p](T x) { return p == 0.5 ? sqrt(x) : pow(x, T(p)); },
        [p](T x) {
          if (p == 0.5) return T(1) / sqrt(x) * T(0.5);
          return p == 0 ? T(0) : pow(x, T(p - 1)) * T(p);
        },
        1);
  }
}

TEST(Extremes, EveryUnaryKernelFloat32) {
  check_every_unary_kernel<float>();
}

TEST(Extremes, EveryUnaryKernelFloat64) {
  check_every_unary_kernel<double>();
}

TEST(Extremes, IssueExamples) {
  // exp(−inf) and exp(−1000) are 0, not the clamp's denormal; log(exp(−1000)) is −inf.
  for (const DType dtype : {f32, f64}) {
    const Tensor x = full({16}, -1000.0, dtype);
    for (double e : exp(x).to_vector()) EXPECT_EQ(e, 0.0);
    for (double e : log(exp(x)).to_vector()) EXPECT_EQ(e, -INFINITY);
    for (double e : exp(full({16}, -INFINITY, dtype)).to_vector()) EXPECT_EQ(e, 0.0);
  }
  // A float32 denormal's log and sqrt, and sqrt(+inf), which Eigen's float packets got wrong.
  const Tensor d = full({16}, 1e-40, f32);
  expect_ulps<float>(log(d), std::vector<float>(16, std::log(1e-40f)), 1, "log(1e-40f)");
  expect_ulps<float>(sqrt(d), std::vector<float>(16, std::sqrt(1e-40f)), 0, "sqrt(1e-40f)");
  for (double e : sqrt(full({16}, INFINITY, f32)).to_vector()) EXPECT_EQ(e, INFINITY);
}

TEST(Extremes, SqrtIsCorrectlyRoundedInFloat32) {
  // Eigen's float packet sqrt (rsqrt and a Newton step) was up to 3 ulp off.
  std::vector<double> v;
  for (int i = 0; i < 4096; ++i) v.push_back(std::ldexp(1.0 + i / 4096.0, i % 64 - 32));
  const Tensor x = from_vector(v, {4096}, f32);
  std::vector<float> want;
  for (double e : x.to_vector()) want.push_back(std::sqrt(float(e)));
  expect_ulps<float>(sqrt(x), want, 0, "sqrt");
}

// ---- 4. derivatives at special points, at every order ------------------------------------------

// The k-th derivative of f at x (elementwise), by k passes of grad under create_graph.
Tensor nth_derivative(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, int k) {
  const Tensor leaf = x.detach().copy().requires_grad(true);
  Tensor y = f(leaf);
  for (int i = 0; i < k; ++i) {
    // A derivative that no longer depends on x is constant: the next one is 0.
    if (!y.requires_grad()) return zeros(x.shape(), x.dtype());
    y = grad(sum(y), {leaf}, {}, {.create_graph = true})[0];
  }
  return y;
}

TEST(SpecialPoints, PowAtZeroAtEveryOrderAsPyTorch) {
  for (const DType dtype : {f32, f64}) {
    const Tensor x = tensor({0.0, -0.0, 2.0}, dtype);
    const auto power = [](double p) { return [p](const Tensor& t) { return pow(t, p); }; };
    // d/dx x⁰ = 0 (PyTorch: zeros, also at 0 and NaN); d²/dx² x¹ = 0; d³/dx³ x² = 0; d²/dx² x³ =
    // 6x.
    EXPECT_EQ(nth_derivative(power(0), x, 1).to_vector(), std::vector<double>({0, 0, 0}));
    EXPECT_EQ(nth_derivative(power(0), tensor({NAN}, dtype), 1).to_vector(),
              std::vector<double>({0}));
    EXPECT_EQ(nth_derivative(power(1), x, 1).to_vector(), std::vector<double>({1, 1, 1}));
    EXPECT_EQ(nth_derivative(power(1), x, 2).to_vector(), std::vector<double>({0, 0, 0}));
    EXPECT_EQ(nth_derivative(power(1), x, 3).to_vector(), std::vector<double>({0, 0, 0}));
    EXPECT_EQ(nth_derivative(power(2), x, 1).to_vector(), std::vector<double>({0, -0.0, 4}));
    EXPECT_EQ(nth_derivative(power(2), x, 2).to_vector(), std::vector<double>({2, 2, 2}));
    EXPECT_EQ(nth_derivative(power(2), x, 3).to_vector(), std::vector<double>({0, 0, 0}));
    EXPECT_EQ(nth_derivative(power(3), x, 2).to_vector(), std::vector<double>({0, -0.0, 12}));
    EXPECT_EQ(nth_derivative(power(3), x, 3).to_vector(), std::vector<double>({6, 6, 6}));
    EXPECT_EQ(nth_derivative(power(3), x, 4).to_vector(), std::vector<double>({0, 0, 0}));
    // PyTorch: x^0.5 → inf at 0 and −inf at −0 (it computes sqrt and rsqrt); x^−1 → −inf at both.
    EXPECT_EQ(nth_derivative(power(0.5), x, 1).to_vector()[0], INFINITY);
    EXPECT_EQ(nth_derivative(power(0.5), x, 1).to_vector()[1], -INFINITY);
    EXPECT_EQ(nth_derivative(power(-1), x, 1).to_vector()[0], -INFINITY);
    EXPECT_EQ(nth_derivative(power(-1), x, 1).to_vector()[1], -INFINITY);
  }
}

TEST(SpecialPoints, MaximumAndMinimumSendGToBothSidesOfANaNAndHalfAtATie) {
  for (const DType dtype : {f32, f64}) {
    for (const bool composed : {false, true}) {
      // PyTorch: maximum([nan, 1, 2], [1, nan, 2]) = [nan, nan, 2], gradients [1, 1, ½] each.
      Tensor a = tensor({NAN, 1, 2, 3}, dtype).requires_grad(true);
      Tensor b = tensor({1, NAN, 2, 1}, dtype).requires_grad(true);
      for (const bool larger : {true, false}) {
        const Tensor y = larger ? maximum(a, b) : minimum(a, b);
        const std::vector<double> yv = y.to_vector();
        EXPECT_TRUE(std::isnan(yv[0]) && std::isnan(yv[1]));
        EXPECT_EQ(yv[2], 2);
        EXPECT_EQ(yv[3], larger ? 3 : 1);
        const std::vector<Tensor> g = grad(y, {a, b}, ones({4}, dtype), {.create_graph = composed});
        EXPECT_EQ(g[0].to_vector(), std::vector<double>({1, 1, 0.5, larger ? 1.0 : 0.0}));
        EXPECT_EQ(g[1].to_vector(), std::vector<double>({1, 1, 0.5, larger ? 0.0 : 1.0}));
      }
    }
  }
}

TEST(SpecialPoints, PiecewiseOpsAtTheirKinksAtSecondOrder) {
  // Every piecewise-linear op's second derivative is 0, also at its kinks and at NaN.
  const Tensor x = tensor({0.0, -0.0, 1.0, -1.0, 2.0, NAN}, f64);
  const std::vector<std::function<Tensor(const Tensor&)>> ops = {
      [](const Tensor& t) { return relu(t); }, [](const Tensor& t) { return abs(t); },
      [](const Tensor& t) { return leaky_relu(t, 0.1); },
      [](const Tensor& t) { return clamp(t, -1, 1); }};
  for (const auto& op : ops) {
    EXPECT_EQ(nth_derivative(op, x, 2).to_vector(), std::vector<double>(6, 0.0));
  }
  // First derivatives at the kinks, as PyTorch: relu 0 at 0 and 1 at NaN, abs 0 at 0 and NaN,
  // leaky_relu the slope at 0 and NaN, clamp 1 on its bounds and 0 at NaN.
  EXPECT_EQ(nth_derivative(ops[0], x, 1).to_vector(), std::vector<double>({0, 0, 1, 0, 1, 1}));
  EXPECT_EQ(nth_derivative(ops[1], x, 1).to_vector(), std::vector<double>({0, 0, 1, -1, 1, 0}));
  EXPECT_EQ(nth_derivative(ops[2], x, 1).to_vector(),
            std::vector<double>({0.1, 0.1, 1, 0.1, 1, 0.1}));
  EXPECT_EQ(nth_derivative(ops[3], x, 1).to_vector(), std::vector<double>({1, 1, 1, 1, 0, 0}));
}

TEST(SpecialPoints, MaxReductionSendsGToTheFirstMaximumOrTheFirstNaN) {
  // PyTorch: torch.max([[1, 3, 3], [nan, 2, nan]], 1) = ([3, nan], indices [1, 0]).
  for (const DType dtype : {f32, f64}) {
    const Tensor x = tensor({{1, 3, 3}, {NAN, 2, NAN}}, dtype);
    const std::vector<double> m = max(x, 1).to_vector();
    EXPECT_EQ(m[0], 3);
    EXPECT_TRUE(std::isnan(m[1]));
    for (const bool composed : {false, true}) {
      EXPECT_EQ(
          vjp([](const Tensor& t) { return max(t, 1); }, x, ones({2}, dtype), composed).to_vector(),
          std::vector<double>({0, 1, 0, 1, 0, 0}));
    }
  }
}

TEST(SpecialPoints, ClampWithLowAboveHighIsHighEverywhere) {
  // PyTorch documents clamp(x, lo, hi) with lo > hi as hi everywhere (NaN stays NaN).
  const Tensor x = tensor({-5, 0, 0.5, 5, NAN}, f64);
  const std::vector<double> y = clamp(x, 1, -1).to_vector();
  EXPECT_EQ(std::vector<double>(y.begin(), y.end() - 1), std::vector<double>({-1, -1, -1, -1}));
  EXPECT_TRUE(std::isnan(y[4]));
  EXPECT_EQ(
      vjp([](const Tensor& t) { return clamp(t, 1, -1); }, x, ones({5}, f64), false).to_vector(),
      std::vector<double>(5, 0.0));
  EXPECT_THROW(clamp(x, NAN, 1), Error);
}

// ---- 5. reductions of nothing -----------------------------------------------------------------

TEST(EmptyReductions, ValuesAndGradientsAsPyTorch) {
  for (const DType dtype : {f32, f64}) {
    const Tensor e = zeros({2, 0}, dtype);
    const auto check = [&](const std::function<Tensor(const Tensor&)>& f, const Shape& shape,
                           const std::vector<double>& want) {
      const Tensor y = f(e);
      EXPECT_EQ(y.shape(), shape);
      const std::vector<double> got = y.to_vector();
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(want[i])) {
          EXPECT_TRUE(std::isnan(got[i]));
        } else {
          EXPECT_EQ(got[i], want[i]);
        }
      }
      for (const bool composed : {false, true}) {
        EXPECT_EQ(vjp(f, e, ones(shape, dtype), composed).shape(), e.shape());
      }
    };
    check([](const Tensor& t) { return sum(t, 1); }, {2}, {0, 0});
    check([](const Tensor& t) { return sum(t, 1, true); }, {2, 1}, {0, 0});
    check([](const Tensor& t) { return sum(t, 0); }, {0}, {});
    check([](const Tensor& t) { return sum(t); }, {}, {0});
    check([](const Tensor& t) { return mean(t, 1); }, {2}, {NAN, NAN});
    check([](const Tensor& t) { return mean(t, 0); }, {0}, {});
    check([](const Tensor& t) { return mean(t); }, {}, {NAN});
    check([](const Tensor& t) { return logsumexp(t, 1); }, {2}, {-INFINITY, -INFINITY});
    check([](const Tensor& t) { return logsumexp(t, 0); }, {0}, {});
    check([](const Tensor& t) { return max(t, 0); }, {0}, {});
    check([](const Tensor& t) { return softmax(t, 1); }, {2, 0}, {});
    check([](const Tensor& t) { return softmax(t, 0); }, {2, 0}, {});
    check([](const Tensor& t) { return log_softmax(t, 1); }, {2, 0}, {});
    check([](const Tensor& t) { return sum_to(t, {1, 0}); }, {1, 0}, {});
    check([](const Tensor& t) { return broadcast_to(t, {3, 2, 0}); }, {3, 2, 0}, {});
    // PyTorch: "max(): Expected reduction dim 1 to have non-zero size".
    EXPECT_THROW(max(e, 1), Error);
  }
}

TEST(EmptyReductions, HugeEmptyTensorsAreNotWalkedRowByRow) {
  // 2^40 slices of nothing: a kernel that visits them one by one would take hours.
  const std::int64_t huge = std::int64_t(1) << 40;
  const Tensor e = zeros({huge, 3, 0}, f64);
  const std::vector<std::pair<std::function<Tensor(const Tensor&)>, Shape>> cases = {
      {[](const Tensor& t) { return softmax(t, 1); }, {huge, 3, 0}},
      {[](const Tensor& t) { return log_softmax(t, 1); }, {huge, 3, 0}},
      {[](const Tensor& t) { return logsumexp(t, 1); }, {huge, 0}},
      {[](const Tensor& t) { return max(t, 1); }, {huge, 0}},
      {[](const Tensor& t) { return sum(t, 1); }, {huge, 0}},
      {[](const Tensor& t) { return mean(t, 1); }, {huge, 0}},
      {[](const Tensor& t) {
         return sum_to(t, {3, 0});
       },
       {3, 0}},
      {[](const Tensor& t) {
         return t + zeros({3, 1}, f64);
       },
       {huge, 3, 0}},
      {[](const Tensor& t) {
         return binary_cross_entropy_with_logits(t, zeros({3, 1}, f64));
       },
       {}},
  };
  for (const auto& [f, shape] : cases) {
    EXPECT_EQ(f(e).shape(), shape);
    for (const bool composed : {false, true}) {
      EXPECT_EQ(vjp(f, e, ones(shape, f64), composed).shape(), e.shape());
    }
  }
  EXPECT_EQ(broadcast_to(zeros({3, 0}, f64), {huge, 3, 0}).shape(), Shape({huge, 3, 0}));
}

}  // namespace
}  // namespace tg
