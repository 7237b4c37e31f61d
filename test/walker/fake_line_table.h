// SPDX-License-Identifier: Apache-2.0
// Line tables for the fake image's code objects, in each version's format.
// An encoder, written from the formats' own documentation
// (Objects/lnotab_notes.txt of 2.7 - 3.10; Objects/locations.md of 3.11 -
// 3.13, InternalDocs/code_objects.md since), not from the walker's decoders:
// the image test checks the decoders' answers against what was encoded here.
#pragma once

#include <string>
#include <vector>

#include "versions/layout.h"

namespace pyflame::test {

// From byte `offset` of the code on (up to the next entry's offset, or the
// end of the code), the instructions are on `line`.
struct FakeLine {
  int offset;
  int line;
};

// The line table of a code object of `code_bytes` bytes whose lines are
// `lines` (offsets increasing, the first one 0), with co_firstlineno
// `first_line`, in the format of `layout`'s version. Throws
// std::invalid_argument for lines the format cannot hold (a line going back
// in 2.7's lnotab, an offset inside a code unit).
std::string encode_line_table(const pyflame_layout& layout, const std::vector<FakeLine>& lines,
                              int first_line, int code_bytes);

}  // namespace pyflame::test
