// SPDX-License-Identifier: Apache-2.0
// The pages a sampler used in its last few samples. A program that cycles
// through a few calls keeps each call's frame in a page of its own (a code
// object's frame on 2.7-3.10): reading the pages of all of them at the
// start of every sample, not only the last sample's, keeps a sample's walk
// within that one read, so its second reading of the words it depended on
// is microseconds away, not a walk later. Knows nothing of Python.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace pyflame::core {

class RecentPages {
 public:
  static constexpr uint64_t kPage = 4096;

  // Pages are kept `keep` samples after their last use; at most `cap` of
  // them, the most recently used.
  RecentPages(uint64_t keep, size_t cap) : keep_(keep), cap_(cap) {}

  // Marks the pages of [lo, hi) used in the current sample.
  void use(uint64_t lo, uint64_t hi) {
    if (hi <= lo) return;
    for (uint64_t page = lo & ~(kPage - 1); page < hi; page += kPage) {
      if (!used_.empty() && used_.back() == page) continue;  // a stack's words share pages
      used_.push_back(page);
      if (page > UINT64_MAX - kPage) break;
    }
  }

  // Ends the current sample: its pages join the kept ones, and those not
  // used for `keep` samples are forgotten.
  void next_sample() {
    ++sample_;
    std::sort(used_.begin(), used_.end());
    used_.erase(std::unique(used_.begin(), used_.end()), used_.end());
    merged_.clear();
    auto kept = pages_.begin();
    for (uint64_t page : used_) {
      for (; kept != pages_.end() && kept->first < page; ++kept)
        if (sample_ - kept->second <= keep_) merged_.push_back(*kept);
      if (kept != pages_.end() && kept->first == page) ++kept;
      merged_.emplace_back(page, sample_);
    }
    for (; kept != pages_.end(); ++kept)
      if (sample_ - kept->second <= keep_) merged_.push_back(*kept);
    used_.clear();
    if (merged_.size() > cap_) {
      // Over the cap (a program touching many pages in turn): the most
      // recently used stay, in page order.
      std::nth_element(merged_.begin(), merged_.begin() + static_cast<ptrdiff_t>(cap_), merged_.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      merged_.resize(cap_);
      std::sort(merged_.begin(), merged_.end());
    }
    pages_.swap(merged_);
  }

  // Forgets the pages of [lo, hi) (they could not be read: unmapped since).
  void forget(uint64_t lo, uint64_t hi) {
    std::erase_if(pages_, [&](const auto& p) { return p.first + kPage > lo && p.first < hi; });
  }

  // The kept pages with the sample that last used each (the sample just
  // ended is `last_sample()`), in page order.
  const std::vector<std::pair<uint64_t, uint64_t>>& pages() const { return pages_; }
  uint64_t last_sample() const { return sample_; }

 private:
  uint64_t keep_;
  size_t cap_;
  uint64_t sample_ = 0;
  std::vector<uint64_t> used_;
  std::vector<std::pair<uint64_t, uint64_t>> pages_, merged_;  // (page, sample), by page
};

}  // namespace pyflame::core
