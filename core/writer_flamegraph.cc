#include <stdexcept>

#include "core/writers.h"

namespace pyflame::core {

// Placeholder until the flamegraph writer lands.
std::string write_flamegraph_svg(const Profile&) { throw std::runtime_error("the flamegraph format is not built yet"); }

}  // namespace pyflame::core
