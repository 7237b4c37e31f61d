// SPDX-License-Identifier: Apache-2.0
#include "core/cli/record.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "core/target/attach.h"
#include "core/errors.h"
#include "core/cli/launched_command.h"
#include "core/log.h"
#include "core/output/output_file.h"
#include "core/target/privilege.h"
#include "core/cli/record_stats.h"
#include "core/sampling/sampler.h"
#include "core/cli/stop_signals.h"
#include "core/target/thread_stopper.h"

namespace pyflame::core {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A launched interpreter needs a moment before it can be read: retry until
// it has an interpreter, it exits, or we are told to stop.
std::unique_ptr<Interpreter> attach_when_ready(const PythonModule& module, const Process& process,
                                               LaunchedCommand& command) {
  constexpr double kPatienceSeconds = 10;
  auto start = Clock::now();
  for (int delay_us = 1000;; delay_us = std::min(delay_us * 2, 20000)) {
    try {
      return attach(module, process, 0);  // no interpreter yet: not one that finalized
    } catch (const Error& e) {
      // Not yet Python (still our fork, or before Py_Initialize): keep looking.
      bool may_become_ready = e.code() == ExitCode::kNotPython || e.code() == ExitCode::kFailure;
      if (command.poll() || requested_stop_signal() != 0) return nullptr;
      if (!may_become_ready || seconds_between(start, Clock::now()) > kPatienceSeconds) throw;
    }
    ::usleep(static_cast<useconds_t>(delay_us));
  }
}

// Which file a process runs, to notice an exec: after one the PID lives on
// but holds another program.
struct ExeIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const ExeIdentity&) const = default;
};

std::optional<ExeIdentity> exe_identity(int pid) {
  struct stat st;
  if (::stat(fmt::format("/proc/{}/exe", pid).c_str(), &st) != 0) return std::nullopt;
  return ExeIdentity{st.st_dev, st.st_ino};
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

// The line that says sampling has begun, printed after the first sample.
void announce(int pid, const std::string& python_version, const RecordOptions& options,
              double attach_seconds) {
  const std::string length = options.duration_seconds
                                 ? fmt::format("for {:g} s", *options.duration_seconds)
                                 : std::string("until it exits or Ctrl-C");
  std::fprintf(stderr, "pyflame: recording process %d (Python %s) at %g samples/s %s%s; attached in %.2f s\n",
               pid, python_version.c_str(), 1.0 / options.interval_seconds, length.c_str(),
               options.blocking ? ", stopping it for each sample (--blocking)" : "", attach_seconds);
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
  // steady_clock is CLOCK_MONOTONIC on Linux; EINTR (a stop signal) returns early.
  ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

}  // namespace

int record(const PythonModule& module, const RecordOptions& options) {
  const OutputFormat format = options.format ? *options.format
                              : options.output ? format_for_path(*options.output).value_or(OutputFormat::kCollapsed)
                                               : OutputFormat::kCollapsed;
  // Before the temporary output files exist: a stop signal must not kill
  // us with one left behind.
  StopSignals stop_signals;
  // Fail on an unwritable output before anything is started or sampled.
  std::unique_ptr<OutputFile> output;
  if (options.output) output = std::make_unique<OutputFile>(*options.output);
  std::unique_ptr<OutputFile> stats_file;
  if (options.stats_json) stats_file = std::make_unique<OutputFile>(*options.stats_json);
  // A launched command is our own child: it needs no privilege of ours.
  if (!options.command.empty()) privilege::drop();

  // Wake-ups on time at high rates (the default slack is 50 us).
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  std::unique_ptr<LaunchedCommand> command;
  const auto begun = Clock::now();  // attach_seconds counts from here
  if (!options.command.empty()) command = std::make_unique<LaunchedCommand>(options.command);
  const int pid = command ? command->pid() : *options.pid;

  Profile profile;
  profile.pid = pid;
  profile.target = command ? join_command(options.command) : fmt::format("process {}", pid);
  profile.interval_seconds = options.interval_seconds;
  profile.thread_roots = options.thread_roots;
  ProfileBuilder builder(profile);
  const bool keep_timeline = format == OutputFormat::kFlamechart;

  Counters counters;
  CostHistogram cost;
  StatusLine status(options.status);
  bool target_exited = false;
  bool target_execed = false;
  bool attached = false;  // an interpreter was found
  std::optional<Error> fatal;  // ends the recording; reported after the profile is written
  auto start = Clock::now();
  double elapsed = 0;
  double attach_seconds = 0;  // from `begun` (a command is started then) to attached
  Process::ReadStats reads;
  {
    std::unique_ptr<Process> process;
    std::unique_ptr<Interpreter> interpreter;
    try {
      process = std::make_unique<Process>(pid);
      interpreter = command ? attach_when_ready(module, *process, *command) : attach(module, *process);
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
    if (interpreter) profile.python_version = interpreter->python_version();
    attached = interpreter != nullptr;
    attach_seconds = seconds_between(begun, Clock::now());
    const std::optional<ExeIdentity> exe = exe_identity(pid);
    int permission_refusals = 0;
    bool announced = false;

    // No process when the command was gone before we could open it: then
    // there is no interpreter either, and nothing below samples.
    std::optional<Sampler> sampler;
    if (interpreter) sampler.emplace(*process, *interpreter, options.blocking, mode_needs_states(options.mode));
    Snapshot snapshot;
    std::mt19937_64 rng(static_cast<uint64_t>(pid) * 0x9e3779b97f4a7c15ull);
    // Each interval is drawn uniformly from 0.5-1.5 periods (mean: the
    // period asked). A narrow jitter lets a workload that repeats at (a
    // multiple of) the period lock on: at +-5% a 50 ms cycle of 25/15/10 ms
    // sampled at 100 Hz came out 59/21/20. A whole period's width makes the
    // phase of each sample within any cycle of the period (or a divisor)
    // uniform and independent of the last, and forgets any other phase
    // within a few samples; never less than half a period apart, so a late
    // sample still means one the loop could not take on time.
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    start = Clock::now();
    auto next = start;
    // The end of the duration: no sleep goes past it (at 1/s a drawn
    // interval of up to 1.5 s would overshoot -d 2 by a second).
    std::optional<Clock::time_point> deadline;
    if (options.duration_seconds)
      deadline = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(*options.duration_seconds));
    while (interpreter) {
      if (requested_stop_signal() != 0) break;
      if (command && command->poll()) {
        target_exited = true;
        break;
      }
      auto t0 = Clock::now();
      elapsed = seconds_between(start, t0);
      if (options.duration_seconds && elapsed >= *options.duration_seconds) break;

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
          fatal = e;
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
          target_exited = true;
          break;
        }
        if (ending == Ending::kExeced) {
          target_execed = true;
          break;
        }
      } else {
        counters.retries += snapshot.retries;
        for (const ThreadSample& thread : snapshot.threads) {
          if (!mode_keeps(options.mode, thread)) continue;
          // Counted among the samples it would have been, not shown.
          if (thread.torn) {
            ++counters.torn;
            continue;
          }
          uint32_t stack = builder.add(thread);
          ++counters.thread_samples;
          if (keep_timeline) profile.timeline.push_back({elapsed, stack});
        }
      }
      auto t1 = Clock::now();
      cost.add(std::chrono::duration<double, std::micro>(t1 - t0).count());
      // Once the first sample is in: that the recording has begun, and of
      // what (a script, or a user at the terminal, may wait for it). Not
      // when the profile goes to standard output: in a pipeline (`| head`)
      // stderr stays quiet.
      if (ok && !announced && options.output) {
        announce(pid, profile.python_version, options, attach_seconds);
        announced = true;
      }
      status.update(counters, seconds_between(start, t1));

      next += std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(options.interval_seconds * jitter(rng)));
      if (next <= t1) {
        ++counters.late;
        next = t1;
      } else if (deadline && next >= *deadline) {
        sleep_until(*deadline);
        if (requested_stop_signal() == 0) break;  // the duration is over
      } else {
        sleep_until(next);
      }
    }
    elapsed = seconds_between(start, Clock::now());
    if (process) reads = process->read_stats();
  }
  if (options.blocking) ThreadStopper::release_stragglers(std::chrono::seconds(1));
  privilege::drop();  // nothing is written with a capability
  status.clear();
  profile.duration_seconds = elapsed;

  const int stop_signal = requested_stop_signal();
  if (command && !attached && stop_signal == 0) {
    // Nothing to profile: say so, rather than write an empty profile.
    finish_command(*command, 0);
    std::fprintf(stderr, "pyflame: the command never started a Python %d.%d interpreter that pyflame "
                         "could read (it is not Python %d.%d, or it exited before its interpreter "
                         "was up); no profile\n",
                 module.build_info().major, module.build_info().minor, module.build_info().major,
                 module.build_info().minor);
    return static_cast<int>(ExitCode::kNotPython);
  }

  std::string where;
  try {
    std::string text = write_profile(format, profile);
    if (output) {
      output->commit(text);
      where = fmt::format("{} profile written to {}", format_name(format), output->description());
    } else {
      write_standard_output(text);
      where = fmt::format("{} profile written to standard output", format_name(format));
    }
    if (stats_file) stats_file->commit(stats_to_json(counters, elapsed, attach_seconds, cost, profile, reads));
  } catch (const Error& e) {
    if (!command) throw;
    // The command is ended as on every other path before we report.
    std::fprintf(stderr, "%s\n", e.what());
    finish_command(*command, stop_signal);
    return static_cast<int>(e.code());
  }

  std::fprintf(stderr,
               "pyflame: %llu samples of %zu thread(s) in %.1f s (%.1f samples/s, asked %.3g/s); "
               "%llu errors (dropped samples), %llu torn (thread stacks that moved under every "
               "read: dropped, %.2f%%; %llu retries), %llu late; %s\n",
               static_cast<unsigned long long>(counters.ticks), profile.threads.size(), elapsed,
               elapsed > 0 ? static_cast<double>(counters.ticks) / elapsed : 0.0,
               1.0 / options.interval_seconds, static_cast<unsigned long long>(counters.errors),
               static_cast<unsigned long long>(counters.torn), 100 * torn_share(counters),
               static_cast<unsigned long long>(counters.retries),
               static_cast<unsigned long long>(counters.late), where.c_str());
  // Dropping torn samples keeps every stack shown exact, but a thread whose
  // stack changes faster than it can be read loses more samples than the
  // others: say so where it could skew the shares.
  if (torn_share(counters) > kTornShareWarning)
    std::fprintf(stderr,
                 "pyflame: %.0f%% of the thread stacks read changed under every read and were "
                 "dropped; the threads they belong to are under-represented. --blocking reads "
                 "them exactly (it stops each thread for the sample)\n",
                 100 * torn_share(counters));
  if (counters.ticks > counters.errors && counters.thread_samples == 0)
    std::fprintf(stderr, "pyflame: %s; try --mode wall\n",
                 options.mode == SampleMode::kGil ? "no sampled thread held the GIL"
                                                  : "every sampled thread was idle");

  if (fatal) {
    std::fprintf(stderr, "%s\n", fatal->what());
    if (command) finish_command(*command, stop_signal);
    return static_cast<int>(fatal->code());
  }
  if (target_execed)
    std::fprintf(stderr, "pyflame: process %d executed another program; the profile holds what "
                         "was sampled before\n", pid);
  if (command) {
    finish_command(*command, stop_signal);
    if (stop_signal != 0) return 128 + stop_signal;
    return command->exit_code();
  }
  if (stop_signal != 0) return 128 + stop_signal;  // 130 for SIGINT, 143 for SIGTERM, ...
  if (target_exited || target_execed) {
    if (target_exited)
      std::fprintf(stderr, "pyflame: process %d exited; the profile holds what was sampled before\n", pid);
    return static_cast<int>(ExitCode::kTargetExited);
  }
  return 0;
}

}  // namespace pyflame::core
