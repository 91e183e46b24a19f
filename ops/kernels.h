#pragma once
// Private helpers shared by the op files: Eigen views of tensor buffers and the iteration
// patterns (broadcast rows, axis blocks) the kernels are built from.
#include <Eigen/Core>

#include <array>
#include <cmath>
#include <limits>

#include "autograd/parallel.h"
#include "autograd/tensor.h"

namespace tg::detail {

template <class T>
using Vector = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ColumnVector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

// exp, log and sqrt for kernels, exact at the ends of their range where Eigen's packet versions
// are not (Eigen 3.4, measured against std:: in tests/ops/numerics_test.cpp):
// - pexp clamps its argument to ±88.72 (float) / ±709.78 (double), so every x below, −inf
//   included, gives the same denormal (2.9e-39 / 5.6e-309) instead of the true denormal or 0: a
//   −inf mask leaked probability into softmax and logsumexp.
// - plog raises denormals to the smallest normal: log(1e-40f) came out −87.3 instead of −92.1.
// - psqrt for float is rsqrt and one Newton step (EIGEN_FAST_MATH): up to 3 ulp off, 0 for
//   denormals, NaN for +inf and +inf for negative denormals.
// Scalar paths (the tail of a row shorter than a packet) call std::, so an uncorrected packet path
// also made the answer depend on the row length. Use these instead of .exp(), .log(), .sqrt().
template <class T>
struct ExpOp {
  T operator()(T x) const { return std::exp(x); }
  template <class Packet>
  Packet packetOp(const Packet& x) const {
    using namespace Eigen::internal;
    // Below log(smallest normal) the result is denormal or 0, which the clamp cannot produce:
    // there exp(x) = exp(x + 40)·e⁻⁴⁰, where x + 40 is exact (same binade) and inside the clamp,
    // and the product rounds once to the denormal (or underflows to 0, for −inf too).
    constexpr T log_min_normal = sizeof(T) == 4 ? T(-87.33) : T(-708.39);
    const Packet tail = pcmp_lt(x, pset1<Packet>(log_min_normal));
    if (!predux_any(tail)) return pexp(x);  // the common case pays one comparison
    const Packet shifted = padd(x, pand(tail, pset1<Packet>(T(40))));
    const Packet scale =
        pselect(tail, pset1<Packet>(T(4.248354255291589e-18)), pset1<Packet>(T(1)));
    return pmul(pexp(shifted), scale);
  }
};

template <class T>
struct LogOp {
  T operator()(T x) const { return std::log(x); }
  template <class Packet>
  Packet packetOp(const Packet& x) const {
    using namespace Eigen::internal;
    // Denormals are scaled into the normal range by 2ᵏ (exact) and k·ln 2 taken off again; 0 stays
    // 0 (−inf) and negatives stay negative (NaN).
    constexpr int k = std::numeric_limits<T>::digits + 1;
    const Packet denormal = pcmp_lt(x, pset1<Packet>(std::numeric_limits<T>::min()));
    if (!predux_any(denormal)) return plog(x);  // the common case pays one comparison
    const Packet scaled = pselect(denormal, pmul(x, pset1<Packet>(std::ldexp(T(1), k))), x);
    return psub(plog(scaled), pand(denormal, pset1<Packet>(T(k * 0.6931471805599453))));
  }
};

// Correctly rounded packet square roots (the instructions), where Eigen's fast float psqrt is not.
#if defined(EIGEN_VECTORIZE_SSE2)
inline __m128 exact_psqrt(__m128 x) {
  return _mm_sqrt_ps(x);
}
inline __m128d exact_psqrt(__m128d x) {
  return _mm_sqrt_pd(x);
}
#endif
#if defined(EIGEN_VECTORIZE_AVX)
inline __m256 exact_psqrt(__m256 x) {
  return _mm256_sqrt_ps(x);
}
inline __m256d exact_psqrt(__m256d x) {
  return _mm256_sqrt_pd(x);
}
#endif
#if defined(EIGEN_VECTORIZE_AVX512)
inline __m512 exact_psqrt(__m512 x) {
  return _mm512_sqrt_ps(x);
}
inline __m512d exact_psqrt(__m512d x) {
  return _mm512_sqrt_pd(x);
}
#endif

template <class T>
struct SqrtOp {
  T operator()(T x) const { return std::sqrt(x); }
  template <class Packet>
  Packet packetOp(const Packet& x) const {
    return exact_psqrt(x);
  }
};

template <class Derived>
auto exp_array(const Eigen::ArrayBase<Derived>& x) {
  return x.unaryExpr(ExpOp<typename Derived::Scalar>{});
}
template <class Derived>
auto log_array(const Eigen::ArrayBase<Derived>& x) {
  return x.unaryExpr(LogOp<typename Derived::Scalar>{});
}
template <class Derived>
auto sqrt_array(const Eigen::ArrayBase<Derived>& x) {
  return x.unaryExpr(SqrtOp<typename Derived::Scalar>{});
}

template <class T>
Eigen::Map<Vector<T>> flat(Tensor& t) {
  return {t.data<T>(), t.numel()};
}
template <class T>
Eigen::Map<const Vector<T>> flat(const Tensor& t) {
  return {t.data<T>(), t.numel()};
}

// Requires floating tensors of one dtype; `op` names the caller in the error.
void check_same_floating(const Tensor& a, const Tensor& b, const char* op);
// The same check in an op's public function, before its forward: errors end at the caller's line.
void check_same_floating(const Tensor& a, const Tensor& b, const char* op,
                         const SourceLocation& location);

// Elementwise kernels split a large flat range into one contiguous chunk per thread (at most
// kMaxChunks), the same split the row kernels make, so each core keeps working on the part of a
// tensor in its cache. body(chunk, begin, count).
inline constexpr std::int64_t kMaxChunks = 64;
template <class Body>
void for_each_chunk(std::int64_t n, Body body) {
  constexpr std::int64_t kChunkAlign = 64;
  const std::int64_t chunks =
      n >= kParallelElements ? std::min<std::int64_t>(num_threads(), kMaxChunks) : 1;
  const std::int64_t size =
      ((n + chunks - 1) / chunks + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  parallel_for(chunks, n, [&](std::int64_t c) {
    const std::int64_t begin = std::min(n, c * size);
    body(c, begin, std::min(n, begin + size) - begin);
  });
}

// out = fn(flat(x)) for an Eigen array expression fn.
template <class Fn>
Tensor map_unary(const Tensor& x, const char* op, Fn fn) {
  return dispatch_floating(x.dtype(), op, [&]<class T>() {
    Tensor out = empty(x.shape(), x.dtype());
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for_each_chunk(x.numel(), [&](std::int64_t, std::int64_t begin, std::int64_t count) {
      Eigen::Map<Vector<T>>(po + begin, count) = fn(Eigen::Map<const Vector<T>>(px + begin, count));
    });
    return out;
  });
}

// Walks a broadcast over `out` row by row (a row is the innermost dimension): for every row it
// passes the offset of each input's row and whether that input repeats one value along it.
class BroadcastRows {
 public:
  BroadcastRows(const Shape& out, const Shape& a, const Shape& b);

  std::int64_t rows() const { return rows_; }
  std::int64_t length() const { return length_; }
  bool a_repeats() const { return a_inner_ == 0; }
  bool b_repeats() const { return b_inner_ == 0; }

  template <class Fn>  // fn(row, a_offset, b_offset)
  void for_each(Fn fn) const {
    std::array<std::int64_t, Shape::kMaxRank> index{};
    std::int64_t a_offset = 0;
    std::int64_t b_offset = 0;
    for (std::int64_t row = 0; row < rows_; ++row) {
      fn(row, a_offset, b_offset);
      for (int d = outer_rank_ - 1; d >= 0; --d) {
        a_offset += a_strides_[d];
        b_offset += b_strides_[d];
        if (++index[d] < out_[d]) break;
        a_offset -= a_strides_[d] * out_[d];
        b_offset -= b_strides_[d] * out_[d];
        index[d] = 0;
      }
    }
  }

 private:
  Shape out_;
  int outer_rank_ = 0;
  std::int64_t rows_ = 1;
  std::int64_t length_ = 1;
  std::int64_t a_inner_ = 1;
  std::int64_t b_inner_ = 1;
  std::array<std::int64_t, Shape::kMaxRank> a_strides_{};
  std::array<std::int64_t, Shape::kMaxRank> b_strides_{};
};

// Calls fn with the row segment of a buffer as an Eigen array: a map when the row is stored,
// a constant when one value repeats along it.
template <class T, class Fn>
decltype(auto) with_segment(const T* data, std::int64_t length, bool repeats, Fn&& fn) {
  if (repeats) return fn(Vector<T>::Constant(length, *data));
  return fn(Eigen::Map<const Vector<T>>(data, length));
}

// out = fn(a, b) elementwise with NumPy broadcasting.
template <class Fn>
Tensor map_binary(const Tensor& a, const Tensor& b, const char* op, Fn fn) {
  check_same_floating(a, b, op);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), op);
  return dispatch_floating(a.dtype(), op, [&]<class T>() {
    Tensor out = empty(out_shape, a.dtype());
    if (out.numel() == 0) return out;  // never walk the rows of an empty broadcast
    if (a.shape() == b.shape()) {
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* po = out.data<T>();
      for_each_chunk(out.numel(), [&](std::int64_t, std::int64_t begin, std::int64_t count) {
        Eigen::Map<Vector<T>>(po + begin, count) =
            fn(Eigen::Map<const Vector<T>>(pa + begin, count),
               Eigen::Map<const Vector<T>>(pb + begin, count));
      });
      return out;
    }
    const BroadcastRows rows(out_shape, a.shape(), b.shape());
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    const std::int64_t n = rows.length();
    rows.for_each([&](std::int64_t row, std::int64_t ia, std::int64_t ib) {
      with_segment(pa + ia, n, rows.a_repeats(), [&](const auto& sa) {
        with_segment(pb + ib, n, rows.b_repeats(),
                     [&](const auto& sb) { Eigen::Map<Vector<T>>(po + row * n, n) = fn(sa, sb); });
      });
    });
    return out;
  });
}

// A mask of x's shape and dtype: 1 where pred(value) holds, else 0. Masks are constants in
// backward rules (relu, clamp, abs, max).
template <class Pred>
Tensor mask_where(const Tensor& x, const char* op, Pred pred) {
  return map_unary(x, op, [&](const auto& v) {
    using T = typename std::decay_t<decltype(v)>::Scalar;
    return v.unaryExpr([&](T e) { return pred(e) ? T(1) : T(0); });
  });
}

// [s0, .., 1, .., sk]: the shape a reduction over `axis` keeps with keepdim.
Shape keepdim_shape(const Shape& shape, int axis);

// The gradient of a reduction over `axis`, reshaped so it broadcasts against the input.
Tensor unsqueeze_reduced(const Tensor& grad, const Shape& input_shape, int axis, bool keepdim);

}  // namespace tg::detail

namespace Eigen::internal {
template <class T>
struct functor_traits<tg::detail::ExpOp<T>> {
  enum {
    Cost = functor_traits<scalar_exp_op<T>>::Cost + 4 * NumTraits<T>::AddCost,
    PacketAccess = packet_traits<T>::HasExp
  };
};
template <class T>
struct functor_traits<tg::detail::LogOp<T>> {
  enum {
    Cost = functor_traits<scalar_log_op<T>>::Cost + 4 * NumTraits<T>::AddCost,
    PacketAccess = packet_traits<T>::HasLog
  };
};
template <class T>
struct functor_traits<tg::detail::SqrtOp<T>> {
  enum {
    Cost = functor_traits<scalar_sqrt_op<T>>::Cost,
    PacketAccess = requires(typename packet_traits<T>::type p){tg::detail::exact_psqrt(p);}
};
};  // namespace Eigen::internal
}  // namespace Eigen::internal
