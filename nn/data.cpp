#include "nn/data.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>

#include "autograd/tape.h"
#include "nn/serialize.h"
#include "ops/ops.h"

namespace tg::nn {
namespace {

// The bytes of a regular file, inflated if it starts with the gzip magic. zlib's gzread is not
// used: it stops a line at a NUL byte and ignores anything after the last gzip member.
class TextSource {
 public:
  TextSource(const std::string& path, const char* op)
      : path_(path), op_(op), file_(detail::open_regular_file(path, op)) {
    refill();
    gzip_ = stream_.avail_in >= 2 && input_[0] == 0x1f && input_[1] == 0x8b;
    // 16 + MAX_WBITS: a gzip wrapper, not zlib's.
    if (gzip_ && inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();
  }
  ~TextSource() {
    if (gzip_) inflateEnd(&stream_);
  }
  TextSource(const TextSource&) = delete;
  TextSource& operator=(const TextSource&) = delete;

  // Up to `size` bytes, 0 only at the end.
  std::size_t read(char* out, std::size_t size) {
    if (!gzip_) {
      if (stream_.avail_in == 0 && !refill()) return 0;
      const std::size_t count = std::min<std::size_t>(size, stream_.avail_in);
      std::memcpy(out, stream_.next_in, count);
      stream_.next_in += count;
      stream_.avail_in -= unsigned(count);
      return count;
    }
    stream_.next_out = reinterpret_cast<Bytef*>(out);
    stream_.avail_out = unsigned(size);
    while (stream_.avail_out == size) {
      if (member_ended_) {
        // Concatenated gzip members are one stream, as gzip -d and Python read them.
        if (stream_.avail_in == 0 && !refill()) return 0;
        if (stream_.next_in[0] != 0x1f) {
          fail("{}: {}: {} bytes after the end of the gzip data are not gzip (trailing garbage)",
               op_, path_, stream_.avail_in);
        }
        inflateReset(&stream_);
        member_ended_ = false;
      }
      const int status = inflate(&stream_, Z_NO_FLUSH);
      if (status == Z_STREAM_END) {
        member_ended_ = true;
      } else if (status == Z_MEM_ERROR) {
        throw std::bad_alloc();
      } else if (status != Z_OK && status != Z_BUF_ERROR) {
        fail("{}: {}: corrupt gzip data ({})", op_, path_, stream_.msg ? stream_.msg : "?");
      } else if (stream_.avail_in == 0 && stream_.avail_out == size && !refill()) {
        fail("{}: {}: the gzip data is truncated", op_, path_);
      }
    }
    return size - stream_.avail_out;
  }

 private:
  bool refill() {
    stream_.next_in = input_.data();
    stream_.avail_in = unsigned(detail::read_some(file_, input_.data(), input_.size(), path_, op_));
    return stream_.avail_in > 0;
  }

  const std::string& path_;
  const char* op_;
  detail::FileDescriptor file_;
  std::array<Bytef, 1 << 16> input_{};
  z_stream stream_{};
  bool gzip_ = false;
  bool member_ended_ = false;
};

// The lines of a file, each checked against the limits before it is stored.
class Lines {
 public:
  Lines(const std::string& path, const CsvOptions& options)
      : path_(path), options_(options), source_(path, "load_csv") {}

  // The next line without its line break; false at the end of the file.
  bool next(std::string& line) {
    line.clear();
    bool any = false;
    for (;;) {
      if (at_ == end_) {
        at_ = 0;
        end_ = source_.read(buffer_.data(), buffer_.size());
        total_ += end_;
        if (options_.max_bytes != 0 && total_ > options_.max_bytes) {
          fail("load_csv: {}: more than {} bytes of text (CsvOptions::max_bytes)", path_,
               options_.max_bytes);
        }
        if (end_ == 0) break;
      }
      any = true;
      const char* start = buffer_.data() + at_;
      const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - at_));
      const std::size_t count = newline ? std::size_t(newline - start) : end_ - at_;
      if (options_.max_line_bytes != 0 && line.size() + count > options_.max_line_bytes) {
        fail("load_csv: {}:{}: the line is longer than {} bytes (CsvOptions::max_line_bytes)",
             path_, number_ + 1, options_.max_line_bytes);
      }
      line.append(start, count);
      at_ += count + (newline ? 1 : 0);
      if (newline) break;
    }
    if (!any) return false;
    ++number_;
    if (const void* nul = std::memchr(line.data(), '\0', line.size())) {
      fail("load_csv: {}:{}: a NUL byte at byte {} of the line", path_, number_,
           static_cast<const char*>(nul) - line.data() + 1);
    }
    if (line.ends_with('\r')) line.pop_back();
    // A byte order mark, as Excel writes and pandas skips.
    if (number_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    return true;
  }

  std::int64_t number() const { return number_; }

 private:
  const std::string& path_;
  const CsvOptions& options_;
  TextSource source_;
  std::array<char, 1 << 16> buffer_{};
  std::size_t at_ = 0;
  std::size_t end_ = 0;
  std::uint64_t total_ = 0;
  std::int64_t number_ = 0;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string load_text(const std::string& path, std::uint64_t max_bytes) {
  TextSource source(path, "load_text");
  std::string text;
  std::array<char, 1 << 16> chunk;
  while (const std::size_t count = source.read(chunk.data(), chunk.size())) {
    if (max_bytes != 0 && text.size() + count > max_bytes) {
      fail("load_text: {}: more than {} bytes of text (max_bytes)", path, max_bytes);
    }
    text.append(chunk.data(), count);
  }
  return text;
}

Dataset load_csv(const std::string& path, const CsvOptions& options) {
  Lines lines(path, options);
  std::string line;
  std::vector<double> row;
  std::vector<double> features;
  std::vector<std::int64_t> labels;
  std::size_t columns = 0;
  while (lines.next(line)) {
    const std::int64_t number = lines.number();
    if (number <= options.skip_lines || trim(line).empty()) continue;
    if (options.max_rows != 0 && std::int64_t(labels.size()) == options.max_rows) {
      fail("load_csv: {}:{}: more than {} rows (CsvOptions::max_rows)", path, number,
           options.max_rows);
    }
    std::size_t column = 0;
    std::size_t start = 0;
    row.clear();
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
  const auto last = loader_->order_.begin() + std::ptrdiff_t(loader_->batch_end(start_));
  return subset(loader_->data_, std::vector<std::int64_t>(first, last));
}

}  // namespace tg::nn
