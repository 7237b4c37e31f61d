// SPDX-License-Identifier: Apache-2.0
// Diagnostics on standard error, through spdlog. One rule for every binary
// and the detector: PYFLAME_LOG=debug|info|warn|error|off in the
// environment (PYFLAME_DEBUG=1 is an alias for debug; 0 or empty is off),
// raised by -v (info) and -vv (debug) on the command line. The default is
// warn. A message below the level costs one compare: its arguments are
// neither formatted nor evaluated beyond the call.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace pyflame::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// The level below which messages are dropped; read from the environment
// before main().
extern LogLevel g_log_level;

inline bool log_enabled(LogLevel level) { return level >= g_log_level; }
// Lowers the level by `count` steps from warn (-v: info, -vv: debug), never
// raising it above what the environment asked.
void raise_verbosity(int count);
// Writes one message (spdlog's stderr sink, "pyflame LEVEL: message").
void log_write(LogLevel level, std::string_view message);
// The level named in PYFLAME_LOG / PYFLAME_DEBUG, for tests and the detector.
LogLevel log_level_from_environment();

}  // namespace pyflame::core

#define PYFLAME_LOG_AT(level, ...)                                                     \
  do {                                                                                 \
    if (::pyflame::core::log_enabled(level)) [[unlikely]]                              \
      ::pyflame::core::log_write(level, fmt::format(__VA_ARGS__));                     \
  } while (0)
#define PYFLAME_DEBUG_LOG(...) PYFLAME_LOG_AT(::pyflame::core::LogLevel::kDebug, __VA_ARGS__)
#define PYFLAME_INFO_LOG(...) PYFLAME_LOG_AT(::pyflame::core::LogLevel::kInfo, __VA_ARGS__)
#define PYFLAME_WARN_LOG(...) PYFLAME_LOG_AT(::pyflame::core::LogLevel::kWarn, __VA_ARGS__)
