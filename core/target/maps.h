// SPDX-License-Identifier: Apache-2.0
// /proc/PID/maps: which files the target has mapped, and where.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pyflame::core {

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;
  uint64_t offset = 0;  // file offset of `start`
  uint64_t inode = 0;
  // As the kernel names it to the reader (here: the profiler), relative to
  // the mount namespace the file was mapped in: not necessarily a path the
  // target sees, nor one we can open. May end in " (deleted)".
  std::string path;
  uint32_t dev_major = 0;  // device of the file (last: aggregate initialisers stay valid)
  uint32_t dev_minor = 0;
};

// Parses the text of /proc/PID/maps. Malformed lines are skipped, never
// trusted: the parser must survive any input.
std::vector<Mapping> parse_maps(std::string_view text);

// Removes the kernel's " (deleted)" suffix of a mapping path.
std::string_view strip_deleted(std::string_view path);

}  // namespace pyflame::core
