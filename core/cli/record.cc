// SPDX-License-Identifier: Apache-2.0
#include "core/cli/record.h"

#include <chrono>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "core/cli/launched_command.h"
#include "core/cli/record_stats.h"
#include "core/cli/sampling_run.h"
#include "core/cli/stop_signals.h"
#include "core/errors.h"
#include "core/output/output_file.h"
#include "core/output/profile.h"
#include "core/target/privilege.h"
#include "core/target/thread_stopper.h"

namespace pyflame::core {
namespace {

// The line that says sampling has begun, printed after the first sample.
void announce(int pid, const std::string& python_version, const RecordOptions& options,
              double attach_seconds) {
  const std::string length = options.run.duration_seconds
                                 ? fmt::format("for {:g} s", *options.run.duration_seconds)
                                 : std::string("until it exits or Ctrl-C");
  // --subprocesses: the first process in the profile may be a child, of
  // any version (the root may not even be Python).
  const std::string what = options.run.subprocesses
                               ? fmt::format("process {} and its subprocesses", pid)
                               : fmt::format("process {} (Python {})", pid, python_version);
  std::fprintf(stderr, "pyflame: recording %s at %g samples/s %s%s; attached in %.2f s\n",
               what.c_str(), 1.0 / options.run.interval_seconds, length.c_str(),
               options.run.native     ? ", stopping it for each sample (--native)"
               : options.run.blocking ? ", stopping it for each sample (--blocking)"
                                      : "",
               attach_seconds);
}

// What record does with each sample: adds it to the profile, keeps the
// status line, and says once that the recording has begun.
class RecordingConsumer : public SampleConsumer {
 public:
  RecordingConsumer(const RecordOptions& options, Profile& profile, bool keep_timeline, int pid)
      : options_(options), profile_(profile), builder_(profile), keep_timeline_(keep_timeline),
        pid_(pid), status_(options.status) {}

  void attached(const std::string& python_version, double attach_seconds) override {
    profile_.python_version = python_version;
    attach_seconds_ = attach_seconds;
  }

  void process_added(uint32_t index, const ProfileProcess& process) override {
    if (profile_.processes.size() <= index) profile_.processes.resize(index + 1);
    profile_.processes[index] = process;
  }

  void thread_sample(const ThreadSample& thread, double elapsed, uint32_t process) override {
    uint32_t stack = builder_.add(thread, 1, process);
    if (keep_timeline_) profile_.timeline.push_back({elapsed, stack});
  }

  bool after_tick(const Counters& counters, double elapsed, bool ok) override {
    // Once the first sample is in: that the recording has begun, and of
    // what (a script, or a user at the terminal, may wait for it). Not
    // when the profile goes to standard output: in a pipeline (`| head`)
    // stderr stays quiet.
    if (ok && !announced_ && options_.output) {
      announce(pid_, profile_.python_version, options_, attach_seconds_);
      announced_ = true;
    }
    status_.update(counters, elapsed);
    return true;
  }

  void clear_status() { status_.clear(); }

 private:
  const RecordOptions& options_;
  Profile& profile_;
  ProfileBuilder builder_;
  bool keep_timeline_;
  int pid_;
  StatusLine status_;
  bool announced_ = false;
  double attach_seconds_ = 0;
};

// --subprocesses: what the tree held, then what was said of its processes.
void print_tree_summary(const RunOutcome& outcome) {
  if (!outcome.tree) return;
  const ProcessSetCounts& t = *outcome.tree;
  std::fprintf(stderr,
               "pyflame: --subprocesses: %llu Python processes profiled (%llu read here, %llu by "
               "another pyflameX.Y), %llu not Python, %llu of a version with no pyflameX.Y "
               "installed, %llu unreadable, %llu that executed a non-Python program; "
               "%llu samples of processes under the root, %llu errors\n",
               static_cast<unsigned long long>(t.sampled_here + t.streamed),
               static_cast<unsigned long long>(t.sampled_here), static_cast<unsigned long long>(t.streamed),
               static_cast<unsigned long long>(t.not_python), static_cast<unsigned long long>(t.no_binary),
               static_cast<unsigned long long>(t.unreadable), static_cast<unsigned long long>(t.execed_away),
               static_cast<unsigned long long>(t.child_ticks), static_cast<unsigned long long>(t.child_errors));
  for (const std::string& line : outcome.tree_notes) std::fprintf(stderr, "%s\n", line.c_str());
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
  if (!options.run.command.empty()) privilege::drop();

  SamplingRun sampling(module, options.run);
  LaunchedCommand* command = sampling.command();
  const int pid = sampling.pid();
  Profile profile;
  profile.pid = pid;
  profile.target = command ? join_command(options.run.command) : fmt::format("process {}", pid);
  profile.interval_seconds = options.run.interval_seconds;
  profile.thread_roots = options.thread_roots;
  profile.process_roots = options.run.subprocesses;
  RecordingConsumer consumer(options, profile, format == OutputFormat::kFlamechart, pid);
  if (std::optional<int> code = sampling.run(consumer)) return *code;
  const RunOutcome& outcome = sampling.outcome();
  const Counters& counters = outcome.counters;
  const double elapsed = outcome.elapsed;

  if (options.run.blocking) ThreadStopper::release_stragglers(std::chrono::seconds(1));
  privilege::drop();  // nothing is written with a capability
  consumer.clear_status();
  profile.duration_seconds = elapsed;

  const int stop_signal = requested_stop_signal();
  if (options.run.subprocesses && !outcome.attached && stop_signal == 0) {
    // A tree with no Python in it (while it was watched): said as for a
    // launched command that never ran Python, attached or not.
    if (command) finish_command(*command, 0);
    print_tree_summary(outcome);
    if (command)
      std::fprintf(stderr, "pyflame: no process of the command's tree ran Python that pyflame "
                           "could read; no profile\n");
    else
      std::fprintf(stderr, "pyflame: no process of the tree of process %d ran Python that pyflame "
                           "could read while it was recorded; no profile\n", pid);
    return static_cast<int>(ExitCode::kNotPython);
  }
  if (command && !outcome.attached && stop_signal == 0) {
    // Nothing to profile: say so, rather than write an empty profile.
    finish_command(*command, 0);
    const std::string build = module.build_info().build();
    std::fprintf(stderr, "pyflame: the command never started a Python %s interpreter that pyflame "
                         "could read (it is not Python %s, or it exited before its interpreter "
                         "was up); no profile\n",
                 build.c_str(), build.c_str());
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
    if (stats_file)
      stats_file->commit(stats_to_json(counters, elapsed, outcome.attach_seconds, outcome.cost, profile,
                                       outcome.reads, options.run.native ? &outcome.native : nullptr,
                                       outcome.tree ? &*outcome.tree : nullptr));
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
               1.0 / options.run.interval_seconds, static_cast<unsigned long long>(counters.errors),
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
  if (options.run.native) {
    const Sampler::NativeCounts& n = outcome.native;
    const uint64_t all = n.merged + n.cut_short + n.mismatched;
    std::fprintf(stderr,
                 "pyflame: --native: %llu thread stacks merged with their C frames, %llu unwound "
                 "only part way (shown up to a marker), %llu not merged (%.2f%%: shown with "
                 "Python frames only)\n",
                 static_cast<unsigned long long>(n.merged), static_cast<unsigned long long>(n.cut_short),
                 static_cast<unsigned long long>(n.mismatched),
                 all > 0 ? 100.0 * static_cast<double>(n.mismatched) / static_cast<double>(all) : 0.0);
  }
  print_tree_summary(outcome);
  if (counters.ticks > counters.errors && counters.thread_samples == 0) {
    if (options.run.mode == SampleMode::kGil && module.build_info().free_threaded)
      std::fputs("pyflame: no sampled thread held the GIL: a free-threaded Python runs without "
                 "one (every thread may run at once) unless PYTHON_GIL=1 or an extension turns "
                 "it on; try --mode cpu\n", stderr);
    else
      std::fprintf(stderr, "pyflame: %s; try --mode wall\n",
                   options.run.mode == SampleMode::kGil ? "no sampled thread held the GIL"
                                                    : "every sampled thread was idle");
  }

  if (outcome.fatal) {
    std::fprintf(stderr, "%s\n", outcome.fatal->what());
    if (command) finish_command(*command, stop_signal);
    return static_cast<int>(outcome.fatal->code());
  }
  if (outcome.target_execed)
    std::fprintf(stderr, "pyflame: process %d executed another program; the profile holds what "
                         "was sampled before\n", pid);
  if (command) {
    finish_command(*command, stop_signal);
    if (stop_signal != 0) return 128 + stop_signal;
    return command->exit_code();
  }
  if (stop_signal != 0) return 128 + stop_signal;  // 130 for SIGINT, 143 for SIGTERM, ...
  if (outcome.target_exited || outcome.target_execed) {
    if (outcome.target_exited)
      std::fprintf(stderr, "pyflame: process %d exited; the profile holds what was sampled before\n", pid);
    return static_cast<int>(ExitCode::kTargetExited);
  }
  return 0;
}

}  // namespace pyflame::core
