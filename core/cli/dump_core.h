// SPDX-License-Identifier: Apache-2.0
// `dump --core FILE`: the Python stacks of a process from its core file.
#pragma once

#include "core/cli/command_line.h"
#include "core/sampling/python_module.h"
#include "core/sampling/sample_mode.h"

namespace pyflame::core {

// `mode`: wall or gil (the caller refuses cpu and --blocking, which need a
// running process).
int dump_core(const PythonModule& module, const DumpArgs& options, SampleMode mode);

}  // namespace pyflame::core
