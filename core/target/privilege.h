// SPDX-License-Identifier: Apache-2.0
// pyflame installed with more privilege than its caller (a file capability
// `setcap cap_sys_ptrace+ep`, or setuid) must only do what the caller's real
// credentials allow: profile the caller's own processes where Yama
// (kernel.yama.ptrace_scope=1) or a container would otherwise refuse.
//
// init() runs first: it notes whether we are elevated, turns a setuid
// binary into a capability-holding process of the caller's uid, and keeps
// at most CAP_SYS_PTRACE, permitted but not effective. The capability is
// made effective only around the calls that need it (opening
// /proc/PID/mem, PTRACE_SEIZE), after check_target() has found the target
// to be the caller's own, and is dropped for good before any output is
// written and before a command is launched. Files are always opened with
// the caller's uid and no capability.
#pragma once

#include <sys/types.h>

#include <string>

namespace pyflame::core::privilege {

// Call once, before anything else. Never throws.
void init();

// Whether this process started with more privilege than its caller.
bool elevated();

// Why (for messages): "the file capability CAP_SYS_PTRACE", "setuid", ...
const std::string& elevation_reason();

// Unless elevated, does nothing. Elevated: throws Error (exit 4) unless the
// target's real, effective and saved uids and gids equal the caller's real
// ones and the target is dumpable: the kernel's own check for the caller.
void check_target(pid_t pid);

// CAP_SYS_PTRACE effective for the lifetime of this object, when we hold it.
class Raised {
 public:
  Raised();
  ~Raised();
  Raised(const Raised&) = delete;
  Raised& operator=(const Raised&) = delete;

 private:
  bool raised_ = false;
};

// Drops every capability for good (idempotent; nothing unless elevated).
void drop();

}  // namespace pyflame::core::privilege
