// SPDX-License-Identifier: Apache-2.0
#include "test/walker/fake_line_table.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "versions/layout.h"

namespace pyflame::test {
namespace {

void put(std::string& out, int64_t byte) { out.push_back(static_cast<char>(byte & 0xff)); }

void check_lines(const std::vector<FakeLine>& lines, int code_bytes, int unit) {
  if (lines.empty() || lines.front().offset != 0)
    throw std::invalid_argument("a line table starts at offset 0");
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].offset % unit != 0) throw std::invalid_argument("offset not on a code unit");
    if (i > 0 && lines[i].offset <= lines[i - 1].offset)
      throw std::invalid_argument("offsets must increase");
  }
  if (lines.back().offset >= code_bytes || code_bytes % unit != 0)
    throw std::invalid_argument("the code ends inside or before the last entry");
}

// co_lnotab (2.7 - 3.9): (address increment, line increment) byte pairs;
// the line increment applies from the address reached. Increments too
// large for a byte take several pairs: (255, 0) for addresses, (0, 255)
// for lines in 2.7 - 3.5, (0, 127) / (0, -128) in 3.6 - 3.9, whose line
// increments are signed.
std::string lnotab(const std::vector<FakeLine>& lines, int first_line, bool is_signed) {
  std::string out;
  int64_t addr = 0, line = first_line;
  for (const FakeLine& e : lines) {
    int64_t daddr = e.offset - addr, dline = e.line - line;
    if (!is_signed && dline < 0) throw std::invalid_argument("2.7's lnotab lines only increase");
    for (; daddr > 255; daddr -= 255) put(out, 255), put(out, 0);
    const int64_t up = is_signed ? 127 : 255;
    for (; dline > up; dline -= up, daddr = 0) put(out, daddr), put(out, up);
    for (; dline < -128; dline += 128, daddr = 0) put(out, daddr), put(out, -128);
    if (daddr != 0 || dline != 0) put(out, daddr), put(out, dline);
    addr = e.offset;
    line = e.line;
  }
  return out;
}

// 3.10's co_linetable (PEP 626): (byte length, line delta) pairs, each
// covering the next `length` bytes of the code and moving the line first.
// Lengths above 254 take several pairs; line deltas beyond +-127 take
// zero-length pairs first (-128 would mean "no line").
std::string linetable_310(const std::vector<FakeLine>& lines, int first_line, int code_bytes) {
  std::string out;
  int64_t line = first_line;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int end = i + 1 < lines.size() ? lines[i + 1].offset : code_bytes;
    int64_t length = end - lines[i].offset, dline = lines[i].line - line;
    for (; dline > 127; dline -= 127) put(out, 0), put(out, 127);
    for (; dline < -127; dline += 127) put(out, 0), put(out, -127);
    for (; length > 254; length -= 254, dline = 0) put(out, 254), put(out, dline);
    put(out, length), put(out, dline);
    line = lines[i].line;
  }
  return out;
}

// Location-table varints: 6-bit chunks, least significant first, 0x40 on
// every chunk but the last; a signed one keeps its sign in bit 0.
void varint(std::string& out, uint64_t v) {
  for (; v >= 0x40; v >>= 6) put(out, 0x40 | (v & 0x3f));
  put(out, static_cast<int64_t>(v));
}
void signed_varint(std::string& out, int64_t v) {
  varint(out, v < 0 ? (static_cast<uint64_t>(-v) << 1) | 1 : static_cast<uint64_t>(v) << 1);
}

// 3.11+'s location table: entries of 1 - 8 code units, each a first byte
// (bit 7, then the kind in bits 3 - 6, then units - 1) and a body. The
// first entry of a line carries its line delta: the one-line form (kinds
// 10 - 12: delta kind - 10, then start and end columns) for 0 - 2, the long
// form (14: delta, end-line delta, start column + 1, end column + 1) going
// back, the no-column form (13: delta) otherwise. The entries after it on
// the same line are short forms (kind 0: one byte of columns).
std::string location_table(const std::vector<FakeLine>& lines, int first_line, int code_bytes,
                           int unit) {
  constexpr int kMaxUnits = 8;
  std::string out;
  int64_t line = first_line;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int end = i + 1 < lines.size() ? lines[i + 1].offset : code_bytes;
    int units = (end - lines[i].offset) / unit;
    const int64_t dline = lines[i].line - line;
    for (bool first = true; units > 0; first = false) {
      const int n = std::min(units, kMaxUnits);
      units -= n;
      auto entry = [&](int kind) { put(out, 0x80 | (kind << 3) | (n - 1)); };
      if (!first) {
        entry(0);
        put(out, (3 << 4) | 5);  // start column 3, end column 8
      } else if (dline >= 0 && dline <= 2) {
        entry(10 + static_cast<int>(dline));
        put(out, 4), put(out, 20);
      } else if (dline < 0) {
        entry(14);
        signed_varint(out, dline);
        varint(out, 0), varint(out, 1 + 4), varint(out, 1 + 90);
      } else {
        entry(13);
        signed_varint(out, dline);
      }
    }
    line = lines[i].line;
  }
  return out;
}

}  // namespace

std::string encode_line_table(const pyflame_layout& layout, const std::vector<FakeLine>& lines,
                              int first_line, int code_bytes) {
  // A code unit's bytes: 1 where f_lasti counts bytes (the lnotab
  // versions), sizeof(_Py_CODEUNIT) where it and the tables count units.
  const auto unit = static_cast<int>(layout.lasti_unit_bytes);
  check_lines(lines, code_bytes, unit);
  switch (layout.line_table_model) {
    case PYFLAME_LNOTAB_UNSIGNED:
    case PYFLAME_LNOTAB_SIGNED:
      return lnotab(lines, first_line, layout.line_table_model == PYFLAME_LNOTAB_SIGNED);
    case PYFLAME_LINETABLE_310: return linetable_310(lines, first_line, code_bytes);
    default: return location_table(lines, first_line, code_bytes, unit);
  }
}

}  // namespace pyflame::test
