// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the /proc/PID/maps parser (core/maps.h) over arbitrary text.
// Whatever it accepts must be a mapping the rest of core can use safely.
#include <cstdint>
#include <string_view>

#include "core/target/maps.h"
#include "test/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto maps = pyflame::core::parse_maps(text);
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  if (maps.size() > lines + 1) pyflame::fuzz::fail("more mappings than lines");
  for (const auto& m : maps) {
    if (m.end < m.start) pyflame::fuzz::fail("mapping ends before it starts", m.path);
    if (m.path.find('\n') != std::string::npos) pyflame::fuzz::fail("a path spans lines", m.path);
    auto stripped = pyflame::core::strip_deleted(m.path);
    if (stripped.size() > m.path.size()) pyflame::fuzz::fail("strip_deleted grew the path", m.path);
  }
  return 0;
}
