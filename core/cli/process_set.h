// SPDX-License-Identifier: Apache-2.0
// --subprocesses: every process of a tree, each read by what can read it.
// A process of this binary's Python version is sampled here, through its
// own Sampler; one of another version by the sibling pyflameX.Y built for
// it, which streams its samples back (core/cli/sibling_stream.h); one that
// is not Python costs one check, and another only if it executes a new
// program. New processes are looked for kDiscoveryHz times a second
// (kStartingDiscoveryHz while one is starting), whatever the sampling rate.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cli/record_stats.h"
#include "core/cli/sibling_stream.h"
#include "core/native/merge.h"
#include "core/output/profile.h"
#include "core/sampling/python_module.h"
#include "core/sampling/sample_mode.h"
#include "core/target/process_tree.h"

namespace pyflame::core {

class SampleConsumer;
struct RunOptions;

// What the tree held, for the summary and --stats-json.
struct ProcessSetCounts {
  uint64_t sampled_here = 0;     // processes of our version, sampled by us
  uint64_t streamed = 0;         // processes read by a sibling pyflameX.Y
  uint64_t not_python = 0;       // checked once and left alone
  uint64_t no_binary = 0;        // Python of a version with no pyflameX.Y installed
  uint64_t unreadable = 0;       // Python we could not read (permission, ...)
  uint64_t execed_away = 0;      // Python that executed a non-Python program
  uint64_t child_errors = 0;     // samples of processes other than the root that failed
  uint64_t child_ticks = 0;      // samples of processes other than the root, taken
  bool over_limit = false;       // more processes than ProcessTree::kMaxProcesses
};

class ProcessSet {
 public:
  static constexpr double kDiscoveryHz = 10;
  // While a process is starting (not Python yet, for its first second).
  static constexpr double kStartingDiscoveryHz = 100;

  // `consumer` hears of each process as it is profiled (process_added) and
  // gets its thread samples with that index.
  ProcessSet(const PythonModule& module, const RunOptions& options, pid_t root, SampleConsumer& consumer);
  ~ProcessSet();
  ProcessSet(const ProcessSet&) = delete;
  ProcessSet& operator=(const ProcessSet&) = delete;

  // One tick, `elapsed` seconds into the run: looks for new processes when
  // due, samples every process of our version and takes in what the
  // siblings sent. Counts into `counters` as a one-process run would: a
  // failed sample of a process is an error. True if some process gave a
  // sample.
  bool tick(double elapsed, Counters& counters);

  // Whether the root has ended (exited, or it is gone from /proc).
  bool root_ended() const;
  // Whether the root is (or was) profiled: Python that we or a sibling read.
  bool root_profiled() const;
  const std::string& root_python_version() const;

  // Stops the siblings and takes in their last samples and counts (waiting
  // at most `seconds`); then every process is let go.
  void finish(double elapsed, Counters& counters, double seconds = 2.0);

  const ProcessSetCounts& counts() const { return counts_; }
  // One line per process left out or dropped, said once each: for stderr.
  const std::vector<std::string>& notes() const { return notes_; }
  // The unwinder's counts summed over the processes sampled here.
  const MergeCounts& native_counts() const { return native_; }

  struct Member;

 private:
  // True while some process is starting.
  bool discover(double elapsed);
  void classify(Member& m, double elapsed);
  void sample_member(Member& m, double elapsed, Counters& counters, bool& any_ok);
  void read_stream(Member& m, double elapsed, Counters& counters);
  void note(std::string line);
  SiblingStream::SampleFn forward_to_consumer(const Member& m, Counters& counters);

  const PythonModule& module_;
  const RunOptions& options_;
  SampleConsumer& consumer_;
  ProcessTree tree_;
  std::vector<std::unique_ptr<Member>> members_;  // the root first
  uint32_t next_index_ = 0;                       // consumer's process indices
  std::chrono::steady_clock::time_point next_discovery_;
  ProcessSetCounts counts_;
  std::vector<std::string> notes_;
  MergeCounts native_;
  std::string root_version_;
  bool finishing_ = false;  // finish(): an ended stream is not followed by another
};

}  // namespace pyflame::core
