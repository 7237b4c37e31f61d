// The words a walk of a moving target depended on, and a second read of
// them. A stack read while it runs can mix two moments; reading the words
// again (the frame pointer, each frame's links and code) and finding them
// unchanged shows the walk saw one stack. Knows nothing of Python.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/memory.h"

namespace pyflame::core {

// One word as the walk read it: up to 8 bytes at `addr`, zero-extended.
struct Witness {
  uint64_t addr = 0;
  uint64_t value = 0;
  uint64_t size = 0;

  bool operator==(const Witness&) const = default;
};

// Reads a set of witnessed words again in one call (words in the same or
// neighbouring pages as one range: a range costs the kernel more than a
// page) and tells which still hold their value.
class WitnessCheck {
 public:
  // Reads `words` again from `target` into `now` (the same words with
  // their present values; size 0 where unreadable, so that it never
  // equals a word read).
  void reread(const Memory& target, std::span<const Witness> words, std::vector<Witness>& now);

 private:
  struct Range {
    uint64_t base, end;
  };
  std::vector<uint32_t> order_;  // word indices by address
  std::vector<Range> ranges_;
  std::vector<uint32_t> range_of_;  // per word
  std::vector<std::byte> buffer_;
  std::vector<size_t> offsets_;  // per range, into buffer_
  std::vector<Memory::ReadRequest> requests_;
  std::vector<bool> ok_;
};

}  // namespace pyflame::core
