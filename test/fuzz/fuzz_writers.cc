// SPDX-License-Identifier: Apache-2.0
// Fuzz target: every profile writer (core/writers.h) over a Profile built
// from fuzz bytes through ProfileBuilder, as record builds it: names and
// file names are arbitrary bytes (a 2.7 target's file names are byte
// strings), stacks arbitrarily deep and shared.
//
// Every output must be well-formed, not just crash-free: collapsed and
// flamechart lines parse and add up, speedscope is one JSON document, the
// SVG is well-formed XML, pprof is one gzip stream of one protobuf message.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/output/profile.h"
#include "core/sampling/snapshot.h"
#include "core/output/writers.h"
#include "test/fuzz/fuzz_input.h"
#include "test/fuzz/wellformed.h"

namespace {

using pyflame::fuzz::fail;

struct PoolFrame {
  std::string function, qualname, filename;
  bool has_qualname = false;
  std::optional<int> line;
};

// "stack count" lines; returns the sum of the counts.
uint64_t check_collapsed(std::string_view text) {
  uint64_t sum = 0;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    if (eol == std::string_view::npos) fail("collapsed: last line has no newline");
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    size_t space = line.rfind(' ');
    if (space == std::string_view::npos || space + 1 == line.size()) fail("collapsed: no count", line);
    uint64_t count = 0;
    for (char c : line.substr(space + 1)) {
      if (c < '0' || c > '9') fail("collapsed: count is not a number", line);
      count = count * 10 + static_cast<uint64_t>(c - '0');
    }
    sum += count;
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pyflame::fuzz::FuzzInput in(data, size);
  pyflame::core::Profile profile;
  uint8_t flags = in.take<uint8_t>();
  profile.pid = in.take<int32_t>();
  profile.python_version = in.take_string(16);
  profile.target = in.take_string(64);
  profile.interval_seconds = 1.0 / (1 + in.take<uint16_t>());
  profile.thread_roots = flags & 1;
  bool timeline = flags & 2;

  std::vector<PoolFrame> frames(1 + in.take<uint8_t>() % 24);
  for (auto& f : frames) {
    f.function = in.take_string(48);
    f.has_qualname = in.take<uint8_t>() & 1;
    if (f.has_qualname) f.qualname = in.take_string(48);
    f.filename = in.take_string(64);
    int32_t line = in.take<int32_t>();
    if (line != 0) f.line = line;
  }
  std::vector<pyflame::core::ThreadSample> threads(1 + in.take<uint8_t>() % 4);
  for (auto& t : threads) {
    t.thread_id = in.take<uint64_t>();
    if (in.take<uint8_t>() & 1) t.native_id = in.take<int32_t>();
    if (in.take<uint8_t>() & 1) t.name = in.take_string(32);
  }

  pyflame::core::ProfileBuilder builder(profile);
  double seconds = 0;
  while (in.remaining() > 0 && profile.stacks.size() < 128) {
    auto sample = threads[in.take<uint8_t>() % threads.size()];
    size_t depth = in.take<uint8_t>() % 40;
    for (size_t d = 0; d < depth; ++d) {
      size_t index = in.take<uint8_t>() % frames.size();
      const PoolFrame& f = frames[index];
      pyflame::core::Frame frame{f.function, std::nullopt, f.filename, f.line};
      if (f.has_qualname) frame.qualname = f.qualname;
      // Odd frames take the interned fast path: one key per pool frame, so
      // that a key always stands for the same strings, as the walker promises.
      if (index % 2) frame.code_key = index + 1;
      sample.frames.push_back(frame);
    }
    uint64_t count = 1 + in.take<uint8_t>() % 8;
    uint32_t stack = builder.add(sample, count);
    if (stack >= profile.stacks.size()) fail("ProfileBuilder returned a stack out of range");
    if (timeline) {
      for (uint64_t k = 0; k < count; ++k) {
        seconds += profile.interval_seconds;
        profile.timeline.push_back({seconds, stack});
      }
    }
  }
  profile.duration_seconds = seconds;
  uint64_t total = profile.total_samples();

  std::string collapsed = pyflame::core::write_collapsed(profile);
  uint64_t sum = check_collapsed(collapsed);
  if (sum > total) fail("collapsed: more samples than the profile holds");
  bool every_stack_has_frames = true;
  for (const auto& s : profile.stacks) every_stack_has_frames &= !s.frames.empty();
  if (every_stack_has_frames && sum != total) fail("collapsed: the counts do not add up to the samples");

  std::string flamechart = pyflame::core::write_flamechart(profile);
  if (!flamechart.empty() && flamechart.back() != '\n') fail("flamechart: last line has no newline");

  if (auto bad = pyflame::fuzz::check_xml(pyflame::core::write_flamegraph_svg(profile)); !bad.empty())
    fail("flamegraph SVG is not well-formed XML", bad);
  if (auto bad = pyflame::fuzz::check_json(pyflame::core::write_speedscope(profile)); !bad.empty())
    fail("speedscope is not one JSON document", bad);
  if (auto bad = pyflame::fuzz::check_gzip_protobuf(pyflame::core::write_pprof(profile)); !bad.empty())
    fail("pprof is not whole", bad);
  return 0;
}
