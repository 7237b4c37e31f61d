// SPDX-License-Identifier: Apache-2.0
#include "core/native/merge.h"

#include <algorithm>
#include <numeric>

#include "core/log.h"

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

// Outside a thread's outermost Python frame lies how the thread started:
// the interpreter's start (any of its functions, named or not: 3.6's
// run_file, 3.11's inlined pyrun_file), libc's thread starts, unnamed code.
bool thread_start_machinery(const NativeLocation& loc) {
  if (loc.in_interpreter || loc.unnamed) return true;
  const std::string_view file = library_file_name(loc.library);
  return file.substr(0, 7) == "libc.so" || file.substr(0, 5) == "libc-";
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
  f.inlined = location.inlined;
  f.code_key = kNativeKeyBit | location.key;
  return f;
}

MergeOutcome merge_native(const std::vector<Frame>& python, const std::vector<uint32_t>& eval_calls,
                          const std::vector<uint64_t>& anchors, const NativeStack& native,
                          bool show_internal, std::vector<Frame>& out) {
  out.clear();
  const size_t in_calls = std::accumulate(eval_calls.begin(), eval_calls.end(), size_t{0});
  size_t call = 0, at = 0;  // the next eval call, and its first Python frame
  bool consistent = in_calls == python.size();
  const std::vector<uint64_t>& sp = native.stack_pointers;
  const bool by_anchor = !anchors.empty() && anchors.size() == eval_calls.size() &&
                         std::find(anchors.begin(), anchors.end(), 0) == anchors.end() &&
                         sp.size() == native.frames.size() &&
                         std::find(sp.begin(), sp.end(), 0) == sp.end();
  // One C stack frame: the functions inlined into it (innermost first),
  // then the function itself. Inside the eval loop the inlined ones are its
  // own code, replaced with it: `group` is where the frame's output began.
  size_t group = 0;
  bool new_group = true;
  for (size_t i = 0; i < native.frames.size() && consistent; ++i) {
    const NativeLocation* loc = native.frames[i];
    NativeRole role = loc->role;
    if (new_group) group = out.size();
    new_group = !loc->inlined;
    if (by_anchor) {
      // A frame's locals lie from its stack pointer up to its caller's.
      const bool holds_anchor = call < anchors.size() && anchors[call] >= sp[i] &&
                                (i + 1 == sp.size() || anchors[call] < sp[i + 1]);
      if (holds_anchor && !loc->in_interpreter) {
        // Only the interpreter runs the eval loop: stack pointers that put
        // the entry frame elsewhere come from a wrong unwind (through code
        // without CFI, by frame pointers).
        consistent = false;
        break;
      }
      if (holds_anchor) {
        role = NativeRole::kEvalLoop;
      } else if (role == NativeRole::kEvalLoop) {
        consistent = false;  // an eval-loop call with no entry frame of its own
        break;
      }
    }
    if (role == NativeRole::kEvalLoop) out.resize(group);
    if (!show_internal && call == eval_calls.size() && !python.empty() &&
        role != NativeRole::kEvalLoop && thread_start_machinery(*loc))
      role = NativeRole::kInternal;
    switch (role) {
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

void merge_snapshot(const Snapshot& walked, const std::vector<NativeStack>& natives,
                    bool show_internal, Snapshot& out, MergeCounts& counts) {
  out.retries = walked.retries;
  out.torn = walked.torn;
  out.threads.resize(walked.threads.size());
  static const NativeStack kNotUnwound;
  for (size_t i = 0; i < walked.threads.size(); ++i) {
    const ThreadSample& from = walked.threads[i];
    const NativeStack& native = i < natives.size() ? natives[i] : kNotUnwound;
    ThreadSample& to = out.threads[i];
    to.thread_id = from.thread_id;
    to.native_id = from.native_id;
    to.name = from.name;
    to.holds_gil = from.holds_gil;
    to.idle = from.idle;
    to.truncated = from.truncated;
    to.torn = from.torn;
    to.eval_calls = from.eval_calls;
    to.eval_call_anchors = from.eval_call_anchors;
    if (from.torn) {
      to.frames.clear();
      continue;
    }
    switch (merge_native(from.frames, from.eval_calls, from.eval_call_anchors, native,
                         show_internal, to.frames)) {
      case MergeOutcome::kMerged: ++counts.merged; break;
      case MergeOutcome::kCutShort: ++counts.cut_short; break;
      case MergeOutcome::kMismatch:
        ++counts.mismatched;
        PYFLAME_DEBUG_LOG("--native: thread {}: {} Python frames in {} eval-loop calls, {} native "
                          "frames ({} eval-loop): not merged",
                          from.native_id.value_or(0), from.frames.size(), from.eval_calls.size(),
                          native.frames.size(),
                          std::count_if(native.frames.begin(), native.frames.end(),
                                        [](const NativeLocation* l) { return l->role == NativeRole::kEvalLoop; }));
        for (const NativeLocation* l : native.frames)
          PYFLAME_DEBUG_LOG("--native:   {} in {}", l->function, l->library);
        break;
    }
  }
}

}  // namespace pyflame::core
