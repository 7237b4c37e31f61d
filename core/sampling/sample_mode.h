// SPDX-License-Identifier: Apache-2.0
// Which threads a sample keeps: every one (wall), the running ones (cpu),
// or the one holding the GIL (gil). One rule for record, dump and top.
#pragma once

#include <optional>
#include <string_view>

#include "core/sampling/snapshot.h"

namespace pyflame::core {

enum class SampleMode {
  kWall,  // every thread, idle or not: where the time passes
  kCpu,   // threads on a CPU or runnable: where the CPU goes (the default)
  kGil,   // the thread holding the GIL, whatever its state: who holds it
};

// "wall", "cpu", "gil"; nullopt for anything else.
std::optional<SampleMode> parse_sample_mode(std::string_view name);
const char* sample_mode_name(SampleMode mode);

// Whether `mode` keeps this thread's sample. A torn sample is judged like
// any other (it is then counted, not shown); a thread with no Python frame
// is kept in wall mode only. In cpu mode an unknown state counts as
// running: the sample is dropped only on evidence of idleness.
bool mode_keeps(SampleMode mode, const ThreadSample& thread);

// Whether the sampler must read the threads' kernel states for `mode`:
// only cpu mode needs them (wall keeps all, gil asks the interpreter).
inline bool mode_needs_states(SampleMode mode) { return mode == SampleMode::kCpu; }

}  // namespace pyflame::core
