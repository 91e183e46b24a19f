#pragma once
// Initialisation in place from a seeded generator, with PyTorch's formulas. fan_in and fan_out
// of a [out, in] weight are in and out.
#include "autograd/factories.h"

namespace tg::nn::init {

// U(−a, a) with a = gain·√(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& weight, Generator& generator, double gain = 1.0);
// N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out)).
void xavier_normal_(Tensor& weight, Generator& generator, double gain = 1.0);

enum class FanMode { fan_in, fan_out };
// U(−b, b) with b = gain·√(3 / fan), gain = √(2 / (1 + a²)) (leaky ReLU with slope a; a = 0 is
// ReLU, a = √5 is PyTorch's Linear default).
void kaiming_uniform_(Tensor& weight, Generator& generator, double a = 0.0,
                      FanMode mode = FanMode::fan_in);
// N(0, σ²) with σ = gain / √fan.
void kaiming_normal_(Tensor& weight, Generator& generator, double a = 0.0,
                     FanMode mode = FanMode::fan_in);

// U(low, high) and N(mean, std²) in place.
void uniform_(Tensor& tensor, Generator& generator, double low, double high);
void normal_(Tensor& tensor, Generator& generator, double mean = 0.0, double std = 1.0);

}  // namespace tg::nn::init
