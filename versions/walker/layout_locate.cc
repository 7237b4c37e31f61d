// SPDX-License-Identifier: Apache-2.0
// Finding the interpreter list in the target, and checking that the
// target's _Py_DebugOffsets agree with the headers this binary was built from.
#include "versions/walker/layout_interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "core/errors.h"
#include "core/log.h"

namespace pyflame::versions {

using core::Error;
using core::ExitCode;
using core::RemoteAddr;

namespace {

std::string version_from_hex(uint64_t hex) {
  std::string v = fmt::format("{}.{}.{}", (hex >> 24) & 0xff, (hex >> 16) & 0xff, (hex >> 8) & 0xff);
  unsigned level = (hex >> 4) & 0xf;
  static constexpr const char* kLevels[] = {"a", "b", "rc"};
  if (level >= 0xa && level <= 0xc) v += fmt::format("{}{}", kLevels[level - 0xa], hex & 0xf);
  return v;
}

}  // namespace

void LayoutInterpreter::locate(const TargetSymbols& symbols) {
  objects_.set_types({symbols.code_type, symbols.frame_type, symbols.text_type, symbols.bytes_type});
  version_ = symbols.version;
  values_ = symbols.values;
  if (present(l_.runtime_interpreters_head)) {
    interp_head_slot_ = address_of(symbols.runtime, l_.runtime_interpreters_head);
    if (present(l_.runtime_tstate_current))
      tstate_current_slot_ = address_of(symbols.runtime, l_.runtime_tstate_current);
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
      throw core::NoInterpreterError(fmt::format(
          "pyflame: process {}: cannot find the interpreter list in {} (no interp_head symbol, "
          "and no pointer to an interpreter state in its data); has the interpreter started?",
          pid_, symbols.target_path));
    }
    tstate_current_slot_ = symbols.tstate_current;
  }
  auto head = objects_.read_pointer(interp_head_slot_);
  if (!head) core::throw_for_errno(errno ? errno : ESRCH, pid_, "reading the interpreter list");
  if (head->is_null())
    throw core::NoInterpreterError(
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
  version_ = version_from_hex(static_cast<uint64_t>(read(table, l_.debug_offsets_version)));
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
  auto tstate = objects_.read_pointer(address_of(interp, l_.interp_tstate_head));
  if (!tstate || tstate->is_null() || *tstate == interp) return false;
  std::unordered_set<RemoteAddr> seen;
  for (RemoteAddr t = *tstate; t; ) {
    if (seen.size() >= static_cast<size_t>(kMaxThreads) || !seen.insert(t).second) return false;
    auto back = objects_.read_pointer(address_of(t, l_.tstate_interp));
    auto next = objects_.read_pointer(address_of(t, l_.tstate_next));
    if (!back || *back != interp || !next) return false;
    // In 2.7 and 3.6 interp->tstate_head and tstate->interp sit at the same
    // offset, so a pointer to a thread state passes the test above too. A
    // thread state's frame is NULL or a frame object; the field at the same
    // offset of an interpreter state is not.
    if (l_.frame_model == PYFLAME_FRAME_OBJECTS) {
      auto frame = objects_.read_pointer(address_of(t, l_.tstate_frame));
      if (!frame) return false;
      if (*frame) {
        auto type = objects_.read_pointer(address_of(*frame, l_.ob_type));
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
      filter(words, heads, [&](size_t k) { return address_of(RemoteAddr(words[batch[k]]), l_.interp_tstate_head); },
             may_be_tstate);
      filter(words, backs, [&](size_t k) { return address_of(RemoteAddr(heads[k]), l_.tstate_interp); },
             [](uint64_t w, uint64_t back) { return back == w; });
      // In order: the first word that passes is the one found before.
      for (size_t k : batch)
        if (looks_like_interpreter(RemoteAddr(words[k])))
          return start + static_cast<int64_t>(k * sizeof(uint64_t));
    }
  }
  return std::nullopt;
}


}  // namespace pyflame::versions
