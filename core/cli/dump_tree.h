// SPDX-License-Identifier: Apache-2.0
// `dump --subprocesses -p PID`: the stacks of a process and of every
// process under it, each read by the pyflameX.Y of its own Python version
// (this one, or a sibling run as `dump -p CHILD`), each under a header; in
// JSON, one document listing them. A process that is not Python, or that
// could not be read, is listed with the reason.
#pragma once

#include "core/cli/command_line.h"
#include "core/sampling/python_module.h"
#include "core/sampling/sample_mode.h"

namespace pyflame::core {

int dump_tree(const PythonModule& module, const DumpArgs& options, SampleMode mode);

}  // namespace pyflame::core
