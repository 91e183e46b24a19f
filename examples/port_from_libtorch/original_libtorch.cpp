// A typical libtorch C++ frontend program: an MLP classifier on the iris data, with a data loader,
// Adam, a step schedule, evaluation under no-grad and a checkpoint saved and loaded. port.cpp is
// its tapegrad port, line for line. Built only with -DTAPEGRAD_BENCH_TORCH=ON (Debian's
// libtorch-dev).
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

// What tapegrad has and libtorch lacks, written out: tg::nn::Dataset (Data), load_csv (rows of four
// features and a label after a header line), train_test_split and a data set class for the loader.
struct Data {
  torch::Tensor features, labels;
};

Data load_csv(const std::string& path) {
  std::ifstream file(path);
  std::string line, field;
  std::getline(file, line);
  std::vector<float> features;
  std::vector<int64_t> labels;
  while (std::getline(file, line)) {
    std::stringstream row(line);
    for (int column = 0; column < 4 && std::getline(row, field, ','); ++column) {
      features.push_back(std::stof(field));
    }
    std::getline(row, field);
    labels.push_back(std::stoll(field));
  }
  const auto n = static_cast<int64_t>(labels.size());
  return {torch::tensor(features).reshape({n, 4}), torch::tensor(labels)};
}

std::pair<Data, Data> train_test_split(const Data& data, double test_fraction) {
  const auto rows = torch::randperm(data.features.size(0), torch::kLong);
  const auto test_rows = std::llround(test_fraction * static_cast<double>(rows.size(0)));
  const auto test = rows.slice(0, 0, test_rows), train = rows.slice(0, test_rows, rows.size(0));
  return {{data.features.index_select(0, train), data.labels.index_select(0, train)},
          {data.features.index_select(0, test), data.labels.index_select(0, test)}};
}

struct Examples : torch::data::datasets::Dataset<Examples> {
  explicit Examples(Data rows) : rows(std::move(rows)) {}
  torch::data::Example<> get(size_t i) override { return {rows.features[i], rows.labels[i]}; }
  torch::optional<size_t> size() const override { return rows.features.size(0); }
  Data rows;
};

struct NetImpl : torch::nn::Module {
  NetImpl(int64_t inputs, int64_t hidden, int64_t classes)
      : fc1(register_module("fc1", torch::nn::Linear(inputs, hidden))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, classes))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc2(fc1(x).relu()); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Net);

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : TAPEGRAD_EXAMPLE_DATA "/iris.csv";
  torch::manual_seed(0);
  auto [train, test] = train_test_split(load_csv(path), 0.2);
  // Standardise with the training rows' mean and deviation.
  const auto mean = train.features.mean(0);
  const auto scale = (train.features - mean).square().mean(0).sqrt();
  train.features = (train.features - mean) / scale;
  test.features = (test.features - mean) / scale;
  auto loader = torch::data::make_data_loader<torch::data::samplers::RandomSampler>(
      Examples(train).map(torch::data::transforms::Stack<>()), /*batch_size=*/16);

  Net model(4, 16, 3);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(0.01));
  torch::optim::StepLR scheduler(optimizer, /*step_size=*/20, /*gamma=*/0.5);
  torch::nn::CrossEntropyLoss criterion;
  for (int epoch = 0; epoch < 60; ++epoch) {
    model->train();
    for (const auto& batch : *loader) {
      optimizer.zero_grad();
      auto loss = criterion(model(batch.data), batch.target);
      loss.backward();
      optimizer.step();
    }
    scheduler.step();
  }

  model->eval();
  torch::NoGradGuard no_grad;
  const auto logits = model(test.features);
  const double accuracy =
      logits.argmax(1).eq(test.labels).sum().item<int64_t>() / double(test.labels.size(0));

  torch::save(model, "iris_mlp.pt");
  Net reloaded(4, 16, 3);
  torch::load(reloaded, "iris_mlp.pt");
  reloaded->eval();
  const bool identical = torch::equal(reloaded(test.features), logits);
  std::cout << "test accuracy " << accuracy << ", reloaded checkpoint identical: " << std::boolalpha
            << identical << '\n';
  return accuracy >= 0.9 && identical ? 0 : 1;
}
