// SPDX-License-Identifier: Apache-2.0
// What `top` shows: each function's own samples (it was the innermost
// frame) and total samples (it was anywhere on the stack, once per stack),
// over the whole run and over the last interval, for every thread or one.
// Memory grows with functions x threads, not with samples.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/sampling/snapshot.h"

namespace pyflame::core {

enum class TopSort { kOwn, kTotal, kName };

struct TopView {
  bool whole_run = false;                  // false: the last completed interval
  std::optional<size_t> thread;            // index into TopTable::threads(); nullopt: all
  TopSort sort = TopSort::kOwn;
  bool reverse = false;                    // ascending instead of descending (names: Z-A)
  std::string filter;                      // keep functions whose name or file contains it
};

struct TopRow {
  std::string function;
  std::string filename;
  int line = 0;  // the line with the most own samples (else the first seen); 0: unknown
  uint64_t own = 0;
  uint64_t total = 0;
};

struct TopThread {
  uint64_t thread_id = 0;
  std::optional<int64_t> native_id;
  std::string name;
};

class TopTable {
 public:
  // One kept, untorn thread sample (frames innermost first).
  void add(const ThreadSample& thread);
  // The interval being collected becomes the last one; a new one begins.
  void end_interval();

  std::vector<TopRow> rows(const TopView& view) const;
  // The thread samples behind view's window and thread: the 100% of its
  // percentages.
  uint64_t samples(const TopView& view) const;
  const std::vector<TopThread>& threads() const { return threads_; }

 private:
  struct Counts {
    uint64_t own[3] = {0, 0, 0};  // whole run, current interval, last interval
    uint64_t total[3] = {0, 0, 0};
    uint64_t stamp = 0;  // the sample that last counted it in `total`
  };
  struct Function {
    std::string function;
    std::string filename;
    std::vector<std::pair<int, uint64_t>> own_lines;  // line, own samples (whole run)
    int first_line = 0;
  };
  uint32_t function_of(const Frame& frame);
  size_t thread_of(const ThreadSample& thread);

  // Each thread's last stack, root first: the frames a sample shares with
  // the last one (a deep stack's outer part rarely moves) reuse their
  // counters without a lookup. The counters' addresses are stable: an
  // unordered_map keeps its elements in place when it grows.
  struct LastStack {
    std::vector<uint64_t> code_keys;
    std::vector<uint32_t> functions;
    std::vector<Counts*> counts;
  };

  std::vector<Function> functions_;
  std::unordered_map<uint64_t, uint32_t> by_code_key_;
  std::unordered_map<std::string, uint32_t> by_name_;  // frames without a code key
  std::vector<TopThread> threads_;
  std::unordered_map<uint64_t, size_t> thread_index_;
  std::unordered_map<uint64_t, Counts> counts_;  // (thread << 32) | function
  std::vector<uint64_t> thread_samples_[3];      // per thread, per window
  std::vector<LastStack> last_stacks_;           // per thread
  uint64_t stamp_ = 0;
};

// Text safe for a terminal, at most `width` columns: names come from the
// target and may hold control characters (an escape sequence would drive
// the user's terminal) or invalid UTF-8; each becomes '?'. One column per
// code point (wide characters are rare in Python names).
std::string terminal_text(std::string_view s, size_t width);

// The table as text lines of at most `width` columns: a heading, then up
// to `max_rows` rows (0: all) "  %Own %Total   Own  Total  function (file:line)".
std::vector<std::string> format_top_rows(const std::vector<TopRow>& rows, uint64_t samples,
                                         size_t width, size_t max_rows);

}  // namespace pyflame::core
