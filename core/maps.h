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
  std::string path;     // as the target sees it; may end in " (deleted)"
};

// Parses the text of /proc/PID/maps. Malformed lines are skipped, never
// trusted: the parser must survive any input.
std::vector<Mapping> parse_maps(std::string_view text);

// Removes the kernel's " (deleted)" suffix of a mapping path.
std::string_view strip_deleted(std::string_view path);

}  // namespace pyflame::core
