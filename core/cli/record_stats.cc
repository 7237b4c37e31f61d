// SPDX-License-Identifier: Apache-2.0
#include "core/cli/record_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/cli/process_set.h"
#include "core/errors.h"

namespace pyflame::core {
namespace {

// This process's peak RSS. Not getrusage's ru_maxrss: Linux carries that
// across fork and exec, so it can report the parent's peak.
long peak_rss_kb() {
  auto status = read_text_file("/proc/self/status");
  if (!status) return -1;
  auto at = status->find("VmHWM:");
  return at == std::string::npos ? -1 : std::strtol(status->c_str() + at + 6, nullptr, 10);
}

}  // namespace

// Of the thread samples a stack was read for, the share dropped as torn.
double torn_share(const Counters& c) {
  const uint64_t all = c.thread_samples + c.torn;
  return all ? static_cast<double>(c.torn) / static_cast<double>(all) : 0.0;
}

StatusLine::StatusLine(bool enabled) : enabled_(enabled && ::isatty(STDERR_FILENO)) {}

void StatusLine::update(const Counters& c, double elapsed) {
  if (!enabled_ || elapsed - last_ < 0.25) return;
  last_ = elapsed;
  std::string line = fmt::format(
      "\r\033[Kpyflame: {} samples, {:.0f}/s, {} errors, {} torn, {:.1f} s — Ctrl-C to stop", c.ticks,
      elapsed > 0 ? static_cast<double>(c.ticks) / elapsed : 0.0, c.errors, c.torn, elapsed);
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  shown_ = true;
}

void StatusLine::clear() {
  if (!shown_) return;
  ssize_t ignored = ::write(STDERR_FILENO, "\r\033[K", 4);
  (void)ignored;
}

std::string stats_to_json(const Counters& c, double elapsed, double attach_seconds,
                          const CostHistogram& cost, const Profile& profile,
                          const Process::ReadStats& reads, const Sampler::NativeCounts* native,
                          const ProcessSetCounts* tree) {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  std::string out = "{";
  out += fmt::format("\"samples\": {}, \"errors\": {}, \"late\": {}, \"thread_samples\": {}, ",
                     c.ticks, c.errors, c.late, c.thread_samples);
  out += fmt::format("\"torn\": {}, \"retries\": {}, \"torn_share\": {:.6f}, ", c.torn, c.retries,
                     torn_share(c));
  out += fmt::format("\"attach_seconds\": {:.6f}, ", attach_seconds);
  out += fmt::format("\"elapsed_seconds\": {:.6f}, \"achieved_rate\": {:.3f}, ", elapsed,
                     elapsed > 0 ? static_cast<double>(c.ticks) / elapsed : 0.0);
  out += fmt::format("\"requested_rate\": {:.3f}, ", 1.0 / profile.interval_seconds);
  out += fmt::format("\"sample_us_median\": {:.3f}, \"sample_us_p99\": {:.3f}, ",
                     cost.percentile(0.5), cost.percentile(0.99));
  out += fmt::format("\"cpu_user_seconds\": {:.6f}, \"cpu_system_seconds\": {:.6f}, ",
                     secs(usage.ru_utime), secs(usage.ru_stime));
  // Children reaped so far: the sibling pyflameX.Y of --subprocesses (and
  // a launched command that has ended).
  rusage children{};
  ::getrusage(RUSAGE_CHILDREN, &children);
  out += fmt::format("\"cpu_children_seconds\": {:.6f}, ",
                     secs(children.ru_utime) + secs(children.ru_stime));
  out += fmt::format("\"max_rss_kb\": {}, \"threads\": {}, \"distinct_stacks\": {}, \"distinct_frames\": {}",
                     peak_rss_kb(), profile.threads.size(), profile.stacks.size(), profile.frames.size());
  // The memory reads behind the samples; the benchmark times the last
  // call's ranges alone to split kernel cost from ours.
  const double per = c.ticks ? static_cast<double>(c.ticks) : 1.0;
  out += fmt::format(", \"read_calls_per_sample\": {:.3f}, \"read_ranges_per_sample\": {:.3f}, "
                     "\"read_bytes_per_sample\": {:.1f}, \"last_read_sizes\": [{}]",
                     static_cast<double>(reads.calls) / per, static_cast<double>(reads.ranges) / per,
                     static_cast<double>(reads.bytes) / per, fmt::join(reads.last_call_sizes, ", "));
  if (native)
    out += fmt::format(", \"native_merged\": {}, \"native_cut_short\": {}, \"native_not_merged\": {}",
                       native->merged, native->cut_short, native->mismatched);
  if (tree)
    out += fmt::format(", \"processes\": {{\"profiled\": {}, \"read_here\": {}, \"streamed\": {}, "
                       "\"not_python\": {}, \"no_binary\": {}, \"unreadable\": {}, \"execed_away\": {}, "
                       "\"child_samples\": {}, \"child_errors\": {}, \"over_limit\": {}}}",
                       tree->sampled_here + tree->streamed, tree->sampled_here, tree->streamed,
                       tree->not_python, tree->no_binary, tree->unreadable, tree->execed_away,
                       tree->child_ticks, tree->child_errors, tree->over_limit);
  out += "}\n";
  return out;
}

}  // namespace pyflame::core
