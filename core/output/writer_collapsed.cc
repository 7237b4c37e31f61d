// SPDX-License-Identifier: Apache-2.0
#include <fmt/format.h>

#include <algorithm>

#include "core/output/writers.h"

namespace pyflame::core {
namespace {

// flamegraph.pl splits a line at its last space and frames at ';': neither
// may appear inside a label.
void append_label(std::string& out, const std::string& label) {
  for (char c : label) out += (c == ';' || c == '\n' || c == '\r') ? ':' : c;
}

void append_stack(std::string& out, const Profile& profile, const ProfileStack& stack) {
  bool first = true;
  for (const std::string& root : root_labels(profile, profile.threads[stack.thread])) {
    if (!first) out += ';';
    append_label(out, root);
    first = false;
  }
  for (uint32_t f : stack.frames) {
    if (!first) out += ';';
    append_label(out, frame_label(profile.frames[f]));
    first = false;
  }
  if (first) out += "<no Python frames>";  // an idle thread with --idle
}

}  // namespace

std::string write_collapsed(const Profile& profile) {
  // Sorted lines: the same samples always give the same file.
  std::vector<std::pair<std::string, uint64_t>> lines;
  lines.reserve(profile.stacks.size());
  for (const ProfileStack& stack : profile.stacks) {
    if (stack.count == 0) continue;
    std::string line;
    append_stack(line, profile, stack);
    lines.emplace_back(std::move(line), stack.count);
  }
  std::sort(lines.begin(), lines.end());
  // Different threads can give the same line without --threads: merge them.
  std::string out;
  for (size_t i = 0; i < lines.size();) {
    uint64_t count = 0;
    size_t j = i;
    for (; j < lines.size() && lines[j].first == lines[i].first; ++j) count += lines[j].second;
    out += lines[i].first;
    out += fmt::format(" {}\n", count);
    i = j;
  }
  return out;
}

std::string write_flamechart(const Profile& profile) {
  std::string out;
  for (const TimedSample& sample : profile.timeline) {
    out += fmt::format("{:.6f} ", sample.seconds);
    append_stack(out, profile, profile.stacks[sample.stack]);
    out += '\n';
  }
  return out;
}

std::optional<OutputFormat> parse_format(std::string_view name) {
  if (name == "collapsed" || name == "folded") return OutputFormat::kCollapsed;
  if (name == "flamegraph" || name == "svg") return OutputFormat::kFlamegraph;
  if (name == "speedscope") return OutputFormat::kSpeedscope;
  if (name == "pprof") return OutputFormat::kPprof;
  if (name == "flamechart") return OutputFormat::kFlamechart;
  return std::nullopt;
}

std::optional<OutputFormat> format_for_path(std::string_view path) {
  auto ends_with = [&](std::string_view suffix) { return path.ends_with(suffix); };
  if (ends_with(".svg")) return OutputFormat::kFlamegraph;
  if (ends_with(".speedscope.json") || ends_with(".speedscope") || ends_with(".json"))
    return OutputFormat::kSpeedscope;
  if (ends_with(".pb.gz") || ends_with(".pprof") || ends_with(".pb")) return OutputFormat::kPprof;
  if (ends_with(".txt") || ends_with(".folded") || ends_with(".collapsed"))
    return OutputFormat::kCollapsed;
  return std::nullopt;
}

std::string_view format_name(OutputFormat format) {
  switch (format) {
    case OutputFormat::kCollapsed: return "collapsed";
    case OutputFormat::kFlamegraph: return "flamegraph";
    case OutputFormat::kSpeedscope: return "speedscope";
    case OutputFormat::kPprof: return "pprof";
    case OutputFormat::kFlamechart: return "flamechart";
  }
  return "collapsed";
}

std::string write_profile(OutputFormat format, const Profile& profile) {
  switch (format) {
    case OutputFormat::kCollapsed: return write_collapsed(profile);
    case OutputFormat::kFlamegraph: return write_flamegraph_svg(profile);
    case OutputFormat::kSpeedscope: return write_speedscope(profile);
    case OutputFormat::kPprof: return write_pprof(profile);
    case OutputFormat::kFlamechart: return write_flamechart(profile);
  }
  return write_collapsed(profile);
}

}  // namespace pyflame::core
