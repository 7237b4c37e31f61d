// SPDX-License-Identifier: Apache-2.0
// Fuzz target: core::ElfFile over arbitrary file contents.
//
// ElfFile opens a path (the profiler reads the target's files through
// /proc/PID/root), so each input is written to one memfd and opened as
// /proc/self/fd/N. A file that is not a usable ELF must be refused with
// core::Error; one that is accepted must answer every query without
// touching memory outside the file.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/target/elf.h"
#include "core/errors.h"
#include "core/target/maps.h"
#include "test/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = pyflame::fuzz::input_as_file(data, size);
  try {
    pyflame::core::ElfFile elf(path);
    for (const char* name : {"_PyRuntime", "Py_GetVersion", "_PyThreadState_Current", "interp_head",
                             "PyCode_Type", "", "main"})
      (void)elf.symbol(name);
    size_t copied = 0;
    for (const auto& section : elf.sections()) {
      if (auto bytes = elf.section_bytes(section)) {
        if (bytes->size() != section.size) pyflame::fuzz::fail("section_bytes size", section.name);
        copied += bytes->size();
      }
    }
    if (copied > size * elf.sections().size()) pyflame::fuzz::fail("copied more than the file holds");
    std::vector<pyflame::core::Mapping> maps(2);
    maps[0] = {0x400000, 0x401000, true, false, false, 0, 1, path};
    maps[1] = {0x7f0000000000, 0x7f0000001000, true, false, true, 0x1000, 1, path + " (deleted)"};
    (void)elf.load_bias(maps, path);
    // pyflame-detect's view: no string of the dynamic section may come
    // from outside the file.
    const pyflame::core::ElfDynamic dyn = elf.dynamic();
    size_t text = 0;
    for (const std::string& s : dyn.needed) text += s.size();
    for (const std::string& s : dyn.run_path) text += s.size();
    if (text > size * (dyn.needed.size() + dyn.run_path.size()))
      pyflame::fuzz::fail("dynamic strings longer than the file");
  } catch (const pyflame::core::Error&) {
    // Refusing a malformed file is the right answer.
  }
  return 0;
}
