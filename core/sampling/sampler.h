// SPDX-License-Identifier: Apache-2.0
// One sample of a target: the step that `dump` and `record` share (and
// that `top`, `--native` and `--subprocesses` are to drive).
#pragma once

#include "core/target/process.h"
#include "core/sampling/python_module.h"
#include "core/sampling/snapshot.h"
#include "core/target/thread_states.h"

namespace pyflame::core {

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

 private:
  Interpreter& interpreter_;
  const pid_t pid_;
  const bool blocking_;
  const bool read_idle_;
  ThreadStates states_;
};

}  // namespace pyflame::core
