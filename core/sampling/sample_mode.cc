// SPDX-License-Identifier: Apache-2.0
#include "core/sampling/sample_mode.h"

namespace pyflame::core {

std::optional<SampleMode> parse_sample_mode(std::string_view name) {
  if (name == "wall") return SampleMode::kWall;
  if (name == "cpu") return SampleMode::kCpu;
  if (name == "gil") return SampleMode::kGil;
  return std::nullopt;
}

const char* sample_mode_name(SampleMode mode) {
  switch (mode) {
    case SampleMode::kWall: return "wall";
    case SampleMode::kCpu: return "cpu";
    case SampleMode::kGil: return "gil";
  }
  return "?";
}

bool mode_keeps(SampleMode mode, const ThreadSample& thread) {
  switch (mode) {
    case SampleMode::kWall:
      return true;
    case SampleMode::kCpu:
      return !thread.idle.value_or(false) && (thread.torn || !thread.frames.empty());
    case SampleMode::kGil:
      return thread.holds_gil.value_or(false) && (thread.torn || !thread.frames.empty());
  }
  return false;
}

}  // namespace pyflame::core
