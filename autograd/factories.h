#pragma once
// Making tensors: constants, ranges, values from C++ containers and seeded random draws.
#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

#include "autograd/tensor.h"

namespace tg {

// Seeded random numbers; results are the same on every platform for the same seed.
class Generator {
 public:
  explicit Generator(std::uint64_t seed) : engine_(seed) {}
  double uniform();  // in [0, 1)
  double normal();
  std::uint64_t next() { return engine_(); }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

Tensor zeros(const Shape& shape, DType dtype = f32);
Tensor ones(const Shape& shape, DType dtype = f32);
Tensor full(const Shape& shape, double value, DType dtype = f32);
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
Tensor arange(double start, double stop, double step = 1.0, DType dtype = f32);
Tensor arange(std::int64_t stop, DType dtype = f32);
Tensor tensor(std::initializer_list<double> values, DType dtype = f32);
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype = f32);
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = f32);
Tensor int64_tensor(const std::vector<std::int64_t>& values);
Tensor int64_tensor(const std::vector<std::int64_t>& values, const Shape& shape);
Tensor randn(const Shape& shape, Generator& generator, DType dtype = f32);
Tensor uniform(const Shape& shape, Generator& generator, double low = 0.0, double high = 1.0,
               DType dtype = f32);

}  // namespace tg
