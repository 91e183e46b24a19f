#pragma once
// Numeric tables: a CSV loader (plain or gzip), a seeded train/test split, standardisation, and
// a shuffling batch iterator.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/factories.h"

namespace tg::nn {

// features [N, F] and int64 labels [N].
struct Dataset {
  Tensor features;
  Tensor labels;
  std::int64_t size() const { return features.defined() ? features.shape()[0] : 0; }
};

struct CsvOptions {
  int skip_lines = 0;  // header lines
  DType dtype = f32;   // of the features
  // Limits, so that a hostile file (a gzip bomb of endless rows or of one endless line) fails
  // fast with a tg::Error instead of exhausting memory. 0 turns a limit off. Loading takes up to
  // about 8 bytes of memory per byte of text (one double per "0,").
  std::size_t max_line_bytes = std::size_t(1) << 20;  // 1 MiB
  std::uint64_t max_bytes = std::uint64_t(1) << 28;   // 256 MiB of (decompressed) text
  std::int64_t max_rows = 0;
};

// Reads rows of numbers, the last column an integer class label, from a regular .csv file or
// one compressed with gzip (several concatenated gzip members are one stream; anything after
// them is an error). A UTF-8 byte order mark at the start is skipped. A malformed row (a bad
// number, a NUL byte, a line over the limit) raises a tg::Error naming the file, line and
// column; so do a directory, FIFO or device as path, corrupt gzip data and the limits above.
Dataset load_csv(const std::string& path, const CsvOptions& options = {});

// The whole text of a regular file, plain or gzip (as load_csv reads it); more than max_bytes
// (0 = no limit) is an error, so that a gzip bomb fails fast.
std::string load_text(const std::string& path, std::uint64_t max_bytes = std::uint64_t(1) << 28);

// Rows picked by index (a copy).
Dataset subset(const Dataset& data, const std::vector<std::int64_t>& rows);

// A seeded shuffle, then the first (1 − test_fraction) of the rows for training.
std::pair<Dataset, Dataset> train_test_split(const Dataset& data, double test_fraction,
                                             std::uint64_t seed);

// Per-feature mean and standard deviation of a training set, applied to any set (features with
// no spread are only centred).
class Standardizer {
 public:
  explicit Standardizer(const Tensor& training_features);
  Tensor operator()(const Tensor& features) const;

 private:
  Tensor mean_;
  Tensor inverse_std_;
};

// The fraction of rows of [N, C] logits whose arg-max is the label.
double accuracy(const Tensor& logits, const Tensor& labels);

// Mini-batches of a dataset, reshuffled at every pass when shuffle is on:
//   for (const Dataset& batch : loader) { ... }
class DataLoader {
 public:
  DataLoader(Dataset data, std::int64_t batch_size, bool shuffle, std::uint64_t seed = 0);

  class Iterator {
   public:
    Iterator(const DataLoader* loader, std::int64_t start) : loader_(loader), start_(start) {}
    Dataset operator*() const;
    Iterator& operator++() {
      start_ = loader_->batch_end(start_);
      return *this;
    }
    bool operator!=(const Iterator& other) const { return start_ < other.start_; }

   private:
    const DataLoader* loader_;
    std::int64_t start_;
  };

  Iterator begin();  // reshuffles
  Iterator end() const { return Iterator(this, data_.size()); }
  std::int64_t batches() const {
    return data_.size() / batch_size_ + (data_.size() % batch_size_ != 0);
  }

 private:
  // Where the batch starting at `start` ends; start + batch_size_ may not fit in int64.
  std::int64_t batch_end(std::int64_t start) const {
    return data_.size() - start <= batch_size_ ? data_.size() : start + batch_size_;
  }

  Dataset data_;
  std::int64_t batch_size_;
  bool shuffle_;
  Generator generator_;
  std::vector<std::int64_t> order_;
};

}  // namespace tg::nn
