// SPDX-License-Identifier: Apache-2.0
// Finds the ELF file that holds a target's interpreter (the executable of a
// static build, or libpythonX.Y.so of an --enable-shared one) and tells which
// Python version it is, from the file itself. Knows no struct layout.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/target/elf.h"
#include "core/target/maps.h"
#include "core/target/target_image.h"
#include "core/target/remote.h"

namespace pyflame::core {

struct PythonVersionId {
  int major = 0;
  int minor = 0;
  std::string full;  // "3.11.7" when known, else "3.11"
  std::string how;   // how it was found, for messages
  // A free-threaded build (PEP 703, configure --disable-gil): its own
  // object and thread layouts, read only by a pyflameX.Yt.
  bool free_threaded = false;

  // "3.11", or "3.13t" for a free-threaded build: the suffix of the
  // pyflame binary that reads it.
  std::string build() const;
  // "Python 3.11.7", or "free-threaded Python 3.13.5", for messages.
  std::string python() const;
};

// --subprocesses checks every process of a tree, and most map the same
// interpreter file: its ELF index and .rodata are read once. Keyed by the
// open file's identity (device, inode, size, change time), so a file
// changed in place is read again.
class PythonBinaryCache {
 public:
  // The index of the file open as `fd` (taken over: closed when a cached
  // one serves); throws Error as ElfFile does.
  std::shared_ptr<ElfFile> elf(int fd, const std::string& path);
  // The bytes of `section` of `elf` (one this cache gave), read once.
  const std::optional<std::string>& section_bytes(const std::shared_ptr<ElfFile>& elf,
                                                  const ElfSection& section);

 private:
  static constexpr size_t kMaxFiles = 32;  // past it, start again
  std::map<std::tuple<dev_t, ino_t, off_t, int64_t>, std::shared_ptr<ElfFile>> files_;
  std::map<std::pair<const ElfFile*, uint64_t>, std::optional<std::string>> sections_;
};

class PythonBinary {
 public:
  // Throws Error(kNotPython) when no interpreter is found. `cache`, when
  // given, serves the interpreter file's index and .rodata.
  static PythonBinary find(const TargetImage& image, PythonBinaryCache* cache = nullptr);

  const ElfFile& elf() const { return *elf_; }
  const std::string& target_path() const { return target_path_; }
  uint64_t load_bias() const { return bias_; }
  const PythonVersionId& version() const { return version_; }
  const std::vector<Mapping>& maps() const { return maps_; }

  // Runtime address of a symbol of the interpreter's file.
  std::optional<RemoteAddr> symbol(std::string_view name) const;
  // The interpreter's writable data (.data, .bss ...) in the target, for
  // finding a variable that has no symbol.
  std::vector<std::pair<RemoteAddr, uint64_t>> writable_ranges() const;

 private:
  std::shared_ptr<ElfFile> elf_;
  std::string target_path_;
  uint64_t bias_ = 0;
  PythonVersionId version_;
  std::vector<Mapping> maps_;
};

// Whether an ELF file holds a CPython interpreter: it exports the C API.
bool has_interpreter_symbols(const ElfFile& elf);
// Whether an interpreter file is a free-threaded build: it exports the
// functions its extensions' Py_DECREF calls for split reference counts.
bool is_free_threaded(const ElfFile& elf);

// The version of an interpreter file (an executable with the interpreter
// linked in, or a libpython) from the file alone, for a program not yet
// running: Py_Version's bytes (3.11+), else PY_VERSION in its read-only
// data, else the first of `names` that says one; nullopt if none does.
std::optional<PythonVersionId> interpreter_file_version(const ElfFile& elf,
                                                        const std::vector<std::string>& names);

// Parses "libpython3.11.so.1.0", "libpython3.6m.so", "python2.7" ... into a
// version; nullopt if the name does not say one.
std::optional<PythonVersionId> version_from_file_name(std::string_view name);
// Finds the version string (PY_VERSION, e.g. "3.11.7") in an interpreter's
// read-only data, preferring one that starts with `major.minor.` when given.
std::optional<std::string> version_from_rodata(std::string_view rodata, int major, int minor);

}  // namespace pyflame::core
