#include <stdexcept>

#include "core/writers.h"

namespace pyflame::core {

// Placeholder until the speedscope writer lands.
std::string write_speedscope(const Profile&) { throw std::runtime_error("the speedscope format is not built yet"); }

}  // namespace pyflame::core
