// SPDX-License-Identifier: Apache-2.0
// What unwinder.cc (libdwfl's setup, the files, the unwind) and
// symbolize.cc (an address to its function, file, line and inlined calls)
// share: the libdwfl state behind Unwinder. Not for use outside core/native.
#pragma once

#include <elfutils/libdwfl.h>

#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <unordered_set>

#include "core/native/unwinder.h"
#include "core/sampling/recent_pages.h"

namespace pyflame::core {

constexpr int kMaxNativeFrames = 1024;  // a corrupt or endless stack ends here

struct Unwinder::Internals {
  Dwfl* dwfl = nullptr;
  bool attached = false;
  // Files reported, by (start, inode, path): a file mapped again at
  // another address (dlclose, dlopen) is another module.
  std::set<std::tuple<uint64_t, uint64_t, std::string>> reported;
  bool saw_unmapped = false;  // the last unwind met an address in no module, on a new page
  // Pages of code that were in no file even after the files were reported
  // again (a JIT, anonymous code): they do not make us look again.
  std::unordered_set<uint64_t> unmapped_pages;
  static uint64_t page_of(uint64_t address) { return address / RecentPages::kPage; }
  bool known_unmapped(uint64_t address) const { return unmapped_pages.count(page_of(address)) != 0; }
  void remember_unmapped(uint64_t address) { unmapped_pages.insert(page_of(address)); }

  static pid_t next_thread(Dwfl*, void*, void**) { return 0; }  // asked for by TID only
  static bool get_thread(Dwfl*, pid_t, void* arg, void** thread_arg) {
    *thread_arg = arg;
    return true;
  }
  static bool memory_read(Dwfl*, Dwarf_Addr address, Dwarf_Word* result, void* arg) {
    uint64_t word = 0;
    if (!static_cast<Unwinder*>(arg)->read_word(address, word)) return false;
    *result = word;
    return true;
  }
  static bool set_initial_registers(Dwfl_Thread* thread, void* arg) {
    const Registers& r = *static_cast<Unwinder*>(arg)->registers_;
    static_assert(sizeof(Dwarf_Word) == sizeof(uint64_t));
    if (!dwfl_thread_state_registers(thread, 0, Registers::kCount,
                                     reinterpret_cast<const Dwarf_Word*>(r.dwarf.data())))
      return false;
    dwfl_thread_state_register_pc(thread, r.pc());
    return true;
  }
};

}  // namespace pyflame::core
