#include "core/log.h"

#include <cstdlib>
#include <cstring>

namespace pyflame::core {

bool debug_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("PYFLAME_DEBUG");
    return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

}  // namespace pyflame::core
