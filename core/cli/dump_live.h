// SPDX-License-Identifier: Apache-2.0
// `dump -p PID`: the Python stacks of one running process, read until they
// are consistent.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/cli/command_line.h"
#include "core/sampling/python_module.h"
#include "core/sampling/sample_mode.h"

namespace pyflame::core {

// Process `pid`'s stacks as `dump` prints them (text, or JSON with
// options.json), the threads `mode` keeps. Throws Error. Keeps any
// privilege: the caller drops it before it writes (a tree dump reads
// several processes first).
std::string dump_live(const PythonModule& module, pid_t pid, const DumpArgs& options, SampleMode mode);

}  // namespace pyflame::core
