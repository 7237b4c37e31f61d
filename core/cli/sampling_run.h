// SPDX-License-Identifier: Apache-2.0
// One sampling run: attach to a process (or launch a command and attach
// once it is Python), then sample at a rate until the duration runs out, a
// stop signal comes, the target ends or the consumer has seen enough,
// counting what happened. `record` and `top` both drive it; what they do
// with each sample is theirs.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cli/launched_command.h"
#include "core/cli/process_set.h"
#include "core/cli/record_stats.h"
#include "core/errors.h"
#include "core/output/profile.h"
#include "core/sampling/python_module.h"
#include "core/sampling/sample_mode.h"
#include "core/sampling/sampler.h"
#include "core/sampling/snapshot.h"
#include "core/target/process.h"

namespace pyflame::core {

struct RunOptions {
  std::optional<int> pid;            // attach to this process ...
  std::vector<std::string> command;  // ... or launch this one
  double interval_seconds = 0.01;
  std::optional<double> duration_seconds;  // nullopt: until stopped or the target ends
  SampleMode mode = SampleMode::kCpu;
  bool blocking = false;
  bool native = false;      // --native (implies stopping the threads, as blocking)
  bool native_all = false;  // --native-all: interpreter internals shown too
  // --subprocesses: the target and all its descendants (core/cli/process_set.h).
  bool subprocesses = false;
  // An attached process that is not Python yet (a sibling's `stream` of a
  // child that has just started) is waited for, as a launched one is.
  bool wait_for_interpreter = false;
};

// What the consumer of a run is told.
class SampleConsumer {
 public:
  virtual ~SampleConsumer() = default;
  // Once attached, before the first sample.
  virtual void attached(const std::string& /*python_version*/, double /*attach_seconds*/) {}
  // Each sample that was read, before the mode chose its threads.
  virtual void snapshot_read(const Snapshot& /*snapshot*/) {}
  // --subprocesses: a process of the tree is profiled from now on; its
  // samples come with `index` (without --subprocesses, every sample comes
  // with 0 and this is never called). A process that executes another
  // Python program is added again, with a new index.
  virtual void process_added(uint32_t /*index*/, const ProfileProcess& /*process*/) {}
  // Each thread sample the mode keeps that is not torn, `elapsed` seconds
  // into the run, of the process `process`.
  virtual void thread_sample(const ThreadSample& thread, double elapsed, uint32_t process) = 0;
  // After each tick (`ok`: it gave a sample); false ends the run.
  virtual bool after_tick(const Counters& counters, double elapsed, bool ok) = 0;
};

struct RunOutcome {
  Counters counters;
  CostHistogram cost;
  double elapsed = 0;
  double attach_seconds = 0;  // from the launch (or the attach's start) to attached
  bool attached = false;      // an interpreter was found
  bool target_exited = false;
  bool target_execed = false;
  std::optional<Error> fatal;  // ended the run; reported by the caller
  Process::ReadStats reads;
  std::string python_version;
  Sampler::NativeCounts native;  // --native: how the thread stacks merged
  // --subprocesses: what the tree held, and what was said of its processes.
  std::optional<ProcessSetCounts> tree;
  std::vector<std::string> tree_notes;
};

class SamplingRun {
 public:
  // Launches the command, if any, at once (attach_seconds count from here).
  SamplingRun(const PythonModule& module, const RunOptions& options);
  SamplingRun(const SamplingRun&) = delete;
  SamplingRun& operator=(const SamplingRun&) = delete;

  int pid() const { return pid_; }
  LaunchedCommand* command() { return command_.get(); }

  // Attaches and samples until the run ends; the process is let go before
  // it returns. An exit code when a launched command could not be
  // profiled (said on stderr, and the command waited for); throws Error
  // when an attached process cannot be.
  std::optional<int> run(SampleConsumer& consumer);

  const RunOutcome& outcome() const { return outcome_; }

 private:
  std::optional<int> run_tree(SampleConsumer& consumer);

  const PythonModule& module_;
  RunOptions options_;
  std::unique_ptr<LaunchedCommand> command_;
  std::chrono::steady_clock::time_point begun_;  // attach_seconds count from here
  int pid_ = 0;
  RunOutcome outcome_;
};

}  // namespace pyflame::core
