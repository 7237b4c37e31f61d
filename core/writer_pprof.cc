#include <stdexcept>

#include "core/writers.h"

namespace pyflame::core {

// Placeholder until the pprof writer lands.
std::string write_pprof(const Profile&) { throw std::runtime_error("the pprof format is not built yet"); }

}  // namespace pyflame::core
