// SPDX-License-Identifier: Apache-2.0
// The speedscope file format: one "sampled" profile per thread over a shared
// frame table (https://www.speedscope.app/file-format-schema.json; the schema
// ships in the speedscope npm package, and test/browser validates against it).
#include <fmt/format.h>

#include <string>
#include <vector>

#include "core/output/json.h"
#include "core/output/writers.h"

namespace pyflame::core {
namespace {

// 12 significant digits: 3 * 0.01 prints as 0.03, not 0.030000000000000002,
// and a day of recording still keeps sub-microsecond resolution.
void append_seconds(std::string& out, double seconds) { out += fmt::format("{:.12g}", seconds); }

void append_frames(std::string& out, const Profile& profile) {
  out += "\"shared\":{\"frames\":[";
  for (size_t i = 0; i < profile.frames.size(); ++i) {
    const ProfileFrame& frame = profile.frames[i];
    out += i == 0 ? "\n" : ",\n";
    out += "{\"name\":";
    append_json_string(out, frame.native() ? frame_label(frame) : frame.function);
    out += ",\"file\":";
    append_json_string(out, frame.native() && frame.filename.empty() ? frame.library : frame.filename);
    // Line 0 means unknown; speedscope would print it as ":0".
    if (frame.line > 0) out += fmt::format(",\"line\":{}", frame.line);
    out += '}';
  }
  out += "]},\n";
}

// One thread's samples: stack indices and how many samples each run holds.
struct Run {
  uint32_t stack;
  uint64_t count;
};

// Without a timeline, one run per distinct stack in first-seen order;
// with one, the thread's samples in time order, consecutive repeats merged.
std::vector<std::vector<Run>> runs_by_thread(const Profile& profile) {
  std::vector<std::vector<Run>> runs(profile.threads.size());
  auto append = [&](uint32_t stack, uint64_t count) {
    std::vector<Run>& thread = runs[profile.stacks[stack].thread];
    if (!thread.empty() && thread.back().stack == stack)
      thread.back().count += count;
    else
      thread.push_back({stack, count});
  };
  if (profile.timeline.empty()) {
    for (uint32_t i = 0; i < profile.stacks.size(); ++i)
      if (profile.stacks[i].count > 0) append(i, profile.stacks[i].count);
  } else {
    for (const TimedSample& sample : profile.timeline) append(sample.stack, 1);
  }
  return runs;
}

void append_thread(std::string& out, const Profile& profile, const ProfileThread& thread,
                   const std::vector<Run>& runs) {
  uint64_t total = 0;
  for (const Run& run : runs) total += run.count;
  out += "{\"type\":\"sampled\",\"name\":";
  // Under --subprocesses a thread is named with its process.
  std::string name = thread_label(thread);
  if (profile.process_roots && thread.process < profile.processes.size())
    name = process_label(profile.processes[thread.process]) + " / " + name;
  append_json_string(out, name);
  out += ",\"unit\":\"seconds\",\"startValue\":0,\"endValue\":";
  // Weights are count * interval, never running sums of doubles, so that
  // endValue and the weights agree however long the profile.
  append_seconds(out, static_cast<double>(total) * profile.interval_seconds);
  out += ",\n\"samples\":[";
  for (size_t i = 0; i < runs.size(); ++i) {
    if (i > 0) out += ',';
    out += '[';
    const std::vector<uint32_t>& frames = profile.stacks[runs[i].stack].frames;
    for (size_t k = 0; k < frames.size(); ++k) {
      if (k > 0) out += ',';
      out += std::to_string(frames[k]);
    }
    out += ']';
  }
  out += "],\n\"weights\":[";
  for (size_t i = 0; i < runs.size(); ++i) {
    if (i > 0) out += ',';
    append_seconds(out, static_cast<double>(runs[i].count) * profile.interval_seconds);
  }
  out += "]}";
}

}  // namespace

std::string write_speedscope(const Profile& profile) {
  std::string out = "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\n";
  append_frames(out, profile);
  // Threads are separate profiles, so --threads' root frames would only
  // repeat the profile name: the output is the same with or without it.
  out += "\"profiles\":[";
  std::vector<std::vector<Run>> runs = runs_by_thread(profile);
  for (size_t t = 0; t < profile.threads.size(); ++t) {
    out += t == 0 ? "\n" : ",\n";
    append_thread(out, profile, profile.threads[t], runs[t]);
  }
  out += "],\n\"name\":";
  append_json_string(out,
                     profile.target.empty() ? fmt::format("pid {}", profile.pid) : profile.target);
  // The index must name a profile; the schema makes it optional.
  if (!profile.threads.empty()) out += ",\"activeProfileIndex\":0";
  out += ",\"exporter\":\"pyflame " PYFLAME_VERSION "\"}\n";
  return out;
}

}  // namespace pyflame::core
