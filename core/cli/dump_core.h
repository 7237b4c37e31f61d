// SPDX-License-Identifier: Apache-2.0
// `dump --core FILE`: the Python stacks of a process from its core file.
#pragma once

#include "core/cli/command_line.h"
#include "core/sampling/python_module.h"

namespace pyflame::core {

int dump_core(const PythonModule& module, const DumpArgs& options);

}  // namespace pyflame::core
