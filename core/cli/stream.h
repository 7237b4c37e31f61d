// SPDX-License-Identifier: Apache-2.0
// The hidden `stream` command: what a parent pyflameX.Y running
// --subprocesses starts in this binary for a child of this binary's Python
// version (core/cli/sibling_stream.h). It samples that one process as
// `record` would and writes each tick's samples to standard output in the
// form of core/output/sample_stream.h; it ends as record does, or when the
// parent goes (its pipe closes, or it dies).
#pragma once

#include "core/cli/sampling_run.h"
#include "core/sampling/python_module.h"

namespace pyflame::core {

int stream(const PythonModule& module, const RunOptions& options);

}  // namespace pyflame::core
