// SPDX-License-Identifier: Apache-2.0
// Unwinder's symbolization: an address to its function (symbol tables,
// demangled), DWARF's file and line, and the calls inlined at it.
#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include <cstdlib>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/native/unwinder.h"
#include "core/native/unwinder_internals.h"

namespace pyflame::core {
namespace {

std::string demangled(const char* name) {
  if (name[0] != '_' || name[1] != 'Z') return name;
  int status = 0;
  char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) return name;
  std::string result(out);
  std::free(out);
  return result;
}

// A DIE's name for a frame: its linkage name demangled (C++: qualified),
// else its name, looked up through its abstract origin.
std::string die_function_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  for (int at : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (dwarf_attr_integrate(die, at, &attr) != nullptr)
      if (const char* linkage = dwarf_formstring(&attr)) return demangled(linkage);
  }
  if (dwarf_attr_integrate(die, DW_AT_name, &attr) != nullptr)
    if (const char* name = dwarf_formstring(&attr)) return name;
  return {};
}

// The call site of an inlined subroutine: (file, line) in its caller.
std::pair<std::string, int> call_site(Dwarf_Die* cu, Dwarf_Die* inlined) {
  Dwarf_Attribute attr;
  Dwarf_Word file_index = 0, line = 0;
  std::string file;
  if (dwarf_attr(inlined, DW_AT_call_line, &attr) != nullptr) dwarf_formudata(&attr, &line);
  Dwarf_Files* files = nullptr;
  size_t count = 0;
  if (dwarf_attr(inlined, DW_AT_call_file, &attr) != nullptr && dwarf_formudata(&attr, &file_index) == 0 &&
      dwarf_getsrcfiles(cu, &files, &count) == 0 && file_index < count)
    if (const char* name = dwarf_filesrc(files, file_index, nullptr, nullptr)) file = name;
  return {file, line <= INT32_MAX ? static_cast<int>(line) : 0};
}

}  // namespace

NativeLocation* Unwinder::store(NativeLocation loc) {
  loc.role = rules_.classify(loc.function, loc.library);
  loc.in_interpreter = loc.library == rules_.interpreter_path;
  loc.unnamed = loc.function.empty();
  if (loc.unnamed) loc.function = fmt::format("{:#x}", loc.address);
  // One key per shown identity: the same function, file, line and library
  // from another address is the same frame to a profile.
  std::string identity = loc.function;
  identity += '\0';
  identity += loc.library;
  identity += '\0';
  identity += loc.filename;
  identity += '\0';
  identity += std::to_string(loc.line);
  auto [key, added] = keys_.try_emplace(std::move(identity), next_key_);
  if (added) ++next_key_;
  loc.key = key->second;
  return &locations_.emplace_back(std::move(loc));
}

const NativeLocation* Unwinder::locate(uint64_t address, bool activation) {
  // A return address is the instruction after the call: the call's line
  // and function are the byte before it.
  const uint64_t lookup = activation ? address : address - 1;
  if (auto it = by_address_.find(lookup); it != by_address_.end()) return it->second;
  NativeLocation loc;
  loc.address = address;
  Dwfl_Module* module = dwfl_addrmodule(internals_->dwfl, lookup);
  // Inlined calls at this address, innermost first, and their compile unit.
  std::vector<Dwarf_Die> inlined;
  Dwarf_Die cu_die;
  if (module == nullptr) {
    if (!internals_->known_unmapped(lookup)) internals_->saw_unmapped = true;
    loc.library = "?";
  } else {
    const char* name = dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr,
                                        nullptr, nullptr);
    loc.library = name ? name : "?";
    GElf_Off offset = 0;
    GElf_Sym sym;
    const char* symbol =
        dwfl_module_addrinfo(module, lookup, &offset, &sym, nullptr, nullptr, nullptr);
    if (symbol != nullptr && symbol[0] != '\0') {
      // "clock_nanosleep@GLIBC_2.2.5": the symbol version is not the name.
      std::string symbol_name(symbol);
      if (const size_t at = symbol_name.find('@'); at != std::string::npos && at > 0)
        symbol_name.resize(at);
      loc.function = demangled(symbol_name.c_str());
    }
    if (Dwfl_Line* line = dwfl_module_getsrc(module, lookup)) {
      int lineno = 0;
      const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
      if (file != nullptr && lineno > 0) {
        loc.filename = file;
        loc.line = lineno;
      }
    }
    Dwarf_Addr bias = 0;
    if (Dwarf_Die* cu = dwfl_module_addrdie(module, lookup, &bias)) {
      cu_die = *cu;
      Dwarf_Die* scopes = nullptr;
      const int n = dwarf_getscopes(cu, lookup - bias, &scopes);
      for (int i = 0; i < n && i < kMaxNativeFrames; ++i) {
        const int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram) break;
        if (tag == DW_TAG_inlined_subroutine) inlined.push_back(scopes[i]);
      }
      std::free(scopes);
    }
  }
  // Without inlining, one frame; with it, the innermost inlined function
  // at this address's line, each caller at its call site, out to the
  // function the symbol table names.
  NativeLocation* innermost = nullptr;
  NativeLocation* inner = nullptr;
  std::string file = loc.filename;
  int line = loc.line;
  for (Dwarf_Die& die : inlined) {
    NativeLocation frame;
    frame.address = address;
    frame.library = loc.library;
    frame.function = die_function_name(&die);
    frame.filename = file;
    frame.line = line;
    frame.inlined = true;
    std::tie(file, line) = call_site(&cu_die, &die);
    NativeLocation* stored = store(std::move(frame));
    if (inner != nullptr) inner->outer = stored;
    if (innermost == nullptr) innermost = stored;
    inner = stored;
  }
  loc.filename = file;
  loc.line = line;
  NativeLocation* function = store(std::move(loc));
  if (inner != nullptr) inner->outer = function;
  NativeLocation* first = innermost != nullptr ? innermost : function;
  // An address in no known file is not remembered: the file may be
  // reported soon (a library opened since), and it must then be found.
  if (module != nullptr) by_address_.emplace(lookup, first);
  return first;
}

}  // namespace pyflame::core
