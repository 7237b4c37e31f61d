// SPDX-License-Identifier: Apache-2.0
#include "core/sampling/sampler.h"

#include <optional>

#include "core/target/thread_stopper.h"

namespace pyflame::core {

Sampler::Sampler(const Process& process, Interpreter& interpreter, bool blocking, bool read_idle)
    : interpreter_(interpreter), pid_(process.pid()), blocking_(blocking), read_idle_(read_idle),
      states_(process) {}

bool Sampler::sample(Snapshot& snapshot) {
  // With --blocking the states are read before the stop (a stopped thread
  // is not idle), every thread's, looked for now: a thread first seen
  // during the stop would read as stopped. Without it they are read after
  // the walk, by fill(), only where the walk says a thread may be running
  // (docs/how-it-works.md, "Idle threads").
  if (read_idle_ && blocking_) states_.discover();
  bool ok = false;
  {
    std::optional<ThreadStopper> stopper;
    if (blocking_) stopper.emplace(pid_, read_idle_);
    ok = interpreter_.sample(snapshot);
    if (stopper) states_.note_waiting(stopper->waiting());
  }  // the threads run again before anything else is read
  if (ok) states_.fill(snapshot, /*refresh=*/read_idle_ && !blocking_);
  return ok;
}

}  // namespace pyflame::core
