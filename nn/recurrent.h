#pragma once
// One-layer recurrent networks with PyTorch's parameter names, layouts, gate order and
// initialisation, so a state dict moves between the two: weight_ih_l0 [k·hidden, input],
// weight_hh_l0 [k·hidden, hidden], bias_ih_l0 and bias_hh_l0 [k·hidden], all U(−1/√hidden,
// 1/√hidden), with k = 1 (RNN), 4 (LSTM: input, forget, cell, output gates) or 3 (GRU: reset,
// update, new). Inputs are batch-first, [batch, time, input]; the cells are written with
// differentiable ops, so gradients of gradients work through them.
#include <cstdint>
#include <string>

#include "nn/module.h"

namespace tg::nn {

// The hidden state, and for an LSTM the cell state; each [batch, hidden]. An undefined tensor
// stands for zeros.
struct RecurrentState {
  Tensor h;
  Tensor c;
};

struct RecurrentOutput {
  Tensor outputs;  // h at every step, [batch, time, hidden]
  RecurrentState final;
};

class Recurrent : public Module {
 public:
  // The whole sequence from a zero state: [batch, time, input] → [batch, time, hidden].
  Tensor forward(const Tensor& input) override;
  RecurrentOutput run(const Tensor& input, const RecurrentState& initial = {});
  // One step: x [batch, input] → the next state.
  RecurrentState step(const Tensor& x, const RecurrentState& state);
  std::string describe() const override;

  std::int64_t input_size() const { return input_size_; }
  std::int64_t hidden_size() const { return hidden_size_; }

  Tensor weight_ih;
  Tensor weight_hh;
  Tensor bias_ih;
  Tensor bias_hh;

 protected:
  Recurrent(const char* name, std::int64_t gates, std::int64_t input_size, std::int64_t hidden_size,
            Generator& generator, DType dtype);
  // The next state from the input's projection x·W_ihᵀ + b_ih ([batch, gates·hidden]) and the
  // current state (zeros filled in).
  virtual RecurrentState cell(const Tensor& projected_input, const RecurrentState& state) = 0;
  // The state's [batch, hidden] parts that `cell` reads: those given, zeros for the rest.
  virtual RecurrentState complete(const RecurrentState& state, std::int64_t batch) const;
  // Gate i of a [batch, gates·hidden] tensor.
  Tensor gate(const Tensor& gates, std::int64_t i) const;
  void check_dtype(const Tensor& t, const char* what) const;
  // A state part checked against [batch, hidden] and the parameters' dtype, or zeros if undefined.
  Tensor given_or_zeros(const Tensor& given, std::int64_t batch, const char* what) const;

 private:
  const char* name_;
  std::int64_t input_size_;
  std::int64_t hidden_size_;
};

// h' = tanh(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)
class RNN : public Recurrent {
 public:
  RNN(std::int64_t input_size, std::int64_t hidden_size, Generator& generator = default_generator(),
      DType dtype = f32);

 protected:
  RecurrentState cell(const Tensor& projected_input, const RecurrentState& state) override;
};

// i, f, o = σ(·), g = tanh(·) of the gate pre-activations; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')
class LSTM : public Recurrent {
 public:
  LSTM(std::int64_t input_size, std::int64_t hidden_size,
       Generator& generator = default_generator(), DType dtype = f32);

 protected:
  RecurrentState cell(const Tensor& projected_input, const RecurrentState& state) override;
  RecurrentState complete(const RecurrentState& state, std::int64_t batch) const override;
};

// r, z = σ(x-part + h-part); n = tanh(x-part + r ⊙ h-part); h' = (1 − z) ⊙ n + z ⊙ h
class GRU : public Recurrent {
 public:
  GRU(std::int64_t input_size, std::int64_t hidden_size, Generator& generator = default_generator(),
      DType dtype = f32);

 protected:
  RecurrentState cell(const Tensor& projected_input, const RecurrentState& state) override;
};

}  // namespace tg::nn
