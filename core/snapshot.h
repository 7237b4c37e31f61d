// One sample of every Python thread of a target: what the version module
// produces and the writers consume.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pyflame::core {

struct Frame {
  std::string function;                // co_name, or "<unknown>" if unverifiable
  std::optional<std::string> qualname; // co_qualname where the version has it
  std::string filename;
  std::optional<int> line;

  bool operator==(const Frame&) const = default;
};

struct ThreadSample {
  uint64_t thread_id = 0;               // Python's ident (pthread_t)
  std::optional<int64_t> native_id;     // Linux TID
  std::optional<std::string> name;      // /proc/PID/task/TID/comm
  std::optional<bool> holds_gil;
  std::optional<bool> idle;
  std::vector<Frame> frames;            // innermost first
  bool truncated = false;               // the walk hit a bound or a bad frame
};

struct Snapshot {
  int pid = 0;
  std::string python_version;
  std::vector<ThreadSample> threads;
};

}  // namespace pyflame::core
