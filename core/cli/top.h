// SPDX-License-Identifier: Apache-2.0
// `top`: a live view of where a process spends its time, refreshed every
// interval; full screen on a terminal, plain text otherwise.
#pragma once

#include <optional>
#include <string>

#include "core/cli/sampling_run.h"
#include "core/sampling/python_module.h"

namespace pyflame::core {

struct TopOptions {
  RunOptions run;
  double refresh_seconds = 1.0;  // --interval
  bool once = false;             // one table after one interval, then exit
  bool plain = false;            // --once or --interval: plain text even on a terminal
  size_t rows = 20;              // rows of a plain table (0: all)
  std::optional<std::string> stats_json;
};

// Returns the exit code (docs/usage.md); throws Error for setup failures.
int top(const PythonModule& module, const TopOptions& options);

}  // namespace pyflame::core
