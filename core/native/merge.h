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

// A Frame showing a native location (strings are views into it).
Frame native_frame(const NativeLocation& location);

}  // namespace pyflame::core
