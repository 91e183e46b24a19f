// The language-model ops around attention.
//
//   tril, triu   y = x where j − i is within the band, else 0      dx = tril(g), triu(g)
//   embedding    y[.., :] = w[idx[..], :]                          dw = index_add of g's rows
//   layer_norm   see ops/language.h
//   topk         y = x at the k chosen positions (gather)          dx = scatter_add(0, idx, g)
//   multinomial  category indices drawn from a Generator           not differentiable
//
// topk chooses by a partial sort of each slice's positions (std::partial_sort, or
// std::nth_element when unsorted): NaN ranks above every number, as PyTorch, and equal values
// rank by position, the lower index first (PyTorch leaves the order of ties unspecified).
// Unsorted, the chosen positions come in increasing index order. Its values are gather(x, idx):
// the gradient and its second order are gather's.
//
// multinomial draws from a Generator, row by row. With replacement: num_samples uniforms per row,
// each mapped through the row's cumulative sums (in double) to the first category whose
// cumulative sum exceeds u·total (a zero-weight category never is). Without replacement: the
// exponential race, one uniform per category, key E/w with E = −log(1 − u) ~ Exp(1) (compared
// as log E − log w); the
// num_samples smallest keys in increasing order are distributed as successive draws, each
// proportional to the weights not yet drawn (a zero weight's key is +inf: never drawn).
#include "ops/language.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <span>

#include <fmt/ranges.h>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"
#include "tools/op_registry.h"

namespace tg {
namespace {

struct TriangleAttrs {
  std::int64_t diagonal;
  bool lower;
};

// x with the entries outside the band of its last two dimensions set to 0 (false), any dtype.
Tensor triangle_forward(ForwardContext& ctx, const TriangleAttrs& a) {
  const Tensor& x = ctx.input(0);
  const std::int64_t rows = x.shape()[x.rank() - 2], cols = x.shape()[x.rank() - 1];
  return dispatch_all(x.dtype(), [&]<class T>() {
    Tensor y = x.copy();
    if (y.numel() == 0) return y;  // perhaps 2^40 empty matrices: nothing walked
    T* py = y.data<T>();
    // A diagonal past either corner acts as the corner's: i + band cannot overflow.
    const std::int64_t band = std::clamp(a.diagonal, -rows - 1, cols + 1);
    for (std::int64_t m = 0; m < y.numel() / (rows * cols); ++m) {
      for (std::int64_t i = 0; i < rows; ++i) {
        T* row = py + (m * rows + i) * cols;
        // Kept: j ≤ i + band (lower), j ≥ i + band (upper).
        const std::int64_t edge = std::clamp(i + band + (a.lower ? 1 : 0), std::int64_t(0), cols);
        if (a.lower) {
          std::fill(row + edge, row + cols, T(0));
        } else {
          std::fill(row, row + edge, T(0));
        }
      }
    }
    return y;
  });
}

// The same mask on g: the op itself, so the rule is differentiable.
void triangle_backward(BackwardContext& ctx, const TriangleAttrs& a) {
  ctx.set_grad(0,
               a.lower ? tril(ctx.grad_output(), a.diagonal) : triu(ctx.grad_output(), a.diagonal));
}

const Op<TriangleAttrs> kTril{"tril", "dx = tril(g)", triangle_forward, triangle_backward};
const Op<TriangleAttrs> kTriu{"triu", "dx = triu(g)", triangle_forward, triangle_backward};

Tensor triangle(const Tensor& x, std::int64_t diagonal, bool lower, const char* op,
                SourceLocation location) {
  if (!x.defined()) detail::fail_at(op, location, "the input is an undefined tensor");
  if (x.rank() < 2) {
    detail::fail_at(op, location, "expected a tensor of rank >= 2, got shape {}", x.shape().str());
  }
  return (lower ? kTril : kTriu)({diagonal, lower}, location, x);
}

struct EmbeddingAttrs {
  std::int64_t padding;  // in [0, num_embeddings), or −1 for none
};

// Rows of the table [num_embeddings, dim] at each index: [*indices.shape, dim].
Tensor embedding_forward(ForwardContext& ctx, const EmbeddingAttrs&) {
  const Tensor& weight = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const std::int64_t dim = weight.shape()[1];
  Shape shape(indices.shape().dims(), "embedding");
  shape.push_back(dim, "embedding");
  return dispatch_floating(weight.dtype(), "embedding", [&]<class T>() {
    Tensor y = empty(shape, weight.dtype());
    const T* pw = weight.data<T>();
    const std::int64_t* idx = indices.data<std::int64_t>();
    T* py = y.data<T>();
    if (dim == 0) return y;
    detail::parallel_for(indices.numel(), y.numel(), [&](std::int64_t k) {
      std::copy_n(pw + idx[k] * dim, dim, py + k * dim);
    });
    return y;
  });
}

// index_add of g's rows into a zero table, the rows at padding_idx left out: tapegrad ops, so
// the rule is itself differentiable (linear in g).
void embedding_backward(BackwardContext& ctx, const EmbeddingAttrs& a) {
  const Tensor& weight = ctx.input(0);
  const Tensor flat_index = reshape(ctx.input(1), Shape(std::array{ctx.input(1).numel()}));
  Tensor rows =
      reshape(ctx.grad_output(), Shape(std::array{flat_index.numel(), weight.shape()[1]}));
  if (a.padding >= 0) {
    rows = where(unsqueeze(ne(flat_index, double(a.padding)), 1), rows, 0.0);
  }
  ctx.set_grad(0, index_add(zeros_like(weight), 0, flat_index, rows));
}

const Op<EmbeddingAttrs> kEmbedding{"embedding", "dw = index_add(0, idx, g), padding rows left out",
                                    embedding_forward, embedding_backward};

}  // namespace

Tensor tril(const Tensor& x, std::int64_t diagonal, SourceLocation location) {
  return triangle(x, diagonal, true, "tril", location);
}
Tensor triu(const Tensor& x, std::int64_t diagonal, SourceLocation location) {
  return triangle(x, diagonal, false, "triu", location);
}

Tensor embedding(const Tensor& indices, const Tensor& weight,
                 std::optional<std::int64_t> padding_idx, SourceLocation location) {
  constexpr const char* op = "embedding";
  if (!indices.defined() || !weight.defined()) {
    detail::fail_at(op, location, "the indices or the weight is an undefined tensor");
  }
  if (indices.dtype() != i64) {
    detail::fail_at(op, location, "the indices must be int64, got {} {}",
                    dtype_name(indices.dtype()), indices.shape().str());
  }
  if (!is_floating(weight.dtype()) || weight.rank() != 2) {
    detail::fail_at(op, location,
                    "expected a floating weight [num_embeddings, embedding_dim], got {} {}",
                    weight.shape().str(), dtype_name(weight.dtype()));
  }
  const std::int64_t n = weight.shape()[0];
  const std::int64_t* idx = indices.data<std::int64_t>();
  for (std::int64_t k = 0; k < indices.numel(); ++k) {
    if (idx[k] < 0 || idx[k] >= n) {
      detail::fail_at(op, location,
                      "index {} at position [{}] is out of range for num_embeddings {} "
                      "(expected 0 to {})",
                      idx[k], fmt::join(unravel_index(k, indices.shape()), ", "), n, n - 1);
    }
  }
  std::int64_t padding = -1;
  if (padding_idx) {
    if (*padding_idx < -n || *padding_idx >= n) {
      detail::fail_at(op, location,
                      "padding_idx {} is out of range for num_embeddings {} (expected {} to {})",
                      *padding_idx, n, -n, n - 1);
    }
    padding = *padding_idx < 0 ? *padding_idx + n : *padding_idx;
  }
  return kEmbedding({padding}, location, weight, indices);
}

namespace {

// layer_norm over rows of D = Π normalized_shape values, x̂ = (x − μ)·σ⁻¹ with μ and
// σ⁻¹ = (Σ(x − μ)²/D + eps)^(−1/2) per row:
//
//   y  = x̂·w + b
//   dx = σ⁻¹·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)), ĝ = g ⊙ w      dw = Σ_rows g ⊙ x̂      db = Σ_rows g
//
// One op with fused kernels: per row the mean, then the centred squares, in double (two passes),
// x̂ formed in double and y written in one pass; saved: μ and σ⁻¹ in double (float32 inputs too,
// so x − μ keeps its digits where |μ| dwarfs the spread). The fused backward takes two passes
// over a row of g (the two means, then dx) and accumulates dw and db in double. Under
// create_graph the rule is the same formula written with tapegrad's differentiable ops, the
// statistics recomputed from x (batch_norm_fused.cpp's pattern), so second order flows through
// the statistics; its float32 sums are tapegrad's float32 sums, within float32 roundings of the
// fused rule. The inputs are x, then weight and bias when defined.
//
// Measured ([768, 128] float32, forward + backward through tg::grad, one thread, shared 2-core
// machine): fused 310 µs, the composition 330 µs; the forward alone 121 µs against 78 µs (the
// rows widened to double, which the float32 statistics of the composition skip).
struct LayerNormAttrs {
  std::int64_t row_length;
  double eps;
  bool has_weight;
  bool has_bias;
};

constexpr const char* kLayerNorm = "layer_norm";

Tensor layer_norm_forward(ForwardContext& ctx, const LayerNormAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor* weight = a.has_weight ? &ctx.input(1) : nullptr;
  const Tensor* bias = a.has_bias ? &ctx.input(a.has_weight ? 2 : 1) : nullptr;
  const std::int64_t d = a.row_length;
  const std::int64_t rows = d == 0 ? 0 : x.numel() / d;
  return dispatch_floating(x.dtype(), kLayerNorm, [&]<class T>() {
    Tensor y = empty(x.shape(), x.dtype());
    Tensor mean = empty(Shape(std::array{rows}, kLayerNorm), f64);
    Tensor inverse_std = empty(Shape(std::array{rows}, kLayerNorm), f64);
    const T* px = x.data<T>();
    const T* pw = weight ? weight->data<T>() : nullptr;
    const T* pb = bias ? bias->data<T>() : nullptr;
    T* py = y.data<T>();
    double* pm = mean.data<double>();
    double* pr = inverse_std.data<double>();
    detail::parallel_for(rows, x.numel(), [&](std::int64_t r) {
      // Sums in double over the lazily widened row (no copy of it, no allocation per row).
      const auto xs = Eigen::Map<const detail::Vector<T>>(px + r * d, d).template cast<double>();
      // The corrected two-pass algorithm: the centred sum Σ(x − μ₀) moves the mean by its
      // rounding (of order |x|·2⁻⁵³, large beside the spread under a large offset) and takes
      // its share out of the squares.
      const double first = xs.sum() / double(d);
      const double shift = (xs - first).sum();
      const double mu = first + shift / double(d);
      const double squares = (xs - first).square().sum() - shift * shift / double(d);
      const double rstd = 1.0 / std::sqrt(squares / double(d) + a.eps);
      pm[r] = mu;
      pr[r] = rstd;
      Eigen::Map<detail::Vector<T>> out(py + r * d, d);
      const auto xhat = ((xs - mu) * rstd).template cast<T>();
      const Eigen::Map<const detail::Vector<T>> w(pw, pw ? d : 0), b(pb, pb ? d : 0);
      if (pw && pb) {  // one pass for each case
        out = xhat * w + b;
      } else if (pw) {
        out = xhat * w;
      } else if (pb) {
        out = xhat + b;
      } else {
        out = xhat;
      }
    });
    ctx.save(mean, Residual::constant);
    ctx.save(inverse_std, Residual::constant);
    return y;
  });
}

void layer_norm_fused_backward(BackwardContext& ctx, const LayerNormAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& g = ctx.grad_output();
  const double* pm = ctx.saved(0).data<double>();
  const double* pr = ctx.saved(1).data<double>();
  const std::size_t w_index = 1, b_index = a.has_weight ? 2 : 1;
  const bool want_x = ctx.needs_grad(0);
  const bool want_w = a.has_weight && ctx.needs_grad(w_index);
  const bool want_b = a.has_bias && ctx.needs_grad(b_index);
  const std::int64_t d = a.row_length;
  const std::int64_t rows = d == 0 ? 0 : x.numel() / d;
  dispatch_floating(x.dtype(), kLayerNorm, [&]<class T>() {
    const T* px = x.data<T>();
    const T* pg = g.data<T>();
    const T* pw = a.has_weight ? ctx.input(w_index).data<T>() : nullptr;
    if (want_x) {
      Tensor dx = empty(x.shape(), x.dtype());
      T* pdx = dx.data<T>();
      detail::parallel_for(rows, 2 * x.numel(), [&](std::int64_t r) {
        const auto xhat =
            (Eigen::Map<const detail::Vector<T>>(px + r * d, d).template cast<double>() - pm[r]) *
            pr[r];
        const auto gs = Eigen::Map<const detail::Vector<T>>(pg + r * d, d).template cast<double>();
        Eigen::Map<detail::Vector<T>> out(pdx + r * d, d);
        const auto write = [&](const auto& gh) {
          const double mean_g = gh.mean(), mean_gx = (gh * xhat).mean();
          out = (pr[r] * (gh - mean_g - xhat * mean_gx)).template cast<T>();
        };
        if (pw) {
          write(gs * Eigen::Map<const detail::Vector<T>>(pw, d).template cast<double>());
        } else {
          write(gs);
        }
      });
      ctx.set_grad(0, dx);
    }
    if (!want_w && !want_b) return 0;
    // Column sums over the rows in double, in scratch kept across calls (no allocation in a
    // steady training loop).
    thread_local std::vector<double> dw, db;
    dw.assign(std::size_t(d), 0.0);
    db.assign(std::size_t(d), 0.0);
    Eigen::Map<detail::Vector<double>> sw(dw.data(), d), sb(db.data(), d);
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto gs = Eigen::Map<const detail::Vector<T>>(pg + r * d, d).template cast<double>();
      if (want_w) {
        sw +=
            gs *
            ((Eigen::Map<const detail::Vector<T>>(px + r * d, d).template cast<double>() - pm[r]) *
             pr[r]);
      }
      if (want_b) sb += gs;
    }
    const auto as_tensor = [&](const std::vector<double>& v, std::size_t i) {
      Tensor t = empty(ctx.input(i).shape(), x.dtype());
      Eigen::Map<detail::Vector<T>>(t.data<T>(), d) =
          Eigen::Map<const detail::Vector<double>>(v.data(), d).template cast<T>();
      return t;
    };
    if (want_w) ctx.set_grad(w_index, as_tensor(dw, w_index));
    if (want_b) ctx.set_grad(b_index, as_tensor(db, b_index));
    return 0;
  });
}

// The same rule with differentiable ops, the statistics recomputed from x (for create_graph).
void layer_norm_composed_backward(BackwardContext& ctx, const LayerNormAttrs& a) {
  const Tensor& x = ctx.input(0);
  const std::size_t w_index = 1, b_index = a.has_weight ? 2 : 1;
  const std::int64_t d = a.row_length;
  const Shape rows_shape(std::array{d == 0 ? 0 : x.numel() / d, d}, kLayerNorm);
  const Tensor xr = reshape(x, rows_shape);
  const Tensor gr = reshape(ctx.grad_output(), rows_shape);
  const Tensor centred = xr - mean(xr, -1, true);
  const Tensor rstd = rsqrt(mean(centred * centred, -1, true) + a.eps);
  const Tensor xhat = centred * rstd;
  if (ctx.needs_grad(0)) {
    const Tensor gh = a.has_weight ? gr * reshape(ctx.input(w_index), Shape{1, d}) : gr;
    const Tensor dx = rstd * (gh - mean(gh, -1, true) - xhat * mean(gh * xhat, -1, true));
    ctx.set_grad(0, reshape(dx, x.shape()));
  }
  if (a.has_weight && ctx.needs_grad(w_index)) {
    ctx.set_grad(w_index, reshape(sum(gr * xhat, 0), ctx.input(w_index).shape()));
  }
  if (a.has_bias && ctx.needs_grad(b_index)) {
    ctx.set_grad(b_index, reshape(sum(gr, 0), ctx.input(b_index).shape()));
  }
}

void layer_norm_backward(BackwardContext& ctx, const LayerNormAttrs& a) {
  if (!ctx.create_graph()) return layer_norm_fused_backward(ctx, a);
  layer_norm_composed_backward(ctx, a);
}

const Op<LayerNormAttrs> kLayerNormOp{
    kLayerNorm, "dx = σ⁻¹·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)), ĝ = g·w, dw = Σ g·x̂, db = Σ g",
    layer_norm_forward, layer_norm_backward};

void check_affine(const Tensor& t, const char* name, const Tensor& x,
                  const std::vector<std::int64_t>& normalized_shape,
                  const SourceLocation& location) {
  if (!t.defined()) return;
  if (!std::equal(t.shape().begin(), t.shape().end(), normalized_shape.begin(),
                  normalized_shape.end()) ||
      t.dtype() != x.dtype()) {
    detail::fail_at(kLayerNorm, location,
                    "{} should be {} {} (normalized_shape, the input's dtype), got {} {}", name,
                    fmt::format("[{}]", fmt::join(normalized_shape, ", ")), dtype_name(x.dtype()),
                    t.shape().str(), dtype_name(t.dtype()));
  }
}

}  // namespace

Tensor layer_norm(const Tensor& x, const std::vector<std::int64_t>& normalized_shape,
                  const Tensor& weight, const Tensor& bias, double eps, SourceLocation location) {
  if (!x.defined()) detail::fail_at(kLayerNorm, location, "the input is an undefined tensor");
  if (!is_floating(x.dtype())) {
    detail::fail_at(kLayerNorm, location, "expected a floating input, got {} {}", x.shape().str(),
                    dtype_name(x.dtype()));
  }
  const auto k = std::int64_t(normalized_shape.size());
  const std::span<const std::int64_t> dims = x.shape().dims();
  if (k == 0 || k > x.rank() ||
      !std::equal(dims.end() - k, dims.end(), normalized_shape.begin(), normalized_shape.end())) {
    detail::fail_at(kLayerNorm, location,
                    "normalized_shape [{}] should be the input's last dimensions, got an input "
                    "of shape {}",
                    fmt::join(normalized_shape, ", "), x.shape().str());
  }
  check_affine(weight, "weight", x, normalized_shape, location);
  check_affine(bias, "bias", x, normalized_shape, location);
  if (!(eps >= 0)) detail::fail_at(kLayerNorm, location, "expected eps >= 0, got {}", eps);
  // A product of a valid shape's trailing dims: no overflow.
  const std::int64_t d = Shape(normalized_shape).numel();
  const LayerNormAttrs attrs{d, eps, weight.defined(), bias.defined()};
  if (weight.defined() && bias.defined()) return kLayerNormOp(attrs, location, x, weight, bias);
  if (weight.defined()) return kLayerNormOp(attrs, location, x, weight);
  if (bias.defined()) return kLayerNormOp(attrs, location, x, bias);
  return kLayerNormOp(attrs, location, x);
}

namespace {

// The positions topk chooses along each slice of x's axis a, as an int64 tensor of x's shape
// with k along a.
template <class T>
Tensor topk_indices(const Tensor& x, int a, std::int64_t k, bool largest, bool sorted) {
  const AxisSplit s = split_at_axis(x.shape(), a);
  Tensor out = empty(x.shape().with_dim(a, k, "topk"), i64);
  if (out.numel() == 0) return out;
  const T* px = x.data<T>();
  std::int64_t* po = out.data<std::int64_t>();
  std::vector<std::int64_t> order(std::size_t(s.dim));
  for (std::int64_t o = 0; o < s.outer; ++o) {
    for (std::int64_t i = 0; i < s.inner; ++i) {
      const T* slice = px + o * s.dim * s.inner + i;
      // NaN is the largest value; equal values (NaN among them) rank by position.
      const auto before = [&](std::int64_t p, std::int64_t q) {
        const T u = slice[p * s.inner], v = slice[q * s.inner];
        const bool u_nan = std::isnan(u), v_nan = std::isnan(v);
        if (u_nan || v_nan) {
          if (u_nan && v_nan) return p < q;
          return largest ? u_nan : v_nan;
        }
        if (u != v) return largest ? u > v : u < v;
        return p < q;
      };
      std::iota(order.begin(), order.end(), std::int64_t(0));
      const auto chosen = order.begin() + k;
      if (sorted) {
        std::partial_sort(order.begin(), chosen, order.end(), before);
      } else {
        std::nth_element(order.begin(), chosen, order.end(), before);
        std::sort(order.begin(), chosen);
      }
      for (std::int64_t j = 0; j < k; ++j) po[(o * k + j) * s.inner + i] = order[std::size_t(j)];
    }
  }
  return out;
}

}  // namespace

TopK topk(const Tensor& x, std::int64_t k, std::int64_t axis, bool largest, bool sorted,
          SourceLocation location) {
  constexpr const char* op = "topk";
  if (!x.defined()) detail::fail_at(op, location, "the input is an undefined tensor");
  if (!is_floating(x.dtype())) {
    detail::fail_at(op, location, "expected a floating input, got {} {}", x.shape().str(),
                    dtype_name(x.dtype()));
  }
  if (x.rank() == 0) {  // one element along axis 0 (or −1); k = 1 gives scalars, as PyTorch
    TopK r;
    r.values = detail::on_scalar_axis(x, axis, op, location, [&](const Tensor& v) {
      r = topk(v, k, 0, largest, sorted, location);
      return r.values;
    });
    r.indices = reshape(r.indices, Shape{}, location);
    return r;
  }
  const int a = detail::checked_axis(axis, x.rank(), op, location);
  if (k < 0 || k > x.shape()[a]) {
    detail::fail_at(op, location, "k = {} is out of range for axis {} of size {} (shape {})", k, a,
                    x.shape()[a], x.shape().str());
  }
  Tensor indices = dispatch_floating(
      x.dtype(), op, [&]<class T>() { return topk_indices<T>(x, a, k, largest, sorted); });
  Tensor values = detail::composite(op, location, [&] { return gather(x, a, indices, location); });
  return {std::move(values), std::move(indices)};
}

Tensor multinomial(const Tensor& probs, std::int64_t num_samples, Generator& generator,
                   bool replacement, SourceLocation location) {
  constexpr const char* op = "multinomial";
  if (!probs.defined()) detail::fail_at(op, location, "the input is an undefined tensor");
  if (!is_floating(probs.dtype()) || (probs.rank() != 1 && probs.rank() != 2)) {
    detail::fail_at(op, location, "expected floating weights [C] or [N, C], got {} {}",
                    probs.shape().str(), dtype_name(probs.dtype()));
  }
  const std::int64_t categories = probs.shape()[probs.rank() - 1];
  const std::int64_t rows = probs.rank() == 2 ? probs.shape()[0] : 1;
  if (categories == 0) {
    detail::fail_at(op, location, "expected at least one category, got shape {}",
                    probs.shape().str());
  }
  if (num_samples <= 0) {
    detail::fail_at(op, location, "expected num_samples > 0, got {}", num_samples);
  }
  if (!replacement && num_samples > categories) {
    detail::fail_at(op, location, "cannot draw {} samples without replacement from {} categories",
                    num_samples, categories);
  }
  const Shape out_shape = probs.rank() == 2 ? Shape(std::array{rows, num_samples}, op)
                                            : Shape(std::array{num_samples}, op);
  const std::vector<double> w = probs.to_vector();
  // Every row is checked before anything is drawn: an error leaves the generator as it was.
  for (std::int64_t r = 0; r < rows; ++r) {
    double total = 0;
    std::int64_t nonzero = 0;
    for (std::int64_t c = 0; c < categories; ++c) {
      const double v = w[std::size_t(r * categories + c)];
      if (!(v >= 0) || std::isinf(v)) {
        detail::fail_at(op, location,
                        "weight {} at row {}, category {} is not a finite non-negative number", v,
                        r, c);
      }
      total += v;
      nonzero += v > 0 ? 1 : 0;
    }
    if (!(total > 0) || std::isinf(total)) {
      detail::fail_at(op, location,
                      "the weights of row {} sum to {} (expected a positive finite sum)", r, total);
    }
    if (!replacement && nonzero < num_samples) {
      detail::fail_at(op, location,
                      "row {} has {} non-zero weights, too few for {} samples without replacement",
                      r, nonzero, num_samples);
    }
  }
  Tensor out = empty(out_shape, i64);
  std::int64_t* po = out.data<std::int64_t>();
  std::vector<double> key(static_cast<std::size_t>(categories));
  std::vector<std::int64_t> order(static_cast<std::size_t>(categories));
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* row = w.data() + r * categories;
    std::int64_t* drawn = po + r * num_samples;
    if (replacement) {
      std::partial_sum(row, row + categories, key.begin());
      const double total = key.back();
      // The last category with a weight, for a u·total that rounds up to the total.
      const std::int64_t last = std::int64_t(
          std::find_if(key.begin(), key.end(), [&](double c) { return c == total; }) - key.begin());
      for (std::int64_t j = 0; j < num_samples; ++j) {
        const double u = generator.uniform() * total;
        const auto at = std::upper_bound(key.begin(), key.end(), u);
        drawn[j] = std::min(std::int64_t(at - key.begin()), last);
      }
      continue;
    }
    for (std::int64_t c = 0; c < categories; ++c) {
      const double e = -std::log1p(-generator.uniform());
      // In logs: E/w overflows to +inf for a subnormal w, tying it with the zero weights.
      key[std::size_t(c)] = row[c] > 0 ? std::log(e) - std::log(row[c]) : INFINITY;
    }
    std::iota(order.begin(), order.end(), std::int64_t(0));
    std::partial_sort(order.begin(), order.begin() + num_samples, order.end(),
                      [&](std::int64_t p, std::int64_t q) {
                        return key[std::size_t(p)] < key[std::size_t(q)] ||
                               (key[std::size_t(p)] == key[std::size_t(q)] && p < q);
                      });
    std::copy_n(order.begin(), num_samples, drawn);
  }
  return out;
}

namespace detail {
namespace {

// d layer_norm / d (x, weight, bias) by a direct loop over rows: dy_j/dx_i =
// w_j·σ⁻¹·(δᵢⱼ − 1/D − x̂ᵢx̂ⱼ/D), dy_j/dw_j = x̂_j, dy_j/db_j = 1.
std::vector<Tensor> layer_norm_jacobian(const std::vector<Tensor>& in, std::int64_t d, double eps) {
  const std::vector<double> x = in[0].to_vector();
  const std::vector<double> w =
      in.size() > 1 ? in[1].to_vector() : std::vector<double>(std::size_t(d), 1.0);
  const std::int64_t n = in[0].numel();
  std::vector<double> jx(std::size_t(n * n)), jw(std::size_t(n * d)), jb(std::size_t(n * d));
  for (std::int64_t r = 0; r < n / d; ++r) {
    double mu = 0, var = 0;
    for (std::int64_t j = 0; j < d; ++j) mu += x[std::size_t(r * d + j)] / double(d);
    for (std::int64_t j = 0; j < d; ++j) {
      var += (x[std::size_t(r * d + j)] - mu) * (x[std::size_t(r * d + j)] - mu) / double(d);
    }
    const double rstd = 1 / std::sqrt(var + eps);
    const auto xhat = [&](std::int64_t j) { return (x[std::size_t(r * d + j)] - mu) * rstd; };
    for (std::int64_t j = 0; j < d; ++j) {
      const std::int64_t o = r * d + j;
      for (std::int64_t i = 0; i < d; ++i) {
        jx[std::size_t(o * n + r * d + i)] =
            w[std::size_t(j)] * rstd *
            ((i == j ? 1.0 : 0.0) - 1.0 / double(d) - xhat(i) * xhat(j) / double(d));
      }
      jw[std::size_t(o * d + j)] = xhat(j);
      jb[std::size_t(o * d + j)] = 1.0;
    }
  }
  std::vector<Tensor> out{from_vector(jx, {n, n}, f64)};
  if (in.size() > 1) out.push_back(from_vector(jw, {n, d}, f64));
  if (in.size() > 2) out.push_back(from_vector(jb, {n, d}, f64));
  return out;
}

}  // namespace

void register_language_ops(OpRegistry& registry) {
  // tril/triu: their Jacobian is the diagonal of the band mask.
  for (const bool lower : {true, false}) {
    for (const auto& entry : std::vector<std::pair<std::int64_t, std::vector<Shape>>>{
             {0, {{4, 4}, {2, 3, 4}}}, {-1, {{3, 5}, {2, 1, 3, 3}}}, {2, {{5, 3}}}}) {
      const std::int64_t diagonal = entry.first;
      const std::vector<Shape> shapes = entry.second;
      const char* name = lower ? "tril" : "triu";
      const auto f = [lower, diagonal](const std::vector<Tensor>& in) {
        return lower ? tril(in[0], diagonal) : triu(in[0], diagonal);
      };
      registry.add({fmt::format("{}(diagonal={})", name, diagonal), f,
                    [shapes, diagonal](DType dtype) {
                      Generator gen(std::uint64_t(611 + diagonal));
                      std::vector<OpSample> out;
                      for (const Shape& shape : shapes) {
                        out.push_back({shape.str(), {sample(shape, dtype, gen)}});
                      }
                      return out;
                    },
                    [f](const std::vector<Tensor>& in) {
                      return std::vector{
                          elementwise_jacobian(f({ones_like(in[0])}), [](double m) { return m; })};
                    }});
    }
  }

  registry.add(
      {"embedding", [](const auto& in) { return embedding(in[1], in[0]); },
       [](DType dtype) {
         Generator gen(621);
         return std::vector<OpSample>{
             {"[5, 3] at [2, 3] indices with repeats",
              {sample({5, 3}, dtype, gen), int64_tensor({0, 4, 2, 2, 1, 4}, {2, 3})}}};
       },
       [](const std::vector<Tensor>& in) {
         const std::int64_t dim = in[0].shape()[1], n = in[1].numel();
         std::vector<double> j(std::size_t(n * dim * in[0].numel()));
         const std::vector<double> idx = in[1].to_vector();
         for (std::int64_t k = 0; k < n; ++k) {
           for (std::int64_t c = 0; c < dim; ++c) {
             j[std::size_t((k * dim + c) * in[0].numel() + std::int64_t(idx[std::size_t(k)]) * dim +
                           c)] = 1.0;
           }
         }
         return std::vector<Tensor>{from_vector(j, {n * dim, in[0].numel()}, f64), Tensor()};
       }});

  // layer_norm: inputs x, then weight and bias of normalized_shape when affine.
  struct LayerNormCase {
    const char* name;
    Shape shape;
    int k;
    int affine;  // 0 none, 1 weight, 2 weight and bias
    double eps;
    bool constant_row;
  };
  for (const LayerNormCase& c :
       {LayerNormCase{"layer_norm(k=1)", {3, 4}, 1, 2, 1e-5, false},
        LayerNormCase{"layer_norm(k=2)", {2, 3, 4}, 2, 2, 1e-5, false},
        LayerNormCase{"layer_norm(k=1, no affine)", {2, 2, 3}, 1, 0, 1e-5, false},
        LayerNormCase{"layer_norm(k=2, weight only)", {2, 2, 3}, 2, 1, 1e-5, false},
        LayerNormCase{"layer_norm(k=1, eps=0.1, a constant row)", {2, 3}, 1, 2, 0.1, true}}) {
    const std::vector<std::int64_t> normalized(c.shape.end() - c.k, c.shape.end());
    const std::int64_t d = Shape(normalized).numel();
    registry.add(
        {c.name,
         [normalized, c](const auto& in) {
           return layer_norm(in[0], normalized, in.size() > 1 ? in[1] : Tensor(),
                             in.size() > 2 ? in[2] : Tensor(), c.eps);
         },
         [normalized, c](DType dtype) {
           Generator gen(631);
           Tensor x = sample(c.shape, dtype, gen);
           if (c.constant_row) {
             std::vector<double> v = x.to_vector();
             std::fill_n(v.begin(), c.shape[1], 0.75);
             x = from_vector(v, c.shape, dtype);
           }
           std::vector<Tensor> in{x};
           if (c.affine >= 1) in.push_back(sample(Shape(normalized), dtype, gen, 0.5, 1.5));
           if (c.affine >= 2) in.push_back(sample(Shape(normalized), dtype, gen));
           return std::vector<OpSample>{{c.shape.str(), in}};
         },
         [d, c](const std::vector<Tensor>& in) { return layer_norm_jacobian(in, d, c.eps); }});
  }

  // topk: distinct values, far enough apart that float32 rounding keeps float64's order.
  const auto spread = [](const Shape& shape, std::uint64_t seed) {
    return [=](DType dtype) {
      Generator gen(seed);
      std::vector<double> v(std::size_t(shape.numel()));
      std::iota(v.begin(), v.end(), 0.0);
      for (std::size_t i = v.size(); i > 1; --i) {
        std::swap(v[i - 1], v[std::size_t(gen.next() % i)]);
      }
      for (double& x : v) x = 0.25 * x - 1.0;
      return std::vector<OpSample>{{shape.str(), {from_vector(v, shape, dtype)}}};
    };
  };
  registry.add({"topk(k=2, axis=-1)",
                [](const auto& in) { return topk(in[0], 2).values; },
                spread({3, 5}, 601),
                {}});
  registry.add({"topk(k=3, axis=0, smallest)",
                [](const auto& in) { return topk(in[0], 3, 0, false).values; },
                spread({4, 2, 3}, 603),
                {}});
}

}  // namespace detail
}  // namespace tg
