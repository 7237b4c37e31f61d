// SPDX-License-Identifier: Apache-2.0
// Line-number decoders; see line_table.h for the API and the format history.
//
// Each decoder is a forward scan that mirrors the CPython function named in
// its comment, with three differences that come from not trusting the bytes:
//   - every byte is read through a bounds check, and each loop advances a
//     cursor over the span, so no loop runs past its end or runs forever;
//   - the running line is kept in 64 bits and must stay within int: CPython
//     keeps it in an int, so a table that leaves that range was not written
//     by CPython (and would be undefined behaviour there);
//   - where CPython only assert()s that the table is well formed, we check
//     and answer std::nullopt.

#include "versions/walker/line_table.h"

#include <climits>
#include <cstdint>

namespace pyflame::line_table {
namespace {

// sizeof(_Py_CODEUNIT): an opcode byte and an argument byte, since 3.6.
constexpr int64_t kCodeUnitSize = 2;

// 3.10's "this range has no line number" marker (Objects/lnotab_notes.txt of
// 3.10, "(signed char)-128").
constexpr int kNoLine310 = -128;

// The location-table entry kinds of 3.11+ (_PyCodeLocationInfoKind in
// Include/cpython/code.h, Include/internal/pycore_code.h since 3.13).
constexpr int kShortFormLast = 9;  // codes 0-9: short form, same line
constexpr int kOneLine0 = 10;      // codes 10-12: one-line form, line delta code - 10
constexpr int kOneLine2 = 12;
constexpr int kNoColumns = 13;  // svarint line delta
constexpr int kLong = 14;       // svarint line delta, varint end line, varint columns
constexpr int kNone = 15;       // no location

constexpr uint8_t kEntryStartBit = 0x80;  // set on the first byte of each entry only
constexpr uint8_t kVarintMoreBit = 0x40;  // varint chunk is followed by another
constexpr uint8_t kVarintChunkMask = 0x3f;

// CPython decodes varints into an unsigned int; six 6-bit chunks are the most
// that can contribute to 32 bits. A longer varint would shift past the width
// of the type (undefined behaviour in CPython's scan_varint), so it is not one
// CPython wrote.
constexpr int kMaxVarintChunks = 6;

uint8_t byte_at(std::span<const std::byte> bytes, size_t i) {
  return std::to_integer<uint8_t>(bytes[i]);
}

// A byte as C's (signed char), without relying on a narrowing conversion.
int as_signed(uint8_t b) { return b < 0x80 ? static_cast<int>(b) : static_cast<int>(b) - 0x100; }

bool fits_int(int64_t v) { return v >= INT_MIN && v <= INT_MAX; }

// Reads a location-table varint (Objects/locations.md: 6-bit chunks, least
// significant first, bit 6 set on every chunk but the last) from
// `body[*pos..]`, advancing *pos. Mirrors read_varint() in
// Objects/codeobject.c, but fails instead of reading past the entry.
std::optional<uint32_t> read_varint(std::span<const std::byte> body, size_t* pos) {
  uint64_t value = 0;
  for (int chunk = 0; chunk < kMaxVarintChunks; ++chunk) {
    if (*pos >= body.size()) {
      return std::nullopt;  // truncated: the entry ends inside the varint
    }
    const uint8_t b = byte_at(body, (*pos)++);
    value |= static_cast<uint64_t>(b & kVarintChunkMask) << (6 * chunk);
    if ((b & kVarintMoreBit) == 0) {
      if (value > UINT32_MAX) {
        return std::nullopt;
      }
      return static_cast<uint32_t>(value);
    }
  }
  return std::nullopt;  // too many chunks for CPython's unsigned int
}

// Signed varint: the sign in the low bit, the magnitude above it
// (read_signed_varint() in Objects/codeobject.c).
std::optional<int64_t> read_signed_varint(std::span<const std::byte> body, size_t* pos) {
  const std::optional<uint32_t> u = read_varint(body, pos);
  if (!u) {
    return std::nullopt;
  }
  const int64_t magnitude = static_cast<int64_t>(*u >> 1);
  return (*u & 1) ? -magnitude : magnitude;
}

// The line delta of one 3.11+ entry, whose first byte carries `code` and
// whose following bytes are `body`. Mirrors get_line_delta() in
// Objects/codeobject.c, and also checks that the body has exactly the bytes
// its kind has (Objects/locations.md; the writer is
// write_location_info_entry() in Python/compile.c, Python/assemble.c since
// 3.12). CPython's line lookup skips the column bytes without reading them,
// but its co_positions() reader does read them, and a table whose entries
// have the wrong size is not one CPython wrote.
std::optional<int64_t> entry_line_delta(int code, std::span<const std::byte> body) {
  if (code <= kShortFormLast) {
    // One byte: low bits of the start column, end column - start column.
    return body.size() == 1 ? std::optional<int64_t>(0) : std::nullopt;
  }
  if (code <= kOneLine2) {
    // Two bytes: start column, end column.
    return body.size() == 2 ? std::optional<int64_t>(code - kOneLine0) : std::nullopt;
  }
  if (code == kNone) {
    return body.empty() ? std::optional<int64_t>(0) : std::nullopt;
  }
  // What is left is kNoColumns and kLong: both start with the line delta.
  static_assert(kOneLine2 + 1 == kNoColumns && kNoColumns + 1 == kLong && kLong + 1 == kNone);
  size_t pos = 0;
  const std::optional<int64_t> delta = read_signed_varint(body, &pos);
  if (!delta) {
    return std::nullopt;
  }
  if (code == kLong) {
    // End line delta, start column + 1, end column + 1: validated, not used.
    for (int i = 0; i < 3; ++i) {
      if (!read_varint(body, &pos)) {
        return std::nullopt;
      }
    }
  }
  // kNoColumns has nothing after its line delta.
  if (pos != body.size()) {
    return std::nullopt;
  }
  return delta;
}

}  // namespace

// Mirrors PyCode_Addr2Line of CPython 2.7 - 3.9 (Objects/codeobject.c):
//
//   while (--size >= 0) {           // size = len(co_lnotab) / 2
//       addr += *p++;
//       if (addr > addrq) break;
//       line += *p++;               // (signed char)*p from 3.6 on
//   }
//
// Objects/lnotab_notes.txt explains the pairs: an address increment, then a
// line increment that applies from that address on. Increments too large for
// a byte are split over several pairs ((255, 0) for addresses; (0, 255) in
// 2.7-3.5, (0, 127) / (0, -128) in 3.6-3.9 for lines), which this loop needs
// no special case for.
std::optional<int> lnotab_line(std::span<const std::byte> lnotab, int first_line,
                               int byte_offset, LnotabKind kind) noexcept {
  if (byte_offset < 0) {
    return first_line;
  }
  if (lnotab.size() % 2 != 0) {
    // CPython ignores a trailing odd byte, but never writes one: the copy is
    // torn or is not an lnotab.
    return std::nullopt;
  }
  int64_t line = first_line;
  int64_t addr = 0;
  for (size_t i = 0; i + 1 < lnotab.size(); i += 2) {
    addr += byte_at(lnotab, i);
    if (addr > byte_offset) {
      break;
    }
    const uint8_t increment = byte_at(lnotab, i + 1);
    line += kind == LnotabKind::kSigned ? as_signed(increment) : increment;
    if (!fits_int(line)) {
      return std::nullopt;
    }
  }
  return static_cast<int>(line);
}

// Mirrors 3.10's PyCode_Addr2Line, _PyCode_CheckLineNumber, advance() and
// PyLineTable_NextAddressRange (Objects/codeobject.c of 3.10). The table is
// (byte-offset delta as unsigned char, line delta as signed char) pairs; each
// pair covers [end, end + delta) of the code. A line delta of -128 means "no
// line" and leaves the running line untouched. Zero-width pairs (used to
// split line jumps beyond +-127) only move the running line: CPython's
// NextAddressRange skips them, and here they can never contain the offset.
// Past the last pair the code is not covered: CPython returns -1.
std::optional<int> linetable_310_line(std::span<const std::byte> table, int first_line,
                                      int byte_offset) noexcept {
  if (byte_offset < 0) {
    return first_line;
  }
  if (table.size() % 2 != 0) {
    // 3.10 reads both bytes of a pair; a half pair is not a 3.10 table.
    return std::nullopt;
  }
  int64_t line = first_line;
  int64_t end = 0;
  for (size_t i = 0; i + 1 < table.size(); i += 2) {
    const int64_t start = end;
    end += byte_at(table, i);
    const int line_delta = as_signed(byte_at(table, i + 1));
    if (line_delta != kNoLine310) {
      line += line_delta;
      if (!fits_int(line)) {
        return std::nullopt;
      }
    }
    if (start <= byte_offset && byte_offset < end) {
      if (line_delta == kNoLine310) {
        return std::nullopt;
      }
      return static_cast<int>(line);
    }
  }
  return std::nullopt;
}

// Mirrors 3.11+'s PyCode_Addr2Line, _PyCode_CheckLineNumber, advance() and
// get_line_delta() (Objects/codeobject.c). Each entry starts with a byte with
// bit 7 set: bits 3-6 are the kind (code), bits 0-2 the number of code units
// covered minus one; the bytes after it, up to the next byte with bit 7 set,
// hold the line delta and columns (Objects/locations.md). Entries are
// contiguous from offset 0 and cover exactly the code; past the last one
// CPython returns -1.
//
// Format check for 3.12 - 3.15: the 3.14 sources (Objects/codeobject.c with
// co_tlbc and LOAD_COMMON_CONSTANT) and main (3.15; InternalDocs/
// code_objects.md, where locations.md was inlined) have the same entry kinds,
// varint encodings, code-unit size and advance()/get_line_delta() as 3.11.
// The only runtime difference is that 3.12+ PyCode_Addr2Line answers from the
// sys.monitoring line array when line events are instrumented; that array is
// built from this same table, so the table stays authoritative.
std::optional<int> location_table_line(std::span<const std::byte> table, int first_line,
                                       int byte_offset) noexcept {
  if (byte_offset < 0) {
    return first_line;
  }
  int64_t line = first_line;
  int64_t end = 0;
  size_t i = 0;
  while (i < table.size()) {
    const uint8_t first = byte_at(table, i);
    if ((first & kEntryStartBit) == 0) {
      // Only reachable for the first byte: later entries start where the
      // previous body ended, at a byte with bit 7 set. CPython asserts this.
      return std::nullopt;
    }
    size_t next = i + 1;
    while (next < table.size() && (byte_at(table, next) & kEntryStartBit) == 0) {
      ++next;
    }
    const int code = (first >> 3) & 0x0f;
    const std::optional<int64_t> delta = entry_line_delta(code, table.subspan(i + 1, next - i - 1));
    if (!delta) {
      return std::nullopt;
    }
    line += *delta;
    if (!fits_int(line)) {
      return std::nullopt;
    }
    // Entries are contiguous and non-empty, so the offset (>= 0, and not in
    // any earlier entry) is at or after this entry's start.
    end += ((first & 0x07) + 1) * kCodeUnitSize;
    if (byte_offset < end) {
      if (code == kNone) {
        return std::nullopt;
      }
      return static_cast<int>(line);
    }
    i = next;
  }
  return std::nullopt;
}

std::optional<int> line_for_offset(Format format, std::span<const std::byte> table,
                                   int first_line, int byte_offset) noexcept {
  switch (format) {
    case PYFLAME_LNOTAB_UNSIGNED:
      return lnotab_line(table, first_line, byte_offset, LnotabKind::kUnsigned);
    case PYFLAME_LNOTAB_SIGNED:
      return lnotab_line(table, first_line, byte_offset, LnotabKind::kSigned);
    case PYFLAME_LINETABLE_310:
      return linetable_310_line(table, first_line, byte_offset);
    case PYFLAME_LOCATION_TABLE:
      return location_table_line(table, first_line, byte_offset);
  }
  return std::nullopt;
}

}  // namespace pyflame::line_table
