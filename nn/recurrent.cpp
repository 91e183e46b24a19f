#include "nn/recurrent.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/error.h"
#include "nn/init.h"
#include "ops/ops.h"

namespace tg::nn {

Recurrent::Recurrent(const char* name, std::int64_t gates, std::int64_t input_size,
                     std::int64_t hidden_size, Generator& generator, DType dtype)
    : name_(name), input_size_(input_size), hidden_size_(hidden_size) {
  if (input_size <= 0 || hidden_size <= 0) {
    fail("{}: expected positive sizes, got input_size = {}, hidden_size = {}", name, input_size,
         hidden_size);
  }
  const double bound = 1.0 / std::sqrt(double(hidden_size));
  auto uniform = [&](const Shape& shape) {
    Tensor t = empty(shape, dtype);
    init::uniform_(t, generator, -bound, bound);
    return t;
  };
  register_parameter("weight_ih_l0", weight_ih, uniform({gates * hidden_size, input_size}));
  register_parameter("weight_hh_l0", weight_hh, uniform({gates * hidden_size, hidden_size}));
  register_parameter("bias_ih_l0", bias_ih, uniform({gates * hidden_size}));
  register_parameter("bias_hh_l0", bias_hh, uniform({gates * hidden_size}));
}

std::string Recurrent::describe() const {
  return fmt::format("{}({}, {}, batch_first=True)", name_, input_size_, hidden_size_);
}

Tensor Recurrent::gate(const Tensor& gates, std::int64_t i) const {
  return slice(gates, 1, i * hidden_size_, (i + 1) * hidden_size_);
}

Tensor Recurrent::given_or_zeros(const Tensor& given, std::int64_t batch, const char* what) const {
  const Shape expected{batch, hidden_size_};
  if (!given.defined()) return zeros(expected, weight_ih.dtype());
  if (!(given.shape() == expected)) {
    fail("{}: expected a {} of shape {}, got {}", name_, what, expected.str(), given.shape().str());
  }
  check_dtype(given, what);
  return given;
}

RecurrentState Recurrent::complete(const RecurrentState& state, std::int64_t batch) const {
  return {given_or_zeros(state.h, batch, "hidden state"), Tensor()};
}

RecurrentState LSTM::complete(const RecurrentState& state, std::int64_t batch) const {
  return {given_or_zeros(state.h, batch, "hidden state"),
          given_or_zeros(state.c, batch, "cell state")};
}

void Recurrent::check_dtype(const Tensor& t, const char* what) const {
  if (t.dtype() != weight_ih.dtype()) {
    fail("{}: the {} is {} but the parameters are {}", name_, what, dtype_name(t.dtype()),
         dtype_name(weight_ih.dtype()));
  }
}

RecurrentOutput Recurrent::run(const Tensor& input, const RecurrentState& initial) {
  if (input.rank() != 3 || input.shape()[2] != input_size_) {
    fail("{}: expected a batch-first input of shape [batch, time, {}], got {}", name_, input_size_,
         input.shape().str());
  }
  check_dtype(input, "input");
  const std::int64_t batch = input.shape()[0], steps = input.shape()[1];
  // One product for every step's input projection; only the recurrence is sequential.
  const Tensor projected = linear(input, weight_ih, bias_ih);
  const std::int64_t width = projected.shape()[2];
  RecurrentState state = complete(initial, batch);
  std::vector<Tensor> outputs;
  outputs.reserve(std::size_t(steps));
  for (std::int64_t t = 0; t < steps; ++t) {
    state = cell(reshape(slice(projected, 1, t, t + 1), {batch, width}), state);
    outputs.push_back(reshape(state.h, {batch, 1, hidden_size_}));
  }
  Tensor all = steps > 0 ? concat(outputs, 1) : zeros({batch, 0, hidden_size_}, weight_ih.dtype());
  return {std::move(all), std::move(state)};
}

Tensor Recurrent::forward(const Tensor& input) {
  return run(input).outputs;
}

RecurrentState Recurrent::step(const Tensor& x, const RecurrentState& state) {
  if (x.rank() != 2 || x.shape()[1] != input_size_) {
    fail("{}: expected a step input of shape [batch, {}], got {}", name_, input_size_,
         x.shape().str());
  }
  check_dtype(x, "input");
  return cell(linear(x, weight_ih, bias_ih), complete(state, x.shape()[0]));
}

RNN::RNN(std::int64_t input_size, std::int64_t hidden_size, Generator& generator, DType dtype)
    : Recurrent("RNN", 1, input_size, hidden_size, generator, dtype) {}

RecurrentState RNN::cell(const Tensor& projected_input, const RecurrentState& state) {
  return {tanh(projected_input + linear(state.h, weight_hh, bias_hh)), Tensor()};
}

LSTM::LSTM(std::int64_t input_size, std::int64_t hidden_size, Generator& generator, DType dtype)
    : Recurrent("LSTM", 4, input_size, hidden_size, generator, dtype) {}

RecurrentState LSTM::cell(const Tensor& projected_input, const RecurrentState& state) {
  const Tensor gates = projected_input + linear(state.h, weight_hh, bias_hh);
  const Tensor input_gate = sigmoid(gate(gates, 0));
  const Tensor forget_gate = sigmoid(gate(gates, 1));
  const Tensor candidate = tanh(gate(gates, 2));
  const Tensor output_gate = sigmoid(gate(gates, 3));
  Tensor c = forget_gate * state.c + input_gate * candidate;
  Tensor h = output_gate * tanh(c);
  return {std::move(h), std::move(c)};
}

GRU::GRU(std::int64_t input_size, std::int64_t hidden_size, Generator& generator, DType dtype)
    : Recurrent("GRU", 3, input_size, hidden_size, generator, dtype) {}

RecurrentState GRU::cell(const Tensor& projected_input, const RecurrentState& state) {
  // The hidden part of the new gate is reset before it is added, so the two projections stay
  // apart (PyTorch's formula, not the original paper's).
  const Tensor hidden_part = linear(state.h, weight_hh, bias_hh);
  const Tensor reset = sigmoid(gate(projected_input, 0) + gate(hidden_part, 0));
  const Tensor update = sigmoid(gate(projected_input, 1) + gate(hidden_part, 1));
  const Tensor candidate = tanh(gate(projected_input, 2) + reset * gate(hidden_part, 2));
  return {(1.0 - update) * candidate + update * state.h, Tensor()};
}

}  // namespace tg::nn
