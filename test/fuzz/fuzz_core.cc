// SPDX-License-Identifier: Apache-2.0
// Fuzz target: core::CoreFile over arbitrary file contents.
//
// A core file comes from the user's disk and the target's memory: one that
// is not a whole x86-64 core must be refused with core::Error; one that is
// accepted must answer every query (its maps, threads and any read) from
// within the file and the files it names, never past them. Each input is
// written to one memfd and opened as /proc/self/fd/N.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/target/core_file.h"
#include "test/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = pyflame::fuzz::input_as_file(data, size);
  try {
    pyflame::core::CoreFile core(path, {});
    (void)core.describe();
    if (core.threads().empty()) pyflame::fuzz::fail("a core accepted without a thread");
    std::vector<std::byte> buf(4096);
    for (const pyflame::core::Mapping& m : core.maps()) {
      if (m.end <= m.start) pyflame::fuzz::fail("an empty or inverted mapping");
      for (uint64_t at : {m.start, m.end - 1, m.start + (m.end - m.start) / 2}) {
        const size_t got = core.read_prefix(pyflame::core::RemoteAddr(at), buf);
        if (got > buf.size()) pyflame::fuzz::fail("read_prefix beyond its buffer");
      }
    }
    (void)core.read(pyflame::core::RemoteAddr(UINT64_MAX - 8), buf);
    (void)core.unverified_files();
  } catch (const pyflame::core::Error&) {
    // Refusing a malformed core is the right answer.
  }
  return 0;
}
