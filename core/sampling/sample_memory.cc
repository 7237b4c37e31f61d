// SPDX-License-Identifier: Apache-2.0
#include "core/sampling/sample_memory.h"

#include <algorithm>
#include <cstring>

namespace pyflame::core {

void SampleMemory::begin(WitnessCheck* check) {
  plan_.clear();
  // Only the pages of a window that were used are read again.
  for (const Range& r : ranges_) {
    if (!r.used) continue;
    uint64_t lo = r.base + r.used_lo, hi = r.base + r.used_hi;
    if (r.length > kPage) {
      lo = std::max(r.base, lo & ~(kPage - 1));
      hi = std::min(r.base + r.length, (hi + kPage - 1) & ~(kPage - 1));
    } else {
      lo = r.base;
      hi = r.base + r.length;
    }
    if (hi - lo >= kPage) recent_.use(lo, hi);  // frame windows, not code headers
    plan_.push_back({lo, static_cast<size_t>(hi - lo), 0, false});
  }
  recent_.next_sample();
  size_t recent = 0;
  for (const auto& [page, sample] : recent_.pages()) {
    if (sample == recent_.last_sample()) continue;  // planned above
    if (recent++ == kRecentPages) break;
    plan_.push_back({page, kPage, 0, false});
  }
  ranges_.clear();
  coalesce_plan();
  size_t bytes = 0, count = 0;
  for (const Range& r : plan_) {
    if (count == kMaxRanges || bytes + r.length > kMaxBytes) break;
    bytes += r.length;
    ++count;
  }
  plan_.resize(count);
  if (check != nullptr) last_the_checked(check->planned());
  reserve(bytes);
  used_ = bytes;
  requests_.clear();
  size_t at = 0;
  for (Range& r : plan_) {
    r.at = at;
    requests_.push_back({RemoteAddr(r.base), std::span(buffer_).subspan(at, r.length)});
    at += r.length;
  }
  if (check != nullptr) {
    const auto words = check->planned();
    requests_.insert(requests_.end(), words.begin(), words.end());
  }
  target_.read_many(requests_, ok_);
  for (size_t i = 0; i < plan_.size(); ++i) {
    if (ok_[i]) {
      insert(plan_[i]);
    } else {
      recent_.forget(plan_[i].base, plan_[i].base + plan_[i].length);  // not read again and again
    }
  }
  if (check != nullptr) check->done(ok_, plan_.size());
}

// A word's two readings are the copy of its page in the plan and its copy
// in `check`'s reads, which come after the whole plan: the time between
// them is the window in which a change of the word discards the sample. The
// ranges that hold the checked words go last, so that the window spans the
// copy of those pages only, not of every code object the walk used.
void SampleMemory::last_the_checked(std::span<const Memory::ReadRequest> checked) {
  checked_.clear();
  for (const Memory::ReadRequest& r : checked) checked_.emplace_back(r.addr.value(), r.addr.value() + r.into.size());
  std::sort(checked_.begin(), checked_.end());
  auto holds_checked = [&](const Range& r) {
    // The first checked range that ends after r's start.
    auto it = std::upper_bound(checked_.begin(), checked_.end(), r.base,
                               [](uint64_t a, const auto& c) { return a < c.second; });
    return it != checked_.end() && it->first < r.base + r.length;
  };
  std::stable_partition(plan_.begin(), plan_.end(), [&](const Range& r) { return !holds_checked(r); });
}

bool SampleMemory::read(RemoteAddr addr, std::span<std::byte> into, bool window) {
  const std::byte* bytes = view(addr, into.size(), window);
  if (bytes == nullptr) return false;
  std::memcpy(into.data(), bytes, into.size());
  return true;
}

const std::byte* SampleMemory::view(RemoteAddr addr, size_t size, bool window) {
  if (const std::byte* hit = serve(addr.value(), size)) return hit;
  if (window && size <= kWindow / 2 && read_window(addr.value(), size))
    return serve(addr.value(), size);
  ++miss_count_;
  if (scratch_.size() < size) scratch_.resize(size);
  const std::span<std::byte> into(scratch_.data(), size);
  if (!target_.read(addr, into)) return nullptr;
  keep(addr.value(), into);  // wholly used
  return serve(addr.value(), size);
}

void SampleMemory::read_many(std::span<const Memory::ReadRequest> requests, std::vector<bool>& ok) {
  ok.assign(requests.size(), false);
  misses_.clear();
  miss_index_.clear();
  for (size_t i = 0; i < requests.size(); ++i) {
    if (const std::byte* hit = serve(requests[i].addr.value(), requests[i].into.size())) {
      std::memcpy(requests[i].into.data(), hit, requests[i].into.size());
      ok[i] = true;
    } else {
      misses_.push_back(requests[i]);
      miss_index_.push_back(i);
    }
  }
  if (misses_.empty()) return;
  ++miss_count_;
  target_.read_many(misses_, miss_ok_);
  for (size_t k = 0; k < misses_.size(); ++k) {
    if (!miss_ok_[k]) continue;
    ok[miss_index_[k]] = true;
    keep(misses_[k].addr.value(), misses_[k].into);
  }
}

// Each remote range costs the kernel about as much as reading two more
// pages (docs/benchmarks.md), so ranges that share a page or sit in
// neighbouring pages are read as one. No page joins the read that was not
// read lately: the pages in between were all read then.
void SampleMemory::coalesce_plan() {
  std::sort(plan_.begin(), plan_.end(), [](const Range& x, const Range& y) { return x.base < y.base; });
  size_t out = 0;
  for (size_t i = 0; i < plan_.size(); ++i) {
    const Range& r = plan_[i];
    if (out > 0) {
      Range& last = plan_[out - 1];
      const uint64_t last_end = last.base + last.length;
      if (r.base / kPage <= (last_end - 1) / kPage + 1) {
        last.length = static_cast<size_t>(std::max(last_end, r.base + r.length) - last.base);
        continue;
      }
    }
    plan_[out++] = r;
  }
  plan_.resize(out);
}

// Where this sample's bytes for [a, a + size) are, or nullptr.
const std::byte* SampleMemory::serve(uint64_t a, size_t size) {
  const uint64_t end = a + size;
  if (end < a) return nullptr;
  // Frames of one stack come from the same range, one after another.
  if (last_ < ranges_.size()) {
    Range& r = ranges_[last_];
    if (a >= r.base && end <= r.base + r.length) {
      r.used = true;
      r.used_lo = std::min<size_t>(r.used_lo, a - r.base);
      r.used_hi = std::max<size_t>(r.used_hi, end - r.base);
      return buffer_.data() + r.at + (a - r.base);
    }
  }
  // ranges_ is sorted by base; the one that holds [a, end) starts at or
  // before a (overlaps are rare: look back a little).
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), a,
                             [](uint64_t x, const Range& r) { return x < r.base; });
  for (int back = 0; back < 4 && it != ranges_.begin(); ++back) {
    --it;
    if (end <= it->base + it->length) {
      it->used = true;
      last_ = static_cast<size_t>(it - ranges_.begin());
      it->used_lo = std::min<size_t>(it->used_lo, a - it->base);
      it->used_hi = std::max<size_t>(it->used_hi, end - it->base);
      return buffer_.data() + it->at + (a - it->base);
    }
  }
  return nullptr;
}

void SampleMemory::keep(uint64_t base, std::span<const std::byte> data) {
  Range r{base, data.size(), used_, true, 0, data.size()};
  reserve(used_ + data.size());
  std::memcpy(buffer_.data() + used_, data.data(), data.size());
  used_ += data.size();
  insert(r);
}

// Grows the buffer without clearing it: the bytes are overwritten anyway.
void SampleMemory::reserve(size_t bytes) {
  if (bytes > buffer_.size()) buffer_.resize(std::max(bytes, 2 * buffer_.size()));
}

// Adds a range; the next serve() looks in it first. (The search in
// serve() looks back only a few ranges: a window that holds several small
// ranges read before it must still serve the read that fetched it.)
void SampleMemory::insert(const Range& r) {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), r.base,
                             [](uint64_t x, const Range& e) { return x < e.base; });
  const auto at = ranges_.insert(it, r);  // may move ranges_: begin() after
  last_ = static_cast<size_t>(at - ranges_.begin());
}

bool SampleMemory::read_window(uint64_t a, size_t size) {
  ++miss_count_;
  if (window_.size() < kWindow) window_.resize(kWindow);
  // Stacks grow upwards, so the frames still to come sit below this one:
  // first try the window that ends just after it. Its lowest page may be
  // unmapped (the kernel then reads nothing); then read upwards from it.
  const uint64_t end = (a + size + kPage - 1) & ~(kPage - 1);
  uint64_t base = end > kWindow ? end - kWindow : 0;
  size_t length = base ? target_.read_prefix(RemoteAddr(base), window_) : 0;
  if (base + length < a + size) {
    base = a & ~(kPage - 1);
    length = target_.read_prefix(RemoteAddr(base), window_);
  }
  if (a < base || a + size > base + length) return false;
  keep(base, std::span(window_).first(length));
  Range& kept = ranges_[last_];
  kept.used_lo = SIZE_MAX;  // serve() marks what is used
  kept.used_hi = 0;
  return true;
}

}  // namespace pyflame::core
