// SPDX-License-Identifier: Apache-2.0
// Setup errors: thrown while attaching and locating the interpreter, caught
// only by the command-line front end, which maps each to an exit code.
// A sample that fails ends no run: record.cc's sampling loop counts it in
// its errors and goes on, unless the target is gone or out of reach.
#pragma once

#include <stdexcept>
#include <string>

namespace pyflame::core {

// Documented in docs/usage.md; the integration tests assert them.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,
  kUsage = 2,
  kNoSuchProcess = 3,
  kPermissionDenied = 4,
  kNotPython = 5,
  kWrongVersion = 6,
  kTargetExited = 7,
  kInconsistent = 8,  // dump: no consistent stack could be read (try --blocking)
  kBadCore = 9,       // dump --core: not a whole core file pyflame can read
  kMissingFile = 10,  // dump --core: a file the process had mapped is not found (--lib-search)
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// A Python runtime with no interpreter: one not started yet, or one that
// has finalized and whose process is about to exit (attach() tells which).
class NoInterpreterError : public Error {
 public:
  explicit NoInterpreterError(const std::string& message) : Error(ExitCode::kNotPython, message) {}
};

[[noreturn]] void throw_no_such_process(int pid);
[[noreturn]] void throw_permission_denied(int pid, const std::string& what);
[[noreturn]] void throw_target_exited(int pid);

// Maps an errno from an access to process `pid` to the right error.
[[noreturn]] void throw_for_errno(int err, int pid, const std::string& what);

}  // namespace pyflame::core
