#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <new>
#include <source_location>
#include <span>
#include <string>
#include <vector>

namespace tg {

// Dimensions of a row-major tensor, stored inline: shapes are copied into every tape entry, so
// they must not allocate.
//
// Size arithmetic is checked here, once: every dim is >= 0 and the product of the non-zero dims
// fits in int64. So numel() cannot overflow, nor can an offset inside a tensor, nor the size of
// any shape made by dropping or shrinking a dim (even of an empty tensor such as [0, 2^31, 2^31]).
// Every way of making a shape checks this and throws a tg::Error naming the caller (`op`) and the
// dims; the dims cannot be changed in place.
class Shape {
 public:
  static constexpr int kMaxRank = 8;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : Shape(std::span(dims.begin(), dims.size())) {}
  explicit Shape(std::span<const std::int64_t> dims, const char* op = "Shape");
  // A run-time shape, as libtorch's IntArrayRef takes one: tg::zeros(dims) with a vector of dims.
  Shape(const std::vector<std::int64_t>& dims) : Shape(std::span<const std::int64_t>(dims)) {}

  int rank() const { return rank_; }
  std::int64_t operator[](int axis) const { return dims_[axis]; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  const std::int64_t* begin() const { return dims_.data(); }
  const std::int64_t* end() const { return dims_.data() + rank_; }
  std::span<const std::int64_t> dims() const { return {dims_.data(), std::size_t(rank_)}; }

  void push_back(std::int64_t dim, const char* op = "Shape");
  Shape without_axis(int axis) const;
  Shape with_dim(int axis, std::int64_t dim, const char* op = "Shape") const;

  bool operator==(const Shape& other) const;
  std::string str() const;

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

std::ostream& operator<<(std::ostream& out, const Shape& shape);

// The most bytes one tensor may hold (1 TiB). Larger requests fail before the system is asked:
// under a sanitizer such a request aborts the process instead of throwing.
inline constexpr std::size_t kMaxTensorBytes = std::size_t(1) << 40;

// A std::bad_alloc that says which tensor was too large.
class TensorTooLarge : public std::bad_alloc {
 public:
  explicit TensorTooLarge(std::string message)
      : message_(std::make_shared<const std::string>(std::move(message))) {}
  const char* what() const noexcept override { return message_->c_str(); }

 private:
  std::shared_ptr<const std::string> message_;  // shared, so copying cannot throw
};

// numel × element_size, the byte count of every tensor buffer; throws TensorTooLarge above
// kMaxTensorBytes. `what` names the element type in the message.
std::size_t tensor_bytes(const Shape& shape, std::size_t element_size, const char* what);

// NumPy broadcasting of two shapes; `op` names the caller in the error.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// True when a tensor of shape `from` broadcasts to `to` (so a gradient of shape `to` sums back).
bool broadcastable_to(const Shape& from, const Shape& to);

// The row-major multi-index of a flat element index.
std::vector<std::int64_t> unravel_index(std::int64_t flat, const Shape& shape);

// Maps a possibly negative axis into [0, rank) or throws naming `op`.
int normalize_axis(std::int64_t axis, int rank, const char* op,
                   const std::source_location& location);

// Views a shape as [outer, axis_dim, inner] around one axis, the layout every axis kernel uses.
struct AxisSplit {
  std::int64_t outer;
  std::int64_t dim;
  std::int64_t inner;
};
AxisSplit split_at_axis(const Shape& shape, int axis);

}  // namespace tg
