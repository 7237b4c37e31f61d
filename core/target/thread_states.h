// SPDX-License-Identifier: Apache-2.0
// Per-sample thread details from /proc, kept cheap for `record`: the kernel
// state (running or not) of each thread through a stat file kept open (for
// the first kMaxKeptFds threads; the others' are opened for each read, so a
// target with thousands of threads never exhausts our descriptors), names
// read once per thread, and for interpreters that do not record TIDs the
// pthread -> TID mapping resolved once per thread. A target in another PID
// namespace (a container) records its own TIDs; they are mapped to ours
// through the NSpid line of each thread's status, read once per new thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/target/native_threads.h"
#include "core/target/process.h"
#include "core/sampling/snapshot.h"

namespace pyflame::core {

class ThreadStates {
 public:
  explicit ThreadStates(const Process& process);
  ~ThreadStates();
  ThreadStates(const ThreadStates&) = delete;
  ThreadStates& operator=(const ThreadStates&) = delete;

  // Reads every known thread's state now (before a --blocking stop, since a
  // stopped thread is not idle). New threads are found by fill().
  void read_states();
  // Reads every thread's state, known or new (a directory listing more).
  void discover();
  // Marks threads (our TIDs) that a --blocking stop found asleep in the
  // kernel as idle, whatever the read before the stop said.
  void note_waiting(const std::vector<pid_t>& tids);
  // Sets native_id (where the interpreter does not; always as a TID of our
  // PID namespace, the one /proc/PID/task lists), name and idle of every
  // thread of `snapshot` from the states read last.
  void fill(Snapshot& snapshot);

 private:
  // Stat files kept open at most: well under the usual soft limit of 1024,
  // with room for the rest of pyflame (memory, maps, output files).
  static constexpr size_t kMaxKeptFds = 256;

  struct Task {
    int stat_fd = -1;  // -1: over the budget, opened for each read
    char state = '?';
    std::string name;
  };
  Task* task(pid_t tid);  // opens it if new; nullptr if the thread is gone
  std::optional<char> read_state(pid_t tid, Task& task);
  std::string stat_path(pid_t tid) const;
  void forget(pid_t tid);
  // Target-namespace TIDs to ours; identity when the target shares our PID
  // namespace. rescan() reads the NSpid of every thread not read yet.
  std::optional<pid_t> host_tid(pid_t target_tid, bool& rescanned);
  void rescan();

  const Process& process_;
  std::unordered_map<pid_t, Task> tasks_;
  size_t kept_fds_ = 0;
  std::unordered_map<uint64_t, pid_t> tid_of_ident_;  // pthread ident -> TID (< 3.11), target's
  bool other_namespace_ = false;
  std::unordered_map<pid_t, pid_t> host_tid_;  // target's TID -> ours
  std::unordered_set<pid_t> nspid_read_;       // our TIDs whose NSpid is in host_tid_
  NativeThreadResolver resolver_;
};

}  // namespace pyflame::core
