// Every parameterised test shows its parameter: a failure report or a test list that reads
// "GetParam() = 4-byte object <01-00 00-00>" does not say which case failed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

TEST(TestNames, EveryParameterisedCaseShowsItsParameterReadably) {
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  std::vector<std::string> unreadable;
  std::size_t parameterised = 0;
  for (int s = 0; s < unit.total_test_suite_count(); ++s) {
    const ::testing::TestSuite& suite = *unit.GetTestSuite(s);
    for (int t = 0; t < suite.total_test_count(); ++t) {
      const ::testing::TestInfo& info = *suite.GetTestInfo(t);
      if (info.value_param() == nullptr) continue;
      ++parameterised;
      const std::string param = info.value_param();
      const std::string name = info.name();
      // gtest's fallback for a type without operator<<, and its default name: the bare index.
      if (param.find("-byte object <") != std::string::npos ||
          name.find_first_not_of("0123456789", name.rfind('/') + 1) == std::string::npos) {
        unreadable.push_back(std::string(suite.name()) + "." + name + " = " + param);
      }
    }
  }
  EXPECT_GT(parameterised, 1000u);
  EXPECT_TRUE(unreadable.empty()) << unreadable.size() << " cases, the first: " << unreadable[0];
}

}  // namespace
