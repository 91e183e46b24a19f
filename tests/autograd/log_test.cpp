#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "tapegrad.h"

namespace tg {
namespace {

TEST(Logging, TraceLevelLogsEveryRecordedEntryAndBackwardStep) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  logger().sinks().push_back(sink);
  const spdlog::level::level_enum previous = logger().level();
  set_log_level(spdlog::level::trace);
  {
    Tape tape;
    Tensor x = tensor({1, 2}).requires_grad(true);
    sum(exp(x)).backward();
  }
  set_log_level(previous);
  logger().sinks().pop_back();
  const std::string text = captured.str();
  EXPECT_NE(text.find("record #0 exp -> [2] float32"), std::string::npos) << text;
  EXPECT_NE(text.find("record #1 sum -> [] float32"), std::string::npos) << text;
  EXPECT_NE(text.find("backward #1 sum: dx = broadcast(g) (grad [])"), std::string::npos) << text;
  EXPECT_NE(text.find("backward #0 exp: dx = g ⊙ y (grad [2])"), std::string::npos) << text;
  EXPECT_EQ(logger().name(), "tapegrad");
}

}  // namespace
}  // namespace tg
