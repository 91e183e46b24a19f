#pragma once
// GoogleTest integration (target tapegrad::gtest): assertions whose failure message is the
// gradcheck report, naming the input element, output element, analytic and numeric values.
#include <gtest/gtest.h>

#include "tools/gradcheck.h"

namespace tg::testing {

inline ::testing::AssertionResult as_assertion(const GradcheckResult& result) {
  if (result.passed) return ::testing::AssertionSuccess() << result.report;
  return ::testing::AssertionFailure() << result.report;
}

}  // namespace tg::testing

#define EXPECT_GRADCHECK(f, ...) \
  EXPECT_TRUE(::tg::testing::as_assertion(::tg::gradcheck((f), __VA_ARGS__)))
#define ASSERT_GRADCHECK(f, ...) \
  ASSERT_TRUE(::tg::testing::as_assertion(::tg::gradcheck((f), __VA_ARGS__)))
#define EXPECT_GRADGRADCHECK(f, ...) \
  EXPECT_TRUE(::tg::testing::as_assertion(::tg::gradgradcheck((f), __VA_ARGS__)))
#define ASSERT_GRADGRADCHECK(f, ...) \
  ASSERT_TRUE(::tg::testing::as_assertion(::tg::gradgradcheck((f), __VA_ARGS__)))
