// Matrix product, 2-D or batched 3-D, with the transposes folded into the Eigen product so the
// backward pass never materialises a transposed copy. matmul's other cases, as torch.matmul,
// are views around it: a 1-D operand is a [1, k] row or [k, 1] column whose 1 is dropped after,
// and N-d batch dims broadcast, flattened to one batch of products (an operand whose batch dims
// are all 1 stays one matrix; only one whose batch dims broadcast is copied, by broadcast_to, whose
// rule sums the gradient back over them).
//
//   y = op(a)·op(b), op = identity or transpose of the last two axes
//   da = g·op(b)ᵀ   (a not transposed)     da = op(b)·gᵀ   (a transposed)
//   db = op(a)ᵀ·g   (b not transposed)     db = gᵀ·op(a)   (b transposed)
// A 2-D operand broadcasts over the batch; the engine sums its gradient over the batch.
//
//   linear  y = x·Wᵀ + b (W is [out, in], as PyTorch's)   dx = g·W, dW = gᵀ·x, db = Σ_rows g
#include <array>

#include "autograd/tape.h"
#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/ops.h"
#include "ops/registrations.h"

namespace tg {
namespace {

struct MatmulAttrs {
  bool transpose_a;
  bool transpose_b;
};

struct MatrixDims {
  std::int64_t batch;
  std::int64_t rows;  // after the optional transpose
  std::int64_t cols;
};

MatrixDims matrix_dims(const Tensor& t, bool transposed, const char* side) {
  if (t.rank() != 2 && t.rank() != 3) {
    fail("matmul: {} must be 2-D or 3-D (batched), got shape {}", side, t.shape().str());
  }
  const std::int64_t batch = t.rank() == 3 ? t.shape()[0] : 1;
  const std::int64_t r = t.shape()[t.rank() - 2];
  const std::int64_t c = t.shape()[t.rank() - 1];
  return transposed ? MatrixDims{batch, c, r} : MatrixDims{batch, r, c};
}

Shape matmul_shape(const Tensor& a, const Tensor& b, const MatmulAttrs& attrs) {
  detail::check_same_floating(a, b, "matmul");
  const MatrixDims da = matrix_dims(a, attrs.transpose_a, "the first operand");
  const MatrixDims db = matrix_dims(b, attrs.transpose_b, "the second operand");
  if (da.cols != db.rows) {
    fail("matmul: inner dimensions differ: {}{} times {}{} ({} vs {})", a.shape().str(),
         attrs.transpose_a ? "ᵀ" : "", b.shape().str(), attrs.transpose_b ? "ᵀ" : "", da.cols,
         db.rows);
  }
  const bool batched = a.rank() == 3 || b.rank() == 3;
  if (a.rank() == 3 && b.rank() == 3 && da.batch != db.batch) {
    fail("matmul: batch sizes differ: {} and {}", a.shape().str(), b.shape().str());
  }
  // A 2-D operand takes the other's batch, which may be empty.
  const std::array<std::int64_t, 3> dims{a.rank() == 3 ? da.batch : db.batch, da.rows, db.cols};
  return Shape(std::span(dims).subspan(batched ? 0 : 1), "matmul");
}

// Products of at least this many multiply-adds split their output over the threads; below it
// two threads were slower than one (Threshold_gemm in benchmarks/bench.cpp: waking a thread and
// packing the right operand once per block cost more than half the product).
constexpr std::int64_t kParallelMultiplyAdds = 1 << 21;
// Output blocks are multiples of this along the split side: a multiple of the row and column
// panels of Eigen's kernels (3 packets, up to 48 floats with AVX-512), so that every row and
// column is computed by the same micro-kernel however the output is split, and the result does
// not depend on the number of threads.
constexpr std::int64_t kBlockAlign = 48;

// Calls block(split_rows, begin, size) over blocks of a rows × cols product's longer side that
// together cover it: one block, or for a large product, aligned blocks on the pool.
template <class Block>
void split_output(std::int64_t rows, std::int64_t cols, std::int64_t depth, Block block) {
  const bool split_rows = rows >= cols;
  const std::int64_t side = split_rows ? rows : cols;
  // No overflow: both operands (rows·depth and depth·cols values) are in memory.
  const std::int64_t work = rows * cols * depth;
  if (work < kParallelMultiplyAdds || num_threads() == 1) {
    block(split_rows, 0, side);
    return;
  }
  const std::int64_t wanted = 4 * std::int64_t(num_threads());
  const std::int64_t size =
      ((side + wanted - 1) / wanted + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
  detail::parallel_for((side + size - 1) / size, work,
                       [&](std::int64_t i) {
                         block(split_rows, i * size, std::min(side, (i + 1) * size) - i * size);
                       },
                       kParallelMultiplyAdds);
}

// out = lhs·rhs restricted to `size` rows (or columns) from `begin`.
template <class Out, class Lhs, class Rhs>
void multiply_block(Out& out, const Lhs& lhs, const Rhs& rhs, bool split_rows, std::int64_t begin,
                    std::int64_t size) {
  if (split_rows) {
    out.middleRows(begin, size).noalias() = lhs.middleRows(begin, size) * rhs;
  } else {
    out.middleCols(begin, size).noalias() = lhs * rhs.middleCols(begin, size);
  }
}

Tensor matmul_forward(ForwardContext& ctx, const MatmulAttrs& attrs) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const Shape out_shape = matmul_shape(a, b, attrs);
  return dispatch_floating(a.dtype(), "matmul", [&]<class T>() {
    using Matrix = Eigen::Map<const detail::RowMatrix<T>>;
    Tensor out = empty(out_shape, a.dtype());
    // An empty batch of products may still count up to 2^63 products of nothing.
    if (out.numel() == 0) return out;
    const std::int64_t ar = a.shape()[a.rank() - 2], ac = a.shape()[a.rank() - 1];
    const std::int64_t br = b.shape()[b.rank() - 2], bc = b.shape()[b.rank() - 1];
    const std::int64_t m = out_shape[out_shape.rank() - 2], n = out_shape[out_shape.rank() - 1];
    const std::int64_t depth = attrs.transpose_a ? ar : ac;
    const std::int64_t batch = out_shape.rank() == 3 ? out_shape[0] : 1;
    // Pointers taken once, here: the writing data<T>() bumps the version counter, which the
    // pool's threads must not all do at once (a data race TSan reports).
    const T* pa = std::as_const(a).template data<T>();
    const T* pb = std::as_const(b).template data<T>();
    T* po = out.template data<T>();
    const auto product = [&](std::int64_t i, bool split_rows, std::int64_t begin,
                             std::int64_t size) {
      const Matrix ma(pa + (a.rank() == 3 ? i * ar * ac : 0), ar, ac);
      const Matrix mb(pb + (b.rank() == 3 ? i * br * bc : 0), br, bc);
      Eigen::Map<detail::RowMatrix<T>> mo(po + i * m * n, m, n);
      if (attrs.transpose_a && attrs.transpose_b) {
        multiply_block(mo, ma.transpose(), mb.transpose(), split_rows, begin, size);
      } else if (attrs.transpose_a) {
        multiply_block(mo, ma.transpose(), mb, split_rows, begin, size);
      } else if (attrs.transpose_b) {
        multiply_block(mo, ma, mb.transpose(), split_rows, begin, size);
      } else {
        multiply_block(mo, ma, mb, split_rows, begin, size);
      }
    };
    if (batch == 1) {
      split_output(m, n, depth, [&](bool split_rows, std::int64_t begin, std::int64_t size) {
        product(0, split_rows, begin, size);
      });
      return out;
    }
    // A batch splits by product, each computed whole by one thread.
    detail::parallel_for(
        batch, batch * m * n * depth, [&](std::int64_t i) { product(i, true, 0, m); },
        kParallelMultiplyAdds);
    return out;
  });
}

void matmul_backward(BackwardContext& ctx, const MatmulAttrs& attrs);
const Op<MatmulAttrs> kMatmul{"matmul", "da = g·bᵀ, db = aᵀ·g", matmul_forward, matmul_backward};
const Op<MatmulAttrs> kBmm{"bmm", "da = g·bᵀ, db = aᵀ·g", matmul_forward, matmul_backward};

// The batch dims of a matrix operand (all but its last two).
Shape matrix_batch(const Tensor& t) {
  return Shape(t.shape().dims().first(std::size_t(t.rank() - 2)), "matmul");
}

// The batch dims two operands broadcast to, without the error broadcast_shapes raises (the
// caller names both operands' shapes instead).
Shape broadcast_batch(const Shape& a, const Shape& b) {
  std::vector<std::int64_t> dims(std::size_t(std::max(a.rank(), b.rank())), 1);
  for (int i = 1; i <= int(dims.size()); ++i) {
    const std::int64_t da = i <= a.rank() ? a[a.rank() - i] : 1;
    const std::int64_t db = i <= b.rank() ? b[b.rank() - i] : 1;
    dims[dims.size() - std::size_t(i)] = da == 1 ? db : da;
  }
  return Shape(dims);
}

// An N-d operand as the kernel takes it: one matrix (2-D) when its batch dims are all 1, so the
// kernel broadcasts it without a copy; else [products, rows, cols], copied only when its batch
// dims broadcast.
Tensor as_batch(const Tensor& t, const Shape& batch, SourceLocation location) {
  const std::int64_t r = t.shape()[t.rank() - 2], c = t.shape()[t.rank() - 1];
  const Shape own = matrix_batch(t);
  if (own.numel() == 1) return reshape(t, {r, c}, location);
  if (own == batch) return reshape(t, {batch.numel(), r, c}, location);
  std::vector<std::int64_t> dims(batch.begin(), batch.end());
  dims.insert(dims.end(), {r, c});
  return reshape(broadcast_to(t, Shape(dims), location), {batch.numel(), r, c}, location);
}

Tensor product(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  matmul_shape(a, b, {transpose_a, transpose_b});
  return kMatmul({transpose_a, transpose_b}, SourceLocation::current(), a, b);
}

void matmul_backward(BackwardContext& ctx, const MatmulAttrs& attrs) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const Tensor& g = ctx.grad_output();
  if (ctx.needs_grad(0)) {
    ctx.set_grad(0, attrs.transpose_a ? product(b, g, attrs.transpose_b, true)
                                      : product(g, b, false, !attrs.transpose_b));
  }
  if (ctx.needs_grad(1)) {
    ctx.set_grad(1, attrs.transpose_b ? product(g, a, true, attrs.transpose_a)
                                      : product(a, g, !attrs.transpose_a, false));
  }
}

// The number of rows of x viewed as a matrix of its last dimension: counted from the leading
// dims, since numel / last is wrong when either is 0.
std::int64_t row_count(const Tensor& t) {
  return t.shape().without_axis(t.rank() - 1).numel();
}

Tensor as_rows(const Tensor& t) {
  return t.rank() == 2 ? t : reshape(t, {row_count(t), t.shape()[t.rank() - 1]});
}

Tensor linear_forward(ForwardContext& ctx, const NoAttrs&) {
  const Tensor& x = ctx.input(0);
  const Tensor& weight = ctx.input(1);
  const std::int64_t rows = row_count(x);
  const std::int64_t in = weight.shape()[1], out = weight.shape()[0];
  return dispatch_floating(x.dtype(), "linear", [&]<class T>() {
    Tensor y = empty(x.shape().with_dim(x.rank() - 1, out, "linear"), x.dtype());
    // Eigen walks the rows of an empty [rows, 0] result one by one, up to 2^63 of them.
    if (y.numel() == 0) return y;
    // With in = 0 the product is of nothing: Eigen writes zeros, so y is the bias repeated.
    Eigen::Map<detail::RowMatrix<T>> my(y.data<T>(), rows, out);
    const Eigen::Map<const detail::RowMatrix<T>> mx(x.data<T>(), rows, in);
    const Eigen::Map<const detail::RowMatrix<T>> mw(weight.data<T>(), out, in);
    split_output(rows, out, in, [&](bool split_rows, std::int64_t begin, std::int64_t size) {
      multiply_block(my, mx, mw.transpose(), split_rows, begin, size);
    });
    if (ctx.num_inputs() == 3) {
      my.rowwise() += Eigen::Map<const detail::RowVector<T>>(ctx.input(2).data<T>(), out);
    }
    return y;
  });
}
void linear_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& x = ctx.input(0);
  const Tensor& weight = ctx.input(1);
  const Tensor g = as_rows(ctx.grad_output());
  if (ctx.needs_grad(0)) ctx.set_grad(0, reshape(product(g, weight, false, false), x.shape()));
  if (ctx.needs_grad(1)) ctx.set_grad(1, product(g, as_rows(x), true, false));
  if (ctx.num_inputs() == 3 && ctx.needs_grad(2)) ctx.set_grad(2, g);
}
const Op<> kLinear{"linear", "dx = g·W, dW = gᵀ·x, db = Σ_rows g", linear_forward, linear_backward};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, SourceLocation location) {
  if (weight.rank() != 2 || x.rank() < 1 || x.shape()[x.rank() - 1] != weight.shape()[1]) {
    detail::fail_at("linear", location,
                    "expected x of shape [..., {}] for a weight of shape {} ([out, in]), got {}",
                    weight.rank() == 2 ? weight.shape()[1] : -1, weight.shape().str(),
                    x.shape().str());
  }
  detail::check_same_floating(x, weight, "linear", location);
  if (!bias.defined()) return kLinear({}, location, x, weight);
  detail::check_same_floating(x, bias, "linear", location);
  if (!(bias.shape() == Shape{weight.shape()[0]})) {
    detail::fail_at("linear", location, "expected a bias of shape [{}], got {}", weight.shape()[0],
                    bias.shape().str());
  }
  return kLinear({}, location, x, weight, bias);
}

Tensor matmul(const Tensor& a, const Tensor& b, SourceLocation location) {
  if (a.rank() == 0 || b.rank() == 0) {
    detail::fail_at("matmul", location, "both operands must be at least 1-D, got {} and {}",
                    a.shape().str(), b.shape().str());
  }
  // A 1-D operand is a row on the left and a column on the right; that 1 is removed at the end.
  const Tensor a2 = a.rank() == 1 ? reshape(a, {1, a.shape()[0]}, location) : a;
  const Tensor b2 = b.rank() == 1 ? reshape(b, {b.shape()[0], 1}, location) : b;
  const std::int64_t m = a2.shape()[a2.rank() - 2], k = a2.shape()[a2.rank() - 1];
  const std::int64_t n = b2.shape()[b2.rank() - 1];
  if (b2.shape()[b2.rank() - 2] != k) {
    detail::fail_at("matmul", location,
                    "{} · {}: inner dims differ ({} vs {}): expected the first operand's last dim "
                    "to equal the second's {}",
                    a.shape().str(), b.shape().str(), k, b2.shape()[b2.rank() - 2],
                    b.rank() == 1 ? "length" : "second-to-last dim");
  }
  const Shape batch_a = matrix_batch(a2), batch_b = matrix_batch(b2);
  if (!broadcastable_to(batch_a, broadcast_batch(batch_a, batch_b)) ||
      !broadcastable_to(batch_b, broadcast_batch(batch_a, batch_b))) {
    detail::fail_at("matmul", location,
                    "{} · {}: batch dims {} and {} do not broadcast (expected equal sizes or 1)",
                    a.shape().str(), b.shape().str(), batch_a.str(), batch_b.str());
  }
  detail::composite("matmul", location, [&] { detail::check_same_floating(a, b, "matmul"); });
  const Shape batch = broadcast_batch(batch_a, batch_b);
  Tensor out;
  if (a2.rank() <= 3 && b2.rank() <= 3 && (a2.rank() < 3 || b2.rank() < 3 || batch_a == batch_b)) {
    out = kMatmul({false, false}, location, a2, b2);  // the kernel's own 2-D and 3-D cases
  } else {
    const Tensor flat = kMatmul({false, false}, location, as_batch(a2, batch, location),
                                as_batch(b2, batch, location));
    std::vector<std::int64_t> dims(batch.begin(), batch.end());
    dims.insert(dims.end(), {m, n});
    out = reshape(flat, Shape(dims), location);
  }
  if (a.rank() == 1 || b.rank() == 1) {
    std::vector<std::int64_t> dims(out.shape().begin(), out.shape().end() - 2);
    if (a.rank() != 1) dims.push_back(m);
    if (b.rank() != 1) dims.push_back(n);
    out = reshape(out, Shape(dims), location);
  }
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b, SourceLocation location) {
  if (a.rank() != 3 || b.rank() != 3) {
    detail::fail_at("bmm", location, "expected 3-D operands [b, m, k] and [b, k, n], got {} and {}",
                    a.shape().str(), b.shape().str());
  }
  if (a.shape()[0] != b.shape()[0] || a.shape()[2] != b.shape()[1]) {
    detail::fail_at("bmm", location,
                    "{} · {}: expected the second operand of shape [{}, {}, n] (bmm does not "
                    "broadcast)",
                    a.shape().str(), b.shape().str(), a.shape()[0], a.shape()[2]);
  }
  detail::composite("bmm", location, [&] { detail::check_same_floating(a, b, "bmm"); });
  return kBmm({false, false}, location, a, b);
}

namespace detail {

void register_matmul_ops(OpRegistry& registry) {
  registry.add(
      {"linear",
       [](const auto& in) { return linear(in[0], in[1], in[2]); },
       [](DType dtype) {
         Generator gen(67);
         return std::vector<OpSample>{
             {"[4, 3] with W [2, 3], b [2]",
              {sample({4, 3}, dtype, gen), sample({2, 3}, dtype, gen), sample({2}, dtype, gen)}},
             {"[2, 2, 3] with W [4, 3], b [4]",
              {sample({2, 2, 3}, dtype, gen), sample({4, 3}, dtype, gen),
               sample({4}, dtype, gen)}}};
       },
       {}});
  registry.add({"linear(no bias)",
                [](const auto& in) { return linear(in[0], in[1]); },
                [](DType dtype) {
                  Generator gen(71);
                  return std::vector<OpSample>{
                      {"[3] with W [2, 3]", {sample({3}, dtype, gen), sample({2, 3}, dtype, gen)}}};
                },
                {}});
  registry.add({"bmm",
                [](const auto& in) { return bmm(in[0], in[1]); },
                [](DType dtype) {
                  Generator gen(89);
                  return std::vector<OpSample>{
                      {"[2, 2, 3] · [2, 3, 4]",
                       {sample({2, 2, 3}, dtype, gen), sample({2, 3, 4}, dtype, gen)}},
                      {"[1, 1, 5] · [1, 5, 1]",
                       {sample({1, 1, 5}, dtype, gen), sample({1, 5, 1}, dtype, gen)}}};
                },
                {}});
  registry.add(
      {"matmul", [](const auto& in) { return matmul(in[0], in[1]); },
       [](DType dtype) {
         Generator gen(47);
         const std::vector<std::pair<Shape, Shape>> shapes = {{{2, 3}, {3, 4}},
                                                              {{1, 5}, {5, 1}},
                                                              {{2, 2, 3}, {2, 3, 2}},
                                                              {{2, 2, 3}, {3, 4}},
                                                              {{3, 2}, {2, 2, 3}},
                                                              {{3}, {3}},
                                                              {{2, 3}, {3}},
                                                              {{3}, {3, 2}},
                                                              {{2, 3, 2}, {2}},
                                                              {{1, 2, 3}, {2, 3, 2}},
                                                              {{2, 1, 3, 2}, {3, 2, 4}}};
         std::vector<OpSample> samples;
         for (const auto& [sa, sb] : shapes) {
           samples.push_back(
               {sa.str() + " · " + sb.str(), {sample(sa, dtype, gen), sample(sb, dtype, gen)}});
         }
         return samples;
       },
       // d(AB)/dA = I ⊗ Bᵀ and d(AB)/dB = A ⊗ I in row-major order, for 2-D operands.
       [](const std::vector<Tensor>& in) -> std::vector<Tensor> {
         if (in[0].rank() != 2 || in[1].rank() != 2) return {Tensor(), Tensor()};
         const std::int64_t m = in[0].shape()[0], k = in[0].shape()[1], n = in[1].shape()[1];
         const std::vector<double> a = in[0].to_vector(), b = in[1].to_vector();
         Tensor ja = zeros({m * n, m * k}, f64), jb = zeros({m * n, k * n}, f64);
         for (std::int64_t i = 0; i < m; ++i) {
           for (std::int64_t j = 0; j < n; ++j) {
             for (std::int64_t p = 0; p < k; ++p) {
               ja.data<double>()[(i * n + j) * m * k + i * k + p] = b[std::size_t(p * n + j)];
               jb.data<double>()[(i * n + j) * k * n + p * n + j] = a[std::size_t(i * k + p)];
             }
           }
         }
         return {ja, jb};
       }});
}

}  // namespace detail
}  // namespace tg
