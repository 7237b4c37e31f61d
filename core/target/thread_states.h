// SPDX-License-Identifier: Apache-2.0
// Per-sample thread details from /proc, kept cheap for `record`: the kernel
// state (running or not) of each thread through a stat file kept open (for
// the first kMaxKeptFds threads; the others' are opened for each read, so a
// target with thousands of threads never exhausts our descriptors), read
// for every thread or, without a stop, only for those that may be running
// (fill()'s `refresh`), names read once per thread, and for interpreters
// that do not record TIDs the pthread -> TID mapping resolved once per
// thread. A target in another PID
// namespace (a container) records its own TIDs; they are mapped to ours
// through the NSpid line of each thread's status, read once per new thread.
#pragma once

#include <sys/types.h>

#include <chrono>
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
  // thread of `snapshot` from the states read last. With `refresh` (a
  // sample without a stop, nothing read before it), it first reads now the
  // state of every thread that may be running: one that was running at its
  // last read, holds the GIL, or whose stack is not the one it had in the
  // last fill(); any other (waiting at its last read, since when its stack
  // has not moved and it has not held the GIL at a sample) keeps that
  // state until it is due again: once it has waited as long again as it
  // had at that read (since it was last read running), at most kStaleness
  // later. Threads not in `snapshot` are forgotten then.
  void fill(Snapshot& snapshot, bool refresh = false);

  // How old the state of a thread deemed waiting without a read may be.
  // A thread sampled less often than that is read at every sample.
  static constexpr std::chrono::milliseconds kStaleness{3};

 private:
  // Stat files kept open at most: well under the usual soft limit of 1024,
  // with room for the rest of pyflame (memory, maps, output files).
  static constexpr size_t kMaxKeptFds = 256;

  using Clock = std::chrono::steady_clock;

  struct Task {
    int stat_fd = -1;  // -1: over the budget, opened for each read
    char state = '?';
    std::string name;
    // For fill()'s refresh: the Python thread and the signature of the
    // stack it had at the last fill() that saw it, which fill() that was,
    // when its state was last read running, and when it is to be read
    // again at the latest.
    uint64_t thread_id = 0;
    uint64_t stack = 0;
    uint64_t seen = 0;
    Clock::time_point running{};
    Clock::time_point due{};
  };
  // Opens it if new (then `created`, its state read); nullptr if the
  // thread is gone.
  Task* task(pid_t tid, bool& created);
  // fill()'s refresh of one thread `t` of the sample: false if its state
  // cannot be read (gone).
  bool refresh_state(pid_t tid, Task& task, const ThreadSample& t, bool created,
                     Clock::time_point now);
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
  uint64_t fills_ = 0;
  size_t seen_ = 0;  // tasks seen by this fill()
  std::vector<pid_t> unseen_;  // reused by fill()
  std::unordered_map<uint64_t, pid_t> tid_of_ident_;  // pthread ident -> TID (< 3.11), target's
  bool other_namespace_ = false;
  std::unordered_map<pid_t, pid_t> host_tid_;  // target's TID -> ours
  std::unordered_set<pid_t> nspid_read_;       // our TIDs whose NSpid is in host_tid_
  NativeThreadResolver resolver_;
};

}  // namespace pyflame::core
