#include "core/thread_stopper.h"

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <cerrno>
#include <string>

#include "core/errors.h"
#include "core/process.h"

namespace pyflame::core {

ThreadStopper::ThreadStopper(pid_t pid) : pid_(pid) {
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
      int status = 0;
      while (::waitpid(tid, &status, __WALL) < 0 && errno == EINTR) {
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
