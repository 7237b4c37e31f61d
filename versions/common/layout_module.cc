#include "versions/common/layout_module.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "core/errors.h"
#include "core/log.h"
#include "core/recent_pages.h"
#include "core/sample_memory.h"
#include "core/witness.h"
#include "versions/common/line_table.h"
#include "versions/common/remote_object.h"

namespace pyflame::versions {

using core::Error;
using core::ExitCode;
using core::RemoteAddr;

namespace {

// Bounds on everything the target could make endless.
constexpr int kMaxInterpreters = 256;
constexpr int kMaxThreads = 4096;
constexpr int kMaxFrames = 16384;
// Walks of one sample before a thread whose stack keeps moving is dropped
// as torn (docs/how-it-works.md, "A consistent sample").
constexpr int kAttempts = 3;

std::string version_from_hex(uint64_t hex) {
  std::string v = fmt::format("{}.{}.{}", (hex >> 24) & 0xff, (hex >> 16) & 0xff, (hex >> 8) & 0xff);
  unsigned level = (hex >> 4) & 0xf;
  static constexpr const char* kLevels[] = {"a", "b", "rc"};
  if (level >= 0xa && level <= 0xc) v += fmt::format("{}{}", kLevels[level - 0xa], hex & 0xf);
  return v;
}

line_table::Format line_format(int model) {
  switch (model) {
    case PYFLAME_LNOTAB_UNSIGNED: return line_table::Format::kLnotabUnsigned;
    case PYFLAME_LNOTAB_SIGNED: return line_table::Format::kLnotabSigned;
    case PYFLAME_LINETABLE_310: return line_table::Format::kLinetable310;
    default: return line_table::Format::kLocationTable;
  }
}

// What a code object says, read once per code object.
struct CodeInfo {
  std::string name;
  std::optional<std::string> qualname;
  std::string filename;
  int first_line = 0;
  bool generator = false;  // a generator's or coroutine's code: never a thread's outermost frame
  std::optional<int64_t> first_traceable;  // in code units (3.11+)
  int64_t code_bytes = -1;                 // length of the bytecode (3.11+), -1: unknown
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
    walk_rooted_ = false;
  }
  // Ends a walk deeper than the bound: shown, cut short with <unknown>.
  void bounded_walk() {
    raw_.push_back({RemoteAddr(), std::nullopt, false, true});
    walk_rooted_ = true;
  }
  // Whether each thread of the last walk read one moment of its stack:
  // marks the others torn; false if any is (or the thread list moved).
  bool confirm(core::Snapshot& out, size_t threads);
  // set_strict(): one more reading of the moving stacks confirm() let through.
  void confirm_again(core::Snapshot& out, size_t threads);
  // The field at `offset` of the object at `base`, whose bytes are `buf`,
  // noted as a word the thread's walk depends on.
  template <typename T>
  [[gnu::always_inline]] T witness(std::span<const std::byte> buf, RemoteAddr base, int64_t offset) {
    const T value = load<T>(buf, offset);
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof value);
    note(core::Witness((base + offset).value(), bits, sizeof value));
    return value;
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
  void add_raw(RemoteAddr code, std::optional<int64_t> offset, bool generator) {
    RawFrame& f = raw_.emplace_back();
    f.code = code;
    f.offset = offset;
    f.generator = generator;
  }
  // Resolves raw_'s code objects (one batched read) and appends the frames.
  void finish_thread(core::ThreadSample& thread, size_t slot);
  // Sets `f`, a default Frame, to `info` at instruction byte offset `offset`
  // (nullopt: no line).
  void fill_frame(core::Frame& f, CodeInfo* info, std::optional<int64_t> offset);
  // Reads the strings of a code object whose header is `header`.
  CodeInfo* load_code(RemoteAddr code, std::span<const std::byte> header);
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
  std::vector<RemoteAddr> codes_;
  std::vector<std::byte> code_headers_;
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
  std::vector<core::Witness> strict_words_, strict_reread_;
};

void LayoutInterpreter::locate(const TargetSymbols& symbols) {
  objects_.set_types({symbols.code_type, symbols.frame_type, symbols.text_type, symbols.bytes_type});
  version_ = symbols.version;
  if (l_.runtime_interpreters_head != PYFLAME_ABSENT) {
    interp_head_slot_ = symbols.runtime + l_.runtime_interpreters_head;
    if (l_.runtime_tstate_current != PYFLAME_ABSENT)
      tstate_current_slot_ = symbols.runtime + l_.runtime_tstate_current;
    if (l_.debug_checks != nullptr) check_debug_offsets(symbols.runtime);
  } else {
    // 2.7 and 3.6 keep the list head in a static variable (pystate.c's
    // interp_head): use the symbol where .symtab survives, else look.
    if (symbols.interp_head) {
      interp_head_slot_ = symbols.interp_head;
    } else if (auto found = scan_for_interp_head(symbols)) {
      PYFLAME_DEBUG_LOG("no interp_head symbol; found the list head at {:#x} by scanning",
                        found->value());
      interp_head_slot_ = *found;
    } else {
      throw Error(ExitCode::kNotPython,
                  fmt::format("pyflame: process {}: cannot find the interpreter list in {} "
                              "(no interp_head symbol, and no pointer to an interpreter state in "
                              "its data); has the interpreter started?",
                              pid_, symbols.target_path));
    }
    tstate_current_slot_ = symbols.tstate_current;
  }
  auto head = objects_.read_pointer(interp_head_slot_);
  if (!head) core::throw_for_errno(errno ? errno : ESRCH, pid_, "reading the interpreter list");
  if (head->is_null())
    throw Error(ExitCode::kNotPython,
                fmt::format("pyflame: process {} has a Python {}.{} runtime but no interpreter "
                            "(not started yet, or already finalized)",
                            pid_, l_.major, l_.minor));
}

void LayoutInterpreter::check_debug_offsets(RemoteAddr runtime) {
  // 3.13+ publish their own offsets at the start of _PyRuntime; refuse to
  // read a target whose table disagrees with the one our headers produce.
  std::vector<std::byte> table(static_cast<size_t>(l_.sizeof_debug_offsets));
  if (!target_.read(runtime, table))
    core::throw_for_errno(errno ? errno : ESRCH, pid_, "reading _Py_DebugOffsets");
  if (std::memcmp(table.data(), l_.debug_cookie, static_cast<size_t>(l_.debug_cookie_size)) != 0)
    throw Error(ExitCode::kWrongVersion,
                fmt::format("pyflame: process {}: _PyRuntime does not start with the debug "
                            "cookie of Python {}.{}; refusing to guess its layout",
                            pid_, l_.major, l_.minor));
  uint64_t hex = 0;
  std::memcpy(&hex, table.data() + l_.debug_offsets_version, sizeof hex);
  version_ = version_from_hex(hex);
  std::string differences;
  for (int64_t i = 0; i < l_.debug_check_count; ++i) {
    const pyflame_debug_offset_check& check = l_.debug_checks[i];
    uint64_t theirs = 0;
    std::memcpy(&theirs, table.data() + check.position, sizeof theirs);
    if (theirs != check.expected)
      differences += fmt::format(" {} is {} (ours {});", check.name, theirs, check.expected);
  }
  if (!differences.empty())
    throw Error(ExitCode::kWrongVersion,
                fmt::format("pyflame: process {} runs Python {} whose _Py_DebugOffsets differ "
                            "from the headers of Python {} this binary was built from:{} "
                            "refusing to read it. Rebuild pyflame{}.{} against this interpreter's "
                            "headers (-DPYFLAME_PYTHONS)",
                            pid_, version_, l_.py_version, differences, l_.major,
                            l_.minor));
}

bool LayoutInterpreter::looks_like_interpreter(RemoteAddr interp) const {
  // Every thread state of an interpreter points back at it, and the list
  // ends. (A type object, whose ob_type is itself, must not pass: the first
  // thread state must not be the candidate itself.)
  auto tstate = objects_.read_pointer(interp + l_.interp_tstate_head);
  if (!tstate || tstate->is_null() || *tstate == interp) return false;
  std::unordered_set<RemoteAddr> seen;
  for (RemoteAddr t = *tstate; t; ) {
    if (seen.size() >= static_cast<size_t>(kMaxThreads) || !seen.insert(t).second) return false;
    auto back = objects_.read_pointer(t + l_.tstate_interp);
    auto next = objects_.read_pointer(t + l_.tstate_next);
    if (!back || *back != interp || !next) return false;
    // In 2.7 and 3.6 interp->tstate_head and tstate->interp sit at the same
    // offset, so a pointer to a thread state passes the test above too. A
    // thread state's frame is NULL or a frame object; the field at the same
    // offset of an interpreter state is not.
    if (l_.frame_model == PYFLAME_FRAME_OBJECTS) {
      auto frame = objects_.read_pointer(t + l_.tstate_frame);
      if (!frame) return false;
      if (*frame) {
        auto type = objects_.read_pointer(*frame + l_.ob_type);
        if (!type || *type != objects_.types().frame) return false;
      }
    }
    t = *next;
  }
  return true;
}

std::optional<RemoteAddr> LayoutInterpreter::scan_for_interp_head(
    const TargetSymbols& symbols) const {
  // Most words of .data and .bss are not pointers to writable memory, and
  // most that are point at no interpreter: telling them apart one read at a
  // time took 29,000 system calls (60 ms, 300 ms sanitized) on Debian 11's
  // 2.7, long enough to miss a short launched command. So candidates are
  // kept only where they point into writable memory, and their fields are
  // read for many at once; the full check is for the few left.
  const auto& writable = symbols.scan_targets;  // sorted; empty: no filter
  const uint64_t lowest = writable.empty() ? 0 : writable.front().first;
  const uint64_t highest = writable.empty() ? UINT64_MAX : writable.back().second;
  // Called for every word: most are rejected by the bounds, and the search
  // is by hand (the sanitized build's checked iterators made a library
  // search take 40% of an attach).
  auto in_writable = [&](uint64_t w) {
    if (w < 4096 || (w & 7) != 0 || w < lowest || w >= highest) return false;
    if (writable.empty()) return true;
    size_t lo = 0, hi = writable.size();  // the last range starting at or below w
    while (hi - lo > 1) {
      const size_t mid = lo + (hi - lo) / 2;
      (writable.data()[mid].first <= w ? lo : hi) = mid;
    }
    return w < writable.data()[lo].second;
  };
  // The maps were read a moment ago: the interpreter state (made at start)
  // is in them, but the first thread state may be newer (a heap that has
  // grown since). So a second pass, if the first finds nothing, takes any
  // thread state address: slower (a failed read costs a system call), and
  // only where a thread was made in that moment.
  for (const bool heads_in_maps : {true, false}) {
    if (auto found = scan_for_interp_head(symbols, in_writable, heads_in_maps)) return found;
    if (writable.empty()) break;  // the two passes are the same
  }
  return std::nullopt;
}

std::optional<RemoteAddr> LayoutInterpreter::scan_for_interp_head(
    const TargetSymbols& symbols, const std::function<bool(uint64_t)>& in_writable,
    bool heads_in_maps) const {
  constexpr size_t kBatch = 512;
  std::vector<size_t> batch;  // indexes into words, in order
  std::vector<uint64_t> heads(kBatch), backs(kBatch);
  std::vector<core::Memory::ReadRequest> reads;
  std::vector<bool> ok;
  // Reads one field of every candidate left at once; drops those whose
  // read failed or whose value `keep` refuses.
  auto filter = [&](const std::vector<uint64_t>& words, std::vector<uint64_t>& values,
                    auto address, auto keep) {
    reads.clear();
    for (size_t k = 0; k < batch.size(); ++k)
      reads.push_back({address(k), std::as_writable_bytes(std::span(&values[k], 1))});
    target_.read_many(reads, ok);
    size_t kept = 0;
    for (size_t k = 0; k < batch.size(); ++k) {
      if (!ok[k] || !keep(words[batch[k]], values[k])) continue;
      heads[kept] = heads[k];
      batch[kept++] = batch[k];
    }
    batch.resize(kept);
  };
  auto may_be_tstate = [&](uint64_t w, uint64_t head) {
    if (head == w || head < 4096 || (head & 7) != 0) return false;
    return !heads_in_maps || in_writable(head);
  };
  for (auto [start, size] : symbols.scan_ranges) {
    if (size > (64u << 20)) continue;
    std::vector<uint64_t> words(size / sizeof(uint64_t));
    if (!target_.read(start, std::as_writable_bytes(std::span(words)))) continue;
    for (size_t i = 0; i < words.size();) {
      batch.clear();
      for (; i < words.size() && batch.size() < kBatch; ++i)
        if (in_writable(words[i])) batch.push_back(i);
      // interp->tstate_head (a thread state: not the candidate itself), then
      // that thread state's interp, which must point back (an object's type
      // field, read as the head, never does).
      filter(words, heads, [&](size_t k) { return RemoteAddr(words[batch[k]]) + l_.interp_tstate_head; },
             may_be_tstate);
      filter(words, backs, [&](size_t k) { return RemoteAddr(heads[k]) + l_.tstate_interp; },
             [](uint64_t w, uint64_t back) { return back == w; });
      // In order: the first word that passes is the one found before.
      for (size_t k : batch)
        if (looks_like_interpreter(RemoteAddr(words[k])))
          return start + static_cast<int64_t>(k * sizeof(uint64_t));
    }
  }
  return std::nullopt;
}

std::optional<RemoteAddr> LayoutInterpreter::gil_holder(RemoteAddr gil) {
  if (gil.is_null()) return std::nullopt;
  uint64_t locked = 0, holder = 0;
  auto size = static_cast<size_t>(std::clamp<int64_t>(l_.sizeof_gil_field, 1, 8));
  const core::Memory::ReadRequest reads[] = {
      {gil + l_.gil_locked, std::as_writable_bytes(std::span(&locked, 1)).first(size)},
      {gil + l_.gil_last_holder, std::as_writable_bytes(std::span(&holder, 1))}};
  memory_.read_many(reads, ok_);
  if (!ok_[0] || !ok_[1]) return std::nullopt;
  if (locked == 0) return RemoteAddr();  // nobody holds it
  return RemoteAddr(holder);
}

bool LayoutInterpreter::sample(core::Snapshot& out) {
  // Views handed out by the previous sample may be dropped only now.
  for (const auto& info : retired_) code_cache_bytes_ -= info->cost;
  retired_.clear();
  if (code_cache_.size() > kCodeCacheEntries || code_cache_bytes_ > kCodeCacheBytes ||
      shared_lines_.size() > kSharedLines) {
    code_cache_.clear();  // bound memory on churn, or against a hostile target
    shared_lines_.clear();
    code_cache_bytes_ = 0;
  }
  sample_code_bytes_ = 0;
  large_table_reads_ = 0;
  out.retries = 0;
  out.torn = 0;
  // The thread samples (and their frame vectors) are reused: a steady
  // target costs no allocation.
  size_t threads = 0;
  for (int attempt = 1;; ++attempt) {
    threads = 0;
    if (!walk_threads(out, threads)) {
      out.threads.resize(threads);
      return false;
    }
    if (confirm(out, threads) || attempt == kAttempts) break;
    ++out.retries;
  }
  out.threads.resize(threads);
  for (size_t t = 0; t < threads; ++t) out.torn += out.threads[t].torn;
  return true;
}

bool LayoutInterpreter::confirm(core::Snapshot& out, size_t threads) {
  // A thread's walk saw one moment when every word it depended on reads
  // the same at a later time: then, barring a word that changed and changed
  // back in between, each held its value at the instant between the two
  // reads. The earlier reading is the last one of the same words (the last
  // sample's, or the second reading of a failed walk of this sample), so a
  // stack that held still costs no second read (known_, set by the walk:
  // see note()). The others need a second
  // reading: the copy of their words read in the same call as the walk's
  // bytes, after them (prefetched: the words of stacks that moved last
  // time), where it holds all of them and the walk read nothing more;
  // else one more read of all of them.
  if (latest_stacks_.size() < threads) latest_stacks_.resize(threads);
  const bool list_known = core::same_words(list_words_, latest_list_);
  // Fills `now` with the prefetched reading of `words`; false if one is
  // missing, or if the walk read them (some) after the prefetch.
  auto from_prefetch = [&](std::span<const core::Witness> words, core::Witness* now, bool read_first) {
    if (!prefetch_planned_ || !read_first) return false;
    for (size_t i = 0; i < words.size(); ++i) {
      now[i] = words[i];
      if (!prefetch_.find(words[i], now[i].value)) return false;
    }
    return true;
  };
  second_list_.resize(list_words_.size());
  second_stack_.resize(stack_words_.size());
  recheck_words_.clear();
  const bool list_pending = !list_known && !from_prefetch(list_words_, second_list_.data(), list_clean_);
  if (list_pending) recheck_words_ = list_words_;
  for (size_t t = 0; t < threads; ++t) {
    const auto [begin, end] = stack_spans_[t];
    const std::span<const core::Witness> words(stack_words_.data() + begin, end - begin);
    pending_[t] = !known_[t] && !from_prefetch(words, second_stack_.data() + begin, clean_[t]);
    if (pending_[t]) recheck_words_.insert(recheck_words_.end(), words.begin(), words.end());
  }
  if (!recheck_words_.empty()) {
    recheck_.reread(target_, recheck_words_, reread_);
    size_t at = 0;
    if (list_pending) {
      std::copy_n(reread_.begin(), list_words_.size(), second_list_.begin());
      at = list_words_.size();
    }
    for (size_t t = 0; t < threads; ++t) {
      if (!pending_[t]) continue;
      const auto [begin, end] = stack_spans_[t];
      std::copy_n(reread_.begin() + static_cast<ptrdiff_t>(at), end - begin,
                  second_stack_.begin() + static_cast<ptrdiff_t>(begin));
      at += end - begin;
    }
  }

  // Words read twice now. The stacks that moved lately have their pages
  // read again at the end of the next walk's call: a stack that moves
  // between samples then needs no read of its own, and its second reading
  // comes microseconds after the first, not a walk later (a read-back a
  // walk later misses more of a short call's time, under-sampling it).
  if (moved_lately_.size() < threads) moved_lately_.resize(threads, 0);
  list_moved_lately_ = list_known ? std::max(list_moved_lately_, 1) - 1 : kMovedLately;
  for (size_t t = 0; t < threads; ++t)
    moved_lately_[t] = known_[t] ? std::max<int>(moved_lately_[t], 1) - 1 : kMovedLately;
  prefetch_words_.clear();
  if (list_moved_lately_ > 0) prefetch_words_ = list_words_;
  for (size_t t = 0; t < threads; ++t) {
    if (moved_lately_[t] == 0) continue;
    const auto [begin, end] = stack_spans_[t];
    const size_t from = prefetch_words_.size();
    if (known_[t]) {
      prefetch_words_.insert(prefetch_words_.end(), latest_stacks_[t].begin(), latest_stacks_[t].end());
    } else {
      prefetch_words_.insert(prefetch_words_.end(), stack_words_.begin() + static_cast<ptrdiff_t>(begin),
                             stack_words_.begin() + static_cast<ptrdiff_t>(end));
    }
    for (size_t i = from; i < prefetch_words_.size(); ++i)
      moved_pages_.use(prefetch_words_[i].addr, prefetch_words_[i].addr + prefetch_words_[i].size);
  }
  moved_pages_.next_sample();
  size_t moved_pages = 0;
  for (const auto& [page, sample] : moved_pages_.pages()) {
    if (sample == moved_pages_.last_sample()) continue;  // among the words already
    if (moved_pages++ == kMovedPages) break;
    prefetch_words_.push_back(core::Witness(page, 0, sizeof(uint64_t)));
  }
  if (!list_known) {
    const bool list_held = core::same_words(second_list_, list_words_);
    latest_list_ = second_list_;
    // A thread list read while it changed may hold a freed thread state:
    // no thread of this walk is trusted.
    if (!list_held) {
      for (size_t t = 0; t < threads; ++t) out.threads[t].torn = true;
      return false;
    }
  }
  for (size_t t = 0; t < threads; ++t) {
    bool held = known_[t];
    if (!held) {
      const auto [begin, end] = stack_spans_[t];
      const std::span<const core::Witness> words(stack_words_.data() + begin, end - begin);
      const std::span<const core::Witness> now(second_stack_.data() + begin, end - begin);
      held = core::same_words(now, words);
      latest_stacks_[t].assign(now.begin(), now.end());
    }
    out.threads[t].torn = !held || !rooted_[t];
  }
  if (strict_) confirm_again(out, threads);
  return !std::ranges::any_of(std::span(out.threads).first(threads),
                                    [](const core::ThreadSample& t) { return t.torn; });
}

void LayoutInterpreter::confirm_again(core::Snapshot& out, size_t threads) {
  // A third reading of the words of every stack that moved (known or
  // not), 100 us later and in its own call, must agree as well.
  ::usleep(100);
  strict_words_.clear();
  for (size_t t = 0; t < threads; ++t) {
    if (out.threads[t].torn || (known_[t] && moved_lately_[t] == 0)) continue;
    const auto& latest = latest_stacks_[t];
    strict_words_.insert(strict_words_.end(), latest.begin(), latest.end());
  }
  if (strict_words_.empty()) return;
  recheck_.reread(target_, strict_words_, strict_reread_);
  size_t at = 0;
  for (size_t t = 0; t < threads; ++t) {
    if (out.threads[t].torn || (known_[t] && moved_lately_[t] == 0)) continue;
    const auto& latest = latest_stacks_[t];
    const std::span<const core::Witness> now(strict_reread_.data() + at, latest.size());
    at += latest.size();
    if (!core::same_words(now, latest)) out.threads[t].torn = true;
  }
}

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
    const core::Memory::ReadRequest fields[] = {
        {*interp + l_.interp_tstate_head, std::as_writable_bytes(std::span(&first_tstate, 1))},
        {*interp + l_.interp_next, std::as_writable_bytes(std::span(&next_interp, 1))},
        {*interp + l_.interp_gil, std::as_writable_bytes(std::span(&gil, 1))}};
    const bool per_interp_gil = !tstate_current_slot_ && l_.interp_gil != PYFLAME_ABSENT;
    const uint64_t misses_before_fields = memory_.misses();
    memory_.read_many(std::span(fields).first(per_interp_gil ? 3 : 2), ok_);
    list_misses += memory_.misses() - misses_before_fields;
    if (!ok_[0] || !ok_[1]) return false;
    list_words_.push_back({(*interp + l_.interp_tstate_head).value(), first_tstate, sizeof first_tstate});
    list_words_.push_back({(*interp + l_.interp_next).value(), next_interp, sizeof next_interp});
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
      thread.thread_id = load<uint64_t>(ts, l_.tstate_thread_id);
      if (l_.tstate_native_thread_id != PYFLAME_ABSENT)
        thread.native_id = static_cast<int64_t>(load<uint64_t>(ts, l_.tstate_native_thread_id));
      if (holder) thread.holds_gil = *holder == *tstate;
      raw_.clear();
      const size_t words_begin = stack_words_.size();
      if (latest_stacks_.size() < threads) latest_stacks_.resize(threads);
      expect_ = &latest_stacks_[threads - 1];
      expect_at_ = 0;
      diverged_ = false;
      walk_rooted_ = false;
      if (l_.frame_model == PYFLAME_FRAME_OBJECTS) {
        walk_frame_objects(RemoteAddr(witness<uint64_t>(ts, *tstate, l_.tstate_frame)));
      } else {
        RemoteAddr frame;
        if (l_.tstate_current_frame != PYFLAME_ABSENT) {
          frame = RemoteAddr(witness<uint64_t>(ts, *tstate, l_.tstate_current_frame));
        } else {
          auto cframe = RemoteAddr(witness<uint64_t>(ts, *tstate, l_.tstate_cframe));
          if (cframe) {
            uint64_t f = 0;
            const auto field = std::as_writable_bytes(std::span(&f, 1));
            if (memory_.read(cframe + l_.cframe_current_frame, field)) {
              note(core::Witness((cframe + l_.cframe_current_frame).value(), f, sizeof f));
              frame = RemoteAddr(f);
            } else {
              bad_walk();
            }
          }
        }
        const RemoteAddr base_frame(l_.tstate_base_frame != PYFLAME_ABSENT
                                        ? load<uint64_t>(ts, l_.tstate_base_frame) : 0);
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
      const uint64_t next = load<uint64_t>(ts, l_.tstate_next);
      list_words_.push_back({(*tstate + l_.tstate_next).value(), next, sizeof next});
      tstate = RemoteAddr(next);
    }
    interp = RemoteAddr(next_interp);
  }
  list_clean_ = list_misses == 0;
  return true;
}

void LayoutInterpreter::walk_frame_objects(RemoteAddr frame) {
  CycleCheck cycle;
  const auto header = static_cast<size_t>(
      std::max({l_.ob_refcnt, l_.frame_back, l_.frame_code, l_.frame_lasti, l_.frame_gen}) + 8);
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
    if (RemoteAddr(load<uint64_t>(frame_buf, l_.ob_type)) != objects_.types().frame ||
        load<int64_t>(frame_buf, l_.ob_refcnt) <= 0)
      return bad_walk();
    // The innermost frame's instruction moves while it runs: not a witness.
    int64_t lasti = 0;
    if (depth == 0) {
      lasti = l_.sizeof_frame_lasti == 4 ? load<int32_t>(frame_buf, l_.frame_lasti)
                                         : load<int64_t>(frame_buf, l_.frame_lasti);
    } else {
      lasti = l_.sizeof_frame_lasti == 4 ? witness<int32_t>(frame_buf, frame, l_.frame_lasti)
                                         : witness<int64_t>(frame_buf, frame, l_.frame_lasti);
    }
    // f_lasti is -1 before the first instruction runs; CPython's
    // PyCode_Addr2Line then answers co_firstlineno (the `def` line): so do we.
    std::optional<int64_t> offset = lasti >= 0 ? lasti * l_.lasti_unit_bytes : kBeforeFirst;
    const RemoteAddr code(witness<uint64_t>(frame_buf, frame, l_.frame_code));
    if (!code) return bad_walk();
    add_raw(code, offset, true);
    const RemoteAddr back(witness<uint64_t>(frame_buf, frame, l_.frame_back));
    // A thread's outermost frame belongs to no generator: one that does is
    // a suspended generator's (its f_back cleared), reached by a torn read.
    if (!back)
      walk_rooted_ = l_.frame_gen == PYFLAME_ABSENT ||
                     witness<uint64_t>(frame_buf, frame, l_.frame_gen) == 0;
    frame = back;
  }
}

void LayoutInterpreter::walk_interpreter_frames(RemoteAddr frame, RemoteAddr base_frame) {
  CycleCheck cycle;
  const auto size = static_cast<size_t>(l_.sizeof_iframe);
  if (!frame) walk_rooted_ = true;
  bool innermost = true;
  for (int depth = 0; frame; ++depth) {
    if (depth >= kMaxFrames) return bounded_walk();
    const std::byte* bytes = nullptr;
    if (cycle.seen(frame) || (bytes = memory_.view(frame, size, true)) == nullptr) return bad_walk();
    const std::span<const std::byte> frame_buf(bytes, size);
    RemoteAddr previous(witness<uint64_t>(frame_buf, frame, l_.iframe_previous));
    int64_t owner = static_cast<int64_t>(witness<int8_t>(frame_buf, frame, l_.iframe_owner));
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
      frame = previous;
      continue;
    }
    RemoteAddr code(witness<uint64_t>(frame_buf, frame, l_.iframe_code) & ~l_.stackref_tag_mask);
    // A frame with no code is not a live one: 3.14 clears a frame's
    // executable as it pops it, so this is a torn read of a popping stack.
    if (!code) return bad_walk();
    // The innermost frame's instruction moves while it runs: not a witness.
    RemoteAddr instr(innermost ? load<uint64_t>(frame_buf, l_.iframe_instr)
                               : witness<uint64_t>(frame_buf, frame, l_.iframe_instr));
    innermost = false;
    add_raw(code, instr - (code + l_.code_adaptive), owner == l_.owner_generator);
    frame = previous;
  }
}

int64_t LayoutInterpreter::code_header_size() const {
  return std::max({l_.code_name, l_.code_filename, l_.code_qualname, l_.code_line_table,
                   l_.code_firstlineno, l_.code_flags, l_.code_firsttraceable}) + 8;
}

void LayoutInterpreter::finish_thread(core::ThreadSample& thread, size_t slot) {
  // Every distinct code object of the stack is checked in one system call:
  // its type and the pointers its cached strings were read from.
  codes_.clear();
  for (const RawFrame& f : raw_)  // recursion repeats a code object: skip runs
    if (!f.bad && f.code && (codes_.empty() || codes_.back() != f.code)) codes_.push_back(f.code);
  std::sort(codes_.begin(), codes_.end());
  codes_.erase(std::unique(codes_.begin(), codes_.end()), codes_.end());
  const auto header = static_cast<size_t>(code_header_size());
  code_headers_.resize(codes_.size() * header);
  requests_.clear();
  for (size_t i = 0; i < codes_.size(); ++i)
    requests_.push_back({codes_[i], std::span(code_headers_).subspan(i * header, header)});
  memory_.read_many(requests_, ok_);
  resolved_.assign(codes_.size(), nullptr);
  for (size_t i = 0; i < codes_.size(); ++i)
    if (ok_[i]) resolved_[i] = load_code(codes_[i], requests_[i].into);

  // The code object of each raw frame, by its unique key.
  infos_.clear();
  keys_.clear();
  RemoteAddr last_code;
  CodeInfo* last_info = nullptr;
  bool truncated = false;
  for (const RawFrame& f : raw_) {
    if (!f.bad && f.code != last_code) {
      auto it = std::lower_bound(codes_.begin(), codes_.end(), f.code);
      last_code = f.code;
      last_info = it != codes_.end() && *it == f.code ? resolved_[it - codes_.begin()] : nullptr;
    }
    CodeInfo* info = f.bad ? nullptr : last_info;
    infos_.push_back(info);
    keys_.push_back(info ? info->key : 0);
    truncated |= f.bad;
  }
  thread.truncated = truncated;
  // A thread's outermost frame runs a function, never a generator or a
  // coroutine: one that does is a suspended generator's frame (its link
  // cleared), reached by a torn read (the one root check 2.7 has).
  if (!raw_.empty() && infos_.back() != nullptr && infos_.back()->generator) rooted_[slot] = 0;
  // A live frame holds a reference to its code object: one that fails its
  // checks was read from a frame that is no more (a torn read), or is
  // hostile. Either way the stack is not shown: it is read again or
  // dropped, never shown with an <unknown> frame.
  for (size_t i = 0; i < raw_.size(); ++i)
    if (!raw_[i].bad && infos_[i] == nullptr) rooted_[slot] = 0;

  // The outermost frames unchanged since this slot's last sample (same raw
  // frame, same live code object: the Frames' views into it are valid) are
  // kept; only the ones inside them are made again.
  if (memos_.size() <= slot) memos_.resize(slot + 1);
  StackMemo& memo = memos_[slot];
  const size_t n = raw_.size();
  size_t kept = 0;  // raw frames, from the outermost
  if (memo.owner == &thread && memo.frames == thread.frames.size()) {
    const size_t m = memo.raw.size();
    while (kept < n && kept < m && raw_[n - 1 - kept] == memo.raw[m - 1 - kept] &&
           keys_[n - 1 - kept] == memo.keys[m - 1 - kept])
      ++kept;
  }
  size_t kept_frames = 0;
  for (size_t j = 0; j < kept; ++j) kept_frames += memo.emitted[memo.raw.size() - 1 - j];

  prefix_.clear();
  emitted_.clear();
  for (size_t i = 0; i + kept < n; ++i) {
    const RawFrame& f = raw_[i];
    CodeInfo* info = infos_[i];
    // A frame whose first instruction has not run yet is incomplete
    // (CPython's _PyFrame_IsIncomplete): CPython does not show it either.
    const bool incomplete = !f.bad && l_.frame_model != PYFLAME_FRAME_OBJECTS && !f.generator &&
                            info != nullptr && info->first_traceable && f.offset &&
                            *f.offset < *info->first_traceable * l_.lasti_unit_bytes;
    // An instruction pointer past the end of the code: a frame caught while
    // it is pushed or popped (its code already the new one, its instruction
    // pointer still the old one's). It is in no line: leave it out too.
    const bool in_transition = !f.bad && info != nullptr && info->code_bytes > 0 && f.offset &&
                               *f.offset >= info->code_bytes;
    emitted_.push_back(!incomplete && !in_transition);
    if (incomplete || in_transition) continue;
    core::Frame& frame = prefix_.emplace_back();
    if (f.bad) {
      frame = unknown_frame();
    } else {
      fill_frame(frame, info, f.offset);
    }
  }
  // frames = prefix_ + the last kept_frames of the old frames.
  std::vector<core::Frame>& frames = thread.frames;
  const size_t old_size = kept > 0 ? frames.size() : 0;
  if (kept == 0) frames.clear();
  const size_t old_prefix = old_size - kept_frames;
  if (prefix_.size() > old_prefix) {
    frames.resize(prefix_.size() + kept_frames);
    std::move_backward(frames.begin() + static_cast<ptrdiff_t>(old_prefix),
                       frames.begin() + static_cast<ptrdiff_t>(old_size), frames.end());
  } else if (prefix_.size() < old_prefix) {
    std::move(frames.begin() + static_cast<ptrdiff_t>(old_prefix), frames.end(),
              frames.begin() + static_cast<ptrdiff_t>(prefix_.size()));
    frames.resize(prefix_.size() + kept_frames);
  }
  std::copy(prefix_.begin(), prefix_.end(), frames.begin());

  for (size_t j = kept; j > 0; --j) emitted_.push_back(memo.emitted[memo.raw.size() - j]);
  memo.raw.assign(raw_.begin(), raw_.end());
  memo.keys.assign(keys_.begin(), keys_.end());
  memo.emitted.swap(emitted_);
  memo.frames = frames.size();
  memo.owner = &thread;
}

void LayoutInterpreter::fill_frame(core::Frame& f, CodeInfo* info, std::optional<int64_t> offset) {
  if (info == nullptr) {
    f = unknown_frame();
    return;
  }
  f.function = info->name;
  if (info->qualname) f.qualname = *info->qualname;
  f.filename = info->filename;
  f.code_key = info->key;
  if (offset && *offset == kBeforeFirst && l_.frame_model == PYFLAME_FRAME_OBJECTS) {
    f.line = info->first_line;
  } else if (offset && *offset == info->last_offset) {
    f.line = info->last_line;
  } else if (offset && *offset >= 0 && *offset <= INT32_MAX) {
    auto [it, added] = info->lines.try_emplace(*offset);
    if (added) {
      if (info->lines.size() > kLinesPerCode) {  // a bound, should a table be huge
        info->lines.clear();
        it = info->lines.try_emplace(*offset).first;
      } else {
        info->cost += kLineEntryBytes;
        code_cache_bytes_ += kLineEntryBytes;
      }
      if (info->large_table) {
        auto line = large_table_line(*info, static_cast<int>(*offset));
        if (!line) {  // over this sample's budget: no line now, another sample may
          info->lines.erase(it);
          f.line = std::nullopt;
          return;
        }
        it->second = *line;
      } else {
        auto table = std::as_bytes(std::span(info->line_table.data(), info->line_table.size()));
        it->second = line_table::line_for_offset(line_format(l_.line_table_model), table,
                                                 info->first_line, static_cast<int>(*offset));
      }
    }
    f.line = it->second;
    info->last_offset = *offset;
    info->last_line = f.line;
  }
}

std::optional<std::optional<int>> LayoutInterpreter::large_table_line(const CodeInfo& info,
                                                                      int offset) {
  const SharedLineKey key{info.large_table.value(), info.large_table_bytes, info.first_line, offset};
  if (auto it = shared_lines_.find(key); it != shared_lines_.end()) return it->second;
  if (large_table_reads_ + info.large_table_bytes > kLargeTableBytesPerSample) return std::nullopt;
  large_table_reads_ += info.large_table_bytes;
  std::optional<int> line;
  auto table = objects_.read_bytes(info.large_table, info.large_table_bytes);
  if (table && static_cast<int64_t>(table->size()) == info.large_table_bytes)
    line = line_table::line_for_offset(line_format(l_.line_table_model),
                                       std::as_bytes(std::span(table->data(), table->size())),
                                       info.first_line, offset);
  shared_lines_.emplace(key, line);
  return line;
}

CodeInfo* LayoutInterpreter::load_code(RemoteAddr code, std::span<const std::byte> buf) {
  if (RemoteAddr(load<uint64_t>(buf, l_.ob_type)) != objects_.types().code) return nullptr;
  std::array<uint64_t, 4> identity{
      load<uint64_t>(buf, l_.code_name), load<uint64_t>(buf, l_.code_filename),
      l_.code_qualname != PYFLAME_ABSENT ? load<uint64_t>(buf, l_.code_qualname) : 0,
      load<uint64_t>(buf, l_.code_line_table)};
  auto cached = code_cache_.find(code);
  if (cached != code_cache_.end() && cached->second->identity == identity) return cached->second.get();
  CodeInfo info;
  info.identity = identity;
  // What one sample may add is bounded: past it, a new code object is
  // <unknown> (the cache is emptied before the next sample).
  if (sample_code_bytes_ > kSampleCodeBytes) return nullptr;
  auto name = objects_.read_text(RemoteAddr(identity[0]));
  auto filename = objects_.read_text(RemoteAddr(identity[1]));
  auto table_length = objects_.bytes_length(RemoteAddr(identity[3]));
  if (!name || !filename || !table_length) return nullptr;
  if (*table_length <= static_cast<int64_t>(kInlineTableBytes)) {
    auto table = objects_.read_bytes(RemoteAddr(identity[3]), *table_length);
    if (!table) return nullptr;
    info.line_table = std::move(*table);
  } else if (*table_length <= RemoteObjects::kMaxTableBytes) {
    info.large_table = RemoteAddr(identity[3]);
    info.large_table_bytes = *table_length;
  }  // else: shown with its name and no line
  info.name = std::move(*name);
  info.filename = std::move(*filename);
  if (identity[2] != 0) info.qualname = objects_.read_text(RemoteAddr(identity[2]));
  info.cost = sizeof(CodeInfo) + info.name.capacity() + info.filename.capacity() +
              (info.qualname ? info.qualname->capacity() : 0) + info.line_table.capacity();
  code_cache_bytes_ += info.cost;
  sample_code_bytes_ += info.cost;
  info.first_line = load<int32_t>(buf, l_.code_firstlineno);
  info.generator = (load<int32_t>(buf, l_.code_flags) & l_.generator_flags) != 0;
  if (l_.code_firsttraceable != PYFLAME_ABSENT) {
    info.first_traceable = l_.sizeof_firsttraceable == 4
                               ? load<int32_t>(buf, l_.code_firsttraceable)
                               : load<int64_t>(buf, l_.code_firsttraceable);
  }
  if (l_.frame_model == PYFLAME_INTERPRETER_FRAMES) {
    // 3.11+: ob_size counts the code units of co_code_adaptive.
    const int64_t units = load<int64_t>(buf, l_.ob_size);
    if (units > 0 && units <= (int64_t{1} << 28)) info.code_bytes = units * l_.lasti_unit_bytes;
  }
  info.key = next_code_key_++;
  if (cached != code_cache_.end()) retired_.push_back(std::move(cached->second));
  auto& slot = code_cache_[code];
  slot = std::make_unique<CodeInfo>(std::move(info));
  return slot.get();
}

}  // namespace

LayoutModule::LayoutModule(const pyflame_layout& layout, const char* headers_path)
    : layout_(layout) {
  info_.major = layout.major;
  info_.minor = layout.minor;
  info_.headers_version = layout.py_version;
  info_.headers_path = headers_path;
  info_.layout_fingerprint = layout_fingerprint(layout);
}

std::unique_ptr<core::Interpreter> LayoutModule::locate(const core::Process& process,
                                                        const core::PythonBinary& binary) const {
  const pyflame_layout& l = layout_;
  auto missing = [&](const char* what) {
    return Error(ExitCode::kNotPython,
                 fmt::format("pyflame: process {}: {} has no symbol {}; it is not a CPython "
                             "{}.{} interpreter pyflame can read",
                             process.pid(), binary.target_path(), what, l.major, l.minor));
  };
  auto required = [&](const char* name) {
    auto addr = binary.symbol(name);
    if (!addr) throw missing(name);
    return *addr;
  };
  TargetSymbols symbols;
  symbols.code_type = required("PyCode_Type");
  if (l.frame_model == PYFLAME_FRAME_OBJECTS) symbols.frame_type = required("PyFrame_Type");
  const bool py2 = l.string_model == PYFLAME_STRINGS_BYTES;
  symbols.text_type = required(py2 ? "PyString_Type" : "PyUnicode_Type");
  symbols.bytes_type = required(py2 ? "PyString_Type" : "PyBytes_Type");
  symbols.version = binary.version().full;
  symbols.target_path = binary.target_path();
  if (l.runtime_interpreters_head != PYFLAME_ABSENT) {
    symbols.runtime = required("_PyRuntime");
  } else {
    symbols.interp_head = binary.symbol("interp_head").value_or(RemoteAddr());
    if (!symbols.interp_head) {
      symbols.scan_ranges = binary.writable_ranges();
      for (const core::Mapping& m : binary.maps())
        if (m.readable && m.writable) symbols.scan_targets.emplace_back(m.start, m.end);
      std::sort(symbols.scan_targets.begin(), symbols.scan_targets.end());
    }
    symbols.tstate_current = binary.symbol("_PyThreadState_Current").value_or(RemoteAddr());
  }
  return make_layout_interpreter(l, process, process.pid(), symbols);
}

std::unique_ptr<core::Interpreter> make_layout_interpreter(const pyflame_layout& layout,
                                                           const core::Memory& target, int pid,
                                                           const TargetSymbols& symbols) {
  return std::make_unique<LayoutInterpreter>(layout, target, pid, symbols);
}

std::string layout_fingerprint(const pyflame_layout& l) {
  // FNV-1a over every offset and size, in declaration order.
  const int64_t fields[] = {
      l.frame_model, l.string_model, l.line_table_model, l.lasti_unit_bytes,
      static_cast<int64_t>(l.stackref_tag_mask), l.ob_refcnt, l.ob_type, l.ob_size,
      l.runtime_interpreters_head, l.runtime_tstate_current, l.interp_next,
      l.interp_tstate_head, l.interp_gil, l.gil_locked, l.gil_last_holder, l.sizeof_gil_field,
      l.tstate_next, l.tstate_interp, l.tstate_frame, l.tstate_cframe, l.cframe_current_frame,
      l.tstate_current_frame, l.tstate_thread_id, l.tstate_native_thread_id, l.tstate_base_frame,
      l.sizeof_tstate,
      l.frame_back, l.frame_code, l.frame_lasti, l.sizeof_frame_lasti, l.frame_gen, l.iframe_code,
      l.iframe_previous, l.iframe_instr, l.iframe_owner, l.sizeof_iframe, l.owner_cstack,
      l.owner_interpreter, l.owner_generator, l.owner_frame_object, l.code_name, l.code_qualname, l.code_filename,
      l.code_firstlineno, l.code_flags, l.generator_flags, l.code_line_table, l.code_adaptive, l.code_firsttraceable,
      l.sizeof_firsttraceable, l.sizeof_code, l.bytes_sval, l.unicode_length,
      l.unicode_kind.byte_offset, l.unicode_kind.mask, l.unicode_compact.byte_offset,
      l.unicode_compact.mask, l.unicode_ascii.byte_offset, l.unicode_ascii.mask,
      l.sizeof_ascii_object, l.sizeof_compact_unicode, l.sizeof_debug_offsets};
  uint64_t hash = 0xcbf29ce484222325ull;
  for (int64_t f : fields) {
    for (int i = 0; i < 8; ++i) {
      hash ^= (static_cast<uint64_t>(f) >> (8 * i)) & 0xff;
      hash *= 0x100000001b3ull;
    }
  }
  return fmt::format("{:016x}", hash);
}

}  // namespace pyflame::versions
