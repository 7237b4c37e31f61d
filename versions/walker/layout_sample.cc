// SPDX-License-Identifier: Apache-2.0
// One sample: walks of every thread until their reading is shown to be of
// one moment (docs/how-it-works.md, "A consistent sample").
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

std::optional<RemoteAddr> LayoutInterpreter::gil_holder(RemoteAddr gil) {
  if (gil.is_null()) return std::nullopt;
  uint64_t locked = 0, holder = 0, enabled = 1;
  // A free-threaded build has the struct but no GIL until something turns
  // it on: then no thread holds it or lacks it, every one may run.
  const bool may_be_off = present(l_.gil_enabled);
  const core::Memory::ReadRequest reads[] = {
      {address_of(gil, l_.gil_locked), std::as_writable_bytes(std::span(&locked, 1)).first(width(l_.gil_locked))},
      {address_of(gil, l_.gil_last_holder), std::as_writable_bytes(std::span(&holder, 1))},
      {may_be_off ? address_of(gil, l_.gil_enabled) : gil,
       std::as_writable_bytes(std::span(&enabled, 1)).first(may_be_off ? width(l_.gil_enabled) : 0)}};
  memory_.read_many(std::span(reads).first(may_be_off ? 3 : 2), ok_);
  if (!ok_[0] || !ok_[1]) return std::nullopt;
  if (may_be_off && (!ok_[2] || as_integer(enabled, l_.gil_enabled) == 0)) return std::nullopt;
  if (as_integer(locked, l_.gil_locked) == 0) return RemoteAddr();  // nobody holds it
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
  if (locals_) read_locals(out, threads);
  return true;
}

void LayoutInterpreter::read_locals(core::Snapshot& out, size_t threads) {
  // The stacks are confirmed: their frames are read again for their
  // variables. The target runs on meanwhile; a frame that no longer runs
  // its code reads as unreadable, a value that moved as what it is now.
  locals_store_.clear();
  LocalsReader reader(l_, target_, objects_, values_);
  for (size_t t = 0; t < threads; ++t) {
    core::ThreadSample& thread = out.threads[t];
    const bool known = t < locals_sources_.size() && locals_sources_[t].size() == thread.frames.size();
    for (size_t i = 0; i < thread.frames.size(); ++i) {
      core::Frame& frame = thread.frames[i];
      frame.locals = nullptr;
      if (thread.torn || !known || !locals_sources_[t][i].code) continue;
      const LocalsSource& source = locals_sources_[t][i];
      frame.locals = &locals_store_.emplace_back(reader.read_frame(source.frame, source.code));
    }
  }
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


}  // namespace pyflame::versions
