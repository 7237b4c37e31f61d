// SPDX-License-Identifier: Apache-2.0
// From raw frames to shown ones: code objects read once into the code
// cache, lines decoded, and the frames a thread kept from its last stack.
#include "versions/walker/layout_interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/errors.h"
#include "core/log.h"
#include "versions/walker/line_table.h"

namespace pyflame::versions {

using core::Error;
using core::ExitCode;
using core::RemoteAddr;

namespace {

line_table::Format line_format(int64_t model) { return static_cast<line_table::Format>(model); }


}  // namespace

int64_t LayoutInterpreter::code_header_size() const {
  int64_t end = std::max({end_of(l_.ob_type), end_of(l_.ob_size), end_of(l_.code_name),
                          end_of(l_.code_filename), end_of(l_.code_line_table),
                          end_of(l_.code_firstlineno), end_of(l_.code_flags)});
  for (int64_t optional : {present(l_.code_qualname) ? end_of(l_.code_qualname) : 0,
                           present(l_.code_firsttraceable) ? end_of(l_.code_firsttraceable) : 0,
                           present(l_.code_nlocalsplus) ? end_of(l_.code_nlocalsplus) : 0})
    end = std::max(end, optional);
  return end;
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
  for (const InlineCaller& c : inline_callers_) {
    const CodeInfo* info = infos_[c.frame];
    if (info == nullptr) continue;
    if (c.stacktop) {
      if (*c.stacktop < info->locals_plus) rooted_[slot] = 0;
    } else if (info->frame_pushes_known && !at_frame_push(*info, raw_[c.frame].offset)) {
      rooted_[slot] = 0;
    }
  }

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

  if (locals_) {
    // Where each shown frame is, for read_locals() once the sample holds.
    if (locals_sources_.size() <= slot) locals_sources_.resize(slot + 1);
    auto& sources = locals_sources_[slot];
    sources.clear();
    for (size_t i = 0; i < n; ++i)
      if (memo.emitted[i])
        sources.push_back({raw_frames_[i], raw_[i].bad || infos_[i] == nullptr ? RemoteAddr() : raw_[i].code});
  }

  // Frames per eval-loop call, innermost call first, counting the frames
  // shown (an incomplete frame is in its call but not shown).
  thread.eval_calls.clear();
  thread.eval_call_anchors.clear();
  uint32_t in_call = 0;
  size_t end = 0;
  for (size_t i = 0; i <= n; ++i) {
    for (; end < call_ends_.size() && call_ends_[end] == i; ++end) {
      thread.eval_calls.push_back(in_call);
      thread.eval_call_anchors.push_back(call_anchors_[end]);
      in_call = 0;
    }
    if (i < n) in_call += memo.emitted[i];
  }
  if (in_call > 0) {  // a call with no end seen
    thread.eval_calls.push_back(in_call);
    thread.eval_call_anchors.push_back(0);
  }
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
  if (RemoteAddr(read(buf, l_.ob_type)) != objects_.types().code) return nullptr;
  std::array<uint64_t, 4> identity{read(buf, l_.code_name), read(buf, l_.code_filename),
                                   present(l_.code_qualname) ? read(buf, l_.code_qualname) : 0,
                                   read(buf, l_.code_line_table)};
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
  // A qualname that cannot be read is as bad as a name: shown without it,
  // the frame would be one no moment of the target had.
  std::optional<std::string> qualname;
  if (identity[2] != 0 && !(qualname = objects_.read_text(RemoteAddr(identity[2])))) return nullptr;
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
  info.qualname = std::move(qualname);
  info.first_line = static_cast<int>(read(buf, l_.code_firstlineno));
  info.generator = (read(buf, l_.code_flags) & l_.generator_flags) != 0;
  if (present(l_.code_firsttraceable)) info.first_traceable = read(buf, l_.code_firsttraceable);
  if (present(l_.code_nlocalsplus)) info.locals_plus = static_cast<int>(read(buf, l_.code_nlocalsplus));
  if (l_.frame_model == PYFLAME_INTERPRETER_FRAMES) {
    // 3.11+: ob_size counts the code units of co_code_adaptive.
    const int64_t units = read(buf, l_.ob_size);
    if (units > 0 && units <= (int64_t{1} << 28)) info.code_bytes = units * l_.lasti_unit_bytes;
  }
  if (l_.pushes_frame != nullptr) find_frame_pushes(code, info);
  info.cost = sizeof(CodeInfo) + info.name.capacity() + info.filename.capacity() +
              (info.qualname ? info.qualname->capacity() : 0) + info.line_table.capacity() +
              info.frame_pushes.capacity() * sizeof(info.frame_pushes[0]);
  code_cache_bytes_ += info.cost;
  sample_code_bytes_ += info.cost;
  info.key = next_code_key_++;
  if (cached != code_cache_.end()) retired_.push_back(std::move(cached->second));
  auto& slot = code_cache_[code];
  slot = std::make_unique<CodeInfo>(std::move(info));
  return slot.get();
}

void LayoutInterpreter::find_frame_pushes(RemoteAddr code, CodeInfo& info) {
  // Read once per code object: specializing an instruction rewrites its
  // opcode byte and caches, never what its base instruction is, so the
  // ranges hold for the code object's life.
  if (info.code_bytes <= 0 || info.code_bytes > kMaxScannedCodeBytes) return;
  scan_buf_.resize(static_cast<size_t>(info.code_bytes));
  if (!target_.read(address_of(code, l_.code_adaptive), scan_buf_)) return;
  sample_code_bytes_ += scan_buf_.size();
  const auto unit = static_cast<size_t>(l_.lasti_unit_bytes);
  for (size_t at = 0; at < scan_buf_.size();) {
    const auto opcode = static_cast<uint8_t>(scan_buf_[at]);  // the low byte of a code unit
    const size_t end = std::min(scan_buf_.size(), at + unit * std::max<size_t>(1, l_.instruction_units[opcode]));
    if (l_.pushes_frame[opcode] != 0)
      info.frame_pushes.emplace_back(static_cast<int64_t>(at), static_cast<int64_t>(end));
    at = end;
  }
  info.frame_pushes_known = true;
}

bool LayoutInterpreter::at_frame_push(const CodeInfo& info, std::optional<int64_t> offset) {
  if (!offset) return false;
  // The last range starting at or before the offset.
  auto it = std::upper_bound(info.frame_pushes.begin(), info.frame_pushes.end(), *offset,
                             [](int64_t at, const auto& range) { return at < range.first; });
  return it != info.frame_pushes.begin() && *offset < std::prev(it)->second;
}

}  // namespace pyflame::versions
