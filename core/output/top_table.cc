// SPDX-License-Identifier: Apache-2.0
#include "core/output/top_table.h"

#include <algorithm>
#include <fmt/format.h>

#include "core/output/utf8.h"

namespace pyflame::core {
namespace {

constexpr int kWhole = 0, kCurrent = 1, kLast = 2;

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

}  // namespace

std::string terminal_text(std::string_view s, size_t width) {
  std::string out;
  size_t columns = 0;
  for (size_t i = 0; i < s.size() && columns < width; ++columns) {
    uint32_t cp = 0;
    const size_t n = utf8_sequence_length(s, i, &cp);
    if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
      out += '?';
      i += n == 0 ? 1 : n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

uint32_t TopTable::function_of(const Frame& frame) {
  const std::string_view name = frame.qualname ? *frame.qualname : frame.function;
  if (frame.code_key != 0) {
    if (auto it = by_code_key_.find(frame.code_key); it != by_code_key_.end()) return it->second;
  }
  // A code object not seen before may still be a function seen before (a
  // code key is per code object, and two may share a name and file).
  // A C frame (--native) is its function in its library: "f [libfoo.so]",
  // with DWARF's file, else the library's path, where a Python frame has
  // its file.
  std::string shown(name);
  std::string_view file = frame.filename;
  if (frame.kind == FrameKind::kNative) {
    if (!frame.library.empty()) shown += fmt::format(" [{}]", library_file_name(frame.library));
    if (file.empty()) file = frame.library;
  }
  std::string key = fmt::format("{}\n{}", shown, file);
  uint32_t index;
  if (auto it = by_name_.find(key); it != by_name_.end()) {
    index = it->second;
  } else {
    index = static_cast<uint32_t>(functions_.size());
    functions_.push_back({std::move(shown), std::string(file), {}, frame.line.value_or(0)});
    by_name_.emplace(std::move(key), index);
  }
  if (frame.code_key != 0) by_code_key_.emplace(frame.code_key, index);
  return index;
}

size_t TopTable::thread_of(const ThreadSample& thread) {
  auto [it, added] = thread_index_.emplace(thread.thread_id, threads_.size());
  if (added) {
    threads_.push_back({thread.thread_id, thread.native_id, thread.name.value_or("")});
    for (auto& per_thread : thread_samples_) per_thread.push_back(0);
    last_stacks_.emplace_back();
  } else if (thread.name && threads_[it->second].name != *thread.name) {
    threads_[it->second].name = *thread.name;  // renamed since
  }
  return it->second;
}

void TopTable::add(const ThreadSample& thread) {
  const size_t t = thread_of(thread);
  ++thread_samples_[kWhole][t];
  ++thread_samples_[kCurrent][t];
  ++stamp_;
  LastStack& last = last_stacks_[t];
  const size_t n = thread.frames.size();
  bool same = true;  // so far (from the root) the same code as the last stack
  for (size_t j = 0; j < n; ++j) {  // root first
    const size_t i = n - 1 - j;      // frames are innermost first
    const Frame& frame = thread.frames[i];
    same = same && j < last.code_keys.size() && frame.code_key != 0 && last.code_keys[j] == frame.code_key;
    if (!same) {
      const uint32_t function = function_of(frame);
      last.code_keys.resize(j);
      last.functions.resize(j);
      last.counts.resize(j);
      last.code_keys.push_back(frame.code_key);
      last.functions.push_back(function);
      last.counts.push_back(&counts_[(static_cast<uint64_t>(t) << 32) | function]);
    }
    const uint32_t f = last.functions[j];
    Counts& c = *last.counts[j];
    if (functions_[f].first_line == 0 && frame.line) functions_[f].first_line = *frame.line;
    if (i == 0) {
      ++c.own[kWhole];
      ++c.own[kCurrent];
      auto& lines = functions_[f].own_lines;
      const int line = frame.line.value_or(0);
      auto at = std::find_if(lines.begin(), lines.end(), [line](const auto& l) { return l.first == line; });
      if (at == lines.end()) lines.emplace_back(line, 1);
      else ++at->second;
    }
    if (c.stamp != stamp_) {  // a recursive function counts once a stack
      c.stamp = stamp_;
      ++c.total[kWhole];
      ++c.total[kCurrent];
    }
  }
}

void TopTable::end_interval() {
  for (auto& [key, c] : counts_) {
    c.own[kLast] = c.own[kCurrent];
    c.total[kLast] = c.total[kCurrent];
    c.own[kCurrent] = c.total[kCurrent] = 0;
  }
  thread_samples_[kLast] = thread_samples_[kCurrent];
  std::fill(thread_samples_[kCurrent].begin(), thread_samples_[kCurrent].end(), 0);
}

uint64_t TopTable::samples(const TopView& view) const {
  const auto& per_thread = thread_samples_[view.whole_run ? kWhole : kLast];
  if (view.thread) return *view.thread < per_thread.size() ? per_thread[*view.thread] : 0;
  uint64_t sum = 0;
  for (uint64_t n : per_thread) sum += n;
  return sum;
}

std::vector<TopRow> TopTable::rows(const TopView& view) const {
  const int w = view.whole_run ? kWhole : kLast;
  std::vector<uint64_t> own(functions_.size()), total(functions_.size());
  for (const auto& [key, c] : counts_) {
    if (view.thread && (key >> 32) != *view.thread) continue;
    own[key & 0xffffffffu] += c.own[w];
    total[key & 0xffffffffu] += c.total[w];
  }
  std::vector<TopRow> out;
  for (size_t f = 0; f < functions_.size(); ++f) {
    if (total[f] == 0) continue;
    const Function& fn = functions_[f];
    if (!view.filter.empty() && !contains(fn.function, view.filter) && !contains(fn.filename, view.filter))
      continue;
    int line = fn.first_line;
    uint64_t best = 0;
    for (const auto& [l, n] : fn.own_lines)
      if (n > best) best = n, line = l;
    out.push_back({fn.function, fn.filename, line, own[f], total[f]});
  }
  auto key = [&](const TopRow& r) { return view.sort == TopSort::kOwn ? r.own : r.total; };
  std::stable_sort(out.begin(), out.end(), [&](const TopRow& a, const TopRow& b) {
    if (view.sort == TopSort::kName) {
      if (a.function != b.function) return (a.function < b.function) != view.reverse;
      return a.filename < b.filename;
    }
    if (key(a) != key(b)) return (key(a) > key(b)) != view.reverse;
    if (a.total != b.total) return a.total > b.total;
    return a.function < b.function;
  });
  return out;
}

std::vector<std::string> format_top_rows(const std::vector<TopRow>& rows, uint64_t samples,
                                         size_t width, size_t max_rows) {
  auto fit = [width](const std::string& s) { return terminal_text(s, width); };
  std::vector<std::string> lines;
  lines.push_back(fit("   %Own  %Total      Own    Total  Function (file:line)"));
  const double all = samples ? static_cast<double>(samples) : 1.0;
  for (const TopRow& r : rows) {
    if (max_rows && lines.size() > max_rows) break;
    std::string where = r.line > 0 ? fmt::format("{}:{}", r.filename, r.line) : r.filename;
    std::string head = fmt::format("{:6.1f}% {:6.1f}% {:8} {:8}  {} (", 100.0 * r.own / all,
                                   100.0 * r.total / all, r.own, r.total, r.function);
    // Too wide: the path loses its start, so that the file name and line
    // stay in view.
    if (width != SIZE_MAX && head.size() + where.size() + 1 > width && head.size() + 8 < width) {
      const size_t keep = width - head.size() - 1 - 3;
      if (keep < where.size()) where = "..." + where.substr(where.size() - keep);
    }
    lines.push_back(fit(head + where + ")"));
  }
  return lines;
}

}  // namespace pyflame::core
