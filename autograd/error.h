#pragma once
// Every tapegrad failure is a tg::Error whose message names the op, the shapes involved and what
// was expected, so a user can fix the call without reading tapegrad's source.
#include <fmt/format.h>

#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tg {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

namespace detail {

// An error about a call: "op: message (at file:line)", ending with the caller's file:line, the
// line the user can act on.
template <class... Args>
[[noreturn]] void fail_at(const char* op, const std::source_location& location,
                          fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format("{}: {} (at {}:{})", op, fmt::format(format, std::forward<Args>(args)...),
                          location.file_name(), location.line()));
}

// The message without the " (at file:line)" it ends with, if it does.
inline std::string_view without_location(std::string_view message) {
  const std::size_t at = message.rfind(" (at ");
  if (at == std::string_view::npos || !message.ends_with(')')) return message;
  const std::string_view where = message.substr(at + 5, message.size() - at - 6);
  const std::size_t colon = where.rfind(':');
  const bool is_location =
      colon != std::string_view::npos && colon + 1 < where.size() &&
      where.find_first_not_of("0123456789", colon + 1) == std::string_view::npos;
  return is_location ? message.substr(0, at) : message;
}

}  // namespace detail

}  // namespace tg
