#pragma once
// tg::Tensor is a handle. Copying it shares the value and the gradient (like torch::Tensor);
// gradients accumulate into grad() until zero_grad(); a tensor produced by a recorded op is linked
// to its tape entry, and when that tape is gone so is its graph.
#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/shape.h"

namespace tg {

namespace detail {
struct TensorImpl;
class Recorder;
}  // namespace detail

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
  std::int64_t size(std::int64_t axis) const;
  std::int64_t numel() const { return shape().numel(); }
  DType dtype() const;

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
  double at(std::initializer_list<std::int64_t> index) const;
  std::vector<double> to_vector() const;

  // dtype conversion: differentiable between float32 and float64; to or from int64 it converts
  // values only (int64 truncates toward zero).
  Tensor to(DType dtype) const;
  // Same value, no graph, no gradient; shares storage.
  Tensor detach() const;
  // A copy of the value in new storage, detached.
  Tensor copy() const;

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
