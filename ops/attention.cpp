// scaled_dot_product_attention as one recorded op with fused kernels. Per head (q [L, E],
// k [S, E], v [S, Ev]), with the mask M (−inf where a key is masked, the float mask's values, or
// 0):
//
//   Z = q·kᵀ·scale + M      P = softmax(Z) row-wise (a row whose every key is masked: P = 0)
//   O = P·v
//   dv = Pᵀ·g      dP = g·vᵀ      dZ = P ⊙ (dP − rowsum(g ⊙ O))      dq = dZ·k·scale
//   dk = dZᵀ·q·scale
//
// (rowsum(g ⊙ O) = ⟨dP, P⟩ row by row, since O = P·v.) The forward keeps only each row's maximum
// and Σ exp(z − max) (2·L doubles per head; a float32 log-sum-exp of scores ~1e4 would be 1e-3
// off) and the output; the backward remakes P, exactly as the forward had it, one head at a time
// from q, k and those, so at most one L×S block per head in flight is ever held. Heads split over
// threads above a work threshold, each head computed whole by one thread: results do not depend on
// the thread count.
//
// Under create_graph the rule is the same formula written with tapegrad's differentiable ops, P
// recomputed by the composition (attention_weights), so every order of derivative works. The
// composition also runs the forward itself where the fused kernel does not apply: dropout_p > 0
// (the drop mask drawn from the generator, one uniform per element of [..., L, S], row-major) and
// a float mask that requires grad (its gradient is dZ, summed over the broadcast dims).
//
// Measured (float32, B = 12, H = 4, T = 64, D = 32, forward + backward through tg::grad, one
// thread, best of runs on a shared 2-core machine at load ~4.3, so ±30 %): fused 4.1 ms (forward
// alone 1.5 ms), the plain composition matmul·softmax·matmul 4.9–6.0 ms, this file's composition
// (safe rows, a float mask with its gradient) 7.2 ms. At this size the GEMMs dominate.
#include "ops/attention.h"

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/language.h"
#include "ops/registrations.h"
#include "tools/op_registry.h"

namespace tg {
namespace {

constexpr const char* kName = "scaled_dot_product_attention";

// Work (multiply-adds) from which the heads split over threads: matmul's and conv's threshold.
constexpr std::int64_t kParallelMultiplyAdds = 1 << 21;

enum class MaskKind : std::uint8_t { none, causal, boolean, additive };

struct AttentionAttrs {
  double scale;
  MaskKind mask;
};

// q [..., L, E], k [..., S, E], v [..., S, Ev]; `heads` is the product of the leading dims.
struct Dims {
  std::int64_t heads, l, s, e, ev;
};

Dims dims_of(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int r = q.rank();
  std::int64_t heads = 1;  // a product of a valid shape's dims: no overflow
  for (int a = 0; a < r - 2; ++a) heads *= q.shape()[a];
  return {heads, q.shape()[r - 2], k.shape()[r - 2], q.shape()[r - 1], v.shape()[r - 1]};
}

// Where a head's block of the mask broadcast to [..., L, S] starts, and its steps along rows and
// columns (0 along the mask's size-1 and missing dims).
struct MaskLayout {
  int lead = 0;
  std::array<std::int64_t, Shape::kMaxRank> dims{};
  std::array<std::int64_t, Shape::kMaxRank> strides{};
  std::int64_t row = 0;
  std::int64_t col = 0;

  MaskLayout(const Shape& q, const Shape& mask) : lead(q.rank() - 2) {
    const int r = q.rank(), offset = r - mask.rank();
    std::int64_t stride = 1;
    for (int a = r - 1; a >= 0; --a) {
      const std::int64_t size = a >= offset ? mask[a - offset] : 1;
      const std::int64_t step = size == 1 ? 0 : stride;
      if (a == r - 1) {
        col = step;
      } else if (a == r - 2) {
        row = step;
      } else {
        dims[a] = q[a];
        strides[a] = step;
      }
      stride *= size;
    }
  }
  std::int64_t head_offset(std::int64_t head) const {
    std::int64_t offset = 0;
    for (int a = lead - 1; a >= 0; --a) {
      offset += (head % dims[a]) * strides[a];
      head /= dims[a];
    }
    return offset;
  }
};

template <class T>
using MatrixMap = Eigen::Map<detail::RowMatrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const detail::RowMatrix<T>>;

// The inputs of one call as the kernels read them.
template <class T>
struct Heads {
  Dims d;
  AttentionAttrs a;
  const T* q;
  const T* k;
  const T* v;
  const void* mask;  // bool or T, laid out by `layout`
  MaskLayout layout;

  Heads(const Tensor& tq, const Tensor& tk, const Tensor& tv, const Tensor* tmask,
        const AttentionAttrs& attrs)
      : d(dims_of(tq, tk, tv)),
        a(attrs),
        q(tq.data<T>()),
        k(tk.data<T>()),
        v(tv.data<T>()),
        mask(tmask ? tmask->raw_data() : nullptr),
        layout(tq.shape(), tmask ? tmask->shape() : Shape{}) {}

  ConstMatrixMap<T> q_of(std::int64_t h) const { return {q + h * d.l * d.e, d.l, d.e}; }
  ConstMatrixMap<T> k_of(std::int64_t h) const { return {k + h * d.s * d.e, d.s, d.e}; }
  ConstMatrixMap<T> v_of(std::int64_t h) const { return {v + h * d.s * d.ev, d.s, d.ev}; }

  // Z = q·kᵀ·scale + M for head h, into z [L, S].
  void scores(std::int64_t h, MatrixMap<T>& z) const {
    constexpr T minus_inf = -std::numeric_limits<T>::infinity();
    z.noalias() = q_of(h) * k_of(h).transpose();
    z *= T(a.scale);
    const std::int64_t base = mask ? layout.head_offset(h) : 0;
    for (std::int64_t i = 0; i < d.l; ++i) {
      T* row = z.data() + i * d.s;
      if (a.mask == MaskKind::causal) {
        for (std::int64_t j = i + 1; j < d.s; ++j) row[j] = minus_inf;
      } else if (a.mask == MaskKind::boolean) {
        const bool* m = static_cast<const bool*>(mask) + base + i * layout.row;
        for (std::int64_t j = 0; j < d.s; ++j) {
          if (!m[j * layout.col]) row[j] = minus_inf;
        }
      } else if (a.mask == MaskKind::additive) {
        const T* m = static_cast<const T*>(mask) + base + i * layout.row;
        for (std::int64_t j = 0; j < d.s; ++j) row[j] += m[j * layout.col];
      }
    }
  }

  std::int64_t work() const { return d.heads * d.l * d.s * (d.e + d.ev); }
};

// This thread's scratch of at least n values (kept between calls: no allocation per head).
// Aligned as Eigen aligns its own: where a row starts decides which of its values Eigen's
// vectorised exp computes in packets and which one by one, and so the last bit of P, which must
// not depend on the thread that ran the head.
template <class T>
T* scratch(std::int64_t n, int which) {
  thread_local std::array<std::vector<T, Eigen::aligned_allocator<T>>, 2> buffers;
  std::vector<T, Eigen::aligned_allocator<T>>& b = buffers[std::size_t(which)];
  if (std::int64_t(b.size()) < n) b.resize(std::size_t(n));
  return b.data();
}

// The size of one L×S block, checked as a shape (an error naming the op when it cannot exist).
std::int64_t block_size(const Dims& d) {
  return Shape(std::array{d.l, d.s}, kName).numel();
}

const Tensor* mask_input(const ForwardContext& ctx) {
  return ctx.num_inputs() > 3 ? &ctx.input(3) : nullptr;
}

Tensor attention_forward(ForwardContext& ctx, const AttentionAttrs& a) {
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const Tensor* mask = mask_input(ctx);
  const Shape out_shape = q.shape().with_dim(q.rank() - 1, v.shape()[v.rank() - 1], kName);
  return dispatch_floating(q.dtype(), kName, [&]<class T>() {
    const Heads<T> heads(q, k, v, mask, a);
    const Dims& d = heads.d;
    Tensor out = zeros(out_shape, q.dtype());
    // Per query: the row maximum and Σ exp(z − max), what P is remade from in backward.
    Tensor stats = empty(Shape{out_shape.numel() == 0 ? 0 : d.heads * d.l, 2}, f64);
    if (out_shape.numel() == 0) {  // nothing to compute (and the heads may number 2^40)
      ctx.save(stats, Residual::constant);
      return out;
    }
    const std::int64_t block = block_size(d);
    T* po = out.data<T>();
    double* pstats = stats.data<double>();
    detail::parallel_for(
        d.heads, heads.work(),
        [&](std::int64_t h) {
          MatrixMap<T> z(scratch<T>(block, 0), d.l, d.s);
          heads.scores(h, z);
          for (std::int64_t i = 0; i < d.l; ++i) {
            auto row = z.row(i).array();
            const T m = d.s == 0 ? -std::numeric_limits<T>::infinity()
                                 : row.template maxCoeff<Eigen::PropagateNaN>();
            double* row_stats = pstats + 2 * (h * d.l + i);
            row_stats[0] = double(m);
            if (m == -std::numeric_limits<T>::infinity()) {  // every key masked: P = 0
              row.setZero();
              row_stats[1] = 0;
              continue;
            }
            row = (row - m).exp();
            row_stats[1] = row.template cast<double>().sum();
            row /= T(row_stats[1]);
          }
          MatrixMap<T>(po + h * d.l * d.ev, d.l, d.ev).noalias() = z * heads.v_of(h);
        },
        kParallelMultiplyAdds);
    ctx.save(stats, Residual::constant);
    return out;
  });
}

void fused_backward(BackwardContext& ctx, const AttentionAttrs& a) {
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const Tensor* mask = ctx.num_inputs() > 3 ? &ctx.input(3) : nullptr;
  const bool want_q = ctx.needs_grad(0), want_k = ctx.needs_grad(1), want_v = ctx.needs_grad(2);
  dispatch_floating(q.dtype(), kName, [&]<class T>() {
    const Heads<T> heads(q, k, v, mask, a);
    const Dims& d = heads.d;
    Tensor dq = want_q ? zeros(q.shape(), q.dtype()) : Tensor();
    Tensor dk = want_k ? zeros(k.shape(), k.dtype()) : Tensor();
    Tensor dv = want_v ? zeros(v.shape(), v.dtype()) : Tensor();
    if (ctx.output().numel() > 0) {
      const std::int64_t block = block_size(d);
      const T* pg = ctx.grad_output().data<T>();
      const T* po = ctx.output().data<T>();
      const double* pstats = ctx.saved(0).data<double>();
      T* pdq = want_q ? dq.data<T>() : nullptr;
      T* pdk = want_k ? dk.data<T>() : nullptr;
      T* pdv = want_v ? dv.data<T>() : nullptr;
      const T scale = T(a.scale);
      detail::parallel_for(
          d.heads, 2 * heads.work(),
          [&](std::int64_t h) {
            MatrixMap<T> p(scratch<T>(block, 0), d.l, d.s);
            heads.scores(h, p);
            for (std::int64_t i = 0; i < d.l; ++i) {  // P as the forward made it
              const double* row_stats = pstats + 2 * (h * d.l + i);
              auto row = p.row(i).array();
              if (row_stats[0] == -std::numeric_limits<double>::infinity()) {
                row.setZero();
              } else {
                row = (row - T(row_stats[0])).exp() / T(row_stats[1]);
              }
            }
            const ConstMatrixMap<T> g(pg + h * d.l * d.ev, d.l, d.ev);
            if (pdv) MatrixMap<T>(pdv + h * d.s * d.ev, d.s, d.ev).noalias() = p.transpose() * g;
            if (!pdq && !pdk) return;
            MatrixMap<T> dz(scratch<T>(block, 1), d.l, d.s);
            dz.noalias() = g * heads.v_of(h).transpose();
            const ConstMatrixMap<T> o(po + h * d.l * d.ev, d.l, d.ev);
            const auto row_dot = (g.array() * o.array()).rowwise().sum().eval();
            dz = (p.array() * (dz.array().colwise() - row_dot)).matrix() * scale;
            if (pdq) {
              MatrixMap<T>(pdq + h * d.l * d.e, d.l, d.e).noalias() = dz * heads.k_of(h);
            }
            if (pdk) {
              MatrixMap<T>(pdk + h * d.s * d.e, d.s, d.e).noalias() =
                  dz.transpose() * heads.q_of(h);
            }
          },
          kParallelMultiplyAdds);
    }
    if (want_q) ctx.set_grad(0, dq);
    if (want_k) ctx.set_grad(1, dk);
    if (want_v) ctx.set_grad(2, dv);
    return 0;
  });
}

// P: the masked softmax of the scaled scores, 0 in a row whose every key is masked (PyTorch ≥
// 2.5's _safe_softmax: such a row is softmaxed as zeros, then zeroed by a constant 0/1 factor, so
// that neither the value nor the gradient sees the NaN of a softmax over −inf alone). With
// dropout_p > 0, the generator's drop mask joins that constant factor (one recorded product).
Tensor attention_weights(const Tensor& q, const Tensor& k, const Tensor& mask, bool is_causal,
                         double scale, SourceLocation location, double dropout_p = 0,
                         Generator* generator = nullptr) {
  const double minus_inf = -std::numeric_limits<double>::infinity();
  Tensor scores = matmul(q, transpose(k, -2, -1, location), location) * scale;
  const std::int64_t l = q.shape()[q.rank() - 2], s = k.shape()[k.rank() - 2];
  if (s == 0) return scores;  // no key: P·v is 0
  if (is_causal) scores = where(tril(ones({l, s}, f32) > 0.0, 0, location), scores, minus_inf);
  if (mask.defined()) {
    scores = mask.dtype() == b8 ? where(mask, scores, minus_inf, location) : scores + mask;
  }
  const Tensor dead = eq(max(scores.detach(), -1, true, location), minus_inf, location);
  Tensor factor = cast(logical_not(dead, location), scores.dtype(), location);
  if (dropout_p > 0) {
    const double keep =
        q.dtype() == f32 ? double(1.0f / float(1.0 - dropout_p)) : 1.0 / (1.0 - dropout_p);
    std::vector<double> draws(std::size_t(scores.numel()));
    for (double& d : draws) d = generator->uniform() < dropout_p ? 0.0 : keep;
    factor = factor * from_vector(draws, scores.shape(), scores.dtype());
  }
  return softmax(where(dead, 0.0, scores, location), -1, location) * factor;
}

// The rule with differentiable ops, P recomputed by the composition (for create_graph).
void composed_backward(BackwardContext& ctx, const AttentionAttrs& a) {
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const Tensor mask = ctx.num_inputs() > 3 ? ctx.input(3) : Tensor();
  const Tensor& g = ctx.grad_output();
  const SourceLocation& location = ctx.location();
  const Tensor p = attention_weights(q, k, mask, a.mask == MaskKind::causal, a.scale, location);
  if (ctx.needs_grad(2)) ctx.set_grad(2, matmul(transpose(p, -2, -1), g));
  if (!ctx.needs_grad(0) && !ctx.needs_grad(1)) return;
  const Tensor dp = matmul(g, transpose(v, -2, -1));
  const Tensor dz = p * (dp - sum(dp * p, -1, true)) * a.scale;
  if (ctx.needs_grad(0)) ctx.set_grad(0, matmul(dz, k));
  if (ctx.needs_grad(1)) ctx.set_grad(1, matmul(transpose(dz, -2, -1), q));
}

void attention_backward(BackwardContext& ctx, const AttentionAttrs& a) {
  if (!ctx.create_graph()) return fused_backward(ctx, a);
  composed_backward(ctx, a);
}

const Op<AttentionAttrs> kAttention{
    kName, "dv = Pᵀ·g, dZ = P ⊙ (g·vᵀ − rowsum(g ⊙ O)), dq = dZ·k·scale, dk = dZᵀ·q·scale",
    attention_forward, attention_backward};

// softmax(Z)·v with dropout on P, all by the composition (see the file's comment).
// 1/√E by default; with E = 0 every score is an empty sum, 0, which an infinite scale would
// turn into NaN.
double scale_of(const Tensor& q, const AttentionOptions& options) {
  const std::int64_t e = q.shape()[q.rank() - 1];
  return options.scale.value_or(e > 0 ? 1.0 / std::sqrt(double(e)) : 1.0);
}

Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const AttentionOptions& options, double scale, SourceLocation location) {
  const Tensor p = attention_weights(q, k, options.attn_mask, options.is_causal, scale, location,
                                     options.dropout_p, options.generator);
  return matmul(p, v, location);
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v,
                  const AttentionOptions& options, const SourceLocation& location) {
  using detail::fail_at;
  if (!q.defined() || !k.defined() || !v.defined()) {
    fail_at(kName, location, "q, k and v must be defined tensors");
  }
  const auto shapes = [&] {
    return fmt::format("q {} {}, k {} {}, v {} {}", q.shape().str(), dtype_name(q.dtype()),
                       k.shape().str(), dtype_name(k.dtype()), v.shape().str(),
                       dtype_name(v.dtype()));
  };
  if (!is_floating(q.dtype()) || q.dtype() != k.dtype() || q.dtype() != v.dtype()) {
    fail_at(kName, location, "expected q, k and v of one floating dtype, got {}", shapes());
  }
  const int r = q.rank();
  if (r < 2 || k.rank() != r || v.rank() != r) {
    fail_at(kName, location,
            "expected q [..., L, E], k [..., S, E], v [..., S, Ev] of one rank >= 2, got {}",
            shapes());
  }
  for (int a = 0; a < r - 2; ++a) {
    if (k.shape()[a] != q.shape()[a] || v.shape()[a] != q.shape()[a]) {
      fail_at(kName, location, "expected equal leading dims (they do not broadcast), got {}",
              shapes());
    }
  }
  if (k.shape()[r - 1] != q.shape()[r - 1]) {
    fail_at(kName, location, "expected k's last dim E = q's {}, got {}", q.shape()[r - 1],
            shapes());
  }
  if (v.shape()[r - 2] != k.shape()[r - 2]) {
    fail_at(kName, location, "expected v's dim -2 S = k's {}, got {}", k.shape()[r - 2], shapes());
  }
  if (!(options.dropout_p >= 0 && options.dropout_p < 1)) {
    fail_at(kName, location, "expected dropout_p in [0, 1), got {}", options.dropout_p);
  }
  if (options.dropout_p > 0 && options.generator == nullptr) {
    fail_at(kName, location, "dropout_p {} needs options.generator", options.dropout_p);
  }
  const Tensor& mask = options.attn_mask;
  if (!mask.defined()) return;
  if (options.is_causal) {
    fail_at(kName, location, "is_causal and attn_mask cannot both be given (mask {})",
            mask.shape().str());
  }
  if (mask.dtype() != b8 && mask.dtype() != q.dtype()) {
    fail_at(kName, location, "expected a bool attn_mask or a float one of q's dtype {}, got {} {}",
            dtype_name(q.dtype()), mask.shape().str(), dtype_name(mask.dtype()));
  }
  const std::int64_t l = q.shape()[r - 2], s = k.shape()[r - 2];
  bool fits = mask.rank() <= r;
  for (int a = 0; fits && a < mask.rank(); ++a) {
    const int axis = r - mask.rank() + a;
    const std::int64_t want = axis == r - 1 ? s : axis == r - 2 ? l : q.shape()[axis];
    fits = mask.shape()[a] == 1 || mask.shape()[a] == want;
  }
  if (!fits) {
    fail_at(kName, location, "attn_mask {} does not broadcast to [..., L, S] = {} for {}",
            mask.shape().str(), q.shape().with_dim(r - 1, s, kName).str(), shapes());
  }
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options, SourceLocation location) {
  check_inputs(q, k, v, options, location);
  const Tensor& mask = options.attn_mask;
  const double scale = scale_of(q, options);
  if (options.dropout_p > 0 || (mask.defined() && mask.requires_grad())) {
    return detail::composite(kName, location,
                             [&] { return composed_attention(q, k, v, options, scale, location); });
  }
  const MaskKind kind = options.is_causal    ? MaskKind::causal
                        : !mask.defined()    ? MaskKind::none
                        : mask.dtype() == b8 ? MaskKind::boolean
                                             : MaskKind::additive;
  const AttentionAttrs attrs{scale, kind};
  return mask.defined() ? kAttention(attrs, location, q, k, v, mask)
                        : kAttention(attrs, location, q, k, v);
}

Tensor scaled_dot_product_attention_weights(const Tensor& q, const Tensor& k,
                                            const AttentionOptions& options,
                                            SourceLocation location) {
  check_inputs(q, k, k, options, location);  // k in v's place: the weights need no v
  return detail::composite(kName, location, [&] {
    return attention_weights(q, k, options.attn_mask, options.is_causal, scale_of(q, options),
                             location, options.dropout_p, options.generator);
  });
}

namespace detail {
namespace {

// A registered variant: its mask (1 = keep for a bool mask), is_causal, scale and dropout.
struct Variant {
  MaskKind kind = MaskKind::none;
  std::vector<std::int64_t> mask_shape;
  std::vector<double> mask_values;
  std::optional<double> scale;
  double dropout_p = 0;
};

Tensor variant_mask(const Variant& var, DType dtype) {
  if (var.kind != MaskKind::boolean && var.kind != MaskKind::additive) return {};
  return from_vector(var.mask_values, Shape(var.mask_shape),
                     var.kind == MaskKind::boolean ? b8
                     : is_floating(dtype)          ? dtype
                                                   : f64);
}

Tensor call_variant(const Variant& var, const std::vector<Tensor>& in) {
  Generator generator(7);  // made afresh: every call drops the same weights
  const AttentionOptions options{.attn_mask = variant_mask(var, in[0].dtype()),
                                 .dropout_p = var.dropout_p,
                                 .is_causal = var.kind == MaskKind::causal,
                                 .scale = var.scale,
                                 .generator = &generator};
  return scaled_dot_product_attention(in[0], in[1], in[2], options);
}

// d output / d (q, k, v) by plain loops over the maths, independent of both rules: per query i,
// z_j = scale·Σ_e q_ie·k_je masked, p = softmax(z) (0 if every key is masked), o_c = Σ_j p_j·v_jc;
// ∂o_c/∂v_jc = p_j, ∂o_c/∂z_j = p_j·(v_jc − o_c), ∂z_j/∂q_ie = scale·k_je, ∂z_j/∂k_je = scale·q_ie.
std::vector<Tensor> attention_jacobian(const Variant& var, const std::vector<Tensor>& in) {
  const Shape& qs = in[0].shape();
  const int r = qs.rank();
  const std::vector<double> q = in[0].to_vector(), k = in[1].to_vector(), v = in[2].to_vector();
  const std::int64_t l = qs[r - 2], e = qs[r - 1], s = in[1].shape()[r - 2];
  const std::int64_t ev = in[2].shape()[r - 1];
  std::int64_t heads = 1;
  for (int a = 0; a < r - 2; ++a) heads *= qs[a];
  const double scale = var.scale.value_or(1.0 / std::sqrt(double(e)));
  const std::int64_t n_out = heads * l * ev;
  std::vector<double> jq(std::size_t(n_out * heads * l * e)),
      jk(std::size_t(n_out * heads * s * e));
  std::vector<double> jv(std::size_t(n_out * heads * s * ev));
  // The mask's value at [head's leading index..., i, j], its dims aligned to the right.
  const auto mask_at = [&](std::int64_t h, std::int64_t i, std::int64_t j) {
    std::vector<std::int64_t> index(static_cast<std::size_t>(r));
    index[std::size_t(r - 2)] = i;
    index[std::size_t(r - 1)] = j;
    for (int a = r - 3; a >= 0; --a) {
      index[std::size_t(a)] = h % qs[a];
      h /= qs[a];
    }
    const int mr = int(var.mask_shape.size());
    std::int64_t offset = 0;
    for (int m = 0; m < mr; ++m) {
      const std::int64_t dim = var.mask_shape[std::size_t(m)];
      offset = offset * dim + (dim == 1 ? 0 : index[std::size_t(r - mr + m)]);
    }
    return var.mask_values[std::size_t(offset)];
  };
  for (std::int64_t h = 0; h < heads; ++h) {
    for (std::int64_t i = 0; i < l; ++i) {
      std::vector<double> z(static_cast<std::size_t>(s)), p(static_cast<std::size_t>(s));
      double top = -INFINITY;
      for (std::int64_t j = 0; j < s; ++j) {
        double dot = 0;
        for (std::int64_t c = 0; c < e; ++c) dot += q[(h * l + i) * e + c] * k[(h * s + j) * e + c];
        z[j] = dot * scale;
        if (var.kind == MaskKind::causal && j > i) z[j] = -INFINITY;
        if (var.kind == MaskKind::boolean && mask_at(h, i, j) == 0) z[j] = -INFINITY;
        if (var.kind == MaskKind::additive) z[j] += mask_at(h, i, j);
        top = std::max(top, z[j]);
      }
      if (top == -INFINITY) continue;  // every key masked: o = 0 whatever the inputs
      double total = 0;
      for (std::int64_t j = 0; j < s; ++j) total += p[j] = std::exp(z[j] - top);
      for (double& pj : p) pj /= total;
      for (std::int64_t c = 0; c < ev; ++c) {
        const std::int64_t row = (h * l + i) * ev + c;
        double o = 0;
        for (std::int64_t j = 0; j < s; ++j) o += p[j] * v[(h * s + j) * ev + c];
        for (std::int64_t j = 0; j < s; ++j) {
          jv[row * heads * s * ev + (h * s + j) * ev + c] = p[j];
          const double dz = p[j] * (v[(h * s + j) * ev + c] - o) * scale;
          for (std::int64_t d = 0; d < e; ++d) {
            jq[row * heads * l * e + (h * l + i) * e + d] += dz * k[(h * s + j) * e + d];
            jk[row * heads * s * e + (h * s + j) * e + d] += dz * q[(h * l + i) * e + d];
          }
        }
      }
    }
  }
  return {from_vector(jq, {n_out, heads * l * e}, f64),
          from_vector(jk, {n_out, heads * s * e}, f64),
          from_vector(jv, {n_out, heads * s * ev}, f64)};
}

}  // namespace

void register_attention_ops(OpRegistry& registry) {
  // q [..., L, E], k [..., S, E], v [..., S, Ev] with leading dims `lead`.
  const auto qkv = [](std::vector<std::int64_t> lead, std::int64_t l, std::int64_t s,
                      std::int64_t e, std::int64_t ev, std::uint64_t seed) {
    return [=](DType dtype) {
      Generator gen(seed);
      const auto with = [&](std::int64_t rows, std::int64_t cols) {
        std::vector<std::int64_t> dims = lead;
        dims.push_back(rows);
        dims.push_back(cols);
        return Shape(dims);
      };
      std::vector<Tensor> in{sample(with(l, e), dtype, gen), sample(with(s, e), dtype, gen),
                             sample(with(s, ev), dtype, gen)};
      return OpSample{fmt::format("q {}, k {}, v {}", in[0].shape().str(), in[1].shape().str(),
                                  in[2].shape().str()),
                      in};
    };
  };
  const auto add = [&](const std::string& name, const Variant& var,
                       std::vector<std::function<OpSample(DType)>> samples) {
    OpRegistration op;
    op.name = name;
    op.function = [var](const std::vector<Tensor>& in) { return call_variant(var, in); };
    op.samples = [samples](DType dtype) {
      std::vector<OpSample> out;
      for (const auto& s : samples) out.push_back(s(dtype));
      return out;
    };
    if (var.dropout_p == 0) {
      op.reference_jacobian = [var](const auto& in) { return attention_jacobian(var, in); };
    }
    registry.add(std::move(op));
  };
  constexpr double kMinusInf = -std::numeric_limits<double>::infinity();
  add("scaled_dot_product_attention", Variant{},
      {qkv({2}, 3, 5, 4, 3, 501), qkv({2, 2}, 4, 4, 3, 3, 502)});
  add("scaled_dot_product_attention(is_causal)", Variant{MaskKind::causal, {}, {}, {}, 0},
      {qkv({1, 2}, 4, 4, 3, 3, 503), qkv({2}, 3, 5, 2, 2, 504), qkv({2}, 4, 2, 2, 3, 505)});
  // Row 1 keeps no key.
  add("scaled_dot_product_attention(bool mask, a row fully masked)",
      Variant{MaskKind::boolean, {3, 4}, {1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0}, {}, 0},
      {qkv({2, 2}, 3, 4, 3, 2, 506)});
  add("scaled_dot_product_attention(key padding mask [B, 1, 1, S])",
      Variant{MaskKind::boolean, {2, 1, 1, 4}, {1, 1, 1, 0, 1, 1, 0, 0}, {}, 0},
      {qkv({2, 2}, 3, 4, 3, 3, 507)});
  // Batch 1's row 2 is −inf throughout; custom scale.
  add("scaled_dot_product_attention(float mask with -inf, scale 0.7)",
      Variant{MaskKind::additive,
              {2, 3, 4},
              {0.5, kMinusInf, -1.0, 0.0,  0.25,      0.0,       kMinusInf, 2.0,
               0.0, 0.0,       0.0,  -0.5, -0.3,      1.0,       0.0,       kMinusInf,
               0.0, 0.0,       0.0,  0.0,  kMinusInf, kMinusInf, kMinusInf, kMinusInf},
              0.7,
              0},
      {qkv({2}, 3, 4, 2, 3, 508)});
  add("scaled_dot_product_attention(dropout 0.4)", Variant{MaskKind::none, {}, {}, {}, 0.4},
      {qkv({2}, 3, 4, 2, 2, 509)});
}

}  // namespace detail

}  // namespace tg
