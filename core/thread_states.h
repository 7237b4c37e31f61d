// Per-sample thread details from /proc, kept cheap for `record`: the kernel
// state (running or not) of each thread through a stat file kept open, names
// read once per thread, and for interpreters that do not record TIDs the
// pthread -> TID mapping resolved once per thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/native_threads.h"
#include "core/process.h"
#include "core/snapshot.h"

namespace pyflame::core {

class ThreadStates {
 public:
  explicit ThreadStates(const Process& process) : process_(process) {}
  ~ThreadStates();
  ThreadStates(const ThreadStates&) = delete;
  ThreadStates& operator=(const ThreadStates&) = delete;

  // Reads every known thread's state now (before a --blocking stop, since a
  // stopped thread is not idle). New threads are found by fill().
  void read_states();
  // Reads every thread's state, known or new (a directory listing more).
  void discover();
  // Sets native_id (where the interpreter does not), name and idle of every
  // thread of `snapshot` from the states read last.
  void fill(Snapshot& snapshot);

 private:
  struct Task {
    int stat_fd = -1;
    char state = '?';
    std::string name;
  };
  Task* task(pid_t tid);  // opens it if new; nullptr if the thread is gone
  std::optional<char> read_state(Task& task);
  void forget(pid_t tid);

  const Process& process_;
  std::unordered_map<pid_t, Task> tasks_;
  std::unordered_map<uint64_t, pid_t> tid_of_ident_;  // pthread ident -> TID (< 3.11)
  NativeThreadResolver resolver_;
};

}  // namespace pyflame::core
