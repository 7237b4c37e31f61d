// SPDX-License-Identifier: Apache-2.0
#include "core/sampling/sampler.h"

#include <optional>

#include "core/target/thread_stopper.h"

namespace pyflame::core {

Sampler::Sampler(const Process& process, Interpreter& interpreter, bool blocking, bool read_idle)
    : interpreter_(interpreter), pid_(process.pid()), blocking_(blocking), read_idle_(read_idle),
      states_(process) {}

bool Sampler::sample(Snapshot& snapshot) {
  if (read_idle_) {
    // A thread first seen during a --blocking stop would read as stopped:
    // with --blocking every thread is looked for now (a directory listing
    // more); otherwise new threads are found by fill().
    if (blocking_) {
      states_.discover();
    } else {
      states_.read_states();
    }
  }
  bool ok = false;
  {
    std::optional<ThreadStopper> stopper;
    if (blocking_) stopper.emplace(pid_, read_idle_);
    ok = interpreter_.sample(snapshot);
    if (stopper) states_.note_waiting(stopper->waiting());
  }  // the threads run again before anything else is read
  if (ok) states_.fill(snapshot);
  return ok;
}

}  // namespace pyflame::core
