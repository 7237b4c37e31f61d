// SPDX-License-Identifier: Apache-2.0
// The walker's view of target memory during one sample: a paged read cache
// that knows nothing of Python. Everything the previous sample read
// (pointers, thread states, frame windows, code object headers) is read
// again at the start of this one, in a single system call: the addresses
// are a guess, the bytes are fresh, and what the guess missed is read on
// demand and joins the set for the next sample. A steady stack costs one
// process_vm_readv per sample.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/target/memory.h"
#include "core/sampling/recent_pages.h"
#include "core/sampling/witness.h"

namespace pyflame::core {

class SampleMemory {
 public:
  static constexpr size_t kPage = 4096;
  static constexpr size_t kWindow = 8 * kPage;  // frames read together
  static constexpr size_t kMaxRanges = 1024;      // one process_vm_readv (IOV_MAX)
  static constexpr size_t kMaxBytes = 4 << 20;
  // Frame pages not used by the last sample but by one of the 64 before
  // it are read as well, up to 16 of them (see core/recent_pages.h).
  static constexpr uint64_t kRecentSamples = 64;
  static constexpr size_t kRecentPages = 16;

  explicit SampleMemory(const Memory& target) : target_(target) {}

  // Starts a sample: reads again, in one call, what the last one used;
  // then, in the same call and so after all of it, the words `check` has
  // planned (a second reading of words the walk will read from the first).
  void begin(WitnessCheck* check = nullptr);
  // Reads that went to the target outside begin()'s call, so far: a span
  // of the walk with no new one was served wholly from begin()'s read.
  uint64_t misses() const { return miss_count_; }

  // An exact read; `window`: the bytes sit in a stack of frames, so read the
  // pages around them too.
  bool read(RemoteAddr addr, std::span<std::byte> into, bool window = false);

  // The `size` bytes at `addr`, in place: valid until the next read. Saves
  // the copy where a frame is looked at once.
  const std::byte* view(RemoteAddr addr, size_t size, bool window = false);

  void read_many(std::span<const Memory::ReadRequest> requests, std::vector<bool>& ok);

 private:
  struct Range {
    uint64_t base;
    size_t length;
    size_t at;  // offset in buffer_
    bool used;
    size_t used_lo = SIZE_MAX, used_hi = 0;  // the part that served reads
  };

  void coalesce_plan();
  void last_the_checked(std::span<const Memory::ReadRequest> checked);
  const std::byte* serve(uint64_t a, size_t size);
  void keep(uint64_t base, std::span<const std::byte> data);
  void reserve(size_t bytes);
  void insert(const Range& r);
  bool read_window(uint64_t a, size_t size);

  const Memory& target_;
  std::vector<Range> ranges_;  // sorted by base
  std::vector<Range> plan_;
  std::vector<std::byte> buffer_;
  size_t used_ = 0;  // bytes of buffer_ in use this sample
  size_t last_ = SIZE_MAX;  // index of the range that served the last read
  uint64_t miss_count_ = 0;
  RecentPages recent_{kRecentSamples, 256};
  std::vector<std::byte> window_, scratch_;
  std::vector<Memory::ReadRequest> requests_, misses_;
  std::vector<size_t> miss_index_;
  std::vector<std::pair<uint64_t, uint64_t>> checked_;  // [base, end) of check's reads
  std::vector<bool> ok_, miss_ok_;
};

}  // namespace pyflame::core
