#include "nn/data.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>

#include "autograd/tape.h"
#include "ops/ops.h"

namespace tg::nn {
namespace {

struct GzFile {
  explicit GzFile(const std::string& path) : handle(gzopen(path.c_str(), "rb")) {
    if (!handle) fail("load_csv: cannot open {}", path);
  }
  ~GzFile() { gzclose(handle); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // The next line without its line break; false at the end of the file.
  bool read_line(std::string& line, const std::string& path) {
    line.clear();
    char buffer[4096];
    while (gzgets(handle, buffer, sizeof buffer)) {
      line += buffer;
      if (!line.empty() && line.back() == '\n') break;
    }
    int error = Z_OK;
    const char* message = gzerror(handle, &error);
    if (error != Z_OK && error != Z_STREAM_END) fail("load_csv: {}: {}", path, message);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return !line.empty() || !gzeof(handle);
  }

  gzFile handle;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Dataset load_csv(const std::string& path, const CsvOptions& options) {
  GzFile file(path);
  std::string line;
  std::vector<double> features;
  std::vector<std::int64_t> labels;
  std::size_t columns = 0;
  for (int number = 1; file.read_line(line, path); ++number) {
    if (number <= options.skip_lines || trim(line).empty()) continue;
    std::size_t column = 0;
    std::size_t start = 0;
    std::vector<double> row;
    while (start <= line.size()) {
      const std::size_t comma = std::min(line.find(',', start), line.size());
      const std::string_view field = trim(std::string_view(line).substr(start, comma - start));
      ++column;
      double value = 0;
      const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
      if (field.empty() || error != std::errc() || end != field.data() + field.size() ||
          !std::isfinite(value)) {
        fail("load_csv: {}:{}:{}: '{}' is not a finite number", path, number, column, field);
      }
      row.push_back(value);
      start = comma + 1;
    }
    if (columns == 0) {
      if (row.size() < 2)
        fail("load_csv: {}:{}: expected features and a label, got 1 column", path, number);
      columns = row.size();
    } else if (row.size() != columns) {
      fail("load_csv: {}:{}: {} columns where the first row has {}", path, number, row.size(),
           columns);
    }
    const double label = row.back();
    // Labels are class indices: far below 2^31, and converting a larger double is undefined.
    if (label < 0 || label != std::floor(label) ||
        label > double(std::numeric_limits<std::int32_t>::max())) {
      fail("load_csv: {}:{}:{}: label {} is not a non-negative integer", path, number, columns,
           label);
    }
    labels.push_back(std::int64_t(label));
    features.insert(features.end(), row.begin(), row.end() - 1);
  }
  if (labels.empty()) fail("load_csv: {} has no data rows", path);
  const auto n = std::int64_t(labels.size());
  return {from_vector(features, {n, std::int64_t(columns) - 1}, options.dtype),
          int64_tensor(labels)};
}

Dataset subset(const Dataset& data, const std::vector<std::int64_t>& rows) {
  NoGradGuard no_grad;
  const Tensor index = int64_tensor(rows);
  const std::int64_t* labels = data.labels.data<std::int64_t>();
  std::vector<std::int64_t> picked;
  picked.reserve(rows.size());
  for (std::int64_t r : rows) picked.push_back(labels[r]);
  return {index_select(data.features, 0, index), int64_tensor(picked)};
}

std::pair<Dataset, Dataset> train_test_split(const Dataset& data, double test_fraction,
                                             std::uint64_t seed) {
  if (!(test_fraction > 0 && test_fraction < 1)) {
    fail("train_test_split: expected 0 < test_fraction < 1, got {}", test_fraction);
  }
  std::vector<std::int64_t> order(std::size_t(data.size()));
  std::iota(order.begin(), order.end(), 0);
  Generator generator(seed);
  for (std::size_t i = order.size(); i > 1; --i) {  // Fisher-Yates
    std::swap(order[i - 1], order[std::size_t(generator.next() % i)]);
  }
  const auto test = std::size_t(std::llround(test_fraction * double(order.size())));
  const std::vector<std::int64_t> train_rows(order.begin(), order.end() - std::ptrdiff_t(test));
  const std::vector<std::int64_t> test_rows(order.end() - std::ptrdiff_t(test), order.end());
  return {subset(data, train_rows), subset(data, test_rows)};
}

Standardizer::Standardizer(const Tensor& training_features) {
  NoGradGuard no_grad;
  mean_ = mean(training_features, 0);
  const Tensor centred = training_features - mean_;
  const std::vector<double> variance = mean(centred * centred, 0).to_vector();
  std::vector<double> inverse(variance.size());
  for (std::size_t i = 0; i < variance.size(); ++i) {
    inverse[i] = variance[i] > 0 ? 1.0 / std::sqrt(variance[i]) : 1.0;
  }
  inverse_std_ = from_vector(inverse, mean_.shape(), training_features.dtype());
}

Tensor Standardizer::operator()(const Tensor& features) const {
  NoGradGuard no_grad;
  return (features - mean_) * inverse_std_;
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  if (logits.rank() != 2 || labels.dtype() != i64 || labels.numel() != logits.shape()[0]) {
    fail("accuracy: expected logits [N, C] and int64 labels [N], got {} and {} {}",
         logits.shape().str(), dtype_name(labels.dtype()), labels.shape().str());
  }
  if (labels.numel() == 0) return 0.0;
  const std::vector<double> scores = logits.to_vector();
  const std::int64_t classes = logits.shape()[1];
  const std::int64_t* y = labels.data<std::int64_t>();
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    const auto row = scores.begin() + std::ptrdiff_t(i * classes);
    correct += std::max_element(row, row + std::ptrdiff_t(classes)) - row == y[i];
  }
  return double(correct) / double(labels.numel());
}

DataLoader::DataLoader(Dataset data, std::int64_t batch_size, bool shuffle, std::uint64_t seed)
    : data_(std::move(data)), batch_size_(batch_size), shuffle_(shuffle), generator_(seed) {
  if (batch_size <= 0) fail("DataLoader: expected a positive batch size, got {}", batch_size);
  order_.resize(std::size_t(data_.size()));
  std::iota(order_.begin(), order_.end(), 0);
}

DataLoader::Iterator DataLoader::begin() {
  if (shuffle_) {
    for (std::size_t i = order_.size(); i > 1; --i) {
      std::swap(order_[i - 1], order_[std::size_t(generator_.next() % i)]);
    }
  }
  return Iterator(this, 0);
}

Dataset DataLoader::Iterator::operator*() const {
  const auto first = loader_->order_.begin() + std::ptrdiff_t(start_);
  const auto last = loader_->order_.begin() +
                    std::ptrdiff_t(std::min(start_ + loader_->batch_size_, loader_->data_.size()));
  return subset(loader_->data_, std::vector<std::int64_t>(first, last));
}

}  // namespace tg::nn
