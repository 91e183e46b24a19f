// Convolutions lowered to im2col + GEMM, as PyTorch's slow_conv2d. unfold and fold are ops of
// their own; a convolution is one op whose kernel fuses them with Eigen GEMMs, and whose rule is
// written with its two partial adjoints, themselves ops whose rules use the convolution:
//
//   unfold   cols[n, c·kh·kw + i·kw + j, y·ow + x] = x_pad[n, c, y·sh + i·dh, x·sw + j·dw]
//            dx = fold(g)                                    (im2col; its adjoint is col2im)
//   fold     out[n, c, ·, ·] = Σ over blocks of the columns   dcols = unfold(g)
//   conv2d   y[n] = W·unfold(x)[n] + b   (W as [C_out, C_in/groups·kh·kw], one GEMM per group)
//            dx = conv_transpose2d(g, W) = fold(Wᵀ·g[n]), dW = Σ_n g[n]·unfold(x)[n]ᵀ,
//            db = Σ_{n,y,x} g
//   conv_transpose2d(x, W, b) = fold(Wᵀ·x[n]) + b   (conv2d's adjoint in its input)
//            dx = conv2d(g, W), dW = Σ_n x[n]·unfold(g)[n]ᵀ, db = Σ_{n,y,x} g
//   conv1d   conv2d on a height-1 view.
//
// The kernels copy strips of the output grid from the image rows (fold adds them back), with
// memcpy where the stride is 1, one sample at a time into a buffer per thread, and run one GEMM
// per sample and group; threads split the batch (the weight gradient: its columns) above 2^21
// multiply-adds, and every element is computed the same way whatever the number of threads.
// Padding is never materialised: positions outside the image are zero columns. A padded
// position therefore multiplies its weight by 0, so an infinite or NaN weight gives NaN at every
// output whose window covers padding, as PyTorch 1.13 gives on CPU (tests/reference/conv.json).
#include "ops/conv.h"

#include <climits>
#include <cstring>
#include <string>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"

namespace tg {
namespace {

// 128-bit integers for size arithmetic that must not overflow (GCC and Clang).
__extension__ typedef __int128 Wide;

// Where a kernel's blocks sit in an image: the image's size, the padding before the first row
// and column, the grid of block positions (out_h × out_w) and the kernel's size, dilation and
// stride. Positions outside the image are zeros (unfold) or dropped (fold).
struct Geometry {
  std::int64_t height;
  std::int64_t width;
  std::int64_t pad_h;
  std::int64_t pad_w;
  std::int64_t out_h;
  std::int64_t out_w;
  std::int32_t kh;
  std::int32_t kw;
  std::int32_t dh;
  std::int32_t dw;
  std::int32_t sh;
  std::int32_t sw;

  std::int64_t kernel() const { return std::int64_t(kh) * kw; }
  std::int64_t blocks() const { return out_h * out_w; }
};

std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* op,
                         const SourceLocation& location) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) {
    detail::fail_at(op, location, "the size {}·{} overflows int64", a, b);
  }
  return r;
}

// The number of block positions along one axis: ⌊(extent + padding − d·(k − 1) − 1) / s⌋ + 1, or
// an error when the kernel is larger than the padded input (computed in 128 bits: no overflow).
std::int64_t block_count(const char* op, const SourceLocation& location, const char* axis,
                         std::int64_t extent, std::int64_t pad_total, std::int64_t k,
                         std::int64_t d, std::int64_t s, const std::string& shapes) {
  const Wide padded = Wide(extent) + pad_total;
  const Wide span = Wide(d) * (k - 1) + 1;
  if (padded < span) {
    detail::fail_at(op, location,
                    "Kernel size can't be greater than actual input size: {}: the {} is {} with "
                    "padding but the dilated kernel spans {} (expected at most the padded size)",
                    shapes, axis, std::int64_t(padded), static_cast<long long>(span));
  }
  if (padded > Wide(INT64_MAX) / 2) {
    detail::fail_at(op, location, "{}: the padded {} ({} + {}) overflows int64", shapes, axis,
                    extent, pad_total);
  }
  return std::int64_t((padded - span) / s + 1);
}

// A shape the op will make: its size checked (Shape's overflow check) before any work.
void check_dims(const char* op, const SourceLocation& location,
                std::initializer_list<std::int64_t> dims) {
  detail::composite(op, location, [&] { Shape(std::span(dims.begin(), dims.size()), op); });
}

std::int32_t small(const char* op, const SourceLocation& location, const char* what,
                   std::int64_t v) {
  if (v > INT32_MAX) {
    detail::fail_at(op, location, "{} {} is too large (at most 2^31 − 1 here)", what, v);
  }
  return std::int32_t(v);
}

void check_positive(const char* op, const SourceLocation& location, const char* what, Size2 v) {
  if (v.h <= 0 || v.w <= 0) {
    detail::fail_at(op, location, "{} must be positive, got ({}, {})", what, v.h, v.w);
  }
}
void check_non_negative(const char* op, const SourceLocation& location, const char* what, Size2 v) {
  if (v.h < 0 || v.w < 0) {
    detail::fail_at(op, location, "{} must be non-negative, got ({}, {})", what, v.h, v.w);
  }
}

// The geometry of blocks of `kernel` over an image height × width padded by (before, after).
Geometry make_geometry(const char* op, const SourceLocation& location, std::int64_t height,
                       std::int64_t width, Size2 kernel, Size2 dilation, Size2 stride,
                       Size2 pad_before, Size2 pad_after, const std::string& shapes) {
  check_positive(op, location, "kernel_size", kernel);
  check_positive(op, location, "dilation", dilation);
  check_positive(op, location, "stride", stride);
  check_non_negative(op, location, "padding", pad_before);
  check_non_negative(op, location, "padding", pad_after);
  Geometry g{};
  g.height = height;
  g.width = width;
  g.pad_h = pad_before.h;
  g.pad_w = pad_before.w;
  g.kh = small(op, location, "kernel height", kernel.h);
  g.kw = small(op, location, "kernel width", kernel.w);
  g.dh = small(op, location, "dilation", dilation.h);
  g.dw = small(op, location, "dilation", dilation.w);
  g.sh = small(op, location, "stride", stride.h);
  g.sw = small(op, location, "stride", stride.w);
  if (pad_before.h > INT64_MAX / 4 || pad_after.h > INT64_MAX / 4 || pad_before.w > INT64_MAX / 4 ||
      pad_after.w > INT64_MAX / 4) {
    detail::fail_at(op, location, "{}: padding ({}, {}) is too large", shapes, pad_before.h,
                    pad_before.w);
  }
  g.out_h = block_count(op, location, "height", height, pad_before.h + pad_after.h, kernel.h,
                        dilation.h, stride.h, shapes);
  g.out_w = block_count(op, location, "width", width, pad_before.w + pad_after.w, kernel.w,
                        dilation.w, stride.w, shapes);
  checked_mul(g.out_h, g.out_w, op, location);  // so that blocks() cannot overflow
  return g;
}

// The columns [first, last) of the block grid whose position j·s + offset falls inside [0, size).
std::pair<std::int64_t, std::int64_t> inside(std::int64_t offset, std::int64_t stride,
                                             std::int64_t size, std::int64_t count) {
  const std::int64_t first = offset >= 0 ? 0 : std::min(count, (-offset + stride - 1) / stride);
  const std::int64_t end = size - offset <= 0 ? 0 : (size - offset + stride - 1) / stride;
  return {first, std::clamp(end, first, count)};
}

// Walks each (image plane, kernel offset, output row) of a geometry: row(plane, kernel index,
// output row, image row or nullptr when the row is padding, first, last, column offset).
// unfold copies columns [first, last) of the output row from the image row (zero elsewhere);
// fold adds them back. Each plane (n, c) is one unit of work, so threads never share an output.
// Rows [row_begin, row_end) of one sample's columns (row c·kh·kw + i·kw + j: channel c, kernel
// offset (i, j)) from the sample's image [C, H, W] (unfold), or added back into it (fold).
template <class T, bool kFold>
void im2col_rows(const Geometry& g, T* image, T* cols, std::int64_t row_begin,
                 std::int64_t row_end) {
  const std::int64_t k = g.kernel(), blocks = g.blocks();
  const std::int64_t plane_size = g.height * g.width;
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    const std::int64_t c = r / k, i = (r % k) / g.kw, j = r % g.kw;
    T* src = image + c * plane_size;
    T* dst = cols + (r - row_begin) * blocks;
    const std::int64_t col_offset = j * g.dw - g.pad_w;
    const auto [first, last] = inside(col_offset, g.sw, g.width, g.out_w);
    for (std::int64_t oy = 0; oy < g.out_h; ++oy) {
      T* row = dst + oy * g.out_w;
      const std::int64_t iy = oy * g.sh + i * g.dh - g.pad_h;
      if (iy < 0 || iy >= g.height) {
        if constexpr (!kFold) std::fill(row, row + g.out_w, T(0));
        continue;
      }
      // Image column of block column x: x·sw + col_offset; line is block column `first`'s.
      T* line = src + iy * g.width + first * g.sw + col_offset;
      const std::int64_t count = last - first;
      T* strip = row + first;
      if constexpr (kFold) {
        if (g.sw == 1) {
          for (std::int64_t x = 0; x < count; ++x) line[x] += strip[x];
        } else {
          for (std::int64_t x = 0; x < count; ++x) line[x * g.sw] += strip[x];
        }
      } else {
        std::fill(row, strip, T(0));
        std::fill(strip + count, row + g.out_w, T(0));
        if (g.sw == 1) {
          if (count > 0) std::memcpy(strip, line, std::size_t(count) * sizeof(T));
        } else {
          for (std::int64_t x = 0; x < count; ++x) strip[x] = line[x * g.sw];
        }
      }
    }
  }
}

// unfold (fold) of `planes` image planes [H, W] into (from) their kh·kw rows of columns each,
// one plane per unit of work, so that threads never share an output.
template <class T, bool kFold>
void im2col(const Geometry& g, std::int64_t planes, T* image, T* cols) {
  const std::int64_t k = g.kernel(), blocks = g.blocks();
  detail::parallel_for(planes, planes * k * blocks, [&](std::int64_t p) {
    im2col_rows<T, kFold>(g, image + p * g.height * g.width, cols + p * k * blocks, 0, k);
  });
}

Tensor unfold_forward(ForwardContext& ctx, const Geometry& g) {
  const Tensor& x = ctx.input(0);
  const std::int64_t n = x.shape()[0], c = x.shape()[1];
  const Shape out_shape{n, c * g.kernel(), g.blocks()};  // sizes checked by the caller
  return dispatch_floating(x.dtype(), "unfold", [&]<class T>() {
    Tensor cols = empty(out_shape, x.dtype());
    if (cols.numel() == 0) return cols;
    im2col<T, false>(g, n * c, const_cast<T*>(std::as_const(x).template data<T>()),
                     cols.template data<T>());
    return cols;
  });
}

Tensor fold_forward(ForwardContext& ctx, const Geometry& g) {
  const Tensor& cols = ctx.input(0);
  const std::int64_t n = cols.shape()[0], c = cols.shape()[1] / g.kernel();
  return dispatch_floating(cols.dtype(), "fold", [&]<class T>() {
    Tensor image = zeros(Shape{n, c, g.height, g.width}, cols.dtype());
    if (image.numel() == 0 || cols.numel() == 0) return image;
    im2col<T, true>(g, n * c, image.template data<T>(),
                    const_cast<T*>(std::as_const(cols).template data<T>()));
    return image;
  });
}

void unfold_backward(BackwardContext& ctx, const Geometry& g);
void fold_backward(BackwardContext& ctx, const Geometry& g);
const Op<Geometry> kUnfold{"unfold", "dx = fold(g)", unfold_forward, unfold_backward};
const Op<Geometry> kFold{"fold", "dcols = unfold(g)", fold_forward, fold_backward};
void unfold_backward(BackwardContext& ctx, const Geometry& g) {
  ctx.set_grad(0, kFold(g, ctx.location(), ctx.grad_output()));
}
void fold_backward(BackwardContext& ctx, const Geometry& g) {
  ctx.set_grad(0, kUnfold(g, ctx.location(), ctx.grad_output()));
}

// ---- the convolution's three primitives ----
//
// A convolution and its two partial adjoints, each one tape entry with a fused kernel (im2col into
// a buffer, one Eigen GEMM per sample and group) and a rule written with the other two, so that
// gradients of any order stay GEMMs plus an unfold or a fold:
//   conv(x, W, b)          y = W·unfold(x) + b       dx = conv_input_grad(g, W), dW =
//                                                    conv_weight_grad(g, x), db = Σ_{n,y,x} g
//   conv_input_grad(g, W, b)  dx = fold(Wᵀ·g) + b    dg = conv(h, W), dW = conv_weight_grad(g, h),
//                          (conv_transpose2d)        db = Σ_{n,y,x} h
//   conv_weight_grad(g, x)  dW = Σ_n g·unfold(x)ᵀ    dg = conv(x, H), dx = conv_input_grad(g, H)
// The geometry is the conv's: the image is x (dx), the block grid is y (g).
struct ConvAttrs {
  Geometry geometry;
  std::int64_t groups;
};

// Products of at least this many multiply-adds split over the batch (matmul's threshold).
constexpr std::int64_t kParallelMultiplyAdds = 1 << 21;

template <class T>
using Matrix = Eigen::Map<detail::RowMatrix<T>>;
template <class T>
using ConstMatrix = Eigen::Map<const detail::RowMatrix<T>>;

// Adds bias[c] to every element of channel c of a [N, C, plane] tensor.
template <class T>
void add_channel_bias(T* out, const T* bias, std::int64_t n, std::int64_t channels,
                      std::int64_t plane) {
  for (std::int64_t i = 0; i < n; ++i) {
    Matrix<T>(out + i * channels * plane, channels, plane).colwise() +=
        Eigen::Map<const detail::Vector<T>>(bias, channels).matrix();
  }
}

// The batch split into `parts` contiguous chunks, one per thread when the work pays for threads:
// each chunk reuses one sample's buffer of columns (cache-sized, allocated once per call).
struct BatchSplit {
  std::int64_t parts;
  std::int64_t size;
};
BatchSplit split_batch(std::int64_t n, std::int64_t work) {
  const std::int64_t parts =
      work < kParallelMultiplyAdds || n <= 1 ? 1 : std::min<std::int64_t>(n, num_threads());
  return {parts, (n + parts - 1) / parts};
}

Tensor conv_forward(ForwardContext& ctx, const ConvAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Geometry& g = a.geometry;
  const std::int64_t n = x.shape()[0], c_in = x.shape()[1], c_out = w.shape()[0];
  const std::int64_t k = g.kernel(), blocks = g.blocks(), rows = c_in * k;
  const std::int64_t out_group = c_out / a.groups, rows_group = rows / a.groups;
  return dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    Tensor y = empty(Shape{n, c_out, g.out_h, g.out_w}, x.dtype());
    if (y.numel() == 0) return y;
    const std::int64_t work = n * c_out * rows_group * blocks;
    const BatchSplit split = split_batch(n, work);
    Tensor buffer = empty(Shape{split.parts, rows, blocks}, x.dtype());
    const T* px = x.template data<T>();
    const T* pw = w.template data<T>();
    const T* pb = ctx.num_inputs() == 3 ? ctx.input(2).template data<T>() : nullptr;
    T* pc = buffer.template data<T>();
    T* py = y.template data<T>();
    const std::int64_t plane = g.height * g.width;
    detail::parallel_for(
        split.parts, work,
        [&](std::int64_t part) {
          T* ci = pc + part * rows * blocks;
          for (std::int64_t i = part * split.size; i < std::min(n, (part + 1) * split.size); ++i) {
            im2col_rows<T, false>(g, const_cast<T*>(px + i * c_in * plane), ci, 0, rows);
            for (std::int64_t grp = 0; grp < a.groups; ++grp) {
              Matrix<T>(py + (i * c_out + grp * out_group) * blocks, out_group, blocks).noalias() =
                  ConstMatrix<T>(pw + grp * out_group * rows_group, out_group, rows_group) *
                  ConstMatrix<T>(ci + grp * rows_group * blocks, rows_group, blocks);
            }
            if (pb) add_channel_bias(py + i * c_out * blocks, pb, 1, c_out, blocks);
          }
        },
        kParallelMultiplyAdds);
    return y;
  });
}

Tensor conv_input_grad_forward(ForwardContext& ctx, const ConvAttrs& a) {
  const Tensor& gy = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Geometry& g = a.geometry;
  const std::int64_t n = gy.shape()[0], c_out = gy.shape()[1];
  const std::int64_t c_in = w.shape()[1] * a.groups;
  const std::int64_t k = g.kernel(), blocks = g.blocks(), rows = c_in * k;
  const std::int64_t out_group = c_out / a.groups, rows_group = rows / a.groups;
  return dispatch_floating(gy.dtype(), "conv_transpose2d", [&]<class T>() {
    Tensor dx = zeros(Shape{n, c_in, g.height, g.width}, gy.dtype());
    if (dx.numel() == 0) return dx;
    const T* pg = gy.template data<T>();
    const T* pw = w.template data<T>();
    const T* pb = ctx.num_inputs() == 3 ? ctx.input(2).template data<T>() : nullptr;
    T* pdx = dx.template data<T>();
    const std::int64_t plane = g.height * g.width;
    const std::int64_t work = n * c_out * rows_group * blocks;
    const BatchSplit split = split_batch(n, work);
    Tensor buffer = empty(Shape{split.parts, rows, blocks}, gy.dtype());
    T* pc = buffer.template data<T>();
    detail::parallel_for(
        split.parts, work,
        [&](std::int64_t part) {
          T* ci = pc + part * rows * blocks;
          for (std::int64_t i = part * split.size; i < std::min(n, (part + 1) * split.size); ++i) {
            for (std::int64_t grp = 0; grp < a.groups; ++grp) {
              Matrix<T>(ci + grp * rows_group * blocks, rows_group, blocks).noalias() =
                  ConstMatrix<T>(pw + grp * out_group * rows_group, out_group, rows_group)
                      .transpose() *
                  ConstMatrix<T>(pg + (i * c_out + grp * out_group) * blocks, out_group, blocks);
            }
            im2col_rows<T, true>(g, pdx + i * c_in * plane, ci, 0, rows);
            if (pb) add_channel_bias(pdx + i * c_in * plane, pb, 1, c_in, plane);
          }
        },
        kParallelMultiplyAdds);
    return dx;
  });
}

Tensor conv_weight_grad_forward(ForwardContext& ctx, const ConvAttrs& a) {
  const Tensor& gy = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Geometry& g = a.geometry;
  const std::int64_t n = x.shape()[0], c_in = x.shape()[1], c_out = gy.shape()[1];
  const std::int64_t k = g.kernel(), blocks = g.blocks(), rows = c_in * k;
  const std::int64_t out_group = c_out / a.groups, rows_group = rows / a.groups;
  return dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    Tensor dw = zeros(Shape{c_out, c_in / a.groups, g.kh, g.kw}, x.dtype());
    if (dw.numel() == 0 || n == 0) return dw;
    // dW_grp = Σ_n g_n,grp · cols_n,grpᵀ. The threads split dW's columns (rows of the columns),
    // each unfolding its own rows of each sample into its own buffer and summing over the batch
    // in order: every element is computed the same way however many threads there are.
    constexpr std::int64_t kAlign = 48;
    const std::int64_t work = n * c_out * rows_group * blocks;
    const std::int64_t parts = work < kParallelMultiplyAdds ? 1 : 4 * std::int64_t(num_threads());
    const std::int64_t size = std::min(
        rows_group, std::max<std::int64_t>(
                        kAlign, ((rows_group + parts - 1) / parts + kAlign - 1) / kAlign * kAlign));
    const std::int64_t count = (rows_group + size - 1) / size;
    Tensor buffer = empty(Shape{count * a.groups, size, blocks}, x.dtype());
    const T* px = x.template data<T>();
    const T* pg = gy.template data<T>();
    T* pc = buffer.template data<T>();
    T* pdw = dw.template data<T>();
    const std::int64_t plane = g.height * g.width;
    detail::parallel_for(
        count * a.groups, work,
        [&](std::int64_t job) {
          const std::int64_t grp = job / count, begin = (job % count) * size;
          const std::int64_t width = std::min(rows_group, begin + size) - begin;
          const std::int64_t first_row = grp * rows_group + begin;
          T* cols = pc + job * size * blocks;
          Matrix<T> out(pdw + grp * out_group * rows_group, out_group, rows_group);
          for (std::int64_t i = 0; i < n; ++i) {
            im2col_rows<T, false>(g, const_cast<T*>(px + i * c_in * plane), cols, first_row,
                                  first_row + width);
            out.middleCols(begin, width).noalias() +=
                ConstMatrix<T>(pg + (i * c_out + grp * out_group) * blocks, out_group, blocks) *
                ConstMatrix<T>(cols, width, blocks).transpose();
          }
        },
        kParallelMultiplyAdds);
    return dw;
  });
}

void conv_backward(BackwardContext& ctx, const ConvAttrs& a);
void conv_input_grad_backward(BackwardContext& ctx, const ConvAttrs& a);
void conv_weight_grad_backward(BackwardContext& ctx, const ConvAttrs& a);
const Op<ConvAttrs> kConv{"conv2d",
                          "dx = conv_transpose2d(g, W), dW = Σ_n g·unfold(x)ᵀ, db = Σ_{n,y,x} g",
                          conv_forward, conv_backward};
const Op<ConvAttrs> kConvInputGrad{"conv_transpose2d",
                                   "dx = conv2d(g, W), dW = Σ_n x·unfold(g)ᵀ, db = Σ_{n,y,x} g",
                                   conv_input_grad_forward, conv_input_grad_backward};
const Op<ConvAttrs> kConvWeightGrad{"conv2d_weight_grad",
                                    "dg = conv2d(x, H), dx = conv_transpose2d(g, H)",
                                    conv_weight_grad_forward, conv_weight_grad_backward};

// Σ over batch and positions of a [N, C, H, W] cotangent: [C].
Tensor channel_sum(const Tensor& t, const SourceLocation& location) {
  const Tensor rows =
      reshape(t, {t.shape()[0], t.shape()[1], t.shape()[2] * t.shape()[3]}, location);
  return sum(sum(rows, 2, false, location), 0, false, location);
}

void conv_backward(BackwardContext& ctx, const ConvAttrs& a) {
  const Tensor& gy = ctx.grad_output();
  if (ctx.needs_grad(0)) ctx.set_grad(0, kConvInputGrad(a, ctx.location(), gy, ctx.input(1)));
  if (ctx.needs_grad(1)) ctx.set_grad(1, kConvWeightGrad(a, ctx.location(), gy, ctx.input(0)));
  if (ctx.num_inputs() == 3 && ctx.needs_grad(2)) ctx.set_grad(2, channel_sum(gy, ctx.location()));
}
void conv_input_grad_backward(BackwardContext& ctx, const ConvAttrs& a) {
  const Tensor& h = ctx.grad_output();
  if (ctx.needs_grad(0)) ctx.set_grad(0, kConv(a, ctx.location(), h, ctx.input(1)));
  if (ctx.needs_grad(1)) ctx.set_grad(1, kConvWeightGrad(a, ctx.location(), ctx.input(0), h));
  if (ctx.num_inputs() == 3 && ctx.needs_grad(2)) ctx.set_grad(2, channel_sum(h, ctx.location()));
}
void conv_weight_grad_backward(BackwardContext& ctx, const ConvAttrs& a) {
  const Tensor& h = ctx.grad_output();
  if (ctx.needs_grad(0)) ctx.set_grad(0, kConv(a, ctx.location(), ctx.input(1), h));
  if (ctx.needs_grad(1)) ctx.set_grad(1, kConvInputGrad(a, ctx.location(), ctx.input(0), h));
}

template <class... Inputs>
Tensor apply_with_bias(const Op<ConvAttrs>& op, const ConvAttrs& a, const SourceLocation& location,
                       const Tensor& bias, const Inputs&... inputs) {
  return bias.defined() ? op(a, location, inputs..., bias) : op(a, location, inputs...);
}

std::string shapes_of(const Tensor& input, const Tensor& weight) {
  return fmt::format("input {}, weight {}", input.shape().str(), weight.shape().str());
}

void check_floating(const char* op, const SourceLocation& location, const Tensor& x,
                    const char* what) {
  if (!x.defined()) detail::fail_at(op, location, "the {} is undefined", what);
  if (!is_floating(x.dtype())) {
    detail::fail_at(op, location, "expected a floating {} (float32 or float64), got {} {}", what,
                    dtype_name(x.dtype()), x.shape().str());
  }
}

void check_bias(const char* op, const SourceLocation& location, const Tensor& input,
                const Tensor& bias, std::int64_t out_channels) {
  if (!bias.defined()) return;
  check_floating(op, location, bias, "bias");
  if (bias.dtype() != input.dtype()) {
    detail::fail_at(op, location, "the bias is {} but the input is {} (expected one dtype)",
                    dtype_name(bias.dtype()), dtype_name(input.dtype()));
  }
  if (!(bias.shape() == Shape{out_channels})) {
    detail::fail_at(op, location, "expected a bias of shape [{}] (one per output channel), got {}",
                    out_channels, bias.shape().str());
  }
}

// conv2d on 4-D tensors; `op` and `shown` (the caller's own shapes) name the call in errors.
Tensor conv2d_impl(const char* op, const std::string& shown, const Tensor& input,
                   const Tensor& weight, const Tensor& bias, const Conv2dOptions& options,
                   const SourceLocation& location) {
  check_floating(op, location, input, "input");
  check_floating(op, location, weight, "weight");
  if (input.dtype() != weight.dtype()) {
    detail::fail_at(op, location, "{}: the input is {} but the weight is {} (expected one dtype)",
                    shown, dtype_name(input.dtype()), dtype_name(weight.dtype()));
  }
  const std::int64_t groups = options.groups;
  const std::int64_t n = input.shape()[0], c_in = input.shape()[1];
  const std::int64_t c_out = weight.shape()[0];
  if (groups <= 0) detail::fail_at(op, location, "groups must be positive, got {}", groups);
  if (c_out == 0 || weight.shape()[1] == 0) {
    // PyTorch refuses no output channels, and gives no output channels for no input channels.
    detail::fail_at(op, location, "{}: expected a weight with at least one {} channel", shown,
                    c_out == 0 ? "output" : "input");
  }
  if (c_out % groups != 0) {
    detail::fail_at(op, location, "{}: out_channels {} must be divisible by groups {}", shown,
                    c_out, groups);
  }
  if (checked_mul(weight.shape()[1], groups, op, location) != c_in) {
    detail::fail_at(op, location,
                    "{}: given groups={}, expected the input to have {}·{} = {} channels (the "
                    "weight's in_channels/groups times groups), got {}",
                    shown, groups, weight.shape()[1], groups, weight.shape()[1] * groups, c_in);
  }
  check_bias(op, location, input, bias, c_out);
  const Size2 kernel{weight.shape()[2], weight.shape()[3]};
  check_positive(op, location, "stride", options.stride);
  check_positive(op, location, "dilation", options.dilation);
  Size2 before = options.padding.amount, after = options.padding.amount;
  if (options.padding.mode == ConvPadding::valid) {
    before = after = Size2{0};
  } else if (options.padding.mode == ConvPadding::same) {
    if (options.stride.h != 1 || options.stride.w != 1) {
      detail::fail_at(op, location,
                      "padding='same' is not supported for strided convolutions (stride ({}, {}), "
                      "expected 1)",
                      options.stride.h, options.stride.w);
    }
    if (kernel.h <= 0 || kernel.w <= 0) {
      detail::fail_at(op, location, "{}: the kernel must be non-empty", shown);
    }
    // The output as long as the input: d·(k − 1) in total, the odd one at the end.
    const std::int64_t total_h = checked_mul(options.dilation.h, kernel.h - 1, op, location);
    const std::int64_t total_w = checked_mul(options.dilation.w, kernel.w - 1, op, location);
    before = Size2{total_h / 2, total_w / 2};
    after = Size2{total_h - total_h / 2, total_w - total_w / 2};
  }
  const Geometry g = make_geometry(op, location, input.shape()[2], input.shape()[3], kernel,
                                   options.dilation, options.stride, before, after, shown);
  const std::int64_t k = g.kernel();
  // Every size the lowering makes, checked once: the columns and the output.
  const std::int64_t rows = checked_mul(c_in, k, op, location);
  check_dims(op, location, {n, rows, g.blocks()});
  check_dims(op, location, {n, c_out, g.out_h, g.out_w});
  return apply_with_bias(kConv, ConvAttrs{g, groups}, location, bias, input, weight);
}

void check_rank(const char* op, const SourceLocation& location, const Tensor& x, int rank,
                const char* what, const char* layout) {
  if (!x.defined()) detail::fail_at(op, location, "the {} is undefined", what);
  if (x.rank() != rank) {
    detail::fail_at(op, location, "expected a {}-D {} {}, got shape {}", rank, what, layout,
                    x.shape().str());
  }
}

}  // namespace

Tensor unfold(const Tensor& input, Size2 kernel_size, const UnfoldOptions& options,
              SourceLocation location) {
  check_rank("unfold", location, input, 4, "input", "[N, C, H, W]");
  check_floating("unfold", location, input, "input");
  const std::string shown = "input " + input.shape().str();
  const Geometry g =
      make_geometry("unfold", location, input.shape()[2], input.shape()[3], kernel_size,
                    options.dilation, options.stride, options.padding, options.padding, shown);
  check_dims("unfold", location,
             {input.shape()[0], checked_mul(input.shape()[1], g.kernel(), "unfold", location),
              g.blocks()});
  return kUnfold(g, location, input);
}

Tensor fold(const Tensor& input, Size2 output_size, Size2 kernel_size, const UnfoldOptions& options,
            SourceLocation location) {
  check_rank("fold", location, input, 3, "input", "[N, C·kh·kw, L]");
  check_floating("fold", location, input, "input");
  check_non_negative("fold", location, "output_size", output_size);
  const std::string shown = "input " + input.shape().str();
  const Geometry g =
      make_geometry("fold", location, output_size.h, output_size.w, kernel_size, options.dilation,
                    options.stride, options.padding, options.padding, shown);
  const std::int64_t k = g.kernel();
  if (input.shape()[1] % k != 0) {
    detail::fail_at("fold", location,
                    "{}: expected size of input's dimension 1 to be divisible by the product of "
                    "kernel_size ({}·{} = {}), got {}",
                    shown, kernel_size.h, kernel_size.w, k, input.shape()[1]);
  }
  if (input.shape()[2] != g.blocks()) {
    detail::fail_at("fold", location,
                    "{}: expected size of input's dimension 2 to match the calculated number of "
                    "sliding blocks {}·{} = {} for output_size ({}, {}), got {}",
                    shown, g.out_h, g.out_w, g.blocks(), output_size.h, output_size.w,
                    input.shape()[2]);
  }
  check_dims("fold", location,
             {input.shape()[0], input.shape()[1] / k, output_size.h, output_size.w});
  return kFold(g, location, input);
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dOptions& options, SourceLocation location) {
  check_rank("conv2d", location, input, 4, "input", "[N, C_in, H, W]");
  check_rank("conv2d", location, weight, 4, "weight", "[C_out, C_in/groups, kh, kw]");
  return conv2d_impl("conv2d", shapes_of(input, weight), input, weight, bias, options, location);
}

Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv1dOptions& options, SourceLocation location) {
  check_rank("conv1d", location, input, 3, "input", "[N, C_in, L]");
  check_rank("conv1d", location, weight, 3, "weight", "[C_out, C_in/groups, k]");
  if (options.stride <= 0 || options.dilation <= 0) {
    detail::fail_at("conv1d", location, "stride and dilation must be positive, got {} and {}",
                    options.stride, options.dilation);
  }
  if (!options.padding.mode && options.padding.amount < 0) {
    detail::fail_at("conv1d", location, "padding must be non-negative, got {}",
                    options.padding.amount);
  }
  const Shape& xs = input.shape();
  const Shape& ws = weight.shape();
  Conv2dOptions options2d{.stride = Size2{1, options.stride},
                          .padding = options.padding.mode ? Padding2d(*options.padding.mode)
                                                          : Padding2d(0, options.padding.amount),
                          .dilation = Size2{1, options.dilation},
                          .groups = options.groups};
  const Tensor y = conv2d_impl(
      "conv1d", shapes_of(input, weight), reshape(input, {xs[0], xs[1], 1, xs[2]}, location),
      reshape(weight, {ws[0], ws[1], 1, ws[2]}, location), bias, options2d, location);
  return reshape(y, {y.shape()[0], y.shape()[1], y.shape()[3]}, location);
}

Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const ConvTranspose2dOptions& options, SourceLocation location) {
  constexpr const char* op = "conv_transpose2d";
  check_rank(op, location, input, 4, "input", "[N, C_in, H, W]");
  check_rank(op, location, weight, 4, "weight", "[C_in, C_out/groups, kh, kw]");
  check_floating(op, location, input, "input");
  check_floating(op, location, weight, "weight");
  const std::string shown = shapes_of(input, weight);
  if (input.dtype() != weight.dtype()) {
    detail::fail_at(op, location, "{}: the input is {} but the weight is {} (expected one dtype)",
                    shown, dtype_name(input.dtype()), dtype_name(weight.dtype()));
  }
  const std::int64_t groups = options.groups;
  const std::int64_t n = input.shape()[0], c_in = input.shape()[1];
  if (groups <= 0) detail::fail_at(op, location, "groups must be positive, got {}", groups);
  if (weight.shape()[0] != c_in) {
    detail::fail_at(op, location,
                    "{}: expected the weight's dimension 0 to equal the input's {} channels "
                    "(weight [C_in, C_out/groups, kh, kw]), got {}",
                    shown, c_in, weight.shape()[0]);
  }
  if (c_in == 0 || weight.shape()[1] == 0) {
    // PyTorch refuses both: no input channels, and an empty weight.
    detail::fail_at(op, location, "{}: expected a weight with at least one {} channel", shown,
                    c_in == 0 ? "input" : "output");
  }
  if (c_in % groups != 0) {
    detail::fail_at(op, location, "{}: in_channels {} must be divisible by groups {}", shown, c_in,
                    groups);
  }
  const std::int64_t c_out = checked_mul(weight.shape()[1], groups, op, location);
  check_bias(op, location, input, bias, c_out);
  const Size2 kernel{weight.shape()[2], weight.shape()[3]};
  check_positive(op, location, "kernel_size", kernel);
  check_positive(op, location, "stride", options.stride);
  check_positive(op, location, "dilation", options.dilation);
  check_non_negative(op, location, "padding", options.padding);
  check_non_negative(op, location, "output_padding", options.output_padding);
  const auto& s = options.stride;
  const auto& d = options.dilation;
  const auto& p = options.padding;
  const auto& o = options.output_padding;
  if (!(o.h < s.h || o.h < d.h) || !(o.w < s.w || o.w < d.w)) {
    detail::fail_at(op, location,
                    "output padding must be smaller than either stride or dilation, got "
                    "output_padding ({}, {}), stride ({}, {}), dilation ({}, {})",
                    o.h, o.w, s.h, s.w, d.h, d.w);
  }
  // (H − 1)·s − 2p + d·(k − 1) + output_padding + 1, in 128 bits.
  const auto extent = [&](std::int64_t size, std::int64_t st, std::int64_t pad, std::int64_t dil,
                          std::int64_t k, std::int64_t out_pad, const char* axis) {
    const Wide e = (Wide(size) - 1) * st - 2 * Wide(pad) + Wide(dil) * (k - 1) + out_pad + 1;
    if (e <= 0 || size == 0) {
      detail::fail_at(op, location,
                      "{}: the output {} would be {} (expected positive; input size {}, stride "
                      "{}, padding {}, dilation {}, output_padding {})",
                      shown, axis, static_cast<long long>(e), size, st, pad, dil, out_pad);
    }
    if (e > Wide(INT64_MAX) / 4) {
      detail::fail_at(op, location, "{}: the output {} overflows int64", shown, axis);
    }
    return std::int64_t(e);
  };
  const std::int64_t out_h = extent(input.shape()[2], s.h, p.h, d.h, kernel.h, o.h, "height");
  const std::int64_t out_w = extent(input.shape()[3], s.w, p.w, d.w, kernel.w, o.w, "width");
  Geometry g{};
  g.height = out_h;
  g.width = out_w;
  g.pad_h = p.h;
  g.pad_w = p.w;
  g.out_h = input.shape()[2];
  g.out_w = input.shape()[3];
  g.kh = small(op, location, "kernel height", kernel.h);
  g.kw = small(op, location, "kernel width", kernel.w);
  g.dh = small(op, location, "dilation", d.h);
  g.dw = small(op, location, "dilation", d.w);
  g.sh = small(op, location, "stride", s.h);
  g.sw = small(op, location, "stride", s.w);
  const std::int64_t k = g.kernel();
  const std::int64_t rows = checked_mul(c_out, k, op, location);
  check_dims(op, location, {n, rows, g.blocks()});
  check_dims(op, location, {n, c_out, out_h, out_w});
  return apply_with_bias(kConvInputGrad, ConvAttrs{g, groups}, location, bias, input, weight);
}

// ---- registration ----

namespace detail {
namespace {

// A direct convolution in double, for reference Jacobians: calls visit(out, in, w) for every
// product y[out] += x[in]·w[w] of a conv2d (transposed = false) or conv_transpose2d, with the
// weight in its op's layout.
struct Naive {
  std::int64_t n, c_in, h, w, c_out, groups, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
  bool transposed;

  template <class Visit>
  void each(Visit visit) const {
    const std::int64_t cig = c_in / groups, cog = c_out / groups;
    for (std::int64_t b = 0; b < n; ++b) {
      for (std::int64_t g = 0; g < groups; ++g) {
        for (std::int64_t co = 0; co < cog; ++co) {
          for (std::int64_t ci = 0; ci < cig; ++ci) {
            for (std::int64_t i = 0; i < kh; ++i) {
              for (std::int64_t j = 0; j < kw; ++j) {
                // The small grid (the conv's output, the transposed conv's input).
                const std::int64_t gh = transposed ? h : oh, gw = transposed ? w : ow;
                const std::int64_t bh = transposed ? oh : h, bw = transposed ? ow : w;
                for (std::int64_t y = 0; y < gh; ++y) {
                  for (std::int64_t x = 0; x < gw; ++x) {
                    const std::int64_t iy = y * sh - ph + i * dh, ix = x * sw - pw + j * dw;
                    if (iy < 0 || iy >= bh || ix < 0 || ix >= bw) continue;
                    const std::int64_t oc = g * cog + co, icn = g * cig + ci;
                    if (!transposed) {
                      visit(((b * c_out + oc) * oh + y) * ow + x,
                            ((b * c_in + icn) * h + iy) * w + ix,
                            ((oc * cig + ci) * kh + i) * kw + j, oc);
                    } else {
                      visit(((b * c_out + oc) * oh + iy) * ow + ix,
                            ((b * c_in + icn) * h + y) * w + x,
                            ((icn * cog + co) * kh + i) * kw + j, oc);
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  std::vector<Tensor> jacobians(const std::vector<Tensor>& in) const {
    const std::vector<double> x = in[0].to_vector(), wt = in[1].to_vector();
    const std::int64_t outs = n * c_out * oh * ow;
    Tensor jx = zeros({outs, in[0].numel()}, f64), jw = zeros({outs, in[1].numel()}, f64);
    Tensor jb = zeros({outs, c_out}, f64);
    double* px = jx.data<double>();
    double* pw_ = jw.data<double>();
    each([&](std::int64_t o, std::int64_t i, std::int64_t k, std::int64_t) {
      px[o * in[0].numel() + i] += wt[std::size_t(k)];
      pw_[o * in[1].numel() + k] += x[std::size_t(i)];
    });
    for (std::int64_t o = 0; o < outs; ++o)
      jb.data<double>()[o * c_out + (o / (oh * ow)) % c_out] = 1;
    std::vector<Tensor> out{jx, jw};
    if (in.size() == 3) out.push_back(jb);
    return out;
  }
};

struct ConvCase {
  std::string name;
  bool transposed;
  Shape x, w;
  bool bias;
  Size2 stride, padding, dilation;
  std::int64_t groups;
  Size2 output_padding;
  std::optional<ConvPadding> mode;
};

Naive naive_of(const ConvCase& c) {
  Naive v{};
  v.n = c.x[0];
  v.c_in = c.x[1];
  v.h = c.x[2];
  v.w = c.x[3];
  v.groups = c.groups;
  v.c_out = c.transposed ? c.w[1] * c.groups : c.w[0];
  v.kh = c.w[2];
  v.kw = c.w[3];
  v.sh = c.stride.h;
  v.sw = c.stride.w;
  v.dh = c.dilation.h;
  v.dw = c.dilation.w;
  v.ph = c.padding.h;
  v.pw = c.padding.w;
  v.transposed = c.transposed;
  if (c.mode == ConvPadding::same) {
    v.ph = c.dilation.h * (v.kh - 1) / 2;
    v.pw = c.dilation.w * (v.kw - 1) / 2;
  }
  if (c.transposed) {
    v.oh = (v.h - 1) * v.sh - 2 * v.ph + v.dh * (v.kh - 1) + c.output_padding.h + 1;
    v.ow = (v.w - 1) * v.sw - 2 * v.pw + v.dw * (v.kw - 1) + c.output_padding.w + 1;
  } else if (c.mode == ConvPadding::same) {
    v.oh = v.h;
    v.ow = v.w;
  } else {
    v.oh = (v.h + 2 * v.ph - v.dh * (v.kh - 1) - 1) / v.sh + 1;
    v.ow = (v.w + 2 * v.pw - v.dw * (v.kw - 1) - 1) / v.sw + 1;
  }
  return v;
}

Tensor call_conv(const ConvCase& c, const std::vector<Tensor>& in) {
  const Tensor bias = in.size() == 3 ? in[2] : Tensor();
  if (c.transposed) {
    return conv_transpose2d(in[0], in[1], bias,
                            {.stride = c.stride,
                             .padding = c.padding,
                             .output_padding = c.output_padding,
                             .groups = c.groups,
                             .dilation = c.dilation});
  }
  if (c.name.starts_with("conv1d")) {
    return conv1d(in[0], in[1], bias,
                  {.stride = c.stride.w,
                   .padding = c.mode ? Padding1d(*c.mode) : Padding1d(c.padding.w),
                   .dilation = c.dilation.w,
                   .groups = c.groups});
  }
  return conv2d(in[0], in[1], bias,
                {.stride = c.stride,
                 .padding = c.mode ? Padding2d(*c.mode) : Padding2d(c.padding.h, c.padding.w),
                 .dilation = c.dilation,
                 .groups = c.groups});
}

struct UnfoldCase {
  std::string name;
  bool fold;
  Shape image;  // [N, C, H, W]
  Size2 kernel, dilation, padding, stride;
};

Geometry geometry_of(const UnfoldCase& c) {
  return make_geometry("unfold", SourceLocation::current(), c.image[2], c.image[3], c.kernel,
                       c.dilation, c.stride, c.padding, c.padding, "");
}

// d unfold / d x: 1 where a column entry copies an image element.
Tensor unfold_jacobian(const UnfoldCase& c) {
  const Geometry g = geometry_of(c);
  const std::int64_t n = c.image[0], ch = c.image[1];
  const std::int64_t outs = n * ch * g.kernel() * g.blocks(), ins = c.image.numel();
  Tensor j = zeros({outs, ins}, f64);
  for (std::int64_t b = 0; b < n * ch; ++b) {
    for (std::int64_t i = 0; i < g.kh; ++i) {
      for (std::int64_t k = 0; k < g.kw; ++k) {
        for (std::int64_t y = 0; y < g.out_h; ++y) {
          for (std::int64_t x = 0; x < g.out_w; ++x) {
            const std::int64_t iy = y * g.sh - g.pad_h + i * g.dh;
            const std::int64_t ix = x * g.sw - g.pad_w + k * g.dw;
            if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
            const std::int64_t o = ((b * g.kernel() + i * g.kw + k) * g.out_h + y) * g.out_w + x;
            j.data<double>()[o * ins + (b * g.height + iy) * g.width + ix] = 1;
          }
        }
      }
    }
  }
  return j;
}

}  // namespace

void register_conv_ops(OpRegistry& registry) {
  const std::vector<UnfoldCase> unfolds = {
      {"unfold", false, {2, 2, 4, 5}, {2, 3}, 1, 0, 1},
      {"unfold(dilation 2, padding 1, stride 2)", false, {1, 2, 5, 4}, 2, 2, 1, 2},
      {"unfold(stride (2, 3) > kernel 1×2)", false, {1, 1, 5, 7}, {1, 2}, 1, 0, {2, 3}},
      {"fold", true, {2, 2, 4, 5}, {2, 3}, 1, 0, 1},
      {"fold(dilation 2, padding 1, stride 2)", true, {1, 2, 5, 4}, 2, 2, 1, 2},
  };
  for (const UnfoldCase& c : unfolds) {
    const Geometry g = geometry_of(c);
    const Shape cols{c.image[0], c.image[1] * g.kernel(), g.blocks()};
    const UnfoldOptions options{.dilation = c.dilation, .padding = c.padding, .stride = c.stride};
    registry.add({c.name,
                  [=](const auto& in) {
                    return c.fold ? fold(in[0], Size2{c.image[2], c.image[3]}, c.kernel, options)
                                  : unfold(in[0], c.kernel, options);
                  },
                  [=](DType dtype) {
                    Generator gen(1400);
                    return std::vector<OpSample>{{(c.fold ? cols : c.image).str(),
                                                  {sample(c.fold ? cols : c.image, dtype, gen)}}};
                  },
                  [=](const auto&) {
                    const Tensor j = unfold_jacobian(c);
                    return std::vector<Tensor>{c.fold ? transpose(j) : j};
                  }});
  }

  const std::vector<ConvCase> convs = {
      {"conv2d", false, {2, 2, 5, 4}, {3, 2, 3, 3}, true, 1, 0, 1, 1, 0, {}},
      {"conv2d(stride 2, padding 1)", false, {2, 2, 5, 4}, {3, 2, 2, 3}, true, 2, 1, 1, 1, 0, {}},
      {"conv2d(dilation 2, padding (1, 2))",
       false,
       {1, 2, 5, 5},
       {2, 2, 2, 2},
       true,
       1,
       {1, 2},
       2,
       1,
       0,
       {}},
      {"conv2d(stride 2, groups 2)", false, {2, 4, 4, 5}, {4, 2, 2, 2}, true, 2, 0, 1, 2, 0, {}},
      {"conv2d(depthwise)", false, {1, 3, 4, 4}, {3, 1, 3, 3}, true, 1, 1, 1, 3, 0, {}},
      {"conv2d(padding same, kernel 2×3)",
       false,
       {1, 2, 4, 5},
       {2, 2, 2, 3},
       true,
       1,
       0,
       1,
       1,
       0,
       ConvPadding::same},
      {"conv2d(padding valid, no bias)",
       false,
       {1, 2, 4, 4},
       {2, 2, 3, 3},
       false,
       1,
       0,
       1,
       1,
       0,
       ConvPadding::valid},
      {"conv2d(1×1, stride 3 > kernel)",
       false,
       {1, 2, 4, 5},
       {3, 2, 1, 1},
       true,
       3,
       0,
       1,
       1,
       0,
       {}},
      {"conv1d(stride 2, padding 1)",
       false,
       {2, 2, 1, 7},
       {3, 2, 1, 3},
       true,
       {1, 2},
       {0, 1},
       1,
       1,
       0,
       {}},
      {"conv1d(padding same, kernel 4, groups 2, no bias)",
       false,
       {1, 2, 1, 6},
       {2, 1, 1, 4},
       false,
       1,
       0,
       1,
       2,
       0,
       ConvPadding::same},
      {"conv_transpose2d", true, {2, 2, 3, 3}, {2, 3, 2, 2}, true, 1, 0, 1, 1, 0, {}},
      {"conv_transpose2d(stride 2, padding 1, output_padding 1)",
       true,
       {1, 2, 3, 2},
       {2, 2, 3, 3},
       true,
       2,
       1,
       1,
       1,
       1,
       {}},
      {"conv_transpose2d(groups 2, dilation 2, no bias)",
       true,
       {1, 4, 3, 3},
       {4, 1, 2, 2},
       false,
       1,
       0,
       2,
       2,
       0,
       {}},
      {"conv_transpose2d(output_padding 1 < dilation 2)",
       true,
       {1, 1, 3, 3},
       {1, 2, 2, 2},
       true,
       1,
       0,
       2,
       1,
       1,
       {}},
  };
  for (const ConvCase& c : convs) {
    const Naive naive = naive_of(c);
    registry.add({c.name, [=](const auto& in) { return call_conv(c, in); },
                  [=](DType dtype) {
                    Generator gen(1414);
                    const bool is_1d = c.name.starts_with("conv1d");
                    const Shape x = is_1d ? Shape{c.x[0], c.x[1], c.x[3]} : c.x;
                    const Shape w = is_1d ? Shape{c.w[0], c.w[1], c.w[3]} : c.w;
                    std::vector<Tensor> in{sample(x, dtype, gen), sample(w, dtype, gen)};
                    if (c.bias) in.push_back(sample({naive.c_out}, dtype, gen));
                    return std::vector<OpSample>{{x.str() + " with weight " + w.str(), in}};
                  },
                  [=](const auto& in) { return naive.jacobians(in); }});
  }
}

}  // namespace detail
}  // namespace tg
