// SPDX-License-Identifier: Apache-2.0
// One sample of a target: the step that `dump` and `record` share (and
// that `top`, `--native` and `--subprocesses` are to drive).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/native/merge.h"
#include "core/native/unwinder.h"
#include "core/target/process.h"
#include "core/sampling/python_module.h"
#include "core/sampling/snapshot.h"
#include "core/target/thread_states.h"

namespace pyflame::core {

// The unwinder of --native for a process or a core file, with the version's
// eval-loop rule. Throws Error (exit 2 off x86-64).
std::unique_ptr<Unwinder> make_native_unwinder(const BuildInfo& build, const TargetImage& image);

class Sampler {
 public:
  // `blocking`: stop every thread for each sample. `read_idle`: read each
  // thread's kernel state for its idle mark (not needed with --idle).
  Sampler(const Process& process, Interpreter& interpreter, bool blocking, bool read_idle);

  // Takes one sample into `snapshot` (see Interpreter::sample for reusing
  // one): with --blocking, every thread's state first, since a stopped
  // thread is not idle, then the stop, which marks the threads it found
  // waiting idle too; the walk; and the threads' TIDs, names and idle
  // marks (without --blocking, from states read after the walk where it
  // says a thread may be running: ThreadStates::fill). False if the walk
  // found nothing usable. Throws Error when the threads cannot be stopped.
  bool sample(Snapshot& snapshot);

  // --native: from now on every sample stops the threads (as --blocking
  // does), unwinds each Python thread's native stack while they are
  // stopped and gives merged stacks (core/native/merge.h); interpreter
  // internals only with `show_internal`. Throws Error if it cannot.
  void enable_native(const BuildInfo& build, bool show_internal);

  // What --native did so far, per thread stack.
  using NativeCounts = MergeCounts;
  const NativeCounts& native_counts() const { return native_counts_; }

 private:
  bool sample_native(Snapshot& snapshot);

  const Process& process_;
  Interpreter& interpreter_;
  const pid_t pid_;
  const bool blocking_;
  const bool read_idle_;
  ThreadStates states_;
  // --native
  std::unique_ptr<Unwinder> unwinder_;
  bool show_internal_ = false;
  Snapshot walked_;                   // the walker's own (its frames are kept across samples)
  std::vector<NativeStack> natives_;  // per thread of walked_
  NativeCounts native_counts_;
};

}  // namespace pyflame::core
