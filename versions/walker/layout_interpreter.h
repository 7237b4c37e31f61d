// SPDX-License-Identifier: Apache-2.0
// The walker's own declarations, shared by its files (layout_locate.cc,
// layout_sample.cc, layout_walk.cc, layout_frames.cc) and by nothing else:
// LayoutInterpreter reads one interpreter through a version's layout table.
// What each file holds:
//   layout_locate.cc  finding the interpreter list, checking _Py_DebugOffsets
//   layout_sample.cc  one sample: walks until a reading is consistent
//   layout_walk.cc    the thread list and the two frame models' walks
//   layout_frames.cc  code objects (the code cache) and frames, kept by slot
#pragma once

#include <array>
#include <deque>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/sampling/python_module.h"
#include "core/sampling/recent_pages.h"
#include "core/sampling/sample_memory.h"
#include "core/sampling/snapshot.h"
#include "core/sampling/witness.h"
#include "versions/layout.h"
#include "versions/walker/layout_locals.h"
#include "versions/walker/layout_module.h"
#include "versions/walker/member.h"
#include "versions/walker/remote_object.h"

namespace pyflame::versions {

using core::RemoteAddr;

// Bounds on everything the target could make endless.
constexpr int kMaxInterpreters = 256;
constexpr int kMaxThreads = 4096;
constexpr int kMaxFrames = 16384;
// Walks of one sample before a thread whose stack keeps moving is dropped
// as torn (docs/how-it-works.md, "A consistent sample").
constexpr int kAttempts = 3;

// What a code object says, read once per code object.
struct CodeInfo {
  std::string name;
  std::optional<std::string> qualname;
  std::string filename;
  int first_line = 0;
  bool generator = false;  // a generator's or coroutine's code: never a thread's outermost frame
  std::optional<int64_t> first_traceable;  // in code units (3.11+)
  int64_t code_bytes = -1;                 // length of the bytecode (3.11+), -1: unknown
  int locals_plus = 0;                     // co_nlocalsplus (3.11+)
  // 3.11: the byte ranges of the instructions that push a Python frame
  // (pyflame_layout::pushes_frame), in order; unknown for code too large to
  // scan, or on other versions.
  std::vector<std::pair<int64_t, int64_t>> frame_pushes;
  bool frame_pushes_known = false;
  std::string line_table;  // when at most kInlineTableBytes
  // A larger table stays in the target (its address and length, 0: none
  // beyond the one above) and is read when a line is needed.
  RemoteAddr large_table;
  int64_t large_table_bytes = 0;
  size_t cost = 0;  // bytes charged to the code cache
  // The pointers these were read from: a code object freed and another
  // allocated at the same address is caught by comparing them.
  std::array<uint64_t, 4> identity{};
  uint64_t key = 0;  // core::Frame::code_key: unique for the interpreter's life
  // Decoded lines by instruction offset: a hot frame sits on few offsets.
  std::unordered_map<int64_t, std::optional<int>> lines;
  int64_t last_offset = -1;
  std::optional<int> last_line;
};

// The code cache is bounded by bytes (docs/reliability.md, "A hostile
// target"): N code objects sharing one large line table must not cost N
// copies of it. A table up to kInlineTableBytes is copied into its entry
// (3 of 249 396 code objects in pyenv 3.11.7's library and site-packages
// have a larger one, up to sympy's 694 KiB); a larger one is read into a scratch buffer when a line is
// needed, at most kLargeTableBytesPerSample of them per sample, and its
// lines are shared by every code object that points at the same table.
// Over kCodeCacheBytes, the cache is emptied before the next sample; one
// sample adds at most kSampleCodeBytes before new code objects show
// <unknown>.
constexpr size_t kInlineTableBytes = 64 << 10;
constexpr int64_t kLargeTableBytesPerSample = 8 << 20;
constexpr size_t kCodeCacheBytes = 16 << 20;
constexpr size_t kSampleCodeBytes = 16 << 20;
// 3.11: instructions scanned for frame pushes, at most, per code object
// (the caller check is skipped for larger ones; a module body of 10,000
// lines is about 200 KiB).
constexpr int64_t kMaxScannedCodeBytes = 1 << 20;
constexpr size_t kCodeCacheEntries = 100000;
constexpr size_t kLinesPerCode = 4096;
constexpr size_t kLineEntryBytes = 64;  // an unordered_map node, roughly
constexpr size_t kSharedLines = 65536;

// RawFrame::offset of a frame that has not run its first instruction.
constexpr int64_t kBeforeFirst = -1;

// A frame as read from the stack, before its code object is resolved.
struct RawFrame {
  RemoteAddr code;
  std::optional<int64_t> offset;  // instruction byte offset, if any
  bool generator = false;         // owned by a generator (never incomplete)
  bool bad = false;               // unreadable or failed a check: <unknown>

  bool operator==(const RawFrame&) const = default;
};

// A thread slot's previous stack, so that the frames it shares with this
// one, counted from the outermost, are kept instead of rebuilt: a hot loop
// changes only the innermost frames.
struct StackMemo {
  const core::ThreadSample* owner = nullptr;  // where those frames are
  std::vector<RawFrame> raw;                  // innermost first
  std::vector<uint64_t> keys;                 // CodeInfo::key per raw frame, 0: none
  std::vector<uint8_t> emitted;               // whether raw frame i made a Frame
  size_t frames = 0;                          // Frames made in all
};

// Brent's cycle detection over a frame chain: constant memory, no
// allocation, finds any cycle within twice its length.
class CycleCheck {
 public:
  bool seen(RemoteAddr frame) {
    if (frame == saved_) return true;
    if (++steps_ == power_) {
      saved_ = frame;
      power_ *= 2;
      steps_ = 0;
    }
    return false;
  }

 private:
  RemoteAddr saved_;
  uint64_t power_ = 1;
  uint64_t steps_ = 0;
};

class LayoutInterpreter : public core::Interpreter {
 public:
  LayoutInterpreter(const pyflame_layout& l, const core::Memory& target, int pid,
                    const TargetSymbols& symbols)
      : l_(l), objects_(l, target), target_(target), pid_(pid), memory_(target) {
    locate(symbols);
  }

  std::string python_version() const override { return version_; }
  bool sample(core::Snapshot& out) override;
  void set_strict(bool strict) override { strict_ = strict; }
  void set_locals(bool locals) override { locals_ = locals; }

 private:
  void locate(const TargetSymbols& symbols);
  void check_debug_offsets(RemoteAddr runtime);
  std::optional<RemoteAddr> scan_for_interp_head(const TargetSymbols& symbols) const;
  // One pass: `heads_in_maps` also asks the first thread state to be in them.
  std::optional<RemoteAddr> scan_for_interp_head(const TargetSymbols& symbols,
                                                 const std::function<bool(uint64_t)>& in_writable,
                                                 bool heads_in_maps) const;
  bool looks_like_interpreter(RemoteAddr interp) const;

  // The thread state holding the GIL whose struct is at `gil` (3.12+).
  std::optional<RemoteAddr> gil_holder(RemoteAddr gil);
  // One walk of every thread into out.threads[0, threads).
  bool walk_threads(core::Snapshot& out, size_t& threads);
  // These walk one thread's frames into raw_, witness the words they
  // depend on in stack_words_, and say whether the stack ended at a root.
  void walk_frame_objects(RemoteAddr frame);
  void walk_interpreter_frames(RemoteAddr frame, RemoteAddr base_frame);
  // Ends a walk at a frame that cannot be read or fails a check: the stack
  // shows <unknown> there, and it is no thread's whole stack (a torn read,
  // most likely, so it is read again or dropped).
  void bad_walk() {
    raw_.push_back({RemoteAddr(), std::nullopt, false, true});
    if (locals_) raw_frames_.emplace_back();
    walk_rooted_ = false;
  }
  // Ends a walk deeper than the bound: shown, cut short with <unknown>.
  void bounded_walk() {
    raw_.push_back({RemoteAddr(), std::nullopt, false, true});
    if (locals_) raw_frames_.emplace_back();
    walk_rooted_ = true;
  }
  // Whether each thread of the last walk read one moment of its stack:
  // marks the others torn; false if any is (or the thread list moved).
  bool confirm(core::Snapshot& out, size_t threads);
  // set_strict(): one more reading of the moving stacks confirm() let through.
  void confirm_again(core::Snapshot& out, size_t threads);
  // The member of the object at `base`, whose bytes are `buf`, noted as a
  // word the thread's walk depends on.
  [[gnu::always_inline]] uint64_t witness(std::span<const std::byte> buf, RemoteAddr base,
                                          const WordMember& member) {
    const uint64_t bits = raw_bits(buf, member);
    note(core::Witness((base + member.offset).value(), bits, width(member)));
    return bits;
  }
  [[gnu::always_inline]] int64_t witness(std::span<const std::byte> buf, RemoteAddr base,
                                         const IntegerMember& member) {
    const uint64_t bits = raw_bits(buf, member);
    note(core::Witness((base + member.offset).value(), bits, width(member)));
    return as_integer(bits, member);
  }
  // Notes a word of the thread being walked. While the words match the
  // thread's latest reading, one by one, nothing is stored (a steady deep
  // stack costs a compare per word); at the first that does not, the
  // matched ones are copied and the rest appended to stack_words_.
  [[gnu::always_inline]] void note(const core::Witness& w) {
    if (!diverged_) {
      if (expect_at_ < expect_->size() && (*expect_)[expect_at_] == w) {
        ++expect_at_;
        return;
      }
      diverge();
    }
    stack_words_.push_back(w);
  }
  void diverge() {
    stack_words_.insert(stack_words_.end(), expect_->begin(),
                        expect_->begin() + static_cast<ptrdiff_t>(expect_at_));
    diverged_ = true;
  }
  // Appends a good frame to raw_, field by field: a RawFrame built on the
  // stack and copied whole stalled the hot loop on store forwarding.
  void add_raw(RemoteAddr frame, RemoteAddr code, std::optional<int64_t> offset, bool generator) {
    RawFrame& f = raw_.emplace_back();
    f.code = code;
    f.offset = offset;
    f.generator = generator;
    if (locals_) raw_frames_.push_back(frame);  // dump --locals reads the frame again
  }
  // dump --locals: each shown frame's variables, for the threads not torn.
  void read_locals(core::Snapshot& out, size_t threads);
  // Resolves raw_'s code objects (one batched read) and appends the frames.
  void finish_thread(core::ThreadSample& thread, size_t slot);
  // Sets `f`, a default Frame, to `info` at instruction byte offset `offset`
  // (nullopt: no line).
  void fill_frame(core::Frame& f, CodeInfo* info, std::optional<int64_t> offset);
  // Reads the strings of a code object whose header is `header`.
  CodeInfo* load_code(RemoteAddr code, std::span<const std::byte> header);
  // 3.11: fills info.frame_pushes from the code's instructions.
  void find_frame_pushes(RemoteAddr code, CodeInfo& info);
  // Whether the instruction at `offset` (bytes) pushes a frame.
  static bool at_frame_push(const CodeInfo& info, std::optional<int64_t> offset);
  // The line at `offset` of a code object whose table stayed in the target:
  // nullopt when this sample's budget for reading such tables is spent.
  std::optional<std::optional<int>> large_table_line(const CodeInfo& info, int offset);
  int64_t code_header_size() const;

  const pyflame_layout& l_;
  RemoteObjects objects_;
  const core::Memory& target_;
  const int pid_;  // for messages
  std::string version_;
  RemoteAddr interp_head_slot_;     // address of the pointer to the first interpreter
  RemoteAddr tstate_current_slot_;  // address of the GIL holder's thread state (<= 3.11)
  // By address; entries are boxed so that views into them stay put.
  std::unordered_map<RemoteAddr, std::unique_ptr<CodeInfo>> code_cache_;
  // Entries replaced during this sample: earlier frames may still view them.
  std::vector<std::unique_ptr<CodeInfo>> retired_;
  size_t code_cache_bytes_ = 0;   // CodeInfo::cost of code_cache_ and retired_
  size_t sample_code_bytes_ = 0;  // of those, added during this sample
  int64_t large_table_reads_ = 0; // bytes of large tables read this sample
  // Lines of large tables by (table, its length, first line, offset).
  struct SharedLineKey {
    uint64_t table;
    int64_t length;
    int first_line;
    int offset;
    bool operator==(const SharedLineKey&) const = default;
  };
  struct SharedLineHash {
    size_t operator()(const SharedLineKey& k) const {
      return std::hash<uint64_t>()(k.table * 31 + static_cast<uint64_t>(k.length)) ^
             (std::hash<int>()(k.first_line) * 7) ^ std::hash<int>()(k.offset);
    }
  };
  std::unordered_map<SharedLineKey, std::optional<int>, SharedLineHash> shared_lines_;
  uint64_t next_code_key_ = 1;
  // Reused from sample to sample: no allocation once warm.
  core::SampleMemory memory_;
  std::vector<std::byte> tstate_buf_;
  std::vector<RawFrame> raw_;
  // Where each eval-loop call's frames end in raw_ (a count of raw frames,
  // innermost call first): ThreadSample::eval_calls.
  std::vector<size_t> call_ends_;
  std::vector<uint64_t> call_anchors_;  // the shim frame ending each call, or 0
  // Frames of raw_ that called the one before them without C code in
  // between (3.11 - 3.13), with their stacktop (3.12, 3.13): one below its
  // code's locals, or (3.11) one not at an instruction that pushes a frame,
  // is torn (see walk_interpreter_frames).
  struct InlineCaller {
    size_t frame;
    std::optional<int64_t> stacktop;
  };
  std::vector<InlineCaller> inline_callers_;
  std::vector<RemoteAddr> codes_;
  std::vector<std::byte> code_headers_;
  std::vector<std::byte> scan_buf_;  // find_frame_pushes' copy of a code object's instructions
  std::vector<core::Memory::ReadRequest> requests_;
  std::vector<bool> ok_;
  std::vector<CodeInfo*> resolved_;  // parallel to codes_
  std::vector<CodeInfo*> infos_;     // parallel to raw_
  std::vector<uint64_t> keys_;       // parallel to raw_
  std::vector<StackMemo> memos_;     // by thread slot
  std::vector<core::Frame> prefix_;
  std::vector<uint8_t> emitted_;
  // The words the last walk depended on: the thread list's links, and per
  // thread (stack_spans_, by slot) its frame pointer and each frame's link,
  // code and, but for the innermost, instruction. latest_* hold the last
  // reading of the same words (see confirm()).
  std::vector<core::Witness> list_words_, stack_words_, latest_list_, recheck_words_, reread_;
  std::vector<core::Witness> second_list_, second_stack_;  // the second reading, as list_/stack_words_
  std::vector<core::Witness> prefetch_words_;  // read again in the next walk's call
  core::WitnessCheck prefetch_;
  bool prefetch_planned_ = false;
  // Samples to go for which a thread's (by slot) or the list's words are
  // prefetched: kMovedLately after each time they moved.
  static constexpr int kMovedLately = 64;
  std::vector<int> moved_lately_;
  int list_moved_lately_ = 0;
  // The pages of the stacks that moved lately, and up to kMovedPages of
  // them that this walk did not use: a thread cycling through calls whose
  // frames sit in pages of their own has them all prefetched.
  static constexpr size_t kMovedPages = 16;
  core::RecentPages moved_pages_{kMovedLately, 256};
  std::vector<std::pair<size_t, size_t>> stack_spans_;
  std::vector<std::vector<core::Witness>> latest_stacks_;  // by slot
  std::vector<uint8_t> rooted_;  // by slot: the stack ended at the thread's root
  std::vector<uint8_t> known_;   // by slot: its words equal their latest reading
  // The walk of one thread against its latest reading (see note()).
  const std::vector<core::Witness>* expect_ = nullptr;
  size_t expect_at_ = 0;
  bool diverged_ = false;
  std::vector<uint8_t> pending_; // by slot: its second reading needs a read of its own
  std::vector<uint8_t> clean_;   // by slot: its words all came from begin()'s read
  bool list_clean_ = false;      // so did the thread list's
  bool walk_rooted_ = false;
  core::WitnessCheck recheck_;
  bool strict_ = false;           // see core::Interpreter::set_strict()
  // dump --locals (core::Interpreter::set_locals): where each raw frame of
  // the thread being walked is (parallel to raw_), and per thread slot, the
  // frame and code of each frame it shows (parallel to its frames).
  bool locals_ = false;
  ValueSymbols values_;
  std::vector<RemoteAddr> raw_frames_;
  struct LocalsSource {
    RemoteAddr frame, code;  // null code: an <unknown> frame
  };
  std::vector<std::vector<LocalsSource>> locals_sources_;
  std::deque<core::FrameLocals> locals_store_;  // what Frame::locals point into
  std::vector<core::Witness> strict_words_, strict_reread_;
};

}  // namespace pyflame::versions
