#include "core/witness.h"

#include <algorithm>
#include <cstring>

namespace pyflame::core {

namespace {
constexpr uint64_t kPage = 4096;
}  // namespace

void WitnessCheck::reread(const Memory& target, std::span<const Witness> words,
                          std::vector<Witness>& now) {
  now.assign(words.begin(), words.end());
  for (Witness& w : now) w.size = 0;
  order_.resize(words.size());
  for (size_t i = 0; i < words.size(); ++i) order_[i] = static_cast<uint32_t>(i);
  std::sort(order_.begin(), order_.end(),
            [&](uint32_t a, uint32_t b) { return words[a].addr < words[b].addr; });
  ranges_.clear();
  range_of_.assign(words.size(), 0);
  for (uint32_t i : order_) {
    const Witness& w = words[i];
    const uint64_t end = w.addr + w.size;
    if (w.size == 0 || w.size > 8 || end < w.addr) continue;  // never held
    if (!ranges_.empty() && w.addr / kPage <= (ranges_.back().end - 1) / kPage + 1) {
      ranges_.back().end = std::max(ranges_.back().end, end);
    } else {
      ranges_.push_back({w.addr, end});
    }
    range_of_[i] = static_cast<uint32_t>(ranges_.size() - 1);
  }
  offsets_.resize(ranges_.size());
  size_t bytes = 0;
  for (size_t r = 0; r < ranges_.size(); ++r) {
    offsets_[r] = bytes;
    bytes += ranges_[r].end - ranges_[r].base;
  }
  if (buffer_.size() < bytes) buffer_.resize(bytes);
  requests_.clear();
  for (size_t r = 0; r < ranges_.size(); ++r)
    requests_.push_back({RemoteAddr(ranges_[r].base),
                         std::span(buffer_).subspan(offsets_[r], ranges_[r].end - ranges_[r].base)});
  target.read_many(requests_, ok_);
  for (size_t i = 0; i < words.size(); ++i) {
    const Witness& w = words[i];
    if (w.size == 0 || w.size > 8 || ranges_.empty()) continue;
    const uint32_t r = range_of_[i];
    if (!ok_[r] || w.addr < ranges_[r].base || w.addr + w.size > ranges_[r].end) continue;
    now[i].value = 0;
    std::memcpy(&now[i].value, buffer_.data() + offsets_[r] + (w.addr - ranges_[r].base), w.size);
    now[i].size = w.size;
  }
}

}  // namespace pyflame::core
