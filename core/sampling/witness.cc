// SPDX-License-Identifier: Apache-2.0
#include "core/sampling/witness.h"

#include <algorithm>
#include <cstring>

namespace pyflame::core {

namespace {
constexpr uint64_t kPage = 4096;
}  // namespace

std::span<const Memory::ReadRequest> WitnessCheck::plan(std::span<const Witness> words,
                                                        bool whole_pages) {
  spans_.clear();
  for (const Witness& w : words) {
    if (w.size == 0 || w.size > 8 || w.addr + w.size < w.addr || w.addr + w.size > UINT64_MAX - kPage)
      continue;
    if (whole_pages) {
      spans_.emplace_back(w.addr & ~(kPage - 1), (w.addr + w.size + kPage - 1) & ~(kPage - 1));
    } else {
      spans_.emplace_back(w.addr, w.addr + w.size);
    }
  }
  std::sort(spans_.begin(), spans_.end());
  ranges_.clear();
  for (const auto& [a, end] : spans_) {
    if (!ranges_.empty() && a / kPage <= (ranges_.back().end - 1) / kPage + 1) {
      ranges_.back().end = std::max(ranges_.back().end, end);
    } else {
      ranges_.push_back({a, end, 0, false});
    }
  }
  size_t bytes = 0;
  for (Range& r : ranges_) {
    r.at = bytes;
    bytes += r.end - r.base;
  }
  if (buffer_.size() < bytes) buffer_.resize(bytes);
  // Highest address first: the reverse of a walk's read (sorted ranges), so
  // that a program whose stack cycles with a period cannot show each word
  // the same phase in both readings as easily.
  requests_.clear();
  for (auto r = ranges_.rbegin(); r != ranges_.rend(); ++r)
    requests_.push_back({RemoteAddr(r->base), std::span(buffer_).subspan(r->at, r->end - r->base)});
  return requests_;
}

void WitnessCheck::done(const std::vector<bool>& ok, size_t first) {
  const size_t n = ranges_.size();
  for (size_t i = 0; i < n; ++i) ranges_[n - 1 - i].ok = first + i < ok.size() && ok[first + i];
}

bool WitnessCheck::find(const Witness& word, uint64_t& value) const {
  if (word.size == 0 || word.size > 8) return false;
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), word.addr,
                             [](uint64_t a, const Range& r) { return a < r.base; });
  if (it == ranges_.begin()) return false;
  --it;
  if (!it->ok || word.addr + word.size > it->end || word.addr + word.size < word.addr) return false;
  value = 0;
  std::memcpy(&value, buffer_.data() + it->at + (word.addr - it->base), word.size);
  return true;
}

void WitnessCheck::reread(const Memory& target, std::span<const Witness> words,
                          std::vector<Witness>& now) {
  target.read_many(plan(words), ok_);
  done(ok_, 0);
  now.assign(words.begin(), words.end());
  for (Witness& w : now)
    if (!find(w, w.value)) w.size = 0;
}

}  // namespace pyflame::core
