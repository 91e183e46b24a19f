#pragma once
// tapegrad logs through one named spdlog logger, "tapegrad". The default level is warn;
// TAPEGRAD_LOG=trace (or debug, info, ...) in the environment, or set_log_level(), shows one line
// per recorded entry and per backward step.
#include <spdlog/spdlog.h>

namespace tg {

spdlog::logger& logger();
void set_log_level(spdlog::level::level_enum level);

}  // namespace tg
