// SPDX-License-Identifier: Apache-2.0
// --blocking: stops every thread of the target for a consistent snapshot.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace pyflame::core {

class ReapTimer;
class JobControlBlock;

// Seizes and interrupts every thread of `pid` on construction and detaches
// (which resumes them) on destruction: RAII, so no exit path leaves the
// target stopped. If the profiler itself dies, the kernel detaches for us.
class ThreadStopper {
 public:
  // With `note_waits`, each stopped thread's registers say whether the
  // stop cut short a wait in the kernel (see waiting()).
  explicit ThreadStopper(pid_t pid, bool note_waits = false);
  ~ThreadStopper();
  ThreadStopper(const ThreadStopper&) = delete;
  ThreadStopper& operator=(const ThreadStopper&) = delete;

  // A thread that had not stopped by the deadline stays traced until it
  // stops; the next ThreadStopper detaches it. Call this before waiting on
  // anything else (and before exiting): it detaches those that stop within
  // `patience`. Whatever is left is released by the kernel when we exit.
  static void release_stragglers(std::chrono::milliseconds patience);

  // The wait status of `pid` (the target's main thread) if a stopper
  // reaped it as its tracer, which for a child of ours takes the status
  // its own waitpid() would have had (that one then fails with ECHILD).
  static std::optional<int> reaped_status(pid_t pid);

  // The threads (TIDs of our namespace) whose stop interrupted a blocking
  // system call (a futex, poll or sleep): idle at the moment of the sample,
  // whatever their state was just before it. Empty without `note_waits`,
  // and on architectures where the registers are not read (x86-64 only).
  const std::vector<pid_t>& waiting() const { return waiting_; }

 private:
  void resume_all();

  pid_t pid_;
  // Holds off Ctrl-Z (SIGTSTP, SIGTTIN, SIGTTOU) while threads are held.
  std::unique_ptr<JobControlBlock> job_control_;
  std::vector<pid_t> stopped_;
  std::vector<pid_t> waiting_;
  // Reaps exited tracees while threads are seized (see the .cc).
  std::unique_ptr<ReapTimer> reaper_;
};

}  // namespace pyflame::core
