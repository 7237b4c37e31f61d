// SPDX-License-Identifier: Apache-2.0
// One stack from two: a thread's native frames with each eval-loop frame
// replaced by the Python frames that call of the eval loop ran.
#pragma once

#include <cstdint>
#include <vector>

#include "core/native/unwinder.h"
#include "core/sampling/snapshot.h"

namespace pyflame::core {

enum class MergeOutcome {
  kMerged,    // every eval-loop frame matched one call's Python frames
  kCutShort,  // merged as far as the unwind went; the rest after a marker
  kMismatch,  // the eval-loop frames and the Python calls disagree: Python frames only
};

// `python`: the walker's frames, innermost first; `eval_calls`: how many of
// them each eval-loop call ran, innermost call first, and `anchors` where
// each call's entry frame is (ThreadSample). With every anchor known, the
// eval loop's native frames are the ones whose stack frame holds an anchor
// (exact, with or without symbols); else the ones the rules name. Writes
// the merged stack, innermost first, into `out`; interpreter-internal
// frames only with `show_internal`.
MergeOutcome merge_native(const std::vector<Frame>& python, const std::vector<uint32_t>& eval_calls,
                          const std::vector<uint64_t>& anchors, const NativeStack& native,
                          bool show_internal, std::vector<Frame>& out);

// How the thread stacks of merge_snapshot() merged, summed over calls.
struct MergeCounts {
  uint64_t merged = 0;
  uint64_t cut_short = 0;   // merged as far as the unwind reached
  uint64_t mismatched = 0;  // shown with Python frames only
};

// `walked` (the walker's snapshot) into `out`, each thread's frames merged
// with `natives[i]` (its native stack; empty for a thread not unwound); a
// torn thread keeps no frames. For a live sample and a core file alike.
void merge_snapshot(const Snapshot& walked, const std::vector<NativeStack>& natives,
                    bool show_internal, Snapshot& out, MergeCounts& counts);

// A Frame showing a native location (strings are views into it).
Frame native_frame(const NativeLocation& location);

}  // namespace pyflame::core
