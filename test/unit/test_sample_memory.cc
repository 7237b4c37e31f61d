// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>

#include "core/sampling/recent_pages.h"
#include "core/sampling/sample_memory.h"
#include "core/sampling/witness.h"

using pyflame::core::Memory;
using pyflame::core::RecentPages;
using pyflame::core::RemoteAddr;
using pyflame::core::SampleMemory;
using pyflame::core::Witness;
using pyflame::core::WitnessCheck;

namespace {

constexpr uint64_t kPage = 4096;

// Mapped pages, each filled with its page number; every read_many call is
// recorded, request by request, so that a test sees what one call read and
// in which order.
class PagedMemory : public Memory {
 public:
  explicit PagedMemory(std::initializer_list<uint64_t> pages) {
    for (uint64_t p : pages) pages_[p] = static_cast<std::byte>(p / kPage);
  }
  bool read(RemoteAddr addr, std::span<std::byte> into) const override {
    calls.push_back({addr.value()});
    return copy(addr.value(), into);
  }
  void read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const override {
    calls.emplace_back();
    ok.assign(requests.size(), false);
    for (size_t i = 0; i < requests.size(); ++i) {
      calls.back().push_back(requests[i].addr.value());
      ok[i] = copy(requests[i].addr.value(), requests[i].into);
    }
  }
  size_t read_prefix(RemoteAddr addr, std::span<std::byte> into) const override {
    calls.push_back({addr.value()});
    size_t done = 0;
    while (done < into.size()) {
      const size_t chunk = std::min<size_t>(kPage - ((addr.value() + done) % kPage), into.size() - done);
      if (!copy(addr.value() + done, into.subspan(done, chunk))) break;
      done += chunk;
    }
    return done;
  }
  void unmap(uint64_t page) { pages_.erase(page); }
  mutable std::vector<std::vector<uint64_t>> calls;

 private:
  bool copy(uint64_t a, std::span<std::byte> into) const {
    for (size_t i = 0; i < into.size(); ++i) {
      auto it = pages_.find((a + i) & ~(kPage - 1));
      if (it == pages_.end()) return false;
      into[i] = it->second;
    }
    return true;
  }
  std::map<uint64_t, std::byte> pages_;
};

}  // namespace

TEST_CASE("recent pages: kept for `keep` samples after their last use, the newest under the cap") {
  RecentPages recent(2, 3);
  recent.use(0x10010, 0x10020);
  recent.use(0x10030, 0x12001);  // three pages, the first again
  recent.next_sample();
  REQUIRE(recent.pages().size() == 3);
  CHECK(recent.pages()[0] == std::pair<uint64_t, uint64_t>(0x10000, 1));
  CHECK(recent.pages()[2].first == 0x12000);
  recent.use(0x20000, 0x20008);
  recent.next_sample();  // over the cap: one of the older three goes
  REQUIRE(recent.pages().size() == 3);
  CHECK(recent.pages().back() == std::pair<uint64_t, uint64_t>(0x20000, 2));
  recent.next_sample();
  recent.next_sample();  // sample 4: what sample 1 used is forgotten
  REQUIRE(recent.pages().size() == 1);
  CHECK(recent.pages()[0].first == 0x20000);
  recent.next_sample();
  CHECK(recent.pages().empty());
  recent.use(0x30000, 0x32000);
  recent.next_sample();
  recent.forget(0x30ff0, 0x31000);  // touches the first page only
  REQUIRE(recent.pages().size() == 1);
  CHECK(recent.pages()[0].first == 0x31000);
}

TEST_CASE("sample memory: a frame page used a few samples ago is read in begin()'s call") {
  // A program cycling between two calls whose frames sit in pages of their
  // own: once both were seen, neither costs a read outside begin()'s call.
  PagedMemory target({0x10000, 0x20000, 0x30000});
  SampleMemory memory(target);
  std::byte frame[64];
  auto sample = [&](uint64_t frame_page) {
    memory.begin();
    const uint64_t before = memory.misses();
    REQUIRE(memory.read(RemoteAddr(0x10010), std::span(frame), true));  // the steady frames
    REQUIRE(memory.read(RemoteAddr(frame_page + 0x40), std::span(frame), true));
    CHECK(frame[0] == static_cast<std::byte>(frame_page / kPage));
    return memory.misses() - before;
  };
  CHECK(sample(0x20000) > 0);
  CHECK(sample(0x30000) > 0);
  for (int i = 0; i < 10; ++i) {
    CHECK(sample(0x20000) == 0);
    CHECK(sample(0x30000) == 0);
  }
}

TEST_CASE("sample memory: the pages of the checked words are read last, just before their check") {
  PagedMemory target({0x10000, 0x20000, 0x30000});
  SampleMemory memory(target);
  std::byte bytes[16];
  memory.begin();
  REQUIRE(memory.read(RemoteAddr(0x10000), std::span(bytes)));  // the stack word
  REQUIRE(memory.read(RemoteAddr(0x20000), std::span(bytes)));  // a code object
  REQUIRE(memory.read(RemoteAddr(0x30000), std::span(bytes)));  // another
  WitnessCheck check;
  const Witness words[] = {Witness(0x10000, 0, 8)};
  check.plan(words, true);
  target.calls.clear();
  memory.begin(&check);
  REQUIRE(target.calls.size() == 1);
  // The code objects, then the stack's page, then its second reading.
  CHECK(target.calls[0] == std::vector<uint64_t>{0x20000, 0x30000, 0x10000, 0x10000});
  uint64_t value = 0;
  REQUIRE(check.find(words[0], value));
  CHECK(value == 0x0101010101010101ull * (0x10000 / kPage % 256));
}

TEST_CASE("sample memory: a recent page that went unmapped is not asked for again") {
  PagedMemory target({0x10000, 0x20000, 0x30000});
  SampleMemory memory(target);
  std::byte frame[64];
  for (uint64_t page : {0x20000, 0x30000}) {
    memory.begin();
    REQUIRE(memory.read(RemoteAddr(page + 0x40), std::span(frame), true));
  }
  target.unmap(0x20000);
  auto asked_for = [&](uint64_t page) {
    for (const auto& call : target.calls)
      if (std::find(call.begin(), call.end(), page) != call.end()) return true;
    return false;
  };
  target.calls.clear();
  memory.begin();  // reads 0x30000 (last used) and 0x20000 (recent): that fails
  REQUIRE(memory.read(RemoteAddr(0x30040), std::span(frame), true));
  CHECK(asked_for(0x20000));
  target.calls.clear();
  memory.begin();
  CHECK_FALSE(asked_for(0x20000));
}
