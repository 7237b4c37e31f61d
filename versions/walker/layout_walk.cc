// SPDX-License-Identifier: Apache-2.0
// The walk of the thread list, and of each thread's frames in either
// frame model: PyFrameObject chains (to 3.10) or interpreter frames (3.11+).
#include "versions/walker/layout_interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/errors.h"
#include "core/log.h"

namespace pyflame::versions {

using core::Error;
using core::ExitCode;
using core::RemoteAddr;

bool LayoutInterpreter::walk_threads(core::Snapshot& out, size_t& threads) {
  prefetch_planned_ = !prefetch_words_.empty();
  if (prefetch_planned_) prefetch_.plan(prefetch_words_, true);
  memory_.begin(prefetch_planned_ ? &prefetch_ : nullptr);
  list_words_.clear();
  stack_words_.clear();
  stack_spans_.clear();
  rooted_.clear();
  known_.clear();
  pending_.clear();
  clean_.clear();
  // The thread list's words were all read in begin()'s call if none of
  // the reads of its links missed.
  const uint64_t misses_at_begin = memory_.misses();
  uint64_t list_misses = 0;
  // Few system calls per sample: what can be read together is.
  uint64_t head = 0, current = 0;
  const core::Memory::ReadRequest globals[] = {
      {interp_head_slot_, std::as_writable_bytes(std::span(&head, 1))},
      {tstate_current_slot_, std::as_writable_bytes(std::span(&current, 1))}};
  memory_.read_many(std::span(globals).first(tstate_current_slot_ ? 2 : 1), ok_);
  list_misses += memory_.misses() - misses_at_begin;
  if (!ok_[0] || head == 0) {
    PYFLAME_DEBUG_LOG("cannot read the interpreter list head at {:#x}", interp_head_slot_.value());
    return false;
  }
  list_words_.push_back({interp_head_slot_.value(), head, sizeof head});
  std::optional<RemoteAddr> current_holder;
  if (tstate_current_slot_ && ok_[1]) current_holder = RemoteAddr(current);
  std::optional<RemoteAddr> interp = RemoteAddr(head);
  tstate_buf_.resize(static_cast<size_t>(l_.sizeof_tstate));
  CycleCheck interp_cycle;
  for (int i = 0; i < kMaxInterpreters && !interp->is_null(); ++i) {
    if (interp_cycle.seen(*interp)) return false;  // a cycle: torn or hostile
    uint64_t first_tstate = 0, next_interp = 0, gil = 0;
    const bool per_interp_gil = !tstate_current_slot_ && present(l_.interp_gil);
    const core::Memory::ReadRequest fields[] = {
        {address_of(*interp, l_.interp_tstate_head), std::as_writable_bytes(std::span(&first_tstate, 1))},
        {address_of(*interp, l_.interp_next), std::as_writable_bytes(std::span(&next_interp, 1))},
        {per_interp_gil ? address_of(*interp, l_.interp_gil) : RemoteAddr(),
         std::as_writable_bytes(std::span(&gil, 1))}};
    const uint64_t misses_before_fields = memory_.misses();
    memory_.read_many(std::span(fields).first(per_interp_gil ? 3 : 2), ok_);
    list_misses += memory_.misses() - misses_before_fields;
    if (!ok_[0] || !ok_[1]) return false;
    list_words_.push_back({address_of(*interp, l_.interp_tstate_head).value(), first_tstate, sizeof first_tstate});
    list_words_.push_back({address_of(*interp, l_.interp_next).value(), next_interp, sizeof next_interp});
    std::optional<RemoteAddr> holder = current_holder;
    if (per_interp_gil && ok_[2]) holder = gil_holder(RemoteAddr(gil));
    std::optional<RemoteAddr> tstate = RemoteAddr(first_tstate);
    CycleCheck thread_cycle;
    for (int t = 0; t < kMaxThreads && !tstate->is_null(); ++t) {
      const uint64_t misses_before = memory_.misses();
      if (thread_cycle.seen(*tstate) || !memory_.read(*tstate, tstate_buf_)) {
        PYFLAME_DEBUG_LOG("cannot read thread state {:#x}", tstate->value());
        return false;
      }
      list_misses += memory_.misses() - misses_before;
      const std::span<const std::byte> ts(tstate_buf_);
      if (threads == out.threads.size()) out.threads.emplace_back();
      core::ThreadSample& thread = out.threads[threads++];
      thread.reset_except_frames();  // finish_thread() may keep some
      thread.thread_id = static_cast<uint64_t>(read(ts, l_.tstate_thread_id));
      if (present(l_.tstate_native_thread_id)) thread.native_id = read(ts, l_.tstate_native_thread_id);
      if (holder) thread.holds_gil = *holder == *tstate;
      raw_.clear();
      raw_frames_.clear();
      call_ends_.clear();
      call_anchors_.clear();
      inline_callers_.clear();
      const size_t words_begin = stack_words_.size();
      if (latest_stacks_.size() < threads) latest_stacks_.resize(threads);
      expect_ = &latest_stacks_[threads - 1];
      expect_at_ = 0;
      diverged_ = false;
      walk_rooted_ = false;
      if (l_.frame_model == PYFLAME_FRAME_OBJECTS) {
        walk_frame_objects(RemoteAddr(witness(ts, *tstate, l_.tstate_frame)));
      } else {
        RemoteAddr frame;
        if (present(l_.tstate_current_frame)) {
          frame = RemoteAddr(witness(ts, *tstate, l_.tstate_current_frame));
        } else {
          auto cframe = RemoteAddr(witness(ts, *tstate, l_.tstate_cframe));
          if (cframe) {
            uint64_t f = 0;
            const auto field = std::as_writable_bytes(std::span(&f, 1));
            if (memory_.read(address_of(cframe, l_.cframe_current_frame), field)) {
              note(core::Witness(address_of(cframe, l_.cframe_current_frame).value(), f, sizeof f));
              frame = RemoteAddr(f);
            } else {
              bad_walk();
            }
          }
        }
        const RemoteAddr base_frame(present(l_.tstate_base_frame) ? read(ts, l_.tstate_base_frame) : 0);
        if (raw_.empty()) walk_interpreter_frames(frame, base_frame);
      }
      if (!diverged_ && expect_at_ != expect_->size()) diverge();  // a prefix of the latest
      stack_spans_.emplace_back(words_begin, stack_words_.size());
      rooted_.push_back(walk_rooted_);
      known_.push_back(!diverged_);
      pending_.push_back(0);
      // Its words were all read in begin()'s call (code objects read later
      // are not witnesses) if no read of its state and frames missed.
      clean_.push_back(memory_.misses() == misses_before);
      finish_thread(thread, threads - 1);
      const uint64_t next = read(ts, l_.tstate_next);
      list_words_.push_back({address_of(*tstate, l_.tstate_next).value(), next, sizeof next});
      tstate = RemoteAddr(next);
    }
    interp = RemoteAddr(next_interp);
  }
  list_clean_ = list_misses == 0;
  return true;
}

void LayoutInterpreter::walk_frame_objects(RemoteAddr frame) {
  CycleCheck cycle;
  const auto header = static_cast<size_t>(std::max({end_of(l_.ob_refcnt), end_of(l_.frame_back),
                                                    end_of(l_.frame_code), end_of(l_.frame_lasti),
                                                    present(l_.frame_gen) ? end_of(l_.frame_gen) : 0}));
  if (!frame) walk_rooted_ = true;
  for (int depth = 0; frame; ++depth) {
    if (depth >= kMaxFrames) return bounded_walk();
    const std::byte* bytes = nullptr;
    if (cycle.seen(frame) || (bytes = memory_.view(frame, header, true)) == nullptr) return bad_walk();
    const std::span<const std::byte> frame_buf(bytes, header);
    // A freed frame (on the free list, or a code object's zombie frame)
    // keeps its type and stale links; its reference count is 0. Frames are
    // shared between threads through that list: a walk into one mixes
    // threads.
    if (RemoteAddr(read(frame_buf, l_.ob_type)) != objects_.types().frame ||
        read(frame_buf, l_.ob_refcnt) <= 0)
      return bad_walk();
    // The innermost frame's instruction moves while it runs: not a witness.
    const int64_t lasti = depth == 0 ? read(frame_buf, l_.frame_lasti)
                                     : witness(frame_buf, frame, l_.frame_lasti);
    // f_lasti is -1 before the first instruction runs; CPython's
    // PyCode_Addr2Line then answers co_firstlineno (the `def` line): so do we.
    std::optional<int64_t> offset = lasti >= 0 ? lasti * l_.lasti_unit_bytes : kBeforeFirst;
    const RemoteAddr code(witness(frame_buf, frame, l_.frame_code));
    if (!code) return bad_walk();
    add_raw(frame, code, offset, true);
    call_ends_.push_back(raw_.size());  // each frame object is one eval-loop call
    call_anchors_.push_back(0);
    const RemoteAddr back(witness(frame_buf, frame, l_.frame_back));
    // A thread's outermost frame belongs to no generator: one that does is
    // a suspended generator's (its f_back cleared), reached by a torn read.
    if (!back)
      walk_rooted_ = !present(l_.frame_gen) || witness(frame_buf, frame, l_.frame_gen) == 0;
    frame = back;
  }
}

void LayoutInterpreter::walk_interpreter_frames(RemoteAddr frame, RemoteAddr base_frame) {
  CycleCheck cycle;
  const auto size = static_cast<size_t>(l_.sizeof_iframe);
  if (!frame) walk_rooted_ = true;
  bool innermost = true;
  bool called_inline = false;  // the frame read before is a Python frame
  for (int depth = 0; frame; ++depth) {
    if (depth >= kMaxFrames) return bounded_walk();
    const std::byte* bytes = nullptr;
    if (cycle.seen(frame) || (bytes = memory_.view(frame, size, true)) == nullptr) return bad_walk();
    const std::span<const std::byte> frame_buf(bytes, size);
    RemoteAddr previous(witness(frame_buf, frame, l_.iframe_previous));
    const int64_t owner = witness(frame_buf, frame, l_.iframe_owner);
    if (!previous) {
      // A thread's stack ends at its sentinel (3.15+), or at a frame that
      // neither a generator nor a frame object owns: a suspended
      // generator's frame (previous cleared) is reached only by a torn read.
      walk_rooted_ = base_frame ? frame == base_frame
                                : owner != l_.owner_generator && owner != l_.owner_frame_object;
    }
    // C-stack shim frames (3.12+) and interpreter-owned frames (3.14+) are
    // bookkeeping, not Python code.
    if (owner == l_.owner_cstack || owner == l_.owner_interpreter) {
      // Each eval-loop call pushes one under its first frame (3.12+); the
      // sentinel a 3.15 stack ends at is no call.
      if (frame != base_frame) {
        call_ends_.push_back(raw_.size());
        call_anchors_.push_back(frame.value());
      }
      frame = previous;
      called_inline = false;
      continue;
    }
    RemoteAddr code(witness(frame_buf, frame, l_.iframe_code) &
                    ~static_cast<uint64_t>(l_.stackref_tag_mask));
    // A frame with no code is not a live one: 3.14 clears a frame's
    // executable as it pops it, so this is a torn read of a popping stack.
    if (!code) return bad_walk();
    // A popped frame keeps its links and code until its memory is reused:
    // read just after its caller went on (the thread's frame pointer read
    // before, the frames after), it shows the caller past its call with
    // the callee still below. The same interleaving a few microseconds
    // later reads the same, so the second reading cannot tell; 3.12 and
    // 3.13 say it in stacktop. A running frame's is -1, a popped one's 0;
    // a caller's is its locals plus its stack depth, saved as it pushed its
    // callee, and -1 again once the callee has returned. A caller through
    // C code (a C-stack shim frame in between) may hold -1: it is not
    // checked. A frame just pushed, or in a trace callback, holds its
    // depth: at most a retry, never a wrong frame.
    if (present(l_.iframe_stacktop)) {
      const int64_t stacktop = read(frame_buf, l_.iframe_stacktop);
      if (innermost && stacktop == 0) return bad_walk();
      // Whether it is below its locals needs the code: finish_thread.
      if (!innermost && called_inline) inline_callers_.push_back({raw_.size(), stacktop});
    }
    // 3.11 has no such stacktop; there the caller must stand at an
    // instruction that pushes a frame (a call): `catcher` read on its
    // `except` line under the `thrower` it called is a mixed reading.
    // Which instructions push needs the code: finish_thread.
    if (l_.pushes_frame != nullptr && !innermost && called_inline)
      inline_callers_.push_back({raw_.size(), std::nullopt});
    // The innermost frame's instruction moves while it runs: not a witness.
    RemoteAddr instr(innermost ? read(frame_buf, l_.iframe_instr)
                               : witness(frame_buf, frame, l_.iframe_instr));
    innermost = false;
    called_inline = true;
    add_raw(frame, code, instr - address_of(code, l_.code_adaptive), owner == l_.owner_generator);
    if (present(l_.iframe_is_entry) && read(frame_buf, l_.iframe_is_entry) != 0) {
      call_ends_.push_back(raw_.size());  // 3.11: the first frame of its call
      call_anchors_.push_back(0);
      called_inline = false;  // its caller called C code, which called it
    }
    frame = previous;
  }
}

}  // namespace pyflame::versions
