// SPDX-License-Identifier: Apache-2.0
#include "core/target/thread_stopper.h"

#include <signal.h>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/errors.h"
#include "core/log.h"
#include "core/target/privilege.h"
#include "core/target/process.h"

namespace pyflame::core {
namespace {

using Clock = std::chrono::steady_clock;
// How long one stop of the target may wait for its threads to stop, all of
// them together: the bound on how long a sample holds the target beyond the
// read itself. A thread not stopped by then is sampled running.
constexpr auto kStopDeadline = std::chrono::milliseconds(200);
constexpr auto kStopSpin = std::chrono::microseconds(50);
// How often, while threads are seized, the reaper runs.
constexpr int kReapPeriodUs = 10000;

// Every thread we trace, for the SIGALRM handler: a fixed array of atomics,
// since the handler may run in the middle of an update. 0 marks a free slot.
constexpr size_t kMaxTracees = 16384;
std::atomic<pid_t> g_tracees[kMaxTracees];
std::atomic<size_t> g_tracee_slots{0};  // slots in use are below this

// The wait status of the target's main thread, when we reaped it. A traced
// thread that exits is reaped by its tracer; when the target is also our
// child (`record --blocking -- CMD`) that one wait is the parent's too, and
// the command's own wait then finds nothing (ECHILD) and would lose its
// exit status. Written by the reaper (a signal handler) as well: atomics.
std::atomic<pid_t> g_target_pid{0};
std::atomic<pid_t> g_reaped_pid{0};
std::atomic<int> g_reaped_status{0};

// Async-signal-safe. `status` is what waitpid() gave for `tid`.
void note_reaped(pid_t tid, int status) {
  if (tid != g_target_pid.load() || !(WIFEXITED(status) || WIFSIGNALED(status))) return;
  g_reaped_status.store(status);
  g_reaped_pid.store(tid);
}

// Threads whose stop had not come by the deadline: still ours to detach
// once they stop (a tracee can be detached only while stopped).
std::vector<pid_t> g_stragglers;

void track(pid_t tid) {
  size_t n = g_tracee_slots.load();
  for (size_t i = 0; i < n; ++i) {
    if (g_tracees[i].load() == 0) {
      g_tracees[i].store(tid);
      return;
    }
  }
  if (n == kMaxTracees) return;  // untracked: only the reaper misses it
  g_tracees[n].store(tid);
  g_tracee_slots.store(n + 1);
}

void untrack(pid_t tid) {
  size_t n = g_tracee_slots.load();
  for (size_t i = 0; i < n; ++i)
    if (g_tracees[i].load() == tid) g_tracees[i].store(0);
  while (n > 0 && g_tracees[n - 1].load() == 0) --n;
  g_tracee_slots.store(n);
}

// The reaper. An exec from one thread of the target kills the others and
// waits, holding the lock PTRACE_SEIZE needs, until every one of them is
// gone; a traced thread is gone only once its tracer reaps it. Our seize of
// a later thread would then wait for the exec, and the exec for us. The
// seize waits interruptibly and is restarted after a handler: this handler
// reaps the traced threads that have exited, the exec goes on, and the
// restarted seize returns. Only exits are reaped (a stop is peeked at and
// left for the stopper), with async-signal-safe calls.
extern "C" void reap_exited_tracees(int) {
  const int saved_errno = errno;
  // Nothing has exited (the usual case): one call, not one per tracee
  // (with 2,000 threads, the per-tracee look took a quarter of our time).
  siginfo_t any{};
  if (::waitid(P_ALL, 0, &any, WEXITED | WNOHANG | WNOWAIT | __WALL) == 0 && any.si_pid == 0) {
    errno = saved_errno;
    return;
  }
  const size_t n = g_tracee_slots.load();
  for (size_t i = 0; i < n; ++i) {
    const pid_t tid = g_tracees[i].load();
    if (tid == 0) continue;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0)
      continue;
    if (info.si_pid != tid) continue;
    if (info.si_code == CLD_EXITED || info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
      int status = 0;
      if (::waitpid(tid, &status, WNOHANG | __WALL) == tid) note_reaped(tid, status);
    }
  }
  errno = saved_errno;
}

}  // namespace

// Runs the reaper every kReapPeriodUs for its lifetime. No SA_RESTART: a
// wait for a stop is cut short, so its deadline is checked.
class ReapTimer {
 public:
  ReapTimer() {
    struct sigaction sa {};
    sa.sa_handler = reap_exited_tracees;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGALRM, &sa, &old_action_);
    const itimerval every{{0, kReapPeriodUs}, {0, kReapPeriodUs}};
    ::setitimer(ITIMER_REAL, &every, &old_timer_);
  }
  ~ReapTimer() {
    ::setitimer(ITIMER_REAL, &old_timer_, nullptr);
    ::sigaction(SIGALRM, &old_action_, nullptr);
  }
  ReapTimer(const ReapTimer&) = delete;
  ReapTimer& operator=(const ReapTimer&) = delete;

 private:
  struct sigaction old_action_ {};
  itimerval old_timer_{};
};

// Blocks the job-control stops (Ctrl-Z's SIGTSTP, SIGTTIN, SIGTTOU) while
// the target's threads are held: a stop of ours then would keep them stopped
// until we are continued. One that comes meanwhile stops us once they are
// released. (SIGSTOP cannot be blocked: see docs/reliability.md.)
class JobControlBlock {
 public:
  JobControlBlock() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTSTP);
    sigaddset(&set, SIGTTIN);
    sigaddset(&set, SIGTTOU);
    ::sigprocmask(SIG_BLOCK, &set, &old_);
  }
  ~JobControlBlock() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
  JobControlBlock(const JobControlBlock&) = delete;
  JobControlBlock& operator=(const JobControlBlock&) = delete;

 private:
  sigset_t old_;
};

namespace {

// Waits until `deadline` for the stops (or ends) of seized threads that
// were all interrupted first, and returns those that stopped. Interrupting
// every thread before waiting for any lets their stops come in parallel:
// one interrupt-and-wait per thread in turn cost a scheduling round trip
// each (measured: 2,000 threads took 0.3 s to stop on an idle machine and
// 1.7 s on a busy one, past the deadline). A stop usually comes within
// microseconds: poll for a while first, since sleeping in waitpid() costs a
// wake-up from an idle CPU (measured: 45 us a sample at depth 100 blocking
// in waitpid alone, against 26 us on a busy machine); then sleep on one
// thread's stop at a time (the reaper's alarm cuts a sleep short, so the
// deadline is checked at least every kReapPeriodUs).
std::vector<pid_t> collect_stops(std::vector<pid_t> pending, Clock::time_point deadline) {
  std::vector<pid_t> stopped;
  stopped.reserve(pending.size());
  const auto spin_until = Clock::now() + kStopSpin;
  bool sleep = false;
  while (!pending.empty()) {
    const pid_t sleep_on = sleep ? pending.front() : 0;
    std::erase_if(pending, [&](pid_t tid) {
      int status = 0;
      const pid_t r = ::waitpid(tid, &status, __WALL | (tid == sleep_on ? 0 : WNOHANG));
      if (r == 0 || (r < 0 && errno == EINTR)) return false;
      if (r == tid && WIFSTOPPED(status)) {
        stopped.push_back(tid);
      } else if (r == tid) {
        note_reaped(tid, status);
      }
      return true;  // stopped, ended, or reaped by the reaper
    });
    const auto now = Clock::now();
    if (now >= deadline) break;
    sleep = now >= spin_until;
  }
  // A thread that never stops (a long uninterruptible wait) must not hang
  // the profiler: past the deadline it is sampled running.
  if (!pending.empty())
    PYFLAME_DEBUG_LOG("{} thread(s) did not stop within the deadline", pending.size());
  return stopped;
}

// Whether thread `tid` of `pid` is exiting (or gone): the kernel refuses to
// seize a thread that has passed exit_notify (EPERM, as for a thread some
// other tracer holds), so a refusal from an exiting one is not a refusal.
bool thread_exiting(pid_t pid, pid_t tid) {
  constexpr unsigned long kPfExiting = 0x4;  // PF_EXITING, include/linux/sched.h
  auto stat = read_text_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat");
  if (!stat) return errno == ENOENT || errno == ESRCH;
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return false;
  const char state = (*stat)[paren + 2];
  if (state == 'Z' || state == 'X') return true;
  const char* p = stat->c_str() + paren + 1;
  for (int field = 3; field < 9; ++field) {  // to field 9, the flags
    while (*p == ' ') ++p;
    while (*p != ' ' && *p != '\0') ++p;
  }
  return (std::strtoul(p, nullptr, 10) & kPfExiting) != 0;
}

// Whether stopped thread `tid` was asleep in a system call when our stop
// came: the kernel then parks it in the stop with the call's result
// register holding the code that restarts the call once it is resumed (or
// EINTR, for the few calls that return that instead). A thread that was
// running, in user space or in the kernel, has no call (orig_rax < 0) or the
// call's real result. The state read before the stop cannot tell this: a
// waiting thread that our previous stop woke is runnable until it is back
// in its wait, which on a busy machine with many threads is long enough to
// be read as running.
bool stopped_in_wait(pid_t tid) {
#if defined(__x86_64__)
  // The restart codes of include/linux/errno.h: kernel-internal, so not in
  // any user-space header, and stable (strace prints them by name).
  constexpr long kRestartSys = 512, kRestartNoHand = 514, kRestartRestartBlock = 516;
  user_regs_struct regs{};
  iovec io{&regs, sizeof regs};
  if (::ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_PRSTATUS), &io) != 0) return false;
  const long call = static_cast<long>(regs.orig_rax);  // -1: stopped from user space
  const long rax = static_cast<long>(regs.rax);
  if (call >= 0 &&
      (-rax == kRestartSys || -rax == kRestartNoHand || -rax == kRestartRestartBlock || -rax == EINTR))
    return true;  // stopped inside the wait
  // Resumed from our last stop, a thread is set up to make its call again
  // (rax holds the call's number again, rip is back on the `syscall`
  // instruction) and may be stopped before it is back in the wait: in the
  // kernel, or just returned to user space (measured: 4 in 18,000 stops of
  // a thread blocked in read(), under load, each one sampled as running).
  // A call that completed has its result in rax and rip past the
  // instruction; a running thread is on that instruction no more often
  // than on any other.
  if (call >= 0 && rax != call && rax != SYS_restart_syscall) return false;
  errno = 0;
  const long code = ::ptrace(PTRACE_PEEKTEXT, tid, reinterpret_cast<void*>(regs.rip), nullptr);
  constexpr long kSyscallInstruction = 0x050f;  // bytes 0f 05, little-endian
  return errno == 0 && (code & 0xffff) == kSyscallInstruction;
#else
  (void)tid;
  return false;  // the state read before the stop decides alone
#endif
}

// Detaches the stragglers that have stopped by now, forgets those gone.
void settle_stragglers() {
  std::erase_if(g_stragglers, [](pid_t tid) {
    int status = 0;
    pid_t r = ::waitpid(tid, &status, WNOHANG | __WALL);
    if (r == 0) return false;  // still not stopped
    if (r == tid && WIFSTOPPED(status)) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    else if (r == tid) note_reaped(tid, status);
    untrack(tid);
    return true;
  });
}

}  // namespace

ThreadStopper::ThreadStopper(pid_t pid, bool note_waits) : pid_(pid), job_control_(std::make_unique<JobControlBlock>()) {
  static_assert(std::atomic<pid_t>::is_always_lock_free, "the reaper reads these in a signal handler");
  settle_stragglers();
  g_target_pid.store(pid);
  privilege::check_target(pid);  // nothing, unless we run with more privilege than our caller
  reaper_ = std::make_unique<ReapTimer>();
  privilege::Raised raised;  // CAP_SYS_PTRACE for the seize, if we hold it
  // New threads may appear while we stop the others; repeat until a pass
  // finds none we have not stopped (bounded, for a target spawning forever).
  const auto deadline = Clock::now() + kStopDeadline;
  std::unordered_set<pid_t> seized;
  for (int pass = 0; pass < 8; ++pass) {
    std::vector<pid_t> interrupted;
    for (pid_t tid : task_ids(pid)) {
      if (seized.count(tid)) continue;
      if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
        if (errno == ESRCH) continue;  // the thread just exited
        int err = errno;
        if (err == EPERM && thread_exiting(pid, tid)) continue;  // it is exiting
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
      track(tid);
      seized.insert(tid);
      stopped_.push_back(tid);
      if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0) interrupted.push_back(tid);
    }
    if (interrupted.empty()) break;
    for (pid_t tid : collect_stops(std::move(interrupted), deadline))
      if (note_waits && stopped_in_wait(tid)) waiting_.push_back(tid);
  }
  // The target may have become someone else's (a setuid exec) meanwhile.
  try {
    privilege::check_target(pid);
  } catch (const Error&) {
    resume_all();
    throw;
  }
}

ThreadStopper::~ThreadStopper() {
  resume_all();
  job_control_.reset();  // last: a pending stop of ours comes after the release
}

void ThreadStopper::resume_all() {
  for (pid_t tid : stopped_) {
    if (::ptrace(PTRACE_DETACH, tid, nullptr, nullptr) != 0) {
      // Not in a stop: gone, dying, or not stopped yet (past the deadline).
      // A zombie is reaped now (an exec may be waiting for that); the
      // others stay ours until they stop or die (settle_stragglers).
      int status = 0;
      const pid_t r = ::waitpid(tid, &status, WNOHANG | __WALL);
      if (r == 0) {
        g_stragglers.push_back(tid);
        continue;
      }
      if (r == tid) note_reaped(tid, status);
    }
    untrack(tid);
  }
  stopped_.clear();
  reaper_.reset();
  // A job-control stop is pending: it takes effect as soon as it is
  // unblocked. Give the stragglers a moment to stop and be released first.
  sigset_t pending;
  if (!g_stragglers.empty() && ::sigpending(&pending) == 0 &&
      (sigismember(&pending, SIGTSTP) || sigismember(&pending, SIGTTIN) || sigismember(&pending, SIGTTOU)))
    release_stragglers(std::chrono::milliseconds(200));
}

std::optional<int> ThreadStopper::reaped_status(pid_t pid) {
  if (pid <= 0 || g_reaped_pid.load() != pid) return std::nullopt;
  return g_reaped_status.load();
}

void ThreadStopper::release_stragglers(std::chrono::milliseconds patience) {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    settle_stragglers();
    if (g_stragglers.empty() || Clock::now() >= deadline) break;
    ::usleep(1000);
  }
  if (!g_stragglers.empty())
    PYFLAME_DEBUG_LOG("{} thread(s) never stopped; they are released when pyflame exits",
                      g_stragglers.size());
}

}  // namespace pyflame::core
