// Padding and resampling (PyTorch 1.13's torch.nn.functional semantics and checks).
//
//   pad          constant: y = x placed at its offset, `value` elsewhere (negative amounts crop);
//                reflect / replicate: y[j] = x[reflect(j − before)] / x[clamp(j − before)]
//   interpolate  nearest: y[o] = x[src(o)]; bilinear: y = Σ of the 4 neighbours · λ_h λ_w
//
// All are linear in x (constant pad with a value: affine): each is a detail::PlaneMap
// (ops/pool.cpp) applied to every plane, whose rule is the transposed map (dx = Aᵀ g): for pad the
// crop of g with the reflected or replicated borders added back, for interpolate g spread back to
// the source pixels with their weights. The coordinate maps are PyTorch's CPU kernels', in their
// precision (float for float32):
//   nearest   src = min(⌊o·scale⌋, in − 1), scale = in/out, or 1/scale_factor when a factor is
//             given (out = in copies, out = 2·in halves, as PyTorch's shortcuts)
//   bilinear  src = max(scale·(o + ½) − ½, 0), or scale·o with align_corners and scale
//             (in − 1)/(out − 1); i₀ = ⌊src⌋, i₁ = min(i₀ + 1, in − 1), λ₁ = src − i₀ (out = in
//             copies). Every tap is kept, zero weights too, so an inf next to a tap of weight 0
//             gives NaN as in PyTorch.
#include "ops/resample.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "ops/everyday.h"
#include "ops/pool.h"
#include "ops/registrations.h"

namespace tg {
namespace detail {
// ops/pool.cpp: apply_plane_map with `empty_value` where a row of the map has no entries.
Tensor apply_plane_map_filled(PlaneMapOp op, const Tensor& x, std::int64_t planes,
                              std::int64_t in_plane, const PlaneMap& map, const Shape& out_shape,
                              const SourceLocation& location, double empty_value);
}  // namespace detail
namespace {

std::string pads_text(const std::vector<std::int64_t>& pads) {
  std::string s = "(";
  for (std::size_t i = 0; i < pads.size(); ++i) s += (i ? ", " : "") + std::to_string(pads[i]);
  return s + ")";
}

const char* mode_name(PadMode mode) {
  switch (mode) {
    case PadMode::constant:
      return "constant";
    case PadMode::reflect:
      return "reflect";
    case PadMode::replicate:
      return "replicate";
  }
  return "?";
}

}  // namespace

Tensor pad(const Tensor& input, const std::vector<std::int64_t>& pads, PadMode mode, double value,
           SourceLocation location) {
  const char* op = "pad";
  if (!is_floating(input.dtype())) {
    detail::fail_at(op, location, "expected a float32 or float64 input, got {} {}",
                    dtype_name(input.dtype()), input.shape().str());
  }
  const int rank = input.rank();
  if (pads.size() % 2 != 0) {
    detail::fail_at(op, location, "padding length must be even ((before, after) pairs), got {}",
                    pads_text(pads));
  }
  const int k = int(pads.size() / 2);  // padded dimensions, the last k
  if (k > rank) {
    detail::fail_at(op, location, "padding {} pads {} dimensions, but the input {} has {}",
                    pads_text(pads), k, input.shape().str(), rank);
  }
  if (mode != PadMode::constant) {
    const bool ok = (k == 1 && (rank == 2 || rank == 3)) || (k == 2 && (rank == 3 || rank == 4));
    if (!ok) {
      detail::fail_at(op, location,
                      "{} padding pads the last dimension of a 2-D or 3-D input (2 amounts) or "
                      "the last two of a 3-D or 4-D input (4 amounts), as PyTorch; got {} "
                      "amounts for input {}",
                      mode_name(mode), pads.size(), input.shape().str());
    }
    if (value != 0.0) {
      detail::fail_at(op, location, "{} padding takes no value (got {})", mode_name(mode), value);
    }
    // PyTorch: a possibly empty batch, every other dimension non-empty.
    const int batch = rank == k + 2 ? 1 : 0;
    for (int d = batch; d < rank; ++d) {
      if (input.shape()[d] == 0) {
        detail::fail_at(op, location,
                        "{} padding expects non-empty dimensions (but the batch), got input {}",
                        mode_name(mode), input.shape().str());
      }
    }
  } else if (input.dtype() == f32 && std::isfinite(value) &&
             std::abs(value) > double(std::numeric_limits<float>::max())) {
    detail::fail_at(op, location, "value {} does not fit in float32 (input {})", value,
                    input.shape().str());
  }
  // Output sizes; the padded dimension d (of the last k) is padded by pads[2j], pads[2j + 1] with
  // j = rank − 1 − d.
  std::vector<std::int64_t> out_dims(input.shape().begin(), input.shape().end());
  std::vector<std::int64_t> before(std::size_t(rank), 0);
  for (int j = 0; j < k; ++j) {
    const int d = rank - 1 - j;
    const std::int64_t n = input.shape()[d];
    const std::int64_t lo = pads[std::size_t(2 * j)], hi = pads[std::size_t(2 * j + 1)];
    if (mode == PadMode::reflect && (lo >= n || hi >= n)) {
      detail::fail_at(op, location,
                      "reflect padding ({}, {}) of dimension {} must be less than its size {} "
                      "(input {})",
                      lo, hi, d, n, input.shape().str());
    }
    std::int64_t size = 0;
    if (__builtin_add_overflow(n, lo, &size) || __builtin_add_overflow(size, hi, &size)) {
      detail::fail_at(op, location, "padding {} overflows int64 on input {}", pads_text(pads),
                      input.shape().str());
    }
    // PyTorch: a constant padding with only crops may leave a dimension empty, one that also
    // pads may not; reflect and replicate leave every dimension non-empty.
    const bool crops_only =
        mode == PadMode::constant &&
        std::all_of(pads.begin(), pads.end(), [](std::int64_t a) { return a <= 0; });
    const std::int64_t least = crops_only ? 0 : 1;
    if (size < least) {
      detail::fail_at(op, location,
                      "padding ({}, {}) of dimension {} (size {}) gives size {}, expected at "
                      "least {} (input {})",
                      lo, hi, d, n, size, least, input.shape().str());
    }
    // PyTorch crops before it pads: the crops alone must fit in the dimension (a crop of 2 from
    // a dimension of 1 is an error, however much the other side pads).
    if (n + std::min<std::int64_t>(lo, 0) + std::min<std::int64_t>(hi, 0) < 0) {
      detail::fail_at(op, location,
                      "padding ({}, {}) of dimension {} crops more than its size {} (input {})", lo,
                      hi, d, n, input.shape().str());
    }
    out_dims[std::size_t(d)] = size;
    before[std::size_t(d)] = lo;
  }
  const Shape out_shape = detail::checked_shape(out_dims, input.dtype(), op, location);
  std::int64_t planes = 1, in_plane = 1, out_plane = 1;
  for (int d = 0; d < rank; ++d) {
    if (d < rank - k) {
      planes *= input.shape()[d];
    } else {
      in_plane *= input.shape()[d];
      out_plane *= out_shape[d];
    }
  }
  // The map: each output position of the padded block reads at most one input position.
  detail::PlaneMap map;
  map.offsets.reserve(std::size_t(out_plane) + 1);
  map.offsets.push_back(0);
  std::vector<std::int64_t> at(std::size_t(rank), 0);  // odometer over the last k dims
  for (std::int64_t o = 0; o < out_plane; ++o) {
    std::int64_t source = 0;
    bool inside = true;
    for (int d = rank - k; d < rank; ++d) {
      const std::int64_t n = input.shape()[d];
      std::int64_t s = at[std::size_t(d)] - before[std::size_t(d)];
      if (mode == PadMode::reflect) {
        if (s < 0) s = -s;
        if (s >= n) s = 2 * (n - 1) - s;
      } else if (mode == PadMode::replicate) {
        s = std::clamp<std::int64_t>(s, 0, n - 1);
      } else if (s < 0 || s >= n) {
        inside = false;
      }
      source = source * n + s;
    }
    if (inside) {
      map.sources.push_back(source);
      map.weights.push_back(1.0);
    }
    map.offsets.push_back(std::int64_t(map.sources.size()));
    for (int d = rank - 1; d >= rank - k; --d) {
      if (++at[std::size_t(d)] < out_shape[d]) break;
      at[std::size_t(d)] = 0;
    }
  }
  // Positions outside the input have no entry: the op writes the value there.
  return detail::apply_plane_map_filled(detail::PlaneMapOp::pad, input, planes, in_plane, map,
                                        out_shape, location,
                                        mode == PadMode::constant ? value : 0.0);
}

namespace {

// One axis of a bilinear resampling: the taps i₀, i₁ and weights λ₀, λ₁ of each output index, in
// PyTorch's precision T.
template <class T>
void bilinear_axis(std::int64_t in, std::int64_t out, bool align_corners,
                   std::optional<double> scale_factor, std::vector<std::int64_t>& i0,
                   std::vector<std::int64_t>& i1, std::vector<double>& l0,
                   std::vector<double>& l1) {
  T ratio;
  if (align_corners) {
    ratio = out > 1 ? T(in - 1) / T(out - 1) : T(0);
  } else {
    ratio = scale_factor ? T(1.0 / *scale_factor) : T(in) / T(out);
  }
  for (std::int64_t o = 0; o < out; ++o) {
    if (out == in) {
      i0.push_back(o);
      i1.push_back(o);
      l0.push_back(1.0);
      l1.push_back(0.0);
      continue;
    }
    T real = align_corners ? ratio * T(o) : ratio * (T(o) + T(0.5)) - T(0.5);
    if (!align_corners && real < T(0)) real = T(0);
    const std::int64_t a = std::int64_t(real);
    const std::int64_t b = a + (a < in - 1 ? 1 : 0);
    const T lambda1 = std::min(std::max(real - T(a), T(0)), T(1));
    const T lambda0 = T(1) - lambda1;
    i0.push_back(a);
    i1.push_back(b);
    l0.push_back(double(lambda0));
    l1.push_back(double(lambda1));
  }
}

// PyTorch's nearest source index ⌊o·scale⌋ (float arithmetic, as its kernel), with no shortcut
// for an output as long as the input or twice as long: PyTorch 1.13's kernel for [N, C, H, W]
// with C > 1 takes none (scale_factor 1.1 on 4 rows picks rows 0, 0, 1, 2), while its
// channels-last kernel (also used when C = 1) and its backward copy or halve the index.
std::int64_t nearest_source(std::int64_t o, std::int64_t in, std::int64_t out,
                            std::optional<double> scale_factor) {
  const float scale = scale_factor ? float(1.0 / *scale_factor) : float(in) / float(out);
  return std::min(std::int64_t(std::floor(float(o) * scale)), in - 1);
}

}  // namespace

Tensor interpolate(const Tensor& input, const InterpolateOptions& options,
                   SourceLocation location) {
  const char* op = "interpolate";
  if (!is_floating(input.dtype())) {
    detail::fail_at(op, location, "expected a float32 or float64 input, got {} {}",
                    dtype_name(input.dtype()), input.shape().str());
  }
  if (input.rank() != 4) {
    detail::fail_at(op, location, "expected a 4-D input [N, C, H, W], got shape {}",
                    input.shape().str());
  }
  if (input.shape()[1] == 0 || input.shape()[2] == 0 || input.shape()[3] == 0) {
    detail::fail_at(op, location,
                    "expected an input [N, C, H, W] with only the batch N possibly 0, got {}",
                    input.shape().str());
  }
  if (options.size.has_value() == options.scale_factor.has_value()) {
    detail::fail_at(op, location, "give exactly one of size and scale_factor, got {}",
                    options.size ? "both" : "neither");
  }
  const bool bilinear = options.mode == InterpolateMode::bilinear;
  if (options.align_corners && !bilinear) {
    detail::fail_at(op, location, "align_corners is only for bilinear, not nearest (as PyTorch)");
  }
  const std::int64_t in_h = input.shape()[2], in_w = input.shape()[3];
  std::array<std::int64_t, 2> out{};
  std::array<std::optional<double>, 2> factor{};
  if (options.size) {
    out = {options.size->h, options.size->w};
  } else {
    for (int a = 0; a < 2; ++a) {
      const double s = (*options.scale_factor)[std::size_t(a)];
      const double n = std::floor(double(input.shape()[2 + a]) * s);
      if (!std::isfinite(s) || s <= 0.0 || !(n < 9.2e18)) {
        detail::fail_at(op, location, "scale_factor ({}, {}) must be positive and finite",
                        (*options.scale_factor)[0], (*options.scale_factor)[1]);
      }
      out[std::size_t(a)] = std::int64_t(n);
      factor[std::size_t(a)] = s;
    }
  }
  if (out[0] <= 0 || out[1] <= 0) {
    detail::fail_at(op, location,
                    "input and output sizes must be greater than 0: input {}x{}, output {}x{}",
                    in_h, in_w, out[0], out[1]);
  }
  const Shape out_shape = detail::checked_shape(
      {input.shape()[0], input.shape()[1], out[0], out[1]}, input.dtype(), op, location);
  detail::PlaneMap map;
  map.offsets.reserve(std::size_t(out[0] * out[1]) + 1);
  map.offsets.push_back(0);
  if (!bilinear) {
    std::vector<std::int64_t> sw(static_cast<std::size_t>(out[1]));
    for (std::int64_t j = 0; j < out[1]; ++j) {
      sw[std::size_t(j)] = nearest_source(j, in_w, out[1], factor[1]);
    }
    for (std::int64_t i = 0; i < out[0]; ++i) {
      const std::int64_t sh = nearest_source(i, in_h, out[0], factor[0]);
      for (std::int64_t j = 0; j < out[1]; ++j) {
        map.sources.push_back(sh * in_w + sw[std::size_t(j)]);
        map.weights.push_back(1.0);
        map.offsets.push_back(std::int64_t(map.sources.size()));
      }
    }
  } else {
    std::vector<std::int64_t> h0, h1, w0, w1;
    std::vector<double> hl0, hl1, wl0, wl1;
    dispatch_floating(input.dtype(), op, [&]<class T>() {
      bilinear_axis<T>(in_h, out[0], options.align_corners, factor[0], h0, h1, hl0, hl1);
      bilinear_axis<T>(in_w, out[1], options.align_corners, factor[1], w0, w1, wl0, wl1);
    });
    for (std::size_t i = 0; i < std::size_t(out[0]); ++i) {
      for (std::size_t j = 0; j < std::size_t(out[1]); ++j) {
        const std::int64_t rows[2] = {h0[i], h1[i]};
        const std::int64_t cols[2] = {w0[j], w1[j]};
        const double hw[2] = {hl0[i], hl1[i]};
        const double ww[2] = {wl0[j], wl1[j]};
        for (int a = 0; a < 2; ++a) {
          for (int b = 0; b < 2; ++b) {
            map.sources.push_back(rows[a] * in_w + cols[b]);
            map.weights.push_back(hw[a] * ww[b]);
          }
        }
        map.offsets.push_back(std::int64_t(map.sources.size()));
      }
    }
  }
  return detail::apply_plane_map(detail::PlaneMapOp::interpolate, input,
                                 input.shape()[0] * input.shape()[1], in_h * in_w, map, out_shape,
                                 location);
}

namespace detail {
namespace {

// pad's linear part from the definition, on any rank (the value's offset has no derivative).
std::vector<double> naive_pad(const std::vector<double>& x, const Shape& s,
                              const std::vector<std::int64_t>& pads, PadMode mode) {
  const int rank = s.rank();
  const int k = int(pads.size() / 2);
  std::vector<std::int64_t> out(s.begin(), s.end());
  for (int j = 0; j < k; ++j) out[std::size_t(rank - 1 - j)] += pads[2 * j] + pads[2 * j + 1];
  std::int64_t total = 1;
  for (std::int64_t d : out) total *= d;
  std::vector<double> y;
  for (std::int64_t flat = 0; flat < total; ++flat) {
    std::int64_t rest = flat, source = 0, stride = 1;
    bool inside = true;
    for (int d = rank - 1; d >= 0; --d) {
      std::int64_t i = rest % out[std::size_t(d)];
      rest /= out[std::size_t(d)];
      const int j = rank - 1 - d;
      if (j < k) i -= pads[std::size_t(2 * j)];
      const std::int64_t n = s[d];
      if (mode == PadMode::reflect) {
        while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
      } else if (mode == PadMode::replicate) {
        i = std::clamp<std::int64_t>(i, 0, n - 1);
      } else if (i < 0 || i >= n) {
        inside = false;
      }
      source += i * stride;
      stride *= n;
    }
    y.push_back(inside ? x[std::size_t(source)] : 0.0);
  }
  return y;
}

// interpolate from the textbook formulas in double.
std::vector<double> naive_interpolate(const std::vector<double>& x, const Shape& s,
                                      const std::array<std::int64_t, 2>& out,
                                      const std::array<double, 2>& factor, bool bilinear,
                                      bool align_corners) {
  const std::int64_t in[2] = {s[2], s[3]};
  std::vector<double> y;
  const auto coordinate = [&](int a, std::int64_t o) {
    const double scale = factor[std::size_t(a)] > 0 ? 1.0 / factor[std::size_t(a)]
                                                    : double(in[a]) / double(out[std::size_t(a)]);
    if (!bilinear) return std::min(std::floor(double(o) * scale), double(in[a] - 1));
    if (align_corners) {
      return out[std::size_t(a)] > 1
                 ? double(o) * double(in[a] - 1) / double(out[std::size_t(a)] - 1)
                 : 0.0;
    }
    return std::max(scale * (double(o) + 0.5) - 0.5, 0.0);
  };
  for (std::int64_t plane = 0; plane < s[0] * s[1]; ++plane) {
    for (std::int64_t i = 0; i < out[0]; ++i) {
      for (std::int64_t j = 0; j < out[1]; ++j) {
        const double ch = coordinate(0, i), cw = coordinate(1, j);
        const std::int64_t h0 = std::int64_t(ch), w0 = std::int64_t(cw);
        const std::int64_t h1 = std::min(h0 + 1, in[0] - 1), w1 = std::min(w0 + 1, in[1] - 1);
        const double lh = ch - double(h0), lw = cw - double(w0);
        const auto at = [&](std::int64_t h, std::int64_t w) {
          return x[std::size_t(plane * in[0] * in[1] + h * in[1] + w)];
        };
        y.push_back(bilinear ? (1 - lh) * ((1 - lw) * at(h0, w0) + lw * at(h0, w1)) +
                                   lh * ((1 - lw) * at(h1, w0) + lw * at(h1, w1))
                             : at(h0, w0));
      }
    }
  }
  return y;
}

}  // namespace

void register_resample_ops(OpRegistry& registry) {
  const auto samples = [](std::uint64_t seed, std::vector<Shape> shapes) {
    return [seed, shapes](DType dtype) {
      Generator gen(seed);
      std::vector<OpSample> out;
      for (const Shape& s : shapes) out.push_back({s.str(), {sample(s, dtype, gen)}});
      return out;
    };
  };
  struct PadCase {
    const char* name;
    PadMode mode;
    std::vector<std::int64_t> pads;
    double value;
    std::vector<Shape> shapes;
  };
  for (const PadCase& c : std::vector<PadCase>{
           {"pad(constant)", PadMode::constant, {1, 2, 0, -1}, 0.5, {Shape{2, 3, 4}, Shape{2, 2}}},
           {"pad(reflect)",
            PadMode::reflect,
            {2, 1, 1, 2},
            0.0,
            {Shape{1, 2, 3, 4}, Shape{2, 3, 3}}},
           {"pad(replicate)",
            PadMode::replicate,
            {2, -1, 1, 2},
            0.0,
            {Shape{1, 2, 3, 4}, Shape{2, 3, 2}}}}) {
    registry.add({c.name, [c](const auto& in) { return pad(in[0], c.pads, c.mode, c.value); },
                  samples(271 + std::uint64_t(c.mode), c.shapes),
                  [c](const std::vector<Tensor>& in) {
                    const Shape s = in[0].shape();
                    return std::vector<Tensor>{
                        linear_jacobian(in[0], [&](const std::vector<double>& x) {
                          return naive_pad(x, s, c.pads, c.mode);
                        })};
                  }});
  }
  struct InterpolateCase {
    const char* name;
    bool bilinear;
    bool align_corners;
    std::array<std::int64_t, 2> size;  // {0, 0}: by the factor
    std::array<double, 2> factor;
  };
  for (const InterpolateCase& c : std::vector<InterpolateCase>{
           {"interpolate(nearest)", false, false, {5, 3}, {0, 0}},
           {"interpolate(nearest, scale_factor)", false, false, {0, 0}, {1.7, 0.6}},
           {"interpolate(bilinear)", true, false, {5, 7}, {0, 0}},
           {"interpolate(bilinear, align_corners)", true, true, {5, 2}, {0, 0}},
           {"interpolate(bilinear, scale_factor)", true, false, {0, 0}, {1.7, 0.6}},
           {"interpolate(bilinear, align_corners, scale_factor)",
            true,
            true,
            {0, 0},
            {1.5, 2.5}}}) {
    const auto call = [c](const Tensor& x) {
      InterpolateOptions o;
      o.mode = c.bilinear ? InterpolateMode::bilinear : InterpolateMode::nearest;
      o.align_corners = c.align_corners;
      if (c.size[0] > 0) {
        o.size = Size2{c.size[0], c.size[1]};
      } else {
        o.scale_factor = c.factor;
      }
      return interpolate(x, o);
    };
    registry.add(
        {c.name, [call](const auto& in) { return call(in[0]); },
         samples(281 + std::uint64_t(c.bilinear) * 2 + std::uint64_t(c.align_corners),
                 {Shape{2, 1, 3, 4}, Shape{1, 2, 2, 2}}),
         [c, call](const std::vector<Tensor>& in) {
           const Shape s = in[0].shape();
           const Shape o = call(in[0].detach()).shape();
           return std::vector<Tensor>{linear_jacobian(in[0], [&](const std::vector<double>& x) {
             return naive_interpolate(x, s, {o[2], o[3]},
                                      c.size[0] > 0 ? std::array<double, 2>{0, 0} : c.factor,
                                      c.bilinear, c.align_corners);
           })};
         }});
  }
}

}  // namespace detail
}  // namespace tg
