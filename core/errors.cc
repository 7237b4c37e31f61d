// SPDX-License-Identifier: Apache-2.0
#include "core/errors.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace pyflame::core {

void throw_no_such_process(int pid) {
  throw Error(ExitCode::kNoSuchProcess,
              fmt::format("pyflame: no process with PID {} (check the PID with `ps -p {}`)", pid, pid));
}

void throw_permission_denied(int pid, const std::string& what) {
  throw Error(ExitCode::kPermissionDenied,
              fmt::format("pyflame: permission denied {} of process {}. Run pyflame as root or "
                          "as the target's user, or grant it CAP_SYS_PTRACE "
                          "(sudo setcap cap_sys_ptrace+ep $(command -v pyflameX.Y); it then profiles only "
                          "its caller's own processes); "
                          "with kernel.yama.ptrace_scope above 0, the same user is not enough "
                          "(sudo sysctl kernel.yama.ptrace_scope=0)",
                          what, pid));
}

void throw_target_exited(int pid) {
  throw Error(ExitCode::kTargetExited,
              fmt::format("pyflame: process {} exited while it was being read", pid));
}

void throw_for_errno(int err, int pid, const std::string& what) {
  if (err == EPERM || err == EACCES) throw_permission_denied(pid, what);
  if (err == ESRCH || err == ENOENT) throw_target_exited(pid);
  throw Error(ExitCode::kFailure,
              fmt::format("pyflame: error {} of process {}: {}", what, pid, std::strerror(err)));
}

}  // namespace pyflame::core
