// SPDX-License-Identifier: Apache-2.0
#include "core/cli/sampling_run.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <random>

#include <fmt/format.h>

#include "core/cli/stop_signals.h"
#include "core/log.h"
#include "core/sampling/sampler.h"
#include "core/target/attach.h"
#include "core/target/process_tree.h"

namespace pyflame::core {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A launched interpreter needs a moment before it can be read: retry until
// it has an interpreter, it exits, or we are told to stop.
std::unique_ptr<Interpreter> attach_when_ready(const PythonModule& module, const Process& process,
                                               LaunchedCommand* command) {
  constexpr double kPatienceSeconds = 10;
  auto start = Clock::now();
  for (int delay_us = 1000;; delay_us = std::min(delay_us * 2, 20000)) {
    try {
      return attach(module, process, 0);  // no interpreter yet: not one that finalized
    } catch (const Error& e) {
      // Not yet Python (still our fork, or before Py_Initialize): keep looking.
      bool may_become_ready = e.code() == ExitCode::kNotPython || e.code() == ExitCode::kFailure;
      const bool ended = command ? command->poll() : !process.alive();
      if (ended || requested_stop_signal() != 0) return nullptr;
      if (!may_become_ready || seconds_between(start, Clock::now()) > kPatienceSeconds) throw;
    }
    ::usleep(static_cast<useconds_t>(delay_us));
  }
}

enum class Ending { kNone, kExited, kExeced };

// After a failed sample: whether the target has ended, and how. Only an exe
// that can be read and is another file is an exec. An exiting process loses
// its exe (its address space) before it becomes a zombie, and stays a zombie
// until reaped; while a thread other than the main one execs, the old main
// thread is such a zombie until the exec is done. So an exe that is gone is
// watched for a moment: an exec shows its new file within it, an exit never.
Ending how_target_ended(const Process& process, int pid, const std::optional<ExeIdentity>& exe) {
  constexpr int kChecks = 50;  // 5 ms apart
  for (int i = 0;; ++i) {
    errno = 0;
    std::optional<ExeIdentity> now = exe_identity(pid);
    const int err = errno;
    if (now) {
      if (exe && *now != *exe) return Ending::kExeced;
      return process.alive() ? Ending::kNone : Ending::kExited;
    }
    if (::kill(pid, 0) != 0 && errno == ESRCH) return Ending::kExited;
    // Unreadable for another reason (a privilege): nothing to tell an exec by.
    if (err != ENOENT) return process.alive() ? Ending::kNone : Ending::kExited;
    if (i == kChecks) return Ending::kExited;
    ::usleep(5000);
  }
}

// Whether another tracer (a debugger, strace) has the process.
bool traced_by_other(int pid) {
  auto status = read_text_file(fmt::format("/proc/{}/status", pid));
  if (!status) return false;
  auto at = status->find("TracerPid:");
  if (at == std::string::npos) return false;
  long tracer = std::strtol(status->c_str() + at + 10, nullptr, 10);
  return tracer != 0 && tracer != ::getpid();
}

void sleep_until(Clock::time_point when) {
  // A sleep overshoots by the timer slack (50 us by default, see
  // prctl(PR_SET_TIMERSLACK)); the last few microseconds are waited out.
  constexpr auto kSpin = std::chrono::microseconds(20);
  if (when - Clock::now() <= kSpin) {
    while (Clock::now() < when && requested_stop_signal() == 0) {
    }
    return;
  }
  when -= kSpin / 2;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  // steady_clock is CLOCK_MONOTONIC on Linux. A stop signal cuts the wait
  // short; another (top's terminal resize) does not bring a sample early.
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR &&
         requested_stop_signal() == 0) {
  }
}

// The times of the ticks. Each interval is drawn uniformly from 0.5-1.5
// periods (mean: the period asked). A narrow jitter lets a workload that
// repeats at (a multiple of) the period lock on: at +-5% a 50 ms cycle of
// 25/15/10 ms sampled at 100 Hz came out 59/21/20. A whole period's width
// makes the phase of each sample within any cycle of the period (or a
// divisor) uniform and independent of the last, and forgets any other
// phase within a few samples; never less than half a period apart, so a
// late sample still means one the loop could not take on time.
class TickPacer {
 public:
  TickPacer(const RunOptions& options, uint64_t seed)
      : interval_(options.interval_seconds), rng_(seed * 0x9e3779b97f4a7c15ull) {
    start_ = next_ = Clock::now();
    // The end of the duration: no sleep goes past it (at 1/s a drawn
    // interval of up to 1.5 s would overshoot -d 2 by a second).
    if (options.duration_seconds)
      deadline_ = start_ + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(*options.duration_seconds));
  }
  Clock::time_point start() const { return start_; }

  // Sleeps until the next tick (`now`: when this one ended); false when
  // the duration is over instead.
  bool wait_next(Clock::time_point now, Counters& counters) {
    next_ += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_ * jitter_(rng_)));
    if (next_ <= now) {
      ++counters.late;
      next_ = now;
    } else if (deadline_ && next_ >= *deadline_) {
      sleep_until(*deadline_);
      if (requested_stop_signal() == 0) return false;
    } else {
      sleep_until(next_);
    }
    return true;
  }

 private:
  double interval_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> jitter_{0.5, 1.5};
  Clock::time_point start_, next_;
  std::optional<Clock::time_point> deadline_;
};

}  // namespace

SamplingRun::SamplingRun(const PythonModule& module, const RunOptions& options)
    : module_(module), options_(options) {
  // Wake-ups on time at high rates (the default slack is 50 us).
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  begun_ = Clock::now();
  if (!options_.command.empty()) command_ = std::make_unique<LaunchedCommand>(options_.command);
  pid_ = command_ ? command_->pid() : *options_.pid;
}

std::optional<int> SamplingRun::run(SampleConsumer& consumer) {
  if (options_.subprocesses) return run_tree(consumer);
  RunOutcome& o = outcome_;
  LaunchedCommand* command = command_.get();
  const int pid = pid_;
  auto start = Clock::now();
  std::unique_ptr<Process> process;
  std::unique_ptr<Interpreter> interpreter;
  try {
    process = std::make_unique<Process>(pid);
    interpreter = command || options_.wait_for_interpreter ? attach_when_ready(module_, *process, command)
                                                           : attach(module_, *process);
    if (!interpreter && !command && !process->alive()) throw_target_exited(pid);
  } catch (const Error& e) {
    if (!command) throw;
    // The command could not be profiled: say why, but let it finish.
    if (e.code() == ExitCode::kTargetExited || command->poll()) {
      interpreter.reset();
    } else {
      std::fprintf(stderr, "%s\n", e.what());
      std::fprintf(stderr, "pyflame: not profiling; waiting for the command (pid %d) to finish\n", pid);
      command->wait();
      return static_cast<int>(e.code());
    }
  }
  if (interpreter) o.python_version = interpreter->python_version();
  o.attached = interpreter != nullptr;
  o.attach_seconds = seconds_between(begun_, Clock::now());
  if (o.attached) consumer.attached(o.python_version, o.attach_seconds);
  const std::optional<ExeIdentity> exe = exe_identity(pid);
  int permission_refusals = 0;

  // No process when the command was gone before we could open it: then
  // there is no interpreter either, and nothing below samples.
  std::optional<Sampler> sampler;
  if (interpreter) sampler.emplace(*process, *interpreter, options_.blocking, mode_needs_states(options_.mode));
  if (sampler && options_.native) sampler->enable_native(module_.build_info(), options_.native_all);
  Snapshot snapshot;
  TickPacer pacer(options_, static_cast<uint64_t>(pid));
  start = pacer.start();
  Counters& counters = o.counters;
  while (interpreter) {
    if (requested_stop_signal() != 0) break;
    if (command && command->poll()) {
      o.target_exited = true;
      break;
    }
    auto t0 = Clock::now();
    double elapsed = seconds_between(start, t0);
    if (options_.duration_seconds && elapsed >= *options_.duration_seconds) break;

    bool ok = false;
    try {
      ok = sampler->sample(snapshot);
    } catch (const Error& e) {
      PYFLAME_DEBUG_LOG("sample failed: {}", e.what());
      ok = false;
      // Not allowed to stop it: another tracer holds it, or the refusals
      // keep coming (a lost privilege). A refusal now and then is normal:
      // a thread that is exiting cannot be seized.
      if (e.code() == ExitCode::kPermissionDenied && process->alive() &&
          (traced_by_other(pid) || ++permission_refusals >= 50)) {
        o.fatal = e;
        break;
      }
    }
    ++counters.ticks;
    if (ok) permission_refusals = 0;  // only refusals in a row count
    if (!ok) {
      ++counters.errors;
      const Ending ending = command && command->poll() ? Ending::kExited
                                                       : how_target_ended(*process, pid, exe);
      if (ending == Ending::kExited) {
        o.target_exited = true;
        break;
      }
      if (ending == Ending::kExeced) {
        o.target_execed = true;
        break;
      }
    } else {
      counters.retries += snapshot.retries;
      consumer.snapshot_read(snapshot);
      for (const ThreadSample& thread : snapshot.threads) {
        if (!mode_keeps(options_.mode, thread)) continue;
        // Counted among the samples it would have been, not shown.
        if (thread.torn) {
          ++counters.torn;
          continue;
        }
        ++counters.thread_samples;
        consumer.thread_sample(thread, elapsed, 0);
      }
    }
    auto t1 = Clock::now();
    o.cost.add(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (!consumer.after_tick(counters, seconds_between(start, t1), ok)) break;
    if (!pacer.wait_next(t1, counters)) break;  // the duration is over
  }
  o.elapsed = seconds_between(start, Clock::now());
  if (process) o.reads = process->read_stats();
  if (sampler) o.native = sampler->native_counts();
  return std::nullopt;
}

}  // namespace pyflame::core

namespace pyflame::core {

// --subprocesses: the same paced loop over a ProcessSet. The root need not
// be Python (a shell script, make, a test runner): the run lasts as long as
// it does, and whatever Python runs under it is profiled.
std::optional<int> SamplingRun::run_tree(SampleConsumer& consumer) {
  RunOutcome& o = outcome_;
  LaunchedCommand* command = command_.get();
  // An attached root must exist and be ours to read, Python or not.
  if (!command) Process check(pid_);
  ProcessSet set(module_, options_, pid_, consumer);
  TickPacer pacer(options_, static_cast<uint64_t>(pid_));
  const Clock::time_point start = pacer.start();
  Counters& counters = o.counters;
  while (true) {
    if (requested_stop_signal() != 0) break;
    if (command ? command->poll() : set.root_ended()) {
      o.target_exited = true;
      break;
    }
    const Clock::time_point t0 = Clock::now();
    const double elapsed = seconds_between(start, t0);
    if (options_.duration_seconds && elapsed >= *options_.duration_seconds) break;
    // A tick counts as a sample once some process is in the profile: a
    // root that is only waiting (not kept by --mode cpu) is not one yet.
    bool ok = set.tick(elapsed, counters);
    if (!o.attached && set.counts().sampled_here + set.counts().streamed > 0) {
      o.attached = true;
      o.python_version = set.root_profiled() ? set.root_python_version() : std::string();
      o.attach_seconds = seconds_between(begun_, Clock::now());
      consumer.attached(o.python_version, o.attach_seconds);
    }
    ok = ok && o.attached;
    const Clock::time_point t1 = Clock::now();
    o.cost.add(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (!consumer.after_tick(counters, seconds_between(start, t1), ok)) break;
    if (!pacer.wait_next(t1, counters)) break;  // the duration is over
  }
  set.finish(seconds_between(start, Clock::now()), counters);
  o.elapsed = seconds_between(start, Clock::now());
  o.native = set.native_counts();
  o.tree = set.counts();
  o.tree_notes = set.notes();
  if (set.root_profiled()) o.python_version = set.root_python_version();
  return std::nullopt;
}

}  // namespace pyflame::core
