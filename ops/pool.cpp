// Pooling (PyTorch's torch.nn.functional semantics, checks and messages).
//
//   max_pool2d           y[p, o] = max over o's window (−inf padding)     dx = scatter_add(0, idx,
//   g) adaptive_max_pool2d  the same over the adaptive windows max_pool1d           max_pool2d on
//   [N, C, 1, L] avg_pool2d           y[p, o] = Σ window / divisor                      dx = the
//   adjoint map of g adaptive_avg_pool2d  the same over the adaptive windows
//
// The max pools are one op: the forward keeps the flat position (in the H·W plane) of each
// window's winner as an int64 residual, and the rule scatters g there with scatter_add, whose own
// rule is a gather: second order works. The winner is the first maximum in row-major window order,
// or the last NaN (PyTorch's kernel: `val > max || isnan(val)`).
//
// The averaging pools (and pad and interpolate, ops/resample.cpp) are a sparse linear map applied
// to each plane (detail::PlaneMap): one op whose rule is the transposed map, an op whose rule is
// the map again. The map is built per call in O(output plane · window) and applied with one pass
// over the data, threaded over the planes.
#include "ops/pool.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "ops/everyday.h"
#include "ops/kernels.h"
#include "ops/registrations.h"

namespace tg {
namespace {

// ---- checked size arithmetic ----

std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* op,
                         const SourceLocation& location) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    detail::fail_at(op, location, "sizes overflow int64 ({} + {})", a, b);
  }
  return r;
}
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* op,
                         const SourceLocation& location) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) {
    detail::fail_at(op, location, "sizes overflow int64 ({} · {})", a, b);
  }
  return r;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// PyTorch's pooling_output_shape: ⌊(n + 2p − d(k − 1) − 1 (+ s − 1 with ceil_mode)) / s⌋ + 1, and
// with ceil_mode one less when the last window would start past the input and the left padding.
std::int64_t pooled_size(std::int64_t n, std::int64_t k, std::int64_t s, std::int64_t p,
                         std::int64_t d, bool ceil_mode, const char* op,
                         const SourceLocation& location) {
  std::int64_t span = checked_mul(d, k - 1, op, location);
  std::int64_t top = checked_add(n, checked_mul(2, p, op, location), op, location);
  top = checked_add(top, -checked_add(span, 1, op, location), op, location);
  if (ceil_mode) top = checked_add(top, s - 1, op, location);
  std::int64_t out = floor_div(top, s) + 1;
  if (ceil_mode && out > 0 && (out - 1) * s >= n + p) --out;
  return out;
}

// ---- window tables ----

// The input rows [first, end) (every `step`-th) that output position o of one axis reads.
struct AxisWindows {
  std::vector<std::int64_t> first;
  std::vector<std::int64_t> end;
  std::int64_t step = 1;
};

AxisWindows fixed_windows(std::int64_t n, std::int64_t out, std::int64_t k, std::int64_t s,
                          std::int64_t p, std::int64_t d) {
  AxisWindows w;
  w.step = d;
  w.first.resize(std::size_t(out));
  w.end.resize(std::size_t(out));
  for (std::int64_t o = 0; o < out; ++o) {
    const std::int64_t start = o * s - p;
    std::int64_t first = start;
    if (first < 0) first += (-first + d - 1) / d * d;  // the first tap inside the input
    w.first[std::size_t(o)] = first;
    w.end[std::size_t(o)] = std::min(start + (k - 1) * d + 1, n);
  }
  return w;
}

AxisWindows adaptive_windows(std::int64_t n, std::int64_t out) {
  __extension__ using Wide = __int128;  // o·n may pass int64 for huge sizes
  AxisWindows w;
  w.first.resize(std::size_t(out));
  w.end.resize(std::size_t(out));
  for (std::int64_t o = 0; o < out; ++o) {
    w.first[std::size_t(o)] = std::int64_t(Wide(o) * n / out);                // ⌊o·n/out⌋
    w.end[std::size_t(o)] = std::int64_t((Wide(o + 1) * n + out - 1) / out);  // ⌈(o + 1)·n/out⌉
  }
  return w;
}

// ---- argument checks shared by the pools ----

struct PoolGeometry {
  std::int64_t k[2], s[2], p[2], d[2];
};

// The input must be [N, C, H, W] (rank `rank`) of a floating dtype with C, H, W > 0.
void check_pool_input(const Tensor& x, int rank, const char* op, const SourceLocation& location) {
  if (!is_floating(x.dtype())) {
    detail::fail_at(op, location, "expected a float32 or float64 input, got {} {}",
                    dtype_name(x.dtype()), x.shape().str());
  }
  const char* layout = rank == 3 ? "[N, C, L]" : "[N, C, H, W]";
  if (x.rank() != rank) {
    detail::fail_at(op, location, "expected a {}-D input {} (batch first), got shape {}", rank,
                    layout, x.shape().str());
  }
  for (int a = 1; a < rank; ++a) {
    if (x.shape()[a] == 0) {
      detail::fail_at(op, location,
                      "expected an input {} with only the batch N possibly 0, got shape {}", layout,
                      x.shape().str());
    }
  }
}

void check_geometry(const PoolGeometry& g, bool check_padding, const char* op,
                    const SourceLocation& location) {
  for (int a = 0; a < 2; ++a) {
    if (g.k[a] <= 0) {
      detail::fail_at(op, location, "kernel size must be positive, got {}x{}", g.k[0], g.k[1]);
    }
    if (g.s[a] <= 0) {
      detail::fail_at(op, location, "stride must be positive, got {}x{}", g.s[0], g.s[1]);
    }
    if (g.d[a] <= 0) {
      detail::fail_at(op, location, "dilation must be positive, got {}x{}", g.d[0], g.d[1]);
    }
    if (g.p[a] < 0) {
      detail::fail_at(op, location, "padding must be non-negative, got {}x{}", g.p[0], g.p[1]);
    }
    if (check_padding && g.p[a] > g.k[a] / 2) {
      detail::fail_at(op, location,
                      "padding {}x{} must be at most half the kernel size {}x{} (PyTorch's rule)",
                      g.p[0], g.p[1], g.k[0], g.k[1]);
    }
  }
}

std::array<std::int64_t, 2> pooled_sizes(const Tensor& x, const PoolGeometry& g, bool ceil_mode,
                                         const char* op, const SourceLocation& location) {
  std::array<std::int64_t, 2> out{};
  for (int a = 0; a < 2; ++a) {
    out[std::size_t(a)] =
        pooled_size(x.shape()[2 + a], g.k[a], g.s[a], g.p[a], g.d[a], ceil_mode, op, location);
  }
  if (out[0] < 1 || out[1] < 1) {
    detail::fail_at(op, location,
                    "output size is too small: input {} with kernel {}x{}, stride {}x{}, padding "
                    "{}x{}, dilation {}x{} gives an output of {}x{} (expected at least 1x1)",
                    x.shape().str(), g.k[0], g.k[1], g.s[0], g.s[1], g.p[0], g.p[1], g.d[0], g.d[1],
                    out[0], out[1]);
  }
  return out;
}

// ---- max pooling: one op for the fixed and the adaptive windows ----

struct MaxPoolAttrs {
  std::int64_t k[2], s[2], p[2], d[2];  // for adaptive: k holds the output size
  bool adaptive;
  bool ceil_mode;
};

std::array<AxisWindows, 2> max_windows(const MaxPoolAttrs& a, const Shape& x) {
  if (a.adaptive) return {adaptive_windows(x[2], a.k[0]), adaptive_windows(x[3], a.k[1])};
  std::array<AxisWindows, 2> w;
  for (int ax = 0; ax < 2; ++ax) {
    const std::int64_t out =
        pooled_size(x[2 + ax], a.k[ax], a.s[ax], a.p[ax], a.d[ax], a.ceil_mode, "max_pool2d", {});
    w[std::size_t(ax)] = fixed_windows(x[2 + ax], out, a.k[ax], a.s[ax], a.p[ax], a.d[ax]);
  }
  return w;
}

Tensor max_pool_forward(ForwardContext& ctx, const MaxPoolAttrs& a) {
  const Tensor& x = ctx.input(0);
  const std::array<AxisWindows, 2> win = max_windows(a, x.shape());
  const AxisWindows& wh = win[0];
  const AxisWindows& ww = win[1];
  const std::int64_t oh = std::int64_t(wh.first.size());
  const std::int64_t ow = std::int64_t(ww.first.size());
  const std::int64_t planes = x.shape()[0] * x.shape()[1];
  const std::int64_t height = x.shape()[2];
  const std::int64_t width = x.shape()[3];
  Tensor index = empty(Shape{planes, oh * ow}, i64);
  Tensor out = dispatch_floating(x.dtype(), ctx.op_name(), [&]<class T>() {
    Tensor y = empty(Shape{x.shape()[0], x.shape()[1], oh, ow}, x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    std::int64_t* pi = index.data<std::int64_t>();
    const std::int64_t taps = std::max<std::int64_t>(1, a.adaptive ? 1 : a.k[0] * a.k[1]);
    detail::parallel_for(planes, planes * oh * ow * taps, [&](std::int64_t p) {
      const T* plane = px + p * height * width;
      T* yp = py + p * oh * ow;
      std::int64_t* ip = pi + p * oh * ow;
      for (std::int64_t i = 0; i < oh; ++i) {
        const std::int64_t h0 = wh.first[std::size_t(i)], h1 = wh.end[std::size_t(i)];
        for (std::int64_t j = 0; j < ow; ++j) {
          const std::int64_t w0 = ww.first[std::size_t(j)], w1 = ww.end[std::size_t(j)];
          std::int64_t best = h0 * width + w0;
          T best_value = -std::numeric_limits<T>::infinity();
          for (std::int64_t h = h0; h < h1; h += wh.step) {
            for (std::int64_t w = w0; w < w1; w += ww.step) {
              // Branch-free (a random input mispredicts every other comparison).
              const T v = plane[h * width + w];
              const bool take = (v > best_value) | (v != v);  // v != v: NaN
              best_value = take ? v : best_value;
              best = take ? h * width + w : best;
            }
          }
          yp[i * ow + j] = best_value;
          ip[i * ow + j] = best;
        }
      }
    });
    return y;
  });
  ctx.save(index, Residual::constant);
  return out;
}

void max_pool_backward(BackwardContext& ctx, const MaxPoolAttrs&) {
  const Tensor& x = ctx.input(0);
  const Tensor& index = ctx.saved(0);
  const Shape& s = x.shape();
  const std::int64_t planes = s[0] * s[1];
  const Tensor g = reshape(ctx.grad_output(), Shape{planes, index.shape()[1]});
  const Tensor dx = scatter_add(zeros(Shape{planes, s[2] * s[3]}, x.dtype()), 1, index, g);
  ctx.set_grad(0, reshape(dx, s));
}

const Op<MaxPoolAttrs> kMaxPool2d{"max_pool2d", "dx = scatter_add(zeros, 1, argmax, g)",
                                  max_pool_forward, max_pool_backward};
const Op<MaxPoolAttrs> kAdaptiveMaxPool2d{"adaptive_max_pool2d",
                                          "dx = scatter_add(zeros, 1, argmax, g)", max_pool_forward,
                                          max_pool_backward};

// A window of a fixed max pool lies wholly in the padding when dilation jumps over the input:
// PyTorch returns −inf there with an index outside the input; here it is an error.
void check_windows_nonempty(const Tensor& x, const PoolGeometry& g,
                            const std::array<std::int64_t, 2>& out, const char* op,
                            const SourceLocation& location) {
  for (int a = 0; a < 2; ++a) {
    const AxisWindows w =
        fixed_windows(x.shape()[2 + a], out[std::size_t(a)], g.k[a], g.s[a], g.p[a], g.d[a]);
    for (std::size_t o = 0; o < w.first.size(); ++o) {
      if (w.first[o] >= w.end[o]) {
        detail::fail_at(op, location,
                        "window {} along {} of input {} (kernel {}x{}, stride {}x{}, padding "
                        "{}x{}, dilation {}x{}) covers only padding: it has no maximum",
                        o, a == 0 ? "the height" : "the width", x.shape().str(), g.k[0], g.k[1],
                        g.s[0], g.s[1], g.p[0], g.p[1], g.d[0], g.d[1]);
      }
    }
  }
}

// ---- the plane map: y[p, o] = Σ w · x[p, source] ----

struct MapAttrs {
  int kind;  // a PlaneMapOp
  bool transposed;
  double empty_value;  // the output of a row of A with no entries (pad's value); 0 when transposed
  std::int64_t in_plane;
  std::int64_t out_plane;
};

// y = A x (forward) or y = Aᵀ x (transposed), A given by offsets (input 1), sources (input 2) and
// float64 weights (input 3), accumulated in double.
Tensor map_forward(ForwardContext& ctx, const MapAttrs& a) {
  const Tensor& x = ctx.input(0);
  const std::int64_t* offsets = ctx.input(1).data<std::int64_t>();
  const std::int64_t* sources = ctx.input(2).data<std::int64_t>();
  const double* weights = ctx.input(3).data<double>();
  const std::int64_t planes = x.shape()[0];
  const std::int64_t nnz = ctx.input(2).numel();
  return dispatch_floating(x.dtype(), ctx.op_name(), [&]<class T>() {
    const std::int64_t cols_in = a.transposed ? a.out_plane : a.in_plane;
    const std::int64_t cols_out = a.transposed ? a.in_plane : a.out_plane;
    Tensor y = a.transposed ? zeros(Shape{planes, cols_out}, x.dtype())
                            : empty(Shape{planes, cols_out}, x.dtype());
    const T* px = x.data<T>();
    T* py = y.data<T>();
    detail::parallel_for(planes, planes * std::max<std::int64_t>(nnz, cols_out),
                         [&](std::int64_t p) {
                           const T* xp = px + p * cols_in;
                           T* yp = py + p * cols_out;
                           for (std::int64_t o = 0; o < a.out_plane; ++o) {
                             if (a.transposed) {
                               const T g = xp[o];
                               for (std::int64_t k = offsets[o]; k < offsets[o + 1]; ++k) {
                                 yp[sources[k]] += T(weights[k] * double(g));
                               }
                             } else if (offsets[o] == offsets[o + 1]) {
                               yp[o] = T(a.empty_value);
                             } else {
                               // From the first term, not 0: a copied −0 stays −0.
                               std::int64_t k = offsets[o];
                               double acc = weights[k] * double(xp[sources[k]]);
                               for (++k; k < offsets[o + 1]; ++k) {
                                 acc += weights[k] * double(xp[sources[k]]);
                               }
                               yp[o] = T(acc);
                             }
                           }
                         });
    return y;
  });
}

void map_backward(BackwardContext& ctx, const MapAttrs& a);

constexpr const char* kMapFormula = "dx = Aᵀ g (A the op's sparse linear map of each plane)";
constexpr const char* kMapAdjointFormula = "dg = A x (the forward map)";
const Op<MapAttrs> kMapOps[4][2] = {
    {{"avg_pool2d", kMapFormula, map_forward, map_backward},
     {"avg_pool2d_adjoint", kMapAdjointFormula, map_forward, map_backward}},
    {{"adaptive_avg_pool2d", kMapFormula, map_forward, map_backward},
     {"adaptive_avg_pool2d_adjoint", kMapAdjointFormula, map_forward, map_backward}},
    {{"pad", kMapFormula, map_forward, map_backward},
     {"pad_adjoint", kMapAdjointFormula, map_forward, map_backward}},
    {{"interpolate", kMapFormula, map_forward, map_backward},
     {"interpolate_adjoint", kMapAdjointFormula, map_forward, map_backward}},
};

void map_backward(BackwardContext& ctx, const MapAttrs& a) {
  MapAttrs t = a;
  t.transposed = !a.transposed;
  t.empty_value = 0.0;  // the derivative of the affine map is its linear part
  const Op<MapAttrs>& op = kMapOps[a.kind][t.transposed ? 1 : 0];
  ctx.set_grad(0,
               op(t, ctx.location(), ctx.grad_output(), ctx.input(1), ctx.input(2), ctx.input(3)));
}

// The map of a pooling over the given windows: weight 1/divisor(o) on every tap.
template <class Divisor>
detail::PlaneMap pooling_map(const AxisWindows& wh, const AxisWindows& ww, std::int64_t width,
                             Divisor divisor) {
  detail::PlaneMap m;
  const std::size_t oh = wh.first.size();
  const std::size_t ow = ww.first.size();
  m.offsets.reserve(oh * ow + 1);
  m.offsets.push_back(0);
  for (std::size_t i = 0; i < oh; ++i) {
    for (std::size_t j = 0; j < ow; ++j) {
      const double d = divisor(i, j);
      for (std::int64_t h = wh.first[i]; h < wh.end[i]; h += wh.step) {
        for (std::int64_t w = ww.first[j]; w < ww.end[j]; w += ww.step) {
          m.sources.push_back(h * width + w);
          m.weights.push_back(1.0 / d);
        }
      }
      m.offsets.push_back(std::int64_t(m.sources.size()));
    }
  }
  return m;
}

}  // namespace

namespace detail {

// pad's map: an output with no entries is empty_value (the map is then affine; its rule is
// still Aᵀ g). Declared in ops/resample.cpp, its one caller.
Tensor apply_plane_map_filled(PlaneMapOp op, const Tensor& x, std::int64_t planes,
                              std::int64_t in_plane, const PlaneMap& map, const Shape& out_shape,
                              const SourceLocation& location, double empty_value) {
  const std::int64_t out_plane = std::int64_t(map.offsets.size()) - 1;
  const Tensor offsets = int64_tensor(map.offsets, Shape{out_plane + 1});
  const Tensor sources = int64_tensor(map.sources, Shape{std::int64_t(map.sources.size())});
  const Tensor weights = from_vector(map.weights, Shape{std::int64_t(map.weights.size())}, f64);
  const MapAttrs attrs{int(op), false, empty_value, in_plane, out_plane};
  const Tensor y = kMapOps[int(op)][0](attrs, location, reshape(x, Shape{planes, in_plane}),
                                       offsets, sources, weights);
  return reshape(y, out_shape);
}

Tensor apply_plane_map(PlaneMapOp op, const Tensor& x, std::int64_t planes, std::int64_t in_plane,
                       const PlaneMap& map, const Shape& out_shape,
                       const SourceLocation& location) {
  return apply_plane_map_filled(op, x, planes, in_plane, map, out_shape, location, 0.0);
}

Shape checked_shape(const std::vector<std::int64_t>& dims, DType dtype, const char* op,
                    const SourceLocation& location) {
  const Shape shape =
      composite(op, location, [&] { return Shape(std::span<const std::int64_t>(dims), op); });
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(std::size_t(shape.numel()), dtype_size(dtype), &bytes) ||
      bytes > kMaxTensorBytes) {
    fail_at(op, location,
            "an output of shape {} in {} exceeds the {} bytes (1 TiB) a tensor may hold",
            shape.str(), dtype_name(dtype), kMaxTensorBytes);
  }
  return shape;
}

}  // namespace detail

Tensor max_pool2d(const Tensor& input, Size2 kernel_size, const MaxPool2dOptions& options,
                  SourceLocation location) {
  const char* op = "max_pool2d";
  check_pool_input(input, 4, op, location);
  const Size2 stride = options.stride.value_or(kernel_size);
  const PoolGeometry g{{kernel_size.h, kernel_size.w},
                       {stride.h, stride.w},
                       {options.padding.h, options.padding.w},
                       {options.dilation.h, options.dilation.w}};
  check_geometry(g, true, op, location);
  const std::array<std::int64_t, 2> out = pooled_sizes(input, g, options.ceil_mode, op, location);
  check_windows_nonempty(input, g, out, op, location);
  detail::checked_shape({input.shape()[0], input.shape()[1], out[0], out[1]}, input.dtype(), op,
                        location);
  const MaxPoolAttrs attrs{
      {g.k[0], g.k[1]}, {g.s[0], g.s[1]}, {g.p[0], g.p[1]}, {g.d[0], g.d[1]}, false,
      options.ceil_mode};
  return kMaxPool2d(attrs, location, input);
}

Tensor max_pool1d(const Tensor& input, std::int64_t kernel_size, const MaxPool1dOptions& options,
                  SourceLocation location) {
  const char* op = "max_pool1d";
  check_pool_input(input, 3, op, location);
  const std::int64_t stride = options.stride.value_or(kernel_size);
  if (kernel_size <= 0)
    detail::fail_at(op, location, "kernel size must be positive, got {}", kernel_size);
  if (stride <= 0) detail::fail_at(op, location, "stride must be positive, got {}", stride);
  if (options.dilation <= 0) {
    detail::fail_at(op, location, "dilation must be positive, got {}", options.dilation);
  }
  if (options.padding < 0 || options.padding > kernel_size / 2) {
    detail::fail_at(op, location,
                    "padding {} must be between 0 and half the kernel size {} (PyTorch's rule)",
                    options.padding, kernel_size);
  }
  const std::int64_t out = pooled_size(input.shape()[2], kernel_size, stride, options.padding,
                                       options.dilation, options.ceil_mode, op, location);
  if (out < 1) {
    detail::fail_at(op, location,
                    "output size is too small: input {} with kernel {}, stride {}, padding {}, "
                    "dilation {} gives an output of {} (expected at least 1)",
                    input.shape().str(), kernel_size, stride, options.padding, options.dilation,
                    out);
  }
  return detail::composite(op, location, [&] {
    const Tensor y = max_pool2d(unsqueeze(input, 2, location), Size2{1, kernel_size},
                                {.stride = Size2{1, stride},
                                 .padding = Size2{0, options.padding},
                                 .dilation = Size2{1, options.dilation},
                                 .ceil_mode = options.ceil_mode},
                                location);
    return squeeze(y, 2, location);
  });
}

Tensor adaptive_max_pool2d(const Tensor& input, Size2 output_size, SourceLocation location) {
  const char* op = "adaptive_max_pool2d";
  check_pool_input(input, 4, op, location);
  if (output_size.h < 0 || output_size.w < 0) {
    detail::fail_at(op, location, "output size must be non-negative, got {}x{}", output_size.h,
                    output_size.w);
  }
  detail::checked_shape({input.shape()[0], input.shape()[1], output_size.h, output_size.w},
                        input.dtype(), op, location);
  const MaxPoolAttrs attrs{{output_size.h, output_size.w}, {1, 1}, {0, 0}, {1, 1}, true, false};
  return kAdaptiveMaxPool2d(attrs, location, input);
}

Tensor avg_pool2d(const Tensor& input, Size2 kernel_size, const AvgPool2dOptions& options,
                  SourceLocation location) {
  const char* op = "avg_pool2d";
  check_pool_input(input, 4, op, location);
  const Size2 stride = options.stride.value_or(kernel_size);
  const PoolGeometry g{{kernel_size.h, kernel_size.w},
                       {stride.h, stride.w},
                       {options.padding.h, options.padding.w},
                       {1, 1}};
  check_geometry(g, true, op, location);
  if (options.divisor_override && *options.divisor_override == 0) {
    detail::fail_at(op, location, "divisor_override must not be zero");
  }
  const std::array<std::int64_t, 2> out = pooled_sizes(input, g, options.ceil_mode, op, location);
  const Shape out_shape = detail::checked_shape(
      {input.shape()[0], input.shape()[1], out[0], out[1]}, input.dtype(), op, location);
  const std::int64_t height = input.shape()[2];
  const std::int64_t width = input.shape()[3];
  // PyTorch's window: [o·s − p, min(o·s − p + k, n + p)) counted with its padding, then clipped.
  std::array<AxisWindows, 2> win;
  std::array<std::vector<std::int64_t>, 2> padded;
  for (int a = 0; a < 2; ++a) {
    const std::int64_t n = input.shape()[2 + a];
    AxisWindows& w = win[std::size_t(a)];
    for (std::int64_t o = 0; o < out[std::size_t(a)]; ++o) {
      const std::int64_t start = o * g.s[a] - g.p[a];
      const std::int64_t end = std::min(start + g.k[a], n + g.p[a]);
      padded[std::size_t(a)].push_back(end - start);
      w.first.push_back(std::max<std::int64_t>(start, 0));
      w.end.push_back(std::min(end, n));
    }
  }
  const detail::PlaneMap map =
      pooling_map(win[0], win[1], width, [&](std::size_t i, std::size_t j) {
        if (options.divisor_override) return double(*options.divisor_override);
        if (options.count_include_pad) return double(padded[0][i] * padded[1][j]);
        return double((win[0].end[i] - win[0].first[i]) * (win[1].end[j] - win[1].first[j]));
      });
  return detail::apply_plane_map(detail::PlaneMapOp::avg_pool2d, input,
                                 input.shape()[0] * input.shape()[1], height * width, map,
                                 out_shape, location);
}

Tensor adaptive_avg_pool2d(const Tensor& input, Size2 output_size, SourceLocation location) {
  const char* op = "adaptive_avg_pool2d";
  check_pool_input(input, 4, op, location);
  if (output_size.h < 0 || output_size.w < 0) {
    detail::fail_at(op, location, "output size must be non-negative, got {}x{}", output_size.h,
                    output_size.w);
  }
  const Shape out_shape =
      detail::checked_shape({input.shape()[0], input.shape()[1], output_size.h, output_size.w},
                            input.dtype(), op, location);
  const AxisWindows wh = adaptive_windows(input.shape()[2], output_size.h);
  const AxisWindows ww = adaptive_windows(input.shape()[3], output_size.w);
  const detail::PlaneMap map =
      pooling_map(wh, ww, input.shape()[3], [&](std::size_t i, std::size_t j) {
        return double((wh.end[i] - wh.first[i]) * (ww.end[j] - ww.first[j]));
      });
  return detail::apply_plane_map(detail::PlaneMapOp::adaptive_avg_pool2d, input,
                                 input.shape()[0] * input.shape()[1],
                                 input.shape()[2] * input.shape()[3], map, out_shape, location);
}

namespace detail {

// Values spaced 4/n apart in a random order: no ties, so finite differences of a max pool never
// straddle one.
Tensor distinct_sample(const Shape& shape, DType dtype, Generator& gen) {
  const std::int64_t n = shape.numel();
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    values[std::size_t(i)] = -2.0 + 4.0 * (double(i) + 0.5) / double(n);
  for (std::int64_t i = n - 1; i > 0; --i) {
    std::swap(values[std::size_t(i)], values[std::size_t(gen.next() % std::uint64_t(i + 1))]);
  }
  return from_vector(values, shape, dtype);
}

// The Jacobian of a linear map given as a naive function of the flat input (float64).
Tensor linear_jacobian(const Tensor& x,
                       const std::function<std::vector<double>(const std::vector<double>&)>& f) {
  const std::int64_t n = x.numel();
  const std::int64_t m = std::int64_t(f(x.to_vector()).size());
  std::vector<double> jac(std::size_t(m * n), 0.0);
  std::vector<double> basis(std::size_t(n), 0.0);
  for (std::int64_t j = 0; j < n; ++j) {
    basis[std::size_t(j)] = 1.0;
    const std::vector<double> column = f(basis);
    for (std::int64_t i = 0; i < m; ++i) jac[std::size_t(i * n + j)] = column[std::size_t(i)];
    basis[std::size_t(j)] = 0.0;
  }
  return from_vector(jac, Shape{m, n}, f64);
}

namespace {

// A naive pooling over [N, C, H, W]: for each output (row-major), the list of (input index,
// weight) it reads, from the definition (PyTorch's documented formulas), without the kernels'
// window tables.
struct NaivePool {
  std::int64_t k[2], s[2], p[2], d[2];
  bool ceil_mode, adaptive, count_include_pad;
  std::optional<std::int64_t> divisor;
  std::int64_t adaptive_out[2];
};

}  // namespace

void register_pool_ops(OpRegistry& registry) {
  // max pools: the one-hot of each window's naive arg-max.
  const auto max_jacobian = [](const NaivePool& np) {
    return [np](const std::vector<Tensor>& in) {
      const Shape& s = in[0].shape();
      const std::vector<double> x = in[0].to_vector();
      const std::int64_t hw[2] = {s[2], s[3]};
      std::int64_t out[2];
      for (int a = 0; a < 2; ++a) {
        out[a] = np.adaptive ? np.adaptive_out[a]
                             : pooled_size(hw[a], np.k[a], np.s[a], np.p[a], np.d[a], np.ceil_mode,
                                           "test", {});
      }
      const std::int64_t m = s[0] * s[1] * out[0] * out[1];
      std::vector<double> jac(std::size_t(m * in[0].numel()), 0.0);
      std::int64_t row = 0;
      for (std::int64_t plane = 0; plane < s[0] * s[1]; ++plane) {
        for (std::int64_t i = 0; i < out[0]; ++i) {
          for (std::int64_t j = 0; j < out[1]; ++j, ++row) {
            std::vector<std::int64_t> taps;
            std::int64_t lo[2], hi[2];
            for (int a = 0; a < 2; ++a) {
              const std::int64_t o = a == 0 ? i : j;
              lo[a] = np.adaptive ? std::int64_t(std::floor(double(o * hw[a]) / double(out[a])))
                                  : o * np.s[a] - np.p[a];
              hi[a] = np.adaptive
                          ? std::int64_t(std::ceil(double((o + 1) * hw[a]) / double(out[a])))
                          : lo[a] + np.d[a] * (np.k[a] - 1) + 1;
            }
            std::int64_t best = -1;
            for (std::int64_t h = lo[0]; h < hi[0]; h += np.adaptive ? 1 : np.d[0]) {
              for (std::int64_t w = lo[1]; w < hi[1]; w += np.adaptive ? 1 : np.d[1]) {
                if (h < 0 || h >= hw[0] || w < 0 || w >= hw[1]) continue;
                const std::int64_t at = plane * hw[0] * hw[1] + h * hw[1] + w;
                if (best < 0 || x[std::size_t(at)] > x[std::size_t(best)]) best = at;
              }
            }
            jac[std::size_t(row * in[0].numel() + best)] = 1.0;
          }
        }
      }
      return std::vector<Tensor>{from_vector(jac, Shape{m, in[0].numel()}, f64)};
    };
  };
  const auto max_samples = [](std::uint64_t seed, std::vector<Shape> shapes) {
    return [seed, shapes](DType dtype) {
      Generator gen(seed);
      std::vector<OpSample> out;
      for (const Shape& s : shapes) out.push_back({s.str(), {distinct_sample(s, dtype, gen)}});
      return out;
    };
  };
  registry.add({"max_pool2d", [](const auto& in) { return max_pool2d(in[0], 2); },
                max_samples(211, {Shape{2, 2, 4, 4}, Shape{1, 1, 3, 5}}),
                max_jacobian({{2, 2}, {2, 2}, {0, 0}, {1, 1}, false, false, true, {}, {0, 0}})});
  registry.add({"max_pool2d(kernel 3x2, stride (2, 1), padding (1, 1), dilation (1, 2))",
                [](const auto& in) {
                  return max_pool2d(in[0], Size2{3, 2},
                                    {.stride = Size2{2, 1}, .padding = 1, .dilation = Size2{1, 2}});
                },
                max_samples(223, {Shape{1, 2, 5, 6}, Shape{2, 1, 4, 3}}),
                max_jacobian({{3, 2}, {2, 1}, {1, 1}, {1, 2}, false, false, true, {}, {0, 0}})});
  registry.add({"max_pool2d(kernel 3, stride 2, padding 1, ceil_mode)",
                [](const auto& in) {
                  return max_pool2d(in[0], 3, {.stride = 2, .padding = 1, .ceil_mode = true});
                },
                max_samples(227, {Shape{1, 2, 5, 6}, Shape{1, 1, 4, 4}}),
                max_jacobian({{3, 3}, {2, 2}, {1, 1}, {1, 1}, true, false, true, {}, {0, 0}})});
  registry.add({"max_pool1d", [](const auto& in) { return max_pool1d(in[0], 2); },
                max_samples(229, {Shape{2, 3, 5}, Shape{1, 1, 2}}),
                [=](const std::vector<Tensor>& in) {
                  const Shape& s = in[0].shape();
                  return max_jacobian(
                      {{1, 2}, {1, 2}, {0, 0}, {1, 1}, false, false, true, {}, {0, 0}})(
                      {reshape(in[0], Shape{s[0], s[1], 1, s[2]})});
                }});
  registry.add(
      {"max_pool1d(kernel 3, stride 2, padding 1, dilation 2, ceil_mode)",
       [](const auto& in) {
         return max_pool1d(in[0], 3, {.stride = 2, .padding = 1, .dilation = 2, .ceil_mode = true});
       },
       max_samples(233, {Shape{2, 2, 9}, Shape{1, 1, 6}}),
       [=](const std::vector<Tensor>& in) {
         const Shape& s = in[0].shape();
         return max_jacobian({{1, 3}, {1, 2}, {0, 1}, {1, 2}, true, false, true, {}, {0, 0}})(
             {reshape(in[0], Shape{s[0], s[1], 1, s[2]})});
       }});
  registry.add({"adaptive_max_pool2d",
                [](const auto& in) {
                  return adaptive_max_pool2d(in[0], Size2{3, 2});
                },
                max_samples(239, {Shape{2, 2, 5, 7}, Shape{1, 1, 2, 2}}),
                max_jacobian({{0, 0}, {1, 1}, {0, 0}, {1, 1}, false, true, true, {}, {3, 2}})});

  // averaging pools: the naive mean over each window's taps, with PyTorch's divisors.
  const auto avg_jacobian = [](const NaivePool& np) {
    return [np](const std::vector<Tensor>& in) {
      const Shape s = in[0].shape();
      return std::vector<Tensor>{linear_jacobian(in[0], [&](const std::vector<double>& x) {
        std::vector<double> y;
        const std::int64_t hw[2] = {s[2], s[3]};
        std::int64_t out[2];
        for (int a = 0; a < 2; ++a) {
          out[a] = np.adaptive
                       ? np.adaptive_out[a]
                       : pooled_size(hw[a], np.k[a], np.s[a], np.p[a], 1, np.ceil_mode, "test", {});
        }
        for (std::int64_t plane = 0; plane < s[0] * s[1]; ++plane) {
          for (std::int64_t i = 0; i < out[0]; ++i) {
            for (std::int64_t j = 0; j < out[1]; ++j) {
              double total = 0.0;
              std::int64_t inside = 0, counted = 0;
              std::int64_t lo[2], hi[2];
              for (int a = 0; a < 2; ++a) {
                const std::int64_t o = a == 0 ? i : j;
                lo[a] = np.adaptive ? std::int64_t(std::floor(double(o * hw[a]) / double(out[a])))
                                    : o * np.s[a] - np.p[a];
                hi[a] = np.adaptive
                            ? std::int64_t(std::ceil(double((o + 1) * hw[a]) / double(out[a])))
                            : lo[a] + np.k[a];
              }
              for (std::int64_t h = lo[0]; h < hi[0]; ++h) {
                for (std::int64_t w = lo[1]; w < hi[1]; ++w) {
                  const bool in_padding =
                      h >= -np.p[0] && h < hw[0] + np.p[0] && w >= -np.p[1] && w < hw[1] + np.p[1];
                  if (h >= 0 && h < hw[0] && w >= 0 && w < hw[1]) {
                    total += x[std::size_t(plane * hw[0] * hw[1] + h * hw[1] + w)];
                    ++inside;
                  }
                  if (in_padding) ++counted;
                }
              }
              const double divisor = np.divisor             ? double(*np.divisor)
                                     : np.count_include_pad ? double(counted)
                                                            : double(inside);
              y.push_back(inside == 0 ? 0.0 : total / divisor);
            }
          }
        }
        return y;
      })};
    };
  };
  const auto avg_samples = [](std::uint64_t seed, std::vector<Shape> shapes) {
    return [seed, shapes](DType dtype) {
      Generator gen(seed);
      std::vector<OpSample> out;
      for (const Shape& s : shapes) out.push_back({s.str(), {sample(s, dtype, gen)}});
      return out;
    };
  };
  registry.add({"avg_pool2d", [](const auto& in) { return avg_pool2d(in[0], 2); },
                avg_samples(241, {Shape{2, 2, 4, 4}, Shape{1, 1, 3, 5}}),
                avg_jacobian({{2, 2}, {2, 2}, {0, 0}, {1, 1}, false, false, true, {}, {0, 0}})});
  registry.add({"avg_pool2d(kernel 3, stride 2, padding 1, ceil_mode)",
                [](const auto& in) {
                  return avg_pool2d(in[0], 3,
                                    {.stride = 2,
                                     .padding = 1,
                                     .ceil_mode = true,
                                     .count_include_pad = true,
                                     .divisor_override = {}});
                },
                avg_samples(251, {Shape{1, 2, 5, 6}, Shape{1, 1, 4, 4}}),
                avg_jacobian({{3, 3}, {2, 2}, {1, 1}, {1, 1}, true, false, true, {}, {0, 0}})});
  registry.add({"avg_pool2d(kernel 3, stride 2, padding 1, ceil_mode, count_include_pad=false)",
                [](const auto& in) {
                  return avg_pool2d(in[0], 3,
                                    {.stride = 2,
                                     .padding = 1,
                                     .ceil_mode = true,
                                     .count_include_pad = false,
                                     .divisor_override = {}});
                },
                avg_samples(257, {Shape{1, 2, 5, 6}, Shape{1, 1, 4, 4}}),
                avg_jacobian({{3, 3}, {2, 2}, {1, 1}, {1, 1}, true, false, false, {}, {0, 0}})});
  registry.add({"avg_pool2d(kernel (3, 2), stride 1, padding (1, 0), divisor_override=5)",
                [](const auto& in) {
                  return avg_pool2d(in[0], Size2{3, 2},
                                    {.stride = 1, .padding = Size2{1, 0}, .divisor_override = 5});
                },
                avg_samples(263, {Shape{1, 2, 4, 3}, Shape{2, 1, 2, 2}}),
                avg_jacobian({{3, 2}, {1, 1}, {1, 0}, {1, 1}, false, false, true, 5, {0, 0}})});
  registry.add({"adaptive_avg_pool2d",
                [](const auto& in) {
                  return adaptive_avg_pool2d(in[0], Size2{3, 2});
                },
                avg_samples(269, {Shape{2, 2, 5, 7}, Shape{1, 1, 2, 1}}),
                avg_jacobian({{0, 0}, {1, 1}, {0, 0}, {1, 1}, false, true, true, {}, {3, 2}})});
}

}  // namespace detail
}  // namespace tg
