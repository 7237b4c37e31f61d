// SPDX-License-Identifier: Apache-2.0
// Symbols and segments of an ELF file, read with pread: never mapped (a file
// truncated under a mapping raises SIGBUS), and never more of it than the
// limits below, whatever its headers claim (the target's owner controls the
// file; docs/reliability.md, "A hostile target").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/target/maps.h"

namespace pyflame::core {

struct ElfSection {
  std::string name;
  uint64_t addr = 0;    // link-time virtual address
  uint64_t size = 0;
  uint64_t offset = 0;  // in the file
  bool writable = false;
  bool nobits = false;  // .bss: no bytes in the file
};

// What an ElfFile reads at most. Real interpreters need a fraction of each
// (libpython 3.13: 0.25 MiB .symtab, 0.18 MiB .strtab, 1 MiB .rodata; Debian
// 15's static python3.15: 2.8 MiB .rodata).
struct ElfLimits {
  static constexpr uint64_t kMaxSections = 65536;           // headers: 4 MiB
  static constexpr uint64_t kMaxProgramHeaders = 4096;
  static constexpr uint64_t kMaxSectionNames = 1 << 20;     // .shstrtab read
  static constexpr uint64_t kMaxSymbolTable = 8 << 20;      // each of .symtab, .dynsym
  static constexpr uint64_t kMaxStringTable = 8 << 20;      // each of their string tables
  static constexpr uint64_t kMaxSectionBytes = 16 << 20;    // section_bytes()
};

// The GNU build-id note of a file: its bytes, and the link-time address of
// those bytes (where a process that mapped the file has them too).
struct ElfBuildId {
  std::string bytes;
  uint64_t vaddr = 0;
};

// What a dynamically linked file asks of the loader.
struct ElfDynamic {
  std::vector<std::string> needed;    // DT_NEEDED, in order
  std::vector<std::string> run_path;  // DT_RUNPATH or DT_RPATH, split at ':'; $ORIGIN as written
};

class ElfFile {
 public:
  // Opens and indexes `path`; throws Error with the path and reason. Only a
  // regular file is read (opened without blocking: never a FIFO's writer).
  explicit ElfFile(const std::string& path);
  // Indexes the open file `fd` (taking it over); `path` names it in messages.
  ElfFile(int fd, const std::string& path);
  ~ElfFile();
  ElfFile(ElfFile&&) noexcept;
  ElfFile& operator=(ElfFile&&) noexcept;

  const std::string& path() const { return path_; }
  bool is_shared_object() const { return is_dyn_; }  // ET_DYN: PIE or library
  uint64_t file_size() const;
  // From its first PT_NOTE segments that holds one; nullopt if none does.
  const std::optional<ElfBuildId>& build_id() const { return build_id_; }

  // Link-time address of a defined symbol, from .symtab or .dynsym (the
  // first of each kind only: a file with thousands of symbol tables costs
  // no more than one with two).
  std::optional<uint64_t> symbol(std::string_view name) const;
  bool has_symtab() const { return has_symtab_; }

  const std::vector<ElfSection>& sections() const { return sections_; }
  // Bytes of a section that has bytes in the file (not .bss); nullopt if
  // they are not all in the file or more than ElfLimits::kMaxSectionBytes.
  std::optional<std::string> section_bytes(const ElfSection& section) const;

  // The first dynamic section's needed libraries and run path (empty for a
  // static file, or one whose section or strings are not all in the file).
  ElfDynamic dynamic() const;

  // Difference between where the target mapped this file and its link-time
  // addresses: 0 for a non-PIE executable, the load address otherwise.
  std::optional<uint64_t> load_bias(const std::vector<Mapping>& maps,
                                    std::string_view mapped_path) const;

 private:
  struct Impl;
  void index();
  std::unique_ptr<Impl> impl_;
  std::string path_;
  bool is_dyn_ = false;
  bool has_symtab_ = false;
  std::vector<ElfSection> sections_;
  ElfSection dynamic_;          // the first SHT_DYNAMIC; size 0 if none
  ElfSection dynamic_strings_;  // the string table it links to
  std::optional<ElfBuildId> build_id_;
  uint64_t first_load_vaddr_ = 0;   // of the PT_LOAD with the lowest offset
  uint64_t first_load_offset_ = 0;
};

}  // namespace pyflame::core
