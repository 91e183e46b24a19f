// Normalisation and channel dropout, composed from tapegrad's differentiable ops (so the rules are
// theirs, and second order works), with PyTorch 1.13's semantics.
//
//   batch_norm     training: x̂ = (x − μ_c)/√(σ²_c + eps), μ_c and the biased σ²_c over every axis
//                  but the channel axis 1; y = x̂·w_c + b_c. The gradient flows through μ and σ².
//                  running_mean/var updated in place, unrecorded: r ← (1 − m)·r + m·stat, the
//                  variance unbiased (n/(n − 1)). Evaluation: the running statistics, constants.
//   group_norm     x̂ over each sample's group of C/G channels and all positions; then w_c, b_c
//   instance_norm  x̂ over each (sample, channel)'s positions; running statistics as batch_norm's,
//                  averaged over the batch (as PyTorch's repeat-then-mean)
//   dropout2d      y = x ⊙ k, k per (sample, channel): 0 with probability p, else 1/(1 − p)
//
// Statistics are two-pass (the mean, then the mean of the squared deviations) and eps is inside
// the square root, as PyTorch. The backward rules are those of the composed ops, except
// training-mode batch_norm: one recorded op with fused kernels (ops/batch_norm_fused.h, its rule
// the same composition), whose per-channel statistics also update the running ones.
#include <cmath>
#include <utility>
#include <vector>

#include "autograd/op.h"
#include "ops/batch_norm_fused.h"
#include "ops/everyday.h"
#include "ops/norm.h"
#include "ops/registrations.h"

namespace tg {
namespace {

// The input's dims 2.. multiplied: the positions of one channel of one sample. The product of a
// subset of a valid shape's dims cannot overflow (autograd/shape.h).
std::int64_t positions(const Shape& shape) {
  std::int64_t n = 1;
  for (int a = 2; a < shape.rank(); ++a) n *= shape[a];
  return n;
}

void check_input(const Tensor& input, const char* op, const SourceLocation& location) {
  if (!input.defined()) detail::fail_at(op, location, "the input is an undefined tensor");
  if (!is_floating(input.dtype())) {
    detail::fail_at(op, location, "expected a floating input (float32 or float64), got {}",
                    dtype_name(input.dtype()));
  }
  if (input.rank() < 2) {
    detail::fail_at(op, location, "expected an input [N, C, ...] of rank 2 or more, got {}",
                    input.shape().str());
  }
}

// weight, bias and the running statistics: undefined, or [C] of the input's dtype.
void check_per_channel(const Tensor& t, const char* name, const Tensor& input, const char* op,
                       const SourceLocation& location) {
  if (!t.defined()) return;
  const std::int64_t channels = input.shape()[1];
  if (!(t.shape() == Shape{channels})) {
    detail::fail_at(op, location, "{} should be [{}] for an input {}, got {}", name, channels,
                    input.shape().str(), t.shape().str());
  }
  if (t.dtype() != input.dtype()) {
    detail::fail_at(op, location, "{} is {} but the input is {}", name, dtype_name(t.dtype()),
                    dtype_name(input.dtype()));
  }
}

// [C] as [1, C, 1] to broadcast over [N, C, L].
Tensor channel_column(const Tensor& t) {
  return reshape(t, Shape{1, t.shape()[0], 1});
}

// x3 [N, C, L] normalised with per-channel mean and variance [C] (running statistics).
Tensor normalise_with(const Tensor& x3, const Tensor& mean_c, const Tensor& var_c, double eps) {
  return (x3 - channel_column(mean_c)) * channel_column(rsqrt(var_c + eps));
}

// y = x̂·w_c + b_c on [N, C, L], one op of three inputs (so a rule's corrupted bias gradient is
// seen: tests/tools/mutation_test.cpp corrupts inputs by position).
//   dx̂ = g ⊙ w_c, dw_c = Σ_{n,l} g ⊙ x̂, db_c = Σ_{n,l} g
Tensor channel_affine_forward(ForwardContext& ctx, const NoAttrs&) {
  return ctx.input(0) * channel_column(ctx.input(1)) + channel_column(ctx.input(2));
}
void channel_affine_backward(BackwardContext& ctx, const NoAttrs&) {
  const Tensor& g = ctx.grad_output();
  ctx.set_grad(0, g * channel_column(ctx.input(1)));
  ctx.set_grad(1, sum(sum(g * ctx.input(0), 2), 0));
  ctx.set_grad(2, sum(sum(g, 2), 0));
}
const Op<> kChannelAffine{"channel_affine", "dx̂ = g ⊙ w, dw = Σ g ⊙ x̂, db = Σ g",
                          channel_affine_forward, channel_affine_backward};

Tensor affine(Tensor y3, const Tensor& weight, const Tensor& bias) {
  if (weight.defined() && bias.defined()) {
    return kChannelAffine({}, SourceLocation::current(), y3, weight, bias);
  }
  if (weight.defined()) y3 = y3 * channel_column(weight);
  if (bias.defined()) y3 = y3 + channel_column(bias);
  return y3;
}

// Per-channel statistics of x3 [N, C, L] over axes 0 and 2: the mean [C] and the sum of squared
// deviations [C], both recorded (the gradient flows through them).
struct Moments {
  Tensor mean;
  Tensor squares;  // Σ (x − μ)²
};
Moments channel_moments(const Tensor& x3) {
  const std::int64_t channels = x3.shape()[1];
  const Tensor rows = reshape(transpose(x3, 0, 1), Shape{channels, x3.shape()[0] * x3.shape()[2]});
  const Tensor mu = mean(rows, 1, true);
  const Tensor centred = rows - mu;
  return {reshape(mu, Shape{channels}), sum(centred * centred, 1)};
}

// r ← (1 − m)·r + m·s in place, unrecorded, as PyTorch's kernel: the mean in the dtype, the
// unbiased variance Σ(x − μ)²/(n − 1) in double. `groups` > 1 averages the updates of `groups`
// consecutive blocks of the statistics (instance_norm's repeated running statistics).
void update_running(Tensor running_mean, Tensor running_var, const Moments& moments, std::int64_t n,
                    double momentum, std::int64_t groups) {
  const Tensor mu = moments.mean.detach();
  const Tensor squares = moments.squares.detach();
  dispatch_floating(mu.dtype(), "batch_norm", [&]<class T>() {
    const T m = T(momentum);
    const T* pm = std::as_const(mu).data<T>();
    const T* ps = std::as_const(squares).data<T>();
    const std::int64_t channels = mu.numel() / groups;
    if (running_mean.defined()) {
      T* r = running_mean.data<T>();
      for (std::int64_t c = 0; c < channels; ++c) {
        T total = 0;
        for (std::int64_t k = 0; k < groups; ++k) {
          total += m * pm[k * channels + c] + (T(1) - m) * r[c];
        }
        r[c] = groups == 1 ? total : total / T(groups);
      }
    }
    if (running_var.defined()) {
      T* r = running_var.data<T>();
      for (std::int64_t c = 0; c < channels; ++c) {
        T total = 0;
        for (std::int64_t k = 0; k < groups; ++k) {
          const double unbiased = double(ps[k * channels + c]) / double(n - 1);
          total += T(double(m) * unbiased + double((T(1) - m) * r[c]));
        }
        r[c] = groups == 1 ? total : total / T(groups);
      }
    }
    return 0;
  });
}

Tensor batch_norm_body(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps, const SourceLocation& location) {
  const Shape& shape = input.shape();
  const Tensor x3 = reshape(input, Shape{shape[0], shape[1], positions(shape)});
  Tensor y3;
  if (input.numel() == 0) {
    y3 = x3;  // nothing to normalise: no statistics over empty axes (nor 2^40 of them)
  } else if (training) {
    // One recorded op with fused kernels (ops/batch_norm_fused.h), its rule the composition's.
    const detail::BatchNormTraining fused =
        detail::batch_norm_training(x3, weight, bias, eps, location);
    {
      NoGradGuard no_grad;  // scoped: the reshape below is recorded
      update_running(running_mean, running_var, {fused.mean, fused.squares},
                     shape[0] * positions(shape), momentum, 1);
    }
    return reshape(fused.y, shape);
  } else {
    y3 = normalise_with(x3, running_mean.detach(), running_var.detach(), eps);
  }
  return reshape(affine(y3, weight, bias), shape);
}

// ---- reference Jacobians, from the closed form, without the rules ----

// How a norm op normalises x viewed as [N, C, L]: which block each element's statistics come from
// (training) or the per-channel fixed statistics (evaluation).
struct NormLayout {
  enum Kind { batch, instance, group, fixed } kind;
  std::int64_t groups = 1;
  double eps = 1e-5;
  std::vector<double> mean;  // fixed: per channel
  std::vector<double> var;
};

// For x [N, C, L] (float64 values) and optional weight [C]: d y/d x, and d y/d weight, d y/d bias
// when given. With x̂ = (x − μ_B)/σ_B over block B of M elements, σ² = biased var + eps:
//   d x̂_i/d x_j = (δ_ij − 1/M − x̂_i x̂_j / M) / σ_B   (i, j in B), y_i = w_c x̂_i + b_c.
std::vector<Tensor> norm_jacobian(const std::vector<Tensor>& in, const NormLayout& layout) {
  const Shape& shape = in[0].shape();
  const std::int64_t n = shape[0], channels = shape[1], length = positions(shape);
  const std::int64_t total = in[0].numel();
  const std::vector<double> x = in[0].to_vector();
  const std::vector<double> w =
      in.size() > 1 ? in[1].to_vector() : std::vector<double>(std::size_t(channels), 1.0);
  const auto channel_of = [&](std::int64_t i) { return (i / length) % channels; };
  const auto block_of = [&](std::int64_t i) {
    const std::int64_t sample = i / (channels * length);
    switch (layout.kind) {
      case NormLayout::batch:
        return channel_of(i);
      case NormLayout::instance:
        return sample * channels + channel_of(i);
      case NormLayout::group:
        return sample * layout.groups + channel_of(i) / (channels / layout.groups);
      case NormLayout::fixed:
        break;
    }
    return channel_of(i);
  };
  std::vector<double> sum, squares, count;
  std::vector<double> xhat(static_cast<std::size_t>(total));
  std::vector<double> sigma(static_cast<std::size_t>(total));
  if (layout.kind != NormLayout::fixed) {
    const std::size_t blocks = std::size_t(n * channels + channels);
    sum.assign(blocks, 0.0);
    squares.assign(blocks, 0.0);
    count.assign(blocks, 0.0);
    for (std::int64_t i = 0; i < total; ++i) {
      sum[std::size_t(block_of(i))] += x[std::size_t(i)];
      count[std::size_t(block_of(i))] += 1;
    }
    for (std::int64_t i = 0; i < total; ++i) {
      const auto b = std::size_t(block_of(i));
      const double d = x[std::size_t(i)] - sum[b] / count[b];
      squares[b] += d * d;
    }
  }
  for (std::int64_t i = 0; i < total; ++i) {
    const auto c = std::size_t(channel_of(i));
    double mu = 0;
    double var = 0;
    if (layout.kind == NormLayout::fixed) {
      mu = layout.mean[c];
      var = layout.var[c];
    } else {
      const auto b = std::size_t(block_of(i));
      mu = sum[b] / count[b];
      var = squares[b] / count[b];
    }
    sigma[std::size_t(i)] = std::sqrt(var + layout.eps);
    xhat[std::size_t(i)] = (x[std::size_t(i)] - mu) / sigma[std::size_t(i)];
  }
  Tensor dx = zeros({total, total}, f64);
  double* px = dx.data<double>();
  for (std::int64_t i = 0; i < total; ++i) {
    const double wi = w[std::size_t(channel_of(i))];
    const double si = sigma[std::size_t(i)];
    if (layout.kind == NormLayout::fixed) {
      px[i * total + i] = wi / si;
      continue;
    }
    const auto b = block_of(i);
    const double m = count[std::size_t(b)];
    for (std::int64_t j = 0; j < total; ++j) {
      if (block_of(j) != b) continue;
      const double delta = i == j ? 1.0 : 0.0;
      px[i * total + j] =
          wi * (delta - 1.0 / m - xhat[std::size_t(i)] * xhat[std::size_t(j)] / m) / si;
    }
  }
  std::vector<Tensor> out{dx};
  if (in.size() > 1) {
    Tensor dw = zeros({total, channels}, f64);
    Tensor db = zeros({total, channels}, f64);
    for (std::int64_t i = 0; i < total; ++i) {
      dw.data<double>()[i * channels + channel_of(i)] = xhat[std::size_t(i)];
      db.data<double>()[i * channels + channel_of(i)] = 1.0;
    }
    out.push_back(dw);
    out.push_back(db);
  }
  return out;
}

}  // namespace

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps, SourceLocation location) {
  constexpr const char* op = "batch_norm";
  check_input(input, op, location);
  check_per_channel(running_mean, "running_mean", input, op, location);
  check_per_channel(running_var, "running_var", input, op, location);
  check_per_channel(weight, "weight", input, op, location);
  check_per_channel(bias, "bias", input, op, location);
  if (!training && !(running_mean.defined() && running_var.defined())) {
    detail::fail_at(op, location,
                    "running_mean and running_var must be defined in evaluation mode");
  }
  if (training && input.shape()[0] * positions(input.shape()) == 1) {
    detail::fail_at(op, location,
                    "Expected more than 1 value per channel when training, got input size {}",
                    input.shape().str());
  }
  if (!(eps >= 0)) detail::fail_at(op, location, "expected eps >= 0, got {}", eps);
  return detail::composite(op, location, [&] {
    return batch_norm_body(input, running_mean, running_var, weight, bias, training, momentum, eps,
                           location);
  });
}

Tensor group_norm(const Tensor& input, std::int64_t num_groups, const Tensor& weight,
                  const Tensor& bias, double eps, SourceLocation location) {
  constexpr const char* op = "group_norm";
  check_input(input, op, location);
  check_per_channel(weight, "weight", input, op, location);
  check_per_channel(bias, "bias", input, op, location);
  const Shape& shape = input.shape();
  if (num_groups <= 0 || shape[1] % num_groups != 0) {
    detail::fail_at(op, location,
                    "Expected number of channels in input to be divisible by num_groups, but got "
                    "input of shape {} and num_groups={}",
                    shape.str(), num_groups);
  }
  // PyTorch's _verify_batch_size on [N·C/G, G, …]: a group of one value per sample is refused.
  if (shape[0] * (shape[1] / num_groups) * positions(shape) == 1) {
    detail::fail_at(op, location,
                    "Expected more than 1 value per channel when training, got input size {}",
                    shape.str());
  }
  if (!(eps >= 0)) detail::fail_at(op, location, "expected eps >= 0, got {}", eps);
  return detail::composite(op, location, [&] {
    if (input.numel() == 0) {  // nothing to normalise: no statistics over empty groups
      return reshape(
          affine(reshape(input, Shape{shape[0], shape[1], positions(shape)}), weight, bias), shape);
    }
    const std::int64_t per_group = shape[1] / num_groups * positions(shape);
    const Tensor xg = reshape(input, Shape{shape[0], num_groups, per_group});
    const Tensor centred = xg - mean(xg, 2, true);
    const Tensor variance = sum(centred * centred, 2, true) / double(per_group);
    const Tensor x3 =
        reshape(centred * rsqrt(variance + eps), Shape{shape[0], shape[1], positions(shape)});
    return reshape(affine(x3, weight, bias), shape);
  });
}

Tensor instance_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                     const Tensor& weight, const Tensor& bias, bool use_input_stats,
                     double momentum, double eps, SourceLocation location) {
  constexpr const char* op = "instance_norm";
  check_input(input, op, location);
  check_per_channel(running_mean, "running_mean", input, op, location);
  check_per_channel(running_var, "running_var", input, op, location);
  check_per_channel(weight, "weight", input, op, location);
  check_per_channel(bias, "bias", input, op, location);
  const Shape& shape = input.shape();
  if (!use_input_stats && !(running_mean.defined() && running_var.defined())) {
    detail::fail_at(op, location,
                    "Expected running_mean and running_var to be defined when use_input_stats "
                    "is false");
  }
  if (use_input_stats && positions(shape) == 1) {
    detail::fail_at(op, location,
                    "Expected more than 1 spatial element when training, got input size {}",
                    shape.str());
  }
  if (!(eps >= 0)) detail::fail_at(op, location, "expected eps >= 0, got {}", eps);
  return detail::composite(op, location, [&] {
    const std::int64_t n = shape[0];
    const std::int64_t channels = shape[1];
    const std::int64_t length = positions(shape);
    Tensor x3;
    if (input.numel() == 0) {  // nothing to normalise, nothing to update
      x3 = reshape(input, Shape{n, channels, length});
    } else if (use_input_stats) {
      // Each (sample, channel) is a channel of a batch of one.
      const Moments moments = channel_moments(reshape(input, Shape{1, n * channels, length}));
      x3 = normalise_with(reshape(input, Shape{1, n * channels, length}), moments.mean,
                          moments.squares / double(length), eps);
      x3 = reshape(x3, Shape{n, channels, length});
      NoGradGuard no_grad;
      update_running(running_mean, running_var, moments, length, momentum, n);
    } else {
      x3 = normalise_with(reshape(input, Shape{n, channels, length}), running_mean.detach(),
                          running_var.detach(), eps);
    }
    return reshape(affine(x3, weight, bias), shape);
  });
}

Tensor dropout2d(const Tensor& input, double p, bool training, Generator& generator,
                 SourceLocation location) {
  constexpr const char* op = "dropout2d";
  check_input(input, op, location);
  if (!(p >= 0.0 && p <= 1.0)) {
    detail::fail_at(op, location, "dropout probability has to be between 0 and 1, but got {}", p);
  }
  if (!training || p == 0.0 || input.numel() == 0) return input;
  return detail::composite(op, location, [&] {
    if (p == 1.0) return input * 0.0;  // PyTorch's input · 0: NaN where the input is ±inf or NaN
    // One draw per (sample, channel), sample-major, as PyTorch's noise [N, C, 1, …].
    const Shape& shape = input.shape();
    std::vector<double> keep(std::size_t(shape[0] * shape[1]));
    const double scale = input.dtype() == f32 ? double(1.0f / float(1.0 - p)) : 1.0 / (1.0 - p);
    for (double& k : keep) k = generator.uniform() < p ? 0.0 : scale;
    std::vector<std::int64_t> noise_shape(std::size_t(shape.rank()), 1);
    noise_shape[0] = shape[0];
    noise_shape[1] = shape[1];
    return input * from_vector(keep, Shape(noise_shape), input.dtype());
  });
}

namespace detail {

void register_norm_ops(OpRegistry& registry) {
  // Running statistics away from (0, 1), made afresh for each call: the training samples update
  // them in place.
  const auto running = [](std::int64_t channels, DType dtype) {
    std::vector<double> m;
    std::vector<double> v;
    for (std::int64_t c = 0; c < channels; ++c) {
      m.push_back(0.3 - 0.2 * double(c));
      v.push_back(0.5 + 0.4 * double(c));
    }
    return std::pair{from_vector(m, {channels}, dtype), from_vector(v, {channels}, dtype)};
  };
  // Samples: the input, then weight and bias [C] when affine.
  const auto inputs = [](const Shape& shape, bool affine, std::uint64_t seed) {
    return [=](DType dtype) {
      Generator gen(seed);
      std::vector<Tensor> in{sample(shape, dtype, gen)};
      if (affine) {
        in.push_back(sample({shape[1]}, dtype, gen, 0.5, 1.5));
        in.push_back(sample({shape[1]}, dtype, gen));
      }
      return std::vector<OpSample>{{shape.str() + (affine ? ", weight, bias" : ""), in}};
    };
  };
  const auto layout_of = [](NormLayout::Kind kind, std::int64_t groups, double eps) {
    return [=](const std::vector<Tensor>& in) {
      return norm_jacobian(in, {.kind = kind, .groups = groups, .eps = eps, .mean = {}, .var = {}});
    };
  };
  const auto fixed_layout = [=](const std::vector<Tensor>& in) {
    const auto [m, v] = running(in[0].shape()[1], f64);
    return norm_jacobian(
        in, {.kind = NormLayout::fixed, .eps = 1e-5, .mean = m.to_vector(), .var = v.to_vector()});
  };
  // The samples' masks drawn again: Generator(7), one draw per (sample, channel).
  const auto dropout_mask = [](double p) {
    return [p](const std::vector<Tensor>& in) {
      const Shape& shape = in[0].shape();
      const std::int64_t per_channel = positions(shape);
      Generator generator(7);
      std::vector<double> d;
      for (std::int64_t k = 0; k < shape[0] * shape[1]; ++k) {
        const double keep = p == 1.0 ? 0.0 : generator.uniform() < p ? 0.0 : 1.0 / (1.0 - p);
        for (std::int64_t j = 0; j < per_channel; ++j) d.push_back(keep);
      }
      return std::vector{diagonal_jacobian(d)};
    };
  };
  const auto w = [](const std::vector<Tensor>& in) { return in.size() > 1 ? in[1] : Tensor(); };
  const auto b = [](const std::vector<Tensor>& in) { return in.size() > 2 ? in[2] : Tensor(); };

  registry.add({"batch_norm(training)",
                [=](const auto& in) {
                  const auto [m, v] = running(in[0].shape()[1], in[0].dtype());
                  return batch_norm(in[0], m, v, w(in), b(in), true, 0.1, 1e-5);
                },
                inputs({3, 2, 2}, true, 401), layout_of(NormLayout::batch, 1, 1e-5)});
  registry.add({"batch_norm(training, [N, C], no affine, no running stats)",
                [=](const auto& in) { return batch_norm(in[0], {}, {}, {}, {}, true); },
                inputs({4, 3}, false, 403), layout_of(NormLayout::batch, 1, 1e-5)});
  registry.add(
      {"batch_norm(training, [N, C, H, W])",
       [=](const auto& in) { return batch_norm(in[0], {}, {}, w(in), b(in), true, 0.1, 1e-3); },
       inputs({2, 2, 2, 2}, true, 405), layout_of(NormLayout::batch, 1, 1e-3)});
  registry.add({"batch_norm(eval)",
                [=](const auto& in) {
                  const auto [m, v] = running(in[0].shape()[1], in[0].dtype());
                  return batch_norm(in[0], m, v, w(in), b(in), false);
                },
                inputs({2, 3, 2}, true, 407), fixed_layout});
  registry.add({"group_norm(2 groups)",
                [=](const auto& in) { return group_norm(in[0], 2, w(in), b(in)); },
                inputs({2, 4, 3}, true, 409), layout_of(NormLayout::group, 2, 1e-5)});
  registry.add({"group_norm(1 group, no affine)",
                [=](const auto& in) { return group_norm(in[0], 1, {}, {}); },
                inputs({2, 3, 2}, false, 411), layout_of(NormLayout::group, 1, 1e-5)});
  registry.add({"group_norm(a group per channel, [N, C, H, W])",
                [=](const auto& in) { return group_norm(in[0], 3, w(in), b(in), 1e-3); },
                inputs({1, 3, 2, 2}, true, 413), layout_of(NormLayout::group, 3, 1e-3)});
  registry.add({"instance_norm",
                [=](const auto& in) { return instance_norm(in[0], {}, {}, w(in), b(in)); },
                inputs({2, 2, 3}, true, 415), layout_of(NormLayout::instance, 1, 1e-5)});
  registry.add({"instance_norm(running stats, no affine)",
                [=](const auto& in) {
                  const auto [m, v] = running(in[0].shape()[1], in[0].dtype());
                  return instance_norm(in[0], m, v, {}, {}, true, 0.2);
                },
                inputs({2, 2, 2, 2}, false, 417), layout_of(NormLayout::instance, 1, 1e-5)});
  registry.add({"instance_norm(use_input_stats false)",
                [=](const auto& in) {
                  const auto [m, v] = running(in[0].shape()[1], in[0].dtype());
                  return instance_norm(in[0], m, v, w(in), b(in), false);
                },
                inputs({2, 2, 3}, true, 419), fixed_layout});
  // A generator made afresh for each call: the same channels drop every time. (Evaluation and
  // p = 0 return the input itself, recording nothing: norm.json's "dropout2d" cases check them.)
  registry.add({"dropout2d",
                [](const auto& in) {
                  Generator generator(7);
                  return dropout2d(in[0], 0.5, true, generator);
                },
                inputs({2, 3, 2, 2}, false, 421), dropout_mask(0.5)});
  registry.add({"dropout2d(p=1, training)",
                [](const auto& in) {
                  Generator generator(7);
                  return dropout2d(in[0], 1.0, true, generator);
                },
                inputs({2, 2, 3}, false, 423), dropout_mask(1.0)});
}

}  // namespace detail
}  // namespace tg
