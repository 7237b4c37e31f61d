// The words a walk of a moving target depended on, and a second read of
// them. A stack read while it runs can mix two moments; reading the words
// again (the frame pointer, each frame's links and code) and finding them
// unchanged shows the walk saw one stack. Knows nothing of Python.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
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

// A read of a set of words (words in the same or neighbouring pages as one
// range: a range costs the kernel more than a page), issued by itself or
// appended to another batch of reads, and the words' values afterwards.
class WitnessCheck {
 public:
  // The reads that fetch `words` (`whole_pages`: the whole pages they sit
  // in, so that words next to them are found too): valid until the next
  // plan().
  std::span<const Memory::ReadRequest> plan(std::span<const Witness> words, bool whole_pages = false);
  std::span<const Memory::ReadRequest> planned() const { return requests_; }
  // Records which of the planned reads succeeded: ok[first + i] for plan()[i].
  void done(const std::vector<bool>& ok, size_t first);
  // The value read for a word (any word inside the planned ranges).
  bool find(const Witness& word, uint64_t& value) const;

  // plan() + one read_many of `target` + done(); `now` gets `words` with
  // their present values (size 0 where unreadable: never equal to a word).
  void reread(const Memory& target, std::span<const Witness> words, std::vector<Witness>& now);

 private:
  struct Range {
    uint64_t base, end;
    size_t at;  // offset in buffer_
    bool ok;
  };
  std::vector<std::pair<uint64_t, uint64_t>> spans_;  // [addr, end) of each word
  std::vector<Range> ranges_;  // sorted by base
  std::vector<std::byte> buffer_;
  std::vector<Memory::ReadRequest> requests_;
  std::vector<bool> ok_;
};

}  // namespace pyflame::core
