// SPDX-License-Identifier: Apache-2.0
// `record`: samples a target until the duration runs out, the user stops
// it, or the target exits, and writes the aggregated profile.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/sampling/python_module.h"
#include "core/output/writers.h"
#include "core/cli/sampling_run.h"

namespace pyflame::core {

struct RecordOptions {
  RunOptions run;                          // what is sampled, how often, how long
  std::optional<std::string> output;       // nullopt: standard output
  std::optional<OutputFormat> format;      // nullopt: from the output's extension
  bool thread_roots = false;
  bool status = true;                      // the live line on a terminal
  std::optional<std::string> stats_json;
};

// Exit codes of record beyond ExitCode (docs/usage.md).
inline constexpr int kExitInterrupted = 130;  // SIGINT (Ctrl-C), 128 + 2
inline constexpr int kExitTerminated = 143;   // SIGTERM, 128 + 15

// Returns the exit code; throws Error for setup failures.
int record(const PythonModule& module, const RecordOptions& options);

}  // namespace pyflame::core
