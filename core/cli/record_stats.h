// SPDX-License-Identifier: Apache-2.0
// What a recording counts, and how it reports it: the live status line and
// the --stats-json document.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/target/process.h"
#include "core/output/profile.h"
#include "core/sampling/sampler.h"

namespace pyflame::core {

struct ProcessSetCounts;

struct Counters {
  uint64_t ticks = 0;    // samples taken (one per interval, all threads)
  uint64_t errors = 0;   // ticks that produced no usable sample
  uint64_t late = 0;     // ticks that started after their time
  uint64_t thread_samples = 0;
  uint64_t torn = 0;     // thread samples dropped: their stack moved under every read
  uint64_t retries = 0;  // walks beyond the first, to get a consistent stack
};

// A torn share above which the summary warns of skewed shares.
inline constexpr double kTornShareWarning = 0.05;

// Of the thread samples a stack was read for, the share dropped as torn.
double torn_share(const Counters& c);

// Sample costs in log-spaced buckets (2% wide): median and p99 without
// keeping one number per sample, so memory stays flat however long we run.
class CostHistogram {
 public:
  void add(double micros) {
    double x = std::max(micros, kMinMicros);
    auto i = static_cast<size_t>(std::log(x / kMinMicros) / std::log(kGrowth));
    ++buckets_[std::min(i, buckets_.size() - 1)];
    ++count_;
  }
  double percentile(double p) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= std::max<uint64_t>(rank, 1)) return kMinMicros * std::pow(kGrowth, i + 0.5);
    }
    return kMinMicros * std::pow(kGrowth, buckets_.size());
  }

 private:
  static constexpr double kMinMicros = 0.01;
  static constexpr double kGrowth = 1.02;
  std::array<uint64_t, 1100> buckets_{};  // up to about 30 s
  uint64_t count_ = 0;
};

// The live line on a terminal (stderr), at most four times a second.
class StatusLine {
 public:
  explicit StatusLine(bool enabled);
  void update(const Counters& c, double elapsed);
  void clear();

 private:
  bool enabled_;
  bool shown_ = false;
  double last_ = -1;
};

// The --stats-json document.
// `native`: --native's counts, `tree`: --subprocesses', written when given.
std::string stats_to_json(const Counters& c, double elapsed, double attach_seconds,
                          const CostHistogram& cost, const Profile& profile,
                          const Process::ReadStats& reads,
                          const Sampler::NativeCounts* native = nullptr,
                          const ProcessSetCounts* tree = nullptr);

}  // namespace pyflame::core
