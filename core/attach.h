// Finding a target's interpreter: shared by dump and record.
#pragma once

#include <memory>
#include <string>

#include "core/python_module.h"

namespace pyflame::core {

// "pyflame3.11"
std::string binary_name(const BuildInfo& info);

// Finds the Python binary of `process`, checks it is this module's version
// and locates its interpreter. Throws Error; a target that vanished meanwhile
// is reported as exited, whatever else looked wrong.
std::unique_ptr<Interpreter> attach(const PythonModule& module, const Process& process);

}  // namespace pyflame::core
