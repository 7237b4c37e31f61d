// SPDX-License-Identifier: Apache-2.0
#include "core/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace pyflame::core {
namespace {

LogLevel parse_level(const char* text, LogLevel fallback) {
  if (text == nullptr || *text == '\0') return fallback;
  std::string name(text);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name == "debug" || name == "trace") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  if (name == "off" || name == "none") return LogLevel::kOff;
  return fallback;  // an unknown name changes nothing
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
    case LogLevel::kOff: break;
  }
  return spdlog::level::off;
}

spdlog::logger& logger() {
  // Unsynchronised: pyflame logs from one thread at a time, and the sink is
  // stderr, unbuffered, so lines are not held back if the target kills us.
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
    auto made = std::make_shared<spdlog::logger>("pyflame", sink);
    made->set_pattern("pyflame %l: %v");
    made->set_level(spdlog::level::debug);  // g_log_level decides first
    return made;
  }();
  return *instance;
}

}  // namespace

LogLevel log_level_from_environment() {
  LogLevel level = LogLevel::kWarn;
  const char* debug = std::getenv("PYFLAME_DEBUG");
  if (debug != nullptr && *debug != '\0' && std::strcmp(debug, "0") != 0) level = LogLevel::kDebug;
  return parse_level(std::getenv("PYFLAME_LOG"), level);
}

LogLevel g_log_level = log_level_from_environment();

void raise_verbosity(int count) {
  if (count <= 0) return;
  const LogLevel asked = count >= 2 ? LogLevel::kDebug : LogLevel::kInfo;
  g_log_level = std::min(g_log_level, asked);
}

void log_write(LogLevel level, std::string_view message) {
  logger().log(to_spdlog(level), "{}", message);
}

}  // namespace pyflame::core
