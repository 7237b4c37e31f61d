#include "core/thread_stopper.h"

#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "core/errors.h"
#include "core/process.h"

namespace pyflame::core {
namespace {

constexpr int kStopDeadlineUs = 200000;

// The kernel state of one thread ('R', 'S', 'Z', ...), '?' if it is gone.
char task_state(pid_t pid, pid_t tid) {
  auto stat = read_text_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
  return stat ? state_from_stat(*stat).value_or('?') : '?';
}

}  // namespace

ThreadStopper::ThreadStopper(pid_t pid) : pid_(pid) {
  // An exec from another thread kills the other threads and waits, holding
  // the lock that PTRACE_SEIZE takes, until they are gone; a thread we traced
  // is gone only once we reap it, so seizing into an exec can deadlock (see
  // docs/reliability.md). An exec in progress shows as a thread in
  // uninterruptible wait or exiting: skip such a sample rather than seize.
  for (pid_t tid : task_ids(pid)) {
    char state = task_state(pid, tid);
    if (state == 'D' || state == 'Z' || state == 'X')
      throw Error(ExitCode::kFailure, "pyflame: a thread of process " + std::to_string(pid) +
                                          " is exiting or in uninterruptible wait; sample skipped");
  }
  // New threads may appear while we stop the others; repeat until a pass
  // finds none we have not stopped (bounded, for a target spawning forever).
  for (int pass = 0; pass < 8; ++pass) {
    bool added = false;
    for (pid_t tid : task_ids(pid)) {
      bool known = false;
      for (pid_t t : stopped_) known |= t == tid;
      if (known) continue;
      if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
        if (errno == ESRCH) continue;  // the thread just exited
        int err = errno;
        resume_all();
        if (err == EPERM)
          throw Error(ExitCode::kPermissionDenied,
                      "pyflame: cannot stop process " + std::to_string(pid) +
                          " with ptrace (--blocking): it is already traced by another tool "
                          "(a debugger, strace or another profiler), or ptrace is not permitted "
                          "(needs CAP_SYS_PTRACE or kernel.yama.ptrace_scope=0); "
                          "run without --blocking to sample without stopping it");
        throw_for_errno(err, pid, "attaching with ptrace");
      }
      stopped_.push_back(tid);
      added = true;
      if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) continue;
      // Wait for the stop with a deadline (polling also reaps a traced
      // thread that died meanwhile): a thread that never stops must not
      // hang the profiler.
      int status = 0;
      for (int waited_us = 0; waited_us < kStopDeadlineUs; waited_us += 50) {
        pid_t r = ::waitpid(tid, &status, __WALL | WNOHANG);
        if (r == tid || (r < 0 && errno != EINTR)) break;
        ::usleep(50);
      }
    }
    if (!added) break;
  }
}

ThreadStopper::~ThreadStopper() { resume_all(); }

void ThreadStopper::resume_all() {
  for (pid_t tid : stopped_) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  stopped_.clear();
}

}  // namespace pyflame::core
