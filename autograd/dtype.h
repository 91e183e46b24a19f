#pragma once
#include <cstddef>
#include <cstdint>

#include "autograd/error.h"

namespace tg {

// float32 and float64 carry values and gradients; int64 carries labels and indices only; bool
// (tg::b8, PyTorch's torch.bool: one byte per element, stored as C++ bool, so only 0 or 1) carries
// masks, made by comparisons and taken by where, masked_fill and masked_select. Neither int64 nor
// bool ever requires grad: a differentiable op given one raises an error naming the op and dtype.
enum class DType : std::uint8_t { f32, f64, i64, b8 };

inline constexpr DType f32 = DType::f32;
inline constexpr DType f64 = DType::f64;
inline constexpr DType i64 = DType::i64;
inline constexpr DType b8 = DType::b8;

constexpr const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i64:
      return "int64";
    case DType::b8:
      return "bool";
  }
  return "?";
}

constexpr std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f64:
    case DType::i64:
      return 8;
    case DType::b8:
      return 1;
  }
  return 0;
}

constexpr bool is_floating(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64;
}

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::i64;
}
template <>
constexpr DType dtype_of<bool>() {
  return DType::b8;
}

// Calls fn.template operator()<T>() with T the C++ type of a floating dtype; `op` names the
// caller in the error raised for int64 and bool.
template <class Fn>
decltype(auto) dispatch_floating(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      return fn.template operator()<float>();
    case DType::f64:
      return fn.template operator()<double>();
    case DType::i64:
    case DType::b8:
      break;
  }
  fail("{}: expected a floating tensor (float32 or float64), got {}", op, dtype_name(dtype));
}

// The same for every dtype (float, double, std::int64_t, bool), for the ops that only move or
// compare values (where, comparisons, casts).
template <class Fn>
decltype(auto) dispatch_all(DType dtype, Fn&& fn) {
  if (dtype == DType::i64) return fn.template operator()<std::int64_t>();
  if (dtype == DType::b8) return fn.template operator()<bool>();
  return dispatch_floating(dtype, "dispatch_all", fn);
}

}  // namespace tg
