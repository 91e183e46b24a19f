#include "autograd/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace tg {

spdlog::logger& logger() {
  static const std::shared_ptr<spdlog::logger> instance = [] {
    std::shared_ptr<spdlog::logger> existing = spdlog::get("tapegrad");
    if (existing) return existing;
    auto created = spdlog::stderr_color_mt("tapegrad");
    const char* level = std::getenv("TAPEGRAD_LOG");
    created->set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
    return created;
  }();
  return *instance;
}

void set_log_level(spdlog::level::level_enum level) {
  logger().set_level(level);
}

}  // namespace tg
