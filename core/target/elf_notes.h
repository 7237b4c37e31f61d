// SPDX-License-Identifier: Apache-2.0
// The notes of an ELF note segment or section (build-id, a core's threads
// and files): one bounds-checked walk for every reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pyflame::core {

struct ElfNote {
  uint32_t type = 0;
  std::string_view name;  // without its terminating NUL
  std::string_view desc;
  size_t desc_offset = 0;  // where desc starts in the walked bytes
};

// Calls `visit(const ElfNote&)` for each whole note of `data` (4-byte
// aligned, as on x86-64), stopping at the first malformed one.
template <typename Visit>
void for_each_note(std::string_view data, Visit&& visit) {
  constexpr size_t kHeader = 12;  // namesz, descsz, type
  auto align4 = [](uint64_t n) { return (n + 3) & ~uint64_t{3}; };
  size_t at = 0;
  while (data.size() - at >= kHeader) {
    uint32_t head[3];
    for (int i = 0; i < 3; ++i) {
      uint32_t v = 0;
      for (int b = 3; b >= 0; --b) v = (v << 8) | static_cast<unsigned char>(data[at + 4 * i + b]);
      head[i] = v;
    }
    const uint64_t name_at = at + kHeader;
    const uint64_t desc_at = name_at + align4(head[0]);
    if (desc_at > data.size() || head[1] > data.size() - desc_at) return;
    ElfNote note;
    note.type = head[2];
    note.name = data.substr(name_at, head[0]);
    if (!note.name.empty() && note.name.back() == '\0') note.name.remove_suffix(1);
    note.desc = data.substr(desc_at, head[1]);
    note.desc_offset = desc_at;
    visit(note);
    const uint64_t next = desc_at + align4(head[1]);
    if (next > data.size()) return;
    at = next;
  }
}

}  // namespace pyflame::core
