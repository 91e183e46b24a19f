// W6 (a training step of the digits CNN) and the conv row (one large conv2d, forward and
// backward): tapegrad against a hand-written im2col + Eigen GEMM implementation in the same
// binary. The hand-written code keeps activations channel-major, [C, N·H·W], so that every
// convolution is one GEMM over the whole batch with no transposes, and writes every backward by
// hand: the best a C++ programmer would do for this network without a library.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <cmath>
#include <vector>

#include "benchmarks/common.h"
#include "benchmarks/workloads.h"
#include "examples/digits_training.h"
#include "tapegrad.h"

namespace {

using namespace tg::bench;
using Vector = Eigen::VectorXf;

// The columns of a 3×3, padding-1, stride-1 convolution of a channel-major [C, N·side²] input:
// row (c, i, j) of `cols` holds, at column (n, h, w), the input at (c, n, h + i − 1, w + j − 1),
// or 0 in the padding.
void im2col_3x3(const Matrix& input, std::int64_t side, Matrix& cols) {
  const std::int64_t channels = input.rows(), images = input.cols() / (side * side);
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t i = 0; i < 3; ++i) {
      for (std::int64_t j = 0; j < 3; ++j) {
        float* out = cols.row((c * 3 + i) * 3 + j).data();
        const float* in = input.row(c).data();
        for (std::int64_t n = 0; n < images; ++n) {
          for (std::int64_t h = 0; h < side; ++h, out += side) {
            const std::int64_t source_row = h + i - 1;
            if (source_row < 0 || source_row >= side) {
              std::fill(out, out + side, 0.0f);
              continue;
            }
            const float* source = in + (n * side + source_row) * side;
            for (std::int64_t w = 0; w < side; ++w) {
              const std::int64_t source_col = w + j - 1;
              out[w] = source_col >= 0 && source_col < side ? source[source_col] : 0.0f;
            }
          }
        }
      }
    }
  }
}

// im2col_3x3's adjoint: every column entry added back to the input position it came from.
void col2im_3x3(const Matrix& cols, std::int64_t side, Matrix& input) {
  input.setZero();
  const std::int64_t channels = input.rows(), images = input.cols() / (side * side);
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t i = 0; i < 3; ++i) {
      for (std::int64_t j = 0; j < 3; ++j) {
        const float* in = cols.row((c * 3 + i) * 3 + j).data();
        float* out = input.row(c).data();
        for (std::int64_t n = 0; n < images; ++n) {
          for (std::int64_t h = 0; h < side; ++h, in += side) {
            const std::int64_t target_row = h + i - 1;
            if (target_row < 0 || target_row >= side) continue;
            float* target = out + (n * side + target_row) * side;
            for (std::int64_t w = 0; w < side; ++w) {
              const std::int64_t target_col = w + j - 1;
              if (target_col >= 0 && target_col < side) target[target_col] += in[w];
            }
          }
        }
      }
    }
  }
}

// Batch norm in training over the columns of [C, M], with its saved values for the backward.
struct BatchNorm {
  Vector gamma, beta, running_mean, running_var, inverse_std;
  Matrix normalised;
  explicit BatchNorm(std::int64_t channels, std::int64_t columns)
      : gamma(Vector::Ones(channels)),
        beta(Vector::Zero(channels)),
        running_mean(Vector::Zero(channels)),
        running_var(Vector::Ones(channels)),
        inverse_std(channels),
        normalised(channels, columns) {}
  void forward(const Matrix& z, Matrix& out) {
    const auto m = float(z.cols());
    const Vector mean = z.rowwise().mean();
    normalised = z.colwise() - mean;
    const Vector variance = normalised.array().square().rowwise().sum() / m;
    inverse_std = (variance.array() + 1e-5f).rsqrt();
    normalised.array().colwise() *= inverse_std.array();
    out = ((normalised.array().colwise() * gamma.array()).colwise() + beta.array()).matrix();
    running_mean = 0.9f * running_mean + 0.1f * mean;
    running_var = 0.9f * running_var + (0.1f * m / (m - 1)) * variance;
  }
  // dz from dout; dgamma and dbeta as well.
  void backward(const Matrix& dout, Matrix& dz, Vector& dgamma, Vector& dbeta) const {
    dgamma = (dout.array() * normalised.array()).rowwise().sum();
    dbeta = dout.rowwise().sum();
    const auto m = float(dout.cols());
    const Vector scale = gamma.cwiseProduct(inverse_std) / m;
    dz = ((dout.array() * m).colwise() - dbeta.array() -
          normalised.array().colwise() * dgamma.array())
             .matrix();
    dz.array().colwise() *= scale.array();
  }
};

// Adam's state for one parameter (PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8).
struct AdamSlot {
  Eigen::ArrayXf m, v;
  explicit AdamSlot(std::int64_t size) : m(Eigen::ArrayXf::Zero(size)), v(m) {}
  void step(float* value, const float* grad, int t) {
    const auto p = Eigen::Map<Eigen::ArrayXf>(value, m.size());
    const auto g = Eigen::Map<const Eigen::ArrayXf>(grad, m.size());
    m = 0.9f * m + 0.1f * g;
    v = 0.999f * v + 0.001f * g.square();
    const float c1 = 1 - std::pow(0.9f, float(t)), c2 = 1 - std::pow(0.999f, float(t));
    Eigen::Map<Eigen::ArrayXf>(value, m.size()) =
        p - float(kCnnLearningRate) * (m / c1) / ((v / c2).sqrt() + 1e-8f);
  }
};

void W6_cnn_step_handwritten(benchmark::State& state) {
  tg::set_num_threads(1);
  constexpr std::int64_t n = kCnnBatch, side = kCnnSide, c1 = kCnnChannels1, c2 = kCnnChannels2;
  constexpr std::int64_t pixels = n * side * side, pooled_side = side / 2;
  constexpr std::int64_t features = c2 * pooled_side * pooled_side;
  tg::Generator gen(6);
  const Matrix x = random_matrix(1, pixels, gen);  // [N, 1, 8, 8] is channel-major already
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < n; ++i) labels.push_back(std::int64_t(gen.next() % 10));
  Matrix w1 = random_matrix(c1, 9, gen, 1.0f / 3), w2 = random_matrix(c2, c1 * 9, gen, 0.08f);
  Matrix w3 = random_matrix(10, features, gen, 0.04f);
  Vector b1 = Vector::Zero(c1), b2 = Vector::Zero(c2);
  RowVector b3 = RowVector::Zero(10);
  BatchNorm bn1(c1, pixels), bn2(c2, pixels);
  Matrix cols1(9, pixels), z1(c1, pixels), a1(c1, pixels), cols2(c1 * 9, pixels);
  Matrix z2(c2, pixels), a2(c2, pixels), flat(n, features), logits(n, 10), dlogits(n, 10);
  Matrix dw1(c1, 9), dw2(c2, c1 * 9), dw3(10, features), dflat(n, features);
  Matrix da2(c2, pixels), dz2(c2, pixels), dcols2(c1 * 9, pixels), da1(c1, pixels), dz1(c1, pixels);
  Vector db1(c1), db2(c2), dgamma1(c1), dbeta1(c1), dgamma2(c2), dbeta2(c2);
  RowVector db3(10);
  std::vector<std::int64_t> argmax(std::size_t(c2 * n * pooled_side * pooled_side));
  std::vector<AdamSlot> adam;
  for (std::int64_t size :
       {w1.size(), b1.size(), c1, c1, w2.size(), b2.size(), c2, c2, w3.size(), b3.size()}) {
    adam.emplace_back(size);
  }
  int t = 0;
  const auto step = [&] {
    im2col_3x3(x, side, cols1);
    z1.noalias() = w1 * cols1;
    z1.colwise() += b1;
    bn1.forward(z1, a1);
    a1 = a1.cwiseMax(0.0f);
    im2col_3x3(a1, side, cols2);
    z2.noalias() = w2 * cols2;
    z2.colwise() += b2;
    bn2.forward(z2, a2);
    a2 = a2.cwiseMax(0.0f);
    // 2×2 max pool into the flattened [N, C·4·4] features, keeping each window's arg-max.
    for (std::int64_t c = 0; c < c2; ++c) {
      const float* in = a2.row(c).data();
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t h = 0; h < pooled_side; ++h) {
          for (std::int64_t w = 0; w < pooled_side; ++w) {
            std::int64_t best = (i * side + 2 * h) * side + 2 * w;
            for (std::int64_t k : {best + 1, best + side, best + side + 1}) {
              if (in[k] > in[best]) best = k;
            }
            const std::int64_t f = (c * pooled_side + h) * pooled_side + w;
            flat(i, f) = in[best];
            argmax[std::size_t((c * n + i) * pooled_side * pooled_side + h * pooled_side + w)] =
                best;
          }
        }
      }
    }
    logits.noalias() = flat * w3.transpose();
    logits.rowwise() += b3;
    float loss = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      auto row = logits.row(i).array();
      auto grad = dlogits.row(i).array();
      const float m = row.maxCoeff();
      grad = (row - m).exp();
      const float total = grad.sum();
      loss += std::log(total) + m - row(labels[std::size_t(i)]);
      grad /= total;
      grad(labels[std::size_t(i)]) -= 1.0f;
    }
    dlogits /= float(n);
    dw3.noalias() = dlogits.transpose() * flat;
    db3.noalias() = dlogits.colwise().sum();
    dflat.noalias() = dlogits * w3;
    da2.setZero();
    for (std::int64_t c = 0; c < c2; ++c) {
      float* out = da2.row(c).data();
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t p = 0; p < pooled_side * pooled_side; ++p) {
          out[argmax[std::size_t((c * n + i) * pooled_side * pooled_side + p)]] +=
              dflat(i, c * pooled_side * pooled_side + p);
        }
      }
    }
    da2 = (a2.array() > 0.0f).select(da2, 0.0f);
    bn2.backward(da2, dz2, dgamma2, dbeta2);
    dw2.noalias() = dz2 * cols2.transpose();
    db2.noalias() = dz2.rowwise().sum();
    dcols2.noalias() = w2.transpose() * dz2;
    col2im_3x3(dcols2, side, da1);
    da1 = (a1.array() > 0.0f).select(da1, 0.0f);
    bn1.backward(da1, dz1, dgamma1, dbeta1);
    dw1.noalias() = dz1 * cols1.transpose();
    db1.noalias() = dz1.rowwise().sum();
    ++t;
    adam[0].step(w1.data(), dw1.data(), t);
    adam[1].step(b1.data(), db1.data(), t);
    adam[2].step(bn1.gamma.data(), dgamma1.data(), t);
    adam[3].step(bn1.beta.data(), dbeta1.data(), t);
    adam[4].step(w2.data(), dw2.data(), t);
    adam[5].step(b2.data(), db2.data(), t);
    adam[6].step(bn2.gamma.data(), dgamma2.data(), t);
    adam[7].step(bn2.beta.data(), dbeta2.data(), t);
    adam[8].step(w3.data(), dw3.data(), t);
    adam[9].step(b3.data(), db3.data(), t);
    benchmark::DoNotOptimize(loss);
  };
  time_steps(state, step, 3);
}
BENCHMARK(W6_cnn_step_handwritten)->Unit(benchmark::kMicrosecond);

tg::Tensor random_tensor(const tg::Shape& shape, tg::Generator& gen, double scale = 1) {
  return tg::randn(shape, gen) * scale;
}

void W6_cnn_step_tapegrad(benchmark::State& state) {
  use_threads(state);
  using namespace tg::nn;
  tg::Generator gen(6);
  const tg::Tensor x = random_tensor({kCnnBatch, 1, kCnnSide, kCnnSide}, gen);
  std::vector<std::int64_t> label_values;
  for (std::int64_t i = 0; i < kCnnBatch; ++i)
    label_values.push_back(std::int64_t(gen.next() % 10));
  const tg::Tensor labels = tg::int64_tensor(label_values);
  tg::Generator init(6);
  const auto model_pointer = digits::make_cnn(kCnnChannels1, init);
  Sequential& model = *model_pointer;
  Adam adam(model.parameters(), {.lr = kCnnLearningRate});
  const auto step = [&] {
    adam.zero_grad();
    tg::Tensor loss = tg::cross_entropy(model(x), labels);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.raw_data());
  };
  time_steps(state, step);
}
BENCHMARK(W6_cnn_step_tapegrad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- the conv row ----

void Conv2d_large_handwritten(benchmark::State& state) {
  tg::set_num_threads(1);
  constexpr std::int64_t pixels = kConvBatch * kConvSide * kConvSide;
  tg::Generator gen(7);
  const Matrix x = random_matrix(kConvChannels, pixels, gen);
  const Matrix w = random_matrix(kConvChannels, kConvChannels * 9, gen, 0.04f);
  const Matrix g = random_matrix(kConvChannels, pixels, gen);
  Matrix cols(kConvChannels * 9, pixels), y(kConvChannels, pixels), dw(w.rows(), w.cols());
  Matrix dcols(cols.rows(), cols.cols()), dx(kConvChannels, pixels);
  for (auto _ : state) {
    im2col_3x3(x, kConvSide, cols);
    y.noalias() = w * cols;
    benchmark::DoNotOptimize(y.data());
    dw.noalias() = g * cols.transpose();
    dcols.noalias() = w.transpose() * g;
    col2im_3x3(dcols, kConvSide, dx);
    benchmark::DoNotOptimize(dx.data());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(kConvFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(Conv2d_large_handwritten)->Unit(benchmark::kMillisecond);

void Conv2d_large_tapegrad(benchmark::State& state) {
  use_threads(state);
  tg::Generator gen(7);
  tg::Tensor x =
      random_tensor({kConvBatch, kConvChannels, kConvSide, kConvSide}, gen).requires_grad(true);
  tg::Tensor w = random_tensor({kConvChannels, kConvChannels, 3, 3}, gen, 0.04).requires_grad(true);
  const tg::Tensor g = random_tensor({kConvBatch, kConvChannels, kConvSide, kConvSide}, gen);
  for (auto _ : state) {
    x.zero_grad();
    w.zero_grad();
    tg::sum(tg::conv2d(x, w, {}, {.padding = 1}) * g).backward();
    benchmark::DoNotOptimize(x.grad().raw_data());
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(kConvFlops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(Conv2d_large_tapegrad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
