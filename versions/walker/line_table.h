// SPDX-License-Identifier: Apache-2.0
// Line-number decoders for every CPython code-object line table format.
//
// These are pure functions over bytes copied out of the target: they know no
// Python header and no struct layout, so the one walker uses them for every
// version and they can be unit-tested and fuzzed on their own. The bytes are
// untrusted (a torn read, a freed object, a hostile process): every decoder
// is bounds-checked, runs in time linear in the table size, never recurses
// and never overflows; a table CPython could not have written gives
// std::nullopt rather than a plausible-looking line.
//
// Which format a code object carries:
//
//   CPython      field          format                       decoder
//   2.7 - 3.5    co_lnotab      (addr, line) unsigned pairs  lnotab_line(kUnsigned)
//   3.6 - 3.9    co_lnotab      line deltas are signed       lnotab_line(kSigned)
//   3.10         co_linetable   PEP 626 (delta, line) pairs  linetable_310_line
//   3.11 - 3.15  co_linetable   location table               location_table_line
//
// Offsets are always in bytes from the start of the code: 2.7-3.9 f_lasti is
// already a byte offset; 3.10's f_lasti counts code units (multiply by 2, as
// PyFrame_GetLineNumber does); for 3.11+ take the instruction pointer minus
// the start of co_code_adaptive, in bytes.
//
// A negative offset means "the frame has not executed an instruction yet"
// (f_lasti == -1 before 3.10, prev_instr one code unit before the code in
// 3.11+). Every CPython's PyCode_Addr2Line answers co_firstlineno there, and
// so do these functions, without reading the table.

#ifndef PYFLAME_VERSIONS_WALKER_LINE_TABLE_H
#define PYFLAME_VERSIONS_WALKER_LINE_TABLE_H

#include <cstddef>
#include <optional>
#include <span>

#include "versions/layout.h"

namespace pyflame::line_table {

// How co_lnotab's line increments are read (Objects/lnotab_notes.txt).
enum class LnotabKind {
  kUnsigned,  // CPython 2.7 - 3.5: lines only ever increase.
  kSigned,    // CPython 3.6 - 3.9: increments are signed bytes (-128..127).
};

// Line for `byte_offset` from a co_lnotab (CPython 2.7 - 3.9).
//
// Mirrors PyCode_Addr2Line of those versions (Objects/codeobject.c): the line
// of the last entry whose address is <= byte_offset. The lnotab does not
// record where the code ends, so an offset past the last entry gets the last
// line, as in CPython; the caller must check the offset against the length
// of co_code. std::nullopt for a table of odd length (never written by
// CPython) or a line outside int range.
std::optional<int> lnotab_line(std::span<const std::byte> lnotab, int first_line,
                               int byte_offset, LnotabKind kind) noexcept;

// Line for `byte_offset` from a CPython 3.10 co_linetable (PEP 626,
// Objects/lnotab_notes.txt of 3.10).
//
// Mirrors 3.10's PyCode_Addr2Line / _PyCode_CheckLineNumber. std::nullopt
// when the instruction has no line (a line delta of -128, for which CPython
// returns -1), when the offset is past the code the table covers, or when the
// table is malformed.
std::optional<int> linetable_310_line(std::span<const std::byte> table, int first_line,
                                      int byte_offset) noexcept;

// Line for `byte_offset` from a CPython 3.11+ co_linetable (the location
// table of Objects/locations.md, moved to InternalDocs/code_objects.md in
// 3.14). The format is unchanged from 3.11 up to 3.15; see line_table.cc.
//
// Mirrors PyCode_Addr2Line / _PyCode_CheckLineNumber of 3.11+. std::nullopt
// for an instruction with no location (code 15, for which CPython returns
// -1), an offset past the code the table covers, or a malformed table.
std::optional<int> location_table_line(std::span<const std::byte> table, int first_line,
                                       int byte_offset) noexcept;

// All four formats behind one switch, for callers that carry the format as
// data: the walker (layout_*.cc), compiled once for every version, takes
// it from the layout table's line_table_model, and the unit tests and the
// fuzzer from their inputs. One enum for both: the layout table's.
using Format = pyflame_line_table_model;

std::optional<int> line_for_offset(Format format, std::span<const std::byte> table,
                                   int first_line, int byte_offset) noexcept;

}  // namespace pyflame::line_table

#endif  // PYFLAME_VERSIONS_WALKER_LINE_TABLE_H
