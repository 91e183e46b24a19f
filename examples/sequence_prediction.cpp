#include <tapegrad.h>

#include <cmath>
#include <iostream>

// Waves sin(ω·t + φ) of random frequency and phase: the LSTM reads samples 0..22 and predicts
// samples 1..23, so it has to infer each wave's frequency from what it has seen so far.
struct Waves {
  tg::Tensor inputs, targets;  // [waves, 23, 1]
};

Waves make_waves(std::int64_t n, tg::Generator& gen) {
  std::vector<double> inputs, targets;
  for (std::int64_t i = 0; i < n; ++i) {
    const double omega = 0.2 + 0.4 * gen.uniform(), phase = 6.283 * gen.uniform();
    for (int t = 0; t < 23; ++t) {
      inputs.push_back(std::sin(omega * t + phase));
      targets.push_back(std::sin(omega * (t + 1) + phase));
    }
  }
  return {tg::from_vector(inputs, {n, 23, 1}), tg::from_vector(targets, {n, 23, 1})};
}

int main() {
  tg::Generator gen(0);
  const Waves train = make_waves(64, gen), test = make_waves(64, gen);
  tg::nn::LSTM lstm(1, 16);
  tg::nn::Linear head(16, 1);
  std::vector<tg::Tensor> parameters = lstm.parameters();
  for (const tg::Tensor& p : head.parameters()) parameters.push_back(p);
  tg::nn::Adam optimizer(parameters, {.lr = 0.01});
  for (int step = 0; step < 200; ++step) {
    optimizer.zero_grad();
    tg::mse_loss(head(lstm(train.inputs)), train.targets).backward();
    optimizer.step();
  }
  tg::NoGradGuard no_grad;
  const double mse = tg::mse_loss(head(lstm(test.inputs)), test.targets).item();
  const double repeat_last = tg::mse_loss(test.inputs, test.targets).item();
  std::cout << "next-sample MSE " << mse << " (repeating the last sample: " << repeat_last << ")\n";
  return mse < 0.1 * repeat_last ? 0 : 1;
}
