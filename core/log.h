// Debug logging, enabled by PYFLAME_DEBUG=1 in the environment. Costs one
// branch when off: arguments are not formatted.
#pragma once

#include <fmt/format.h>

#include <cstdio>

namespace pyflame::core {

bool debug_enabled();

}  // namespace pyflame::core

#define PYFLAME_DEBUG_LOG(...)                                               \
  do {                                                                       \
    if (::pyflame::core::debug_enabled())                                    \
      std::fprintf(stderr, "pyflame debug: %s\n", fmt::format(__VA_ARGS__).c_str()); \
  } while (0)
