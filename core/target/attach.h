// SPDX-License-Identifier: Apache-2.0
// Finding a target's interpreter: shared by dump and record.
#pragma once

#include <memory>
#include <string>

#include "core/sampling/python_module.h"

namespace pyflame::core {

// "pyflame3.11"
std::string binary_name(const BuildInfo& info);

// Finds the Python binary of `image` (a process or a core file), checks it
// is this module's version and locates its interpreter. Throws Error.
std::unique_ptr<Interpreter> locate_interpreter(const PythonModule& module,
                                                const TargetImage& image);
// The same, for a binary already found.
std::unique_ptr<Interpreter> locate_interpreter(const PythonModule& module, const TargetImage& image,
                                                const PythonBinary& binary);

// locate_interpreter() for a live process: finds the Python binary of `process`, checks it is this module's version
// and locates its interpreter. Throws Error; a target that vanished meanwhile
// is reported as exited, whatever else looked wrong, and so is one with no
// interpreter that exits within `finalized_patience_ms` (it had finalized;
// 0 for a process that is still starting its interpreter).
constexpr int kFinalizedPatienceMs = 250;
std::unique_ptr<Interpreter> attach(const PythonModule& module, const Process& process,
                                    int finalized_patience_ms = kFinalizedPatienceMs);

}  // namespace pyflame::core
