// SPDX-License-Identifier: Apache-2.0
// Fuzz target: every line-table decoder (versions/walker/line_table.h).
//
// Input: format selector, first line and byte offset, then the table bytes.
// Checked beyond "no crash": the decoders are documented to answer
// co_firstlineno for a negative offset without reading the table, and a
// co_lnotab's unsigned lines never go below the first line.
#include <cstddef>
#include <cstdint>
#include <span>

#include "test/fuzz/fuzz_input.h"
#include "versions/walker/line_table.h"

using pyflame::line_table::Format;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pyflame::fuzz::FuzzInput in(data, size);
  auto format = static_cast<Format>(1 + in.take<uint8_t>() % 4);
  int first_line = in.take<int32_t>();
  int offset = in.take<int32_t>();
  auto rest = in.rest();
  std::span<const std::byte> table(reinterpret_cast<const std::byte*>(rest.data()), rest.size());

  auto line = pyflame::line_table::line_for_offset(format, table, first_line, offset);
  if (offset < 0 && line != first_line)
    pyflame::fuzz::fail("a negative offset must give the first line");
  if (format == PYFLAME_LNOTAB_UNSIGNED && line && *line < first_line)
    pyflame::fuzz::fail("an unsigned lnotab went below the first line");

  // The same table under every format and a spread of offsets: each decoder
  // sees every byte pattern the fuzzer finds for any of them.
  for (int f = 0; f < 4; ++f)
    for (int probe : {0, 1, 2, offset / 2, offset & 0xffff, static_cast<int>(rest.size()) * 2})
      (void)pyflame::line_table::line_for_offset(static_cast<Format>(1 + f), table, first_line, probe);
  return 0;
}
