// SPDX-License-Identifier: Apache-2.0
// The descendants of a process, for --subprocesses: found through each
// thread's /proc/PID/task/TID/children (the kernel's own list, no scan of
// all of /proc), from the root and from every descendant seen so far, so
// that a child whose parent exited (reparented to init) still brings its
// own children.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pyflame::core {

// A process, told from a later one that reuses its PID by its start time
// (field 22 of /proc/PID/stat, in clock ticks since boot). An exec keeps both.
struct ProcessKey {
  pid_t pid = 0;
  uint64_t start_time = 0;
  bool operator==(const ProcessKey&) const = default;
};

// Which file a process runs, to notice an exec: after one the PID lives on
// but holds another program.
struct ExeIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const ExeIdentity&) const = default;
};

// nullopt (errno set) when /proc/PID/exe cannot be followed: gone, a
// zombie, a kernel thread, or not ours to see.
std::optional<ExeIdentity> exe_identity(pid_t pid);

// The start time of `pid`; nullopt if it is gone.
std::optional<uint64_t> process_start_time(pid_t pid);

// /proc/PID/cmdline, its arguments joined by spaces, cut to `limit`
// characters ("..." ends a cut one); the comm in brackets when it has none
// (a zombie, a kernel thread). Control characters are shown as '?': a
// process's arguments are its own to choose.
std::string process_command_line(pid_t pid, size_t limit = 200);

class ProcessTree {
 public:
  // At most this many processes are tracked: a target that forks without
  // end must not exhaust us (the rest are counted, not followed).
  static constexpr size_t kMaxProcesses = 4096;

  explicit ProcessTree(pid_t root);

  // Processes that were not seen before, parents before their children;
  // the root is never among them. Costs one read per thread of each
  // known live process: call it a bounded number of times per second.
  std::vector<ProcessKey> discover();

  // Descendants seen but not followed because of kMaxProcesses.
  bool over_limit() const { return over_limit_; }

 private:
  void children_of(pid_t pid, std::vector<pid_t>& into) const;

  pid_t root_;
  std::map<pid_t, uint64_t> known_;  // pid -> start time, the root's included
  bool over_limit_ = false;
};

}  // namespace pyflame::core
