// SPDX-License-Identifier: Apache-2.0
// The words a walk of a moving target depended on, and a second read of
// them. A stack read while it runs can mix two moments; reading the words
// again (the frame pointer, each frame's links and code) and finding them
// unchanged shows the walk saw one stack. Knows nothing of Python.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <span>
#include <utility>
#include <vector>

#include "core/target/memory.h"

namespace pyflame::core {

// One word as the walk read it: up to 8 bytes at `addr`, zero-extended.
// 16 bytes: a deep stack notes thousands per sample.
struct Witness {
  Witness() = default;
  Witness(uint64_t address, uint64_t read_value, uint64_t bytes)
      : addr(address), size(bytes), value(read_value) {}

  uint64_t addr : 56 = 0;  // user-space addresses fit in 47 bits
  uint64_t size : 8 = 0;
  uint64_t value = 0;

  // Two word compares, not field by field.
  bool operator==(const Witness& other) const {
    uint64_t a[2], b[2];
    std::memcpy(a, this, sizeof a);
    std::memcpy(b, &other, sizeof b);
    return a[0] == b[0] && a[1] == b[1];
  }
};
static_assert(sizeof(Witness) == 16 && std::has_unique_object_representations_v<Witness>);

// Whether two readings are the same words with the same values: a
// byte compare (a 500-frame stack is 2,000 words).
inline bool same_words(std::span<const Witness> a, std::span<const Witness> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size_bytes()) == 0);
}

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
