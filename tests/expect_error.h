#pragma once
// One check for the error tests: `call` throws a tg::Error whose message contains `part`.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/error.h"

namespace tg::test_support {

inline void expect_error_containing(const std::function<void()>& call, const std::string& part) {
  try {
    call();
    ADD_FAILURE() << "expected an error: " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// `call` throws a tg::Error about `op` called from `file`: "op: … (at file:line)".
inline void expect_error_at(const std::function<void()>& call, const std::string& op,
                            const std::string& file) {
  try {
    call();
    ADD_FAILURE() << "expected an error from " << op;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_TRUE(message.starts_with(op + ": ")) << message;
    EXPECT_NE(message.find(" (at " + file + ":"), std::string::npos) << message;
    EXPECT_TRUE(message.ends_with(")")) << message;
  }
}

}  // namespace tg::test_support
