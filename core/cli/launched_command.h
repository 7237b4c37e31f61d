// SPDX-License-Identifier: Apache-2.0
// `record -- CMD`: the command we start, and how our part in it ends.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace pyflame::core {

// A command started by `record -- CMD`: it shares our terminal and streams.
class LaunchedCommand {
 public:
  // Starts it; throws Error (exit 2) if it cannot be run.
  explicit LaunchedCommand(const std::vector<std::string>& argv);
  LaunchedCommand(const LaunchedCommand&) = delete;
  LaunchedCommand& operator=(const LaunchedCommand&) = delete;

  pid_t pid() const { return pid_; }
  bool exited() const { return status_.has_value(); }
  // Reaps the command if it has ended; true if it has.
  bool poll();
  // Waits until it ends; false if it did not within `seconds` (< 0: forever).
  bool wait(double seconds = -1);
  // The shell's convention: the exit status, or 128 + the signal that killed it.
  int exit_code() const;
  std::string describe() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Ends our part in a launched command the one documented way, whatever
// ended the recording: after a stop signal it gets a second to exit from
// the same Ctrl-C, then the signal; otherwise it is waited for (it shares
// our terminal: it must not go on printing after we have gone).
void finish_command(LaunchedCommand& command, int stop_signal);

// The command line as a shell would take it back (quoted where needed).
std::string join_command(const std::vector<std::string>& argv);

}  // namespace pyflame::core
