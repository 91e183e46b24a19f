#pragma once
// tg::Tensor is a handle. Copying it shares the value and the gradient (like torch::Tensor);
// gradients accumulate into grad() until zero_grad(); a tensor produced by a recorded op is linked
// to its tape entry, and when that tape is gone so is its graph.
#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <source_location>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/shape.h"

namespace tg {

namespace detail {
struct TensorImpl;
class Recorder;
}  // namespace detail

using SourceLocation = std::source_location;

struct BackwardOptions {
  bool retain_graph = false;  // keep residuals so the graph can be backpropagated again
  bool create_graph = false;  // record the backward pass itself, for gradients of gradients
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<detail::TensorImpl> impl);
  Tensor(const Tensor& other);
  Tensor(Tensor&& other) noexcept : impl_(std::move(other.impl_)) {}
  Tensor& operator=(const Tensor& other);
  Tensor& operator=(Tensor&& other) noexcept;
  ~Tensor() { release(); }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int rank() const { return shape().rank(); }
  std::int64_t size(std::int64_t axis, SourceLocation location = SourceLocation::current()) const;
  std::int64_t numel() const { return shape().numel(); }
  DType dtype() const;
  // libtorch's spellings of rank() and shape().
  int dim() const { return rank(); }
  std::vector<std::int64_t> sizes() const { return {shape().begin(), shape().end()}; }

  // Typed access to the contiguous row-major buffer; T must match dtype(). Access through a
  // non-const handle counts as a write: it bumps version(), which backward checks for every
  // tensor an op saved, so an in-place change to a saved value is an error, not a wrong gradient.
  // Read through a const handle (std::as_const) when only reading.
  template <class T>
  T* data();
  template <class T>
  const T* data() const;
  const void* raw_data() const;
  void* raw_data();
  // Counts writes to the storage (shared by every tensor that shares it, as detach() does).
  std::uint64_t version() const;

  double item() const;
  template <class T>
  T item() const {
    return static_cast<T>(item());
  }
  double at(std::initializer_list<std::int64_t> index) const;
  std::vector<double> to_vector() const;

  // dtype conversion: differentiable between float32 and float64; to or from int64 it converts
  // values only (int64 truncates toward zero).
  Tensor to(DType dtype) const;
  // Same value, no graph, no gradient; shares storage.
  Tensor detach() const;
  // A copy of the value in new storage, detached.
  Tensor copy() const;
  // Storage is always contiguous, so this is the tensor itself, as libtorch's for such a tensor.
  Tensor contiguous() const { return *this; }

  // The ops as libtorch's methods (x.sum(1), x.matmul(w)), defined in ops/methods.cpp: each one
  // calls the free function of its name, passing the caller's location on, so the handle stays
  // ignorant of ops. Axes may be negative. max and min return (values, indices) as libtorch's.
  Tensor add(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor sub(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor mul(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor div(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor matmul(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor pow(double exponent, SourceLocation location = SourceLocation::current()) const;
  Tensor clamp(double low, double high, SourceLocation location = SourceLocation::current()) const;
  Tensor neg(SourceLocation location = SourceLocation::current()) const;
  Tensor exp(SourceLocation location = SourceLocation::current()) const;
  Tensor log(SourceLocation location = SourceLocation::current()) const;
  Tensor sqrt(SourceLocation location = SourceLocation::current()) const;
  Tensor abs(SourceLocation location = SourceLocation::current()) const;
  Tensor square(SourceLocation location = SourceLocation::current()) const;
  Tensor tanh(SourceLocation location = SourceLocation::current()) const;
  Tensor sigmoid(SourceLocation location = SourceLocation::current()) const;
  Tensor relu(SourceLocation location = SourceLocation::current()) const;
  Tensor softmax(std::int64_t axis, SourceLocation location = SourceLocation::current()) const;
  Tensor log_softmax(std::int64_t axis, SourceLocation location = SourceLocation::current()) const;
  Tensor sum(SourceLocation location = SourceLocation::current()) const;
  Tensor sum(std::int64_t axis, bool keepdim = false,
             SourceLocation location = SourceLocation::current()) const;
  Tensor mean(SourceLocation location = SourceLocation::current()) const;
  Tensor mean(std::int64_t axis, bool keepdim = false,
              SourceLocation location = SourceLocation::current()) const;
  Tensor logsumexp(std::int64_t axis, bool keepdim = false,
                   SourceLocation location = SourceLocation::current()) const;
  std::tuple<Tensor, Tensor> max(std::int64_t axis, bool keepdim = false,
                                 SourceLocation location = SourceLocation::current()) const;
  std::tuple<Tensor, Tensor> min(std::int64_t axis, bool keepdim = false,
                                 SourceLocation location = SourceLocation::current()) const;
  Tensor amax(std::int64_t axis, bool keepdim = false,
              SourceLocation location = SourceLocation::current()) const;
  Tensor amin(std::int64_t axis, bool keepdim = false,
              SourceLocation location = SourceLocation::current()) const;
  Tensor argmax(SourceLocation location = SourceLocation::current()) const;
  Tensor argmax(std::int64_t axis, bool keepdim = false,
                SourceLocation location = SourceLocation::current()) const;
  Tensor argmin(SourceLocation location = SourceLocation::current()) const;
  Tensor argmin(std::int64_t axis, bool keepdim = false,
                SourceLocation location = SourceLocation::current()) const;
  // reshape and view are the same: both share storage, one dim may be −1.
  Tensor reshape(const std::vector<std::int64_t>& dims,
                 SourceLocation location = SourceLocation::current()) const;
  Tensor view(const std::vector<std::int64_t>& dims,
              SourceLocation location = SourceLocation::current()) const;
  Tensor flatten(std::int64_t start = 0, std::int64_t end = -1,
                 SourceLocation location = SourceLocation::current()) const;
  Tensor unsqueeze(std::int64_t axis, SourceLocation location = SourceLocation::current()) const;
  Tensor squeeze(SourceLocation location = SourceLocation::current()) const;
  Tensor squeeze(std::int64_t axis, SourceLocation location = SourceLocation::current()) const;
  // The transpose of a matrix; a tensor of rank 0 or 1 as it is, rank 3 and up an error.
  Tensor t(SourceLocation location = SourceLocation::current()) const;
  Tensor transpose(std::int64_t axis0, std::int64_t axis1,
                   SourceLocation location = SourceLocation::current()) const;
  Tensor permute(const std::vector<std::int64_t>& axes,
                 SourceLocation location = SourceLocation::current()) const;
  Tensor expand(const std::vector<std::int64_t>& sizes,
                SourceLocation location = SourceLocation::current()) const;
  // Python's x[start:end:step] along an axis (see tg::slice in ops/everyday.h).
  Tensor slice(std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step = 1,
               SourceLocation location = SourceLocation::current()) const;
  Tensor narrow(std::int64_t axis, std::int64_t start, std::int64_t length,
                SourceLocation location = SourceLocation::current()) const;
  Tensor index_select(std::int64_t axis, const Tensor& index,
                      SourceLocation location = SourceLocation::current()) const;
  Tensor gather(std::int64_t axis, const Tensor& index,
                SourceLocation location = SourceLocation::current()) const;
  // Comparisons and logic make bool masks (tg::b8), never differentiable.
  Tensor eq(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor ne(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor lt(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor le(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor gt(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor ge(const Tensor& other, SourceLocation location = SourceLocation::current()) const;
  Tensor eq(double other, SourceLocation location = SourceLocation::current()) const;
  Tensor ne(double other, SourceLocation location = SourceLocation::current()) const;
  Tensor lt(double other, SourceLocation location = SourceLocation::current()) const;
  Tensor le(double other, SourceLocation location = SourceLocation::current()) const;
  Tensor gt(double other, SourceLocation location = SourceLocation::current()) const;
  Tensor ge(double other, SourceLocation location = SourceLocation::current()) const;
  Tensor logical_not(SourceLocation location = SourceLocation::current()) const;
  Tensor isnan(SourceLocation location = SourceLocation::current()) const;
  Tensor masked_fill(const Tensor& mask, double value,
                     SourceLocation location = SourceLocation::current()) const;
  Tensor masked_select(const Tensor& mask,
                       SourceLocation location = SourceLocation::current()) const;
  // A copy in new storage that stays on the graph (copy() and detach() leave it).
  Tensor clone(SourceLocation location = SourceLocation::current()) const;

  bool requires_grad() const;
  Tensor& requires_grad(bool value);
  bool is_leaf() const;
  Tensor grad() const;
  void zero_grad();

  // Accumulates d(this)/d(leaf) · seed into every leaf's grad(); seed may be omitted for a
  // single-element tensor.
  void backward(const Tensor& seed = {}, BackwardOptions options = {}) const;

  std::string str() const;

  const std::shared_ptr<detail::TensorImpl>& impl() const { return impl_; }

 private:
  void acquire() const;
  void release();
  detail::TensorImpl& checked_impl(const char* what) const;

  std::shared_ptr<detail::TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

// A tensor of uninitialised values; every tensor's memory comes from here.
Tensor empty(const Shape& shape, DType dtype = f32);

namespace detail {

struct Storage {
  explicit Storage(std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data;
  std::size_t bytes;
  std::uint64_t version = 0;
  // Tensors of up to 64 bytes (16 floats) live here, saving a second allocation per small op.
  alignas(64) std::byte inline_bytes[64];
};

// What a recorded tensor tells the tape that recorded it, the role of c10's AutogradMetaInterface:
// the handle counts the tape needs to reclaim its entries, without the handle knowing tapes.
class Recorder {
 public:
  virtual void first_handle(TensorImpl& impl) = 0;
  virtual void last_handle(TensorImpl& impl) = 0;
  // A handle taken (+1) or dropped (-1) on a thread other than the tape's (a loss handed to a
  // logging thread): queued for the tape's thread, so the tape's bookkeeping never races.
  virtual void handle_elsewhere(std::shared_ptr<TensorImpl> impl, int change) = 0;
  // A linked impl is gone.
  virtual void unlink() = 0;

 protected:
  ~Recorder() = default;
};

// Where a recorded tensor came from: an output slot (ref) of an entry of a tape generation.
// `core` and `thread` are set once, when the op is recorded; the rest changes when the tape
// compacts, on the tape's thread only.
struct Link {
  Recorder* core = nullptr;
  std::thread::id thread;
  std::uint64_t generation = 0;
  std::int64_t entry = 0;
  std::int64_t ref = 0;
};

struct TensorImpl {
  TensorImpl(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype)
      : storage(std::move(storage)), shape(shape), dtype(dtype) {}
  ~TensorImpl() {
    if (link.core) link.core->unlink();
  }

  std::shared_ptr<Storage> storage;
  Shape shape;
  DType dtype;
  bool requires_grad = false;
  // Tensor handles (not tape references) to a linked impl; the default tape reclaims its
  // entries when no handle to any of its outputs is left. Only the tape's thread touches it:
  // handles taken or dropped on other threads are handed to the tape (see acquire/release).
  int handles = 0;
  Link link;
  Tensor grad;
  // Per-backward accumulator slot for leaves, valid while slot_stamp matches the pass (pass
  // numbers are unique across threads).
  std::atomic<std::uint64_t> slot_stamp = 0;
  std::size_t slot = 0;
  // The thread whose backward passes (nested ones included) now accumulate into this tensor:
  // a second thread's backward reaching it at the same time is an error instead of a data race.
  std::atomic<std::thread::id> backward_owner;
  int backward_holds = 0;
};

// A new impl, from the small-object cache; every tensor is made through it.
std::shared_ptr<TensorImpl> make_impl(std::shared_ptr<Storage> storage, const Shape& shape,
                                      DType dtype);

}  // namespace detail

inline void Tensor::acquire() const {
  if (!impl_ || !impl_->link.core) return;
  if (impl_->link.thread == std::this_thread::get_id()) [[likely]] {
    if (impl_->handles++ == 0) impl_->link.core->first_handle(*impl_);
  } else {
    impl_->link.core->handle_elsewhere(impl_, +1);
  }
}

inline void Tensor::release() {
  if (impl_ && impl_->link.core) {
    if (impl_->link.thread == std::this_thread::get_id()) [[likely]] {
      if (--impl_->handles == 0) impl_->link.core->last_handle(*impl_);
    } else {
      detail::Recorder* recorder = impl_->link.core;
      recorder->handle_elsewhere(std::move(impl_), -1);
    }
  }
  impl_.reset();
}

inline Tensor::Tensor(std::shared_ptr<detail::TensorImpl> impl) : impl_(std::move(impl)) {
  acquire();
}

inline Tensor::Tensor(const Tensor& other) : impl_(other.impl_) {
  acquire();
}

inline Tensor& Tensor::operator=(const Tensor& other) {
  if (this != &other) {
    other.acquire();
    release();
    impl_ = other.impl_;
  }
  return *this;
}

inline Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this != &other) {
    release();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

[[noreturn]] void fail_undefined(const char* what);

inline const Shape& Tensor::shape() const {
  if (!impl_) [[unlikely]]
    fail_undefined("Tensor::shape");
  return impl_->shape;
}

inline DType Tensor::dtype() const {
  if (!impl_) [[unlikely]]
    fail_undefined("Tensor::dtype");
  return impl_->dtype;
}

template <class T>
const T* Tensor::data() const {
  const DType want = dtype_of<T>();
  if (dtype() != want) {
    fail("Tensor::data: tensor is {}, accessed as {}", dtype_name(dtype()), dtype_name(want));
  }
  return static_cast<const T*>(impl_->storage->data);
}

template <class T>
T* Tensor::data() {
  const T* p = std::as_const(*this).data<T>();
  ++impl_->storage->version;
  return const_cast<T*>(p);
}

inline std::uint64_t Tensor::version() const {
  if (!impl_) [[unlikely]]
    fail_undefined("Tensor::version");
  return impl_->storage->version;
}

}  // namespace tg
