#pragma once
#include <cstddef>
#include <cstdint>

#include "autograd/error.h"

namespace tg {

// float32 and float64 carry values and gradients; int64 carries labels and indices only.
enum class DType : std::uint8_t { f32, f64, i64 };

inline constexpr DType f32 = DType::f32;
inline constexpr DType f64 = DType::f64;
inline constexpr DType i64 = DType::i64;

constexpr const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i64:
      return "int64";
  }
  return "?";
}

constexpr std::size_t dtype_size(DType dtype) {
  return dtype == DType::f32 ? 4 : 8;
}

constexpr bool is_floating(DType dtype) {
  return dtype != DType::i64;
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

// Calls fn.template operator()<T>() with T the C++ type of a floating dtype; `op` names the
// caller in the error raised for int64.
template <class Fn>
decltype(auto) dispatch_floating(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      return fn.template operator()<float>();
    case DType::f64:
      return fn.template operator()<double>();
    case DType::i64:
      break;
  }
  fail("{}: expected a floating tensor (float32 or float64), got {}", op, dtype_name(dtype));
}

}  // namespace tg
