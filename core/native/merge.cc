// SPDX-License-Identifier: Apache-2.0
#include "core/native/merge.h"

#include <numeric>

namespace pyflame::core {
namespace {

// Shown where an unwind stopped short of the thread's start: what lies
// beyond it is unknown, so the Python calls it did not reach are shown
// outside this mark rather than guessed into place.
Frame unwinding_stopped_frame() {
  Frame f;
  f.kind = FrameKind::kNative;
  f.function = "[native stack not unwound further]";
  f.filename = "";
  f.library = "";
  f.code_key = kNativeKeyBit;  // one key of its own
  return f;
}

}  // namespace

Frame native_frame(const NativeLocation& location) {
  Frame f;
  f.kind = FrameKind::kNative;
  f.function = location.function;
  f.filename = location.filename;
  if (location.line > 0) f.line = location.line;
  f.library = location.library;
  f.address = location.address;
  f.code_key = kNativeKeyBit | location.key;
  return f;
}

MergeOutcome merge_native(const std::vector<Frame>& python, const std::vector<uint32_t>& eval_calls,
                          const NativeStack& native, bool show_internal, std::vector<Frame>& out) {
  out.clear();
  const size_t in_calls = std::accumulate(eval_calls.begin(), eval_calls.end(), size_t{0});
  size_t call = 0, at = 0;  // the next eval call, and its first Python frame
  bool consistent = in_calls == python.size();
  for (const NativeLocation* loc : native.frames) {
    if (!consistent) break;
    switch (loc->role) {
      case NativeRole::kEvalLoop:
        if (call == eval_calls.size()) {
          consistent = false;  // more eval-loop calls than the walk found
          break;
        }
        out.insert(out.end(), python.begin() + static_cast<ptrdiff_t>(at),
                   python.begin() + static_cast<ptrdiff_t>(at + eval_calls[call]));
        at += eval_calls[call++];
        break;
      case NativeRole::kInternal:
        if (show_internal) out.push_back(native_frame(*loc));
        break;
      case NativeRole::kShown:
        out.push_back(native_frame(*loc));
        break;
    }
  }
  if (consistent && call == eval_calls.size()) return MergeOutcome::kMerged;
  if (consistent && !native.complete) {
    out.push_back(unwinding_stopped_frame());
    out.insert(out.end(), python.begin() + static_cast<ptrdiff_t>(at), python.end());
    return MergeOutcome::kCutShort;
  }
  out.assign(python.begin(), python.end());
  return MergeOutcome::kMismatch;
}

}  // namespace pyflame::core
