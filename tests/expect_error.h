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

}  // namespace tg::test_support
