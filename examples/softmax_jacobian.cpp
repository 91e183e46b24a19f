// The softmax Jacobian, corrected.
//
// A widely copied article says softmax derivatives "go to zero in NumPy because of precision",
// calls s(1 − s) "the derivative", and proposes s(1 − s) + outer(s, s) as a "more stable"
// formula. Every output of softmax depends on every input, so the derivative is the matrix
// J = diag(s) − s sᵀ: s(1 − s) is only its diagonal, and the second formula is not J at all.
// Backward never forms J: the rule s ⊙ (g − ⟨g, s⟩) is gᵀJ in O(n).
#include <fmt/format.h>

#include <cmath>

#include "tapegrad.h"

namespace {

std::string row(const std::vector<double>& values) {
  std::string text;
  for (double v : values)
    text += std::isnan(v) ? fmt::format(" {:>11}", "nan") : fmt::format(" {:11.8f}", v);
  return text;
}

void print_matrix(const tg::Tensor& m) {
  for (std::int64_t i = 0; i < m.shape()[0]; ++i) {
    std::vector<double> values;
    for (std::int64_t j = 0; j < m.shape()[1]; ++j) values.push_back(m.at({i, j}));
    fmt::print("   {}\n", row(values));
  }
}

double max_abs_difference(const tg::Tensor& a, const tg::Tensor& b) {
  return tg::max(tg::reshape(tg::abs(a - b), {a.numel()}), 0).item();
}

}  // namespace

int main() {
  const tg::Tensor z = tg::tensor({1, 2, 3}, tg::f64);
  const tg::Tensor s = tg::softmax(z);
  fmt::print("1. softmax(z) for z = [1, 2, 3]:\n   {}\n\n", row(s.to_vector()));

  // The Jacobian two ways: by reverse mode (one VJP per output element) and by the formula.
  const tg::Tensor by_reverse_mode =
      tg::jacobian([](const auto& in) { return tg::softmax(in[0]); }, {z})[0];
  const tg::Tensor s_column = tg::reshape(s, {3, 1});
  const tg::Tensor explicit_jacobian =
      tg::broadcast_to(s_column, {3, 3}) * tg::tensor({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, tg::f64) -
      tg::matmul(s_column, tg::transpose(s_column));
  fmt::print("2. The Jacobian J = diag(s) − s sᵀ, by reverse mode (one VJP per row):\n");
  print_matrix(by_reverse_mode);
  fmt::print("   the explicit formula differs from it by at most {:.1e}\n",
             max_abs_difference(by_reverse_mode, explicit_jacobian));
  tg::Tensor x = z.detach().requires_grad(true);
  const tg::Tensor g = tg::tensor({1, 0, -1}, tg::f64);
  const tg::Tensor vjp = tg::grad(tg::softmax(x), {x}, g)[0];
  const tg::Tensor g_times_j =
      tg::reshape(tg::matmul(tg::reshape(g, {1, 3}), by_reverse_mode), {3});
  fmt::print("   backward rule s ⊙ (g − ⟨g, s⟩) for g = [1, 0, -1]:\n");
  fmt::print("     by the rule (O(n)):     {}\n", row(vjp.to_vector()));
  fmt::print("     gᵀJ from the matrix:    {}\n", row(g_times_j.to_vector()));
  const tg::GradcheckResult check =
      tg::gradcheck([](const auto& in) { return tg::softmax(in[0]); }, {z});
  fmt::print("   {}\n\n", check.report);

  // The article's formulas, held against J.
  const tg::Tensor diagonal_only = tg::tensor({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, tg::f64) *
                                   tg::broadcast_to(tg::reshape(s * (1.0 - s), {3, 1}), {3, 3});
  // NumPy broadcasts the vector s(1 − s) along the rows of outer(s, s).
  const tg::Tensor article_fix = s * (1.0 - s) + tg::matmul(s_column, tg::transpose(s_column));
  fmt::print("3. The article's formulas against the true Jacobian:\n");
  fmt::print("   s(1 − s) as \"the derivative\" (the diagonal only): max |error| = {:.8f}\n",
             max_abs_difference(diagonal_only, by_reverse_mode));
  fmt::print("   s(1 − s) + outer(s, s), the \"stable\" fix:         max |error| = {:.8f}\n\n",
             max_abs_difference(article_fix, by_reverse_mode));

  const tg::Tensor big = tg::tensor({1000, 1001, 1002}, tg::f64);
  const tg::Tensor naive = tg::exp(big) / tg::sum(tg::exp(big));
  fmt::print("4. z = [1000, 1001, 1002]:\n");
  fmt::print("   naive exp(z) / Σ exp(z):   {}\n", row(naive.to_vector()));
  fmt::print("   tapegrad softmax (shifted): {}\n", row(tg::softmax(big).to_vector()));
  fmt::print(
      "   exp(1000) overflows to inf and inf/inf is NaN; subtracting max(z) first changes\n"
      "   nothing mathematically and keeps every exp in range. Precision was never the\n"
      "   problem with the derivative: the missing off-diagonal terms were.\n");
  return check.passed && std::isfinite(tg::softmax(big).at({0})) ? 0 : 1;
}
