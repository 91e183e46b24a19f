#pragma once
// Every tapegrad failure is a tg::Error whose message names the op, the shapes involved and what
// was expected, so a user can fix the call without reading tapegrad's source.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace tg {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace tg
