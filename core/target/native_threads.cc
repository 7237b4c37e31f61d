// SPDX-License-Identifier: Apache-2.0
#include "core/target/native_threads.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

namespace pyflame::core {
namespace {

// struct pthread is about 2 KiB in glibc; the TID sits well inside that.
constexpr size_t kWindow = 2048;

std::optional<int64_t> find_tid_offset(const Memory& process, const std::vector<uint64_t>& pthreads,
                                       const std::set<pid_t>& live) {
  std::vector<std::array<std::byte, kWindow>> windows;
  for (uint64_t p : pthreads) {
    std::array<std::byte, kWindow> w;
    if (p != 0 && process.read(RemoteAddr(p), w)) windows.push_back(w);
  }
  if (windows.empty()) return std::nullopt;
  for (size_t k = 0; k + sizeof(int32_t) <= kWindow; k += sizeof(int32_t)) {
    std::set<int32_t> seen;
    bool ok = true;
    for (const auto& w : windows) {
      int32_t value;
      std::memcpy(&value, w.data() + k, sizeof value);
      if (!live.count(value) || !seen.insert(value).second) {
        ok = false;
        break;
      }
    }
    if (ok) return static_cast<int64_t>(k);
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::optional<pid_t>> NativeThreadResolver::resolve(
    const Memory& process, const std::vector<uint64_t>& pthreads,
    const std::vector<TaskInfo>& tasks) {
  std::set<pid_t> live;
  for (const TaskInfo& t : tasks) live.insert(t.tid);
  std::vector<std::optional<pid_t>> result(pthreads.size());
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!tid_offset_) tid_offset_ = find_tid_offset(process, pthreads, live);
    if (!tid_offset_) return result;
    bool all_live = true;
    for (size_t i = 0; i < pthreads.size(); ++i) {
      auto tid = process.read_value<int32_t>(RemoteAddr(pthreads[i]) + *tid_offset_);
      result[i] = tid && live.count(*tid) ? std::optional<pid_t>(*tid) : std::nullopt;
      all_live &= result[i].has_value();
    }
    if (all_live) return result;
    tid_offset_.reset();  // stale or wrong: look again once
  }
  return result;
}

}  // namespace pyflame::core
