// SPDX-License-Identifier: Apache-2.0
// A core file (the kernel's, or gdb's gcore) read as the process it was:
// its memory from the PT_LOAD segments, its mapped files from the NT_FILE
// note, its threads and their registers from the NT_PRSTATUS notes. Pages
// the dump left out (by default the kernel leaves out file-backed pages
// nobody wrote: a library's text and read-only data) are read from the
// mapped files, each checked to be the file that was mapped.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/native/registers.h"
#include "core/target/target_image.h"

namespace pyflame::core {

struct CoreThread {
  pid_t tid = 0;
  std::optional<Registers> registers;  // x86-64 only
};

struct CoreFileOptions {
  // Directories to look in, in order, for a mapped file by its name when it
  // is not at its recorded path or is another file there (a core read on
  // another machine).
  std::vector<std::string> lib_search;
  // The executable, when not at its recorded path.
  std::optional<std::string> executable;
};

// What CoreFile reads at most, whatever the file claims: the core comes
// from the target's memory and the user's disk.
struct CoreLimits {
  static constexpr uint64_t kMaxSegments = 1 << 20;        // program headers
  static constexpr uint64_t kMaxNotes = 64 << 20;          // note bytes, all segments
  static constexpr uint64_t kMaxMappedFiles = 1 << 20;     // NT_FILE entries
  static constexpr int kMaxOpenFiles = 64;                 // mapped files kept open
};

class CoreFile : public TargetImage {
 public:
  // Opens and indexes `path`; throws Error(kBadCore) for a file that is not
  // a whole x86-64 ELF core.
  CoreFile(const std::string& path, CoreFileOptions options);
  ~CoreFile() override;
  CoreFile(const CoreFile&) = delete;
  CoreFile& operator=(const CoreFile&) = delete;

  pid_t pid() const override { return pid_; }
  std::string describe() const override;

  bool read(RemoteAddr addr, std::span<std::byte> into) const override;
  void read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const override;
  size_t read_prefix(RemoteAddr addr, std::span<std::byte> into) const override;

  std::vector<Mapping> maps() const override;
  int open_mapped_file(const Mapping& m) const override;
  std::string exe_target_path() const override { return exe_path_; }
  int open_executable() const override;

  const std::vector<CoreThread>& threads() const { return threads_; }
  // Mapped ELF files that were read but could not be checked against the
  // core (the page with their build-id was not dumped), for a warning.
  std::vector<std::string> unverified_files() const;

 private:
  struct Segment {
    uint64_t vaddr = 0;
    uint64_t memsz = 0;
    uint64_t offset = 0;  // in the core file
    uint64_t filesz = 0;  // bytes in the core; the rest of memsz was left out
    uint32_t flags = 0;   // PF_R, PF_W, PF_X
  };
  struct MappedFile {
    uint64_t start = 0;
    uint64_t end = 0;
    uint64_t offset = 0;  // in the file, bytes
    std::string path;
  };
  struct OpenedFile;

  void index();
  // The maps as the core says them, once (maps() hands out this copy).
  std::vector<Mapping> derive_maps() const;
  void read_notes(std::string_view notes);
  // Bytes the core itself holds at [addr, addr + into.size()): false if any is not.
  bool read_dumped(uint64_t addr, std::span<std::byte> into) const;
  // Bytes of [addr, ...) in the segment containing addr, from the core or the
  // mapped file; how many (0: none there).
  size_t read_piece(uint64_t addr, std::span<std::byte> into) const;
  const OpenedFile* mapped_file(const std::string& path) const;
  // Opens a candidate for `path` and checks it; -1 with `why` set if it is
  // not the file that was mapped.
  int open_checked(const std::string& candidate, const std::string& path, std::string& why,
                   bool& verified, bool& elf) const;

  std::string path_;
  CoreFileOptions options_;
  int fd_ = -1;
  uint64_t size_ = 0;
  pid_t pid_ = 0;
  std::string exe_path_;
  uint64_t phdr_addr_ = 0;  // AT_PHDR: the executable's program headers
  std::vector<Segment> segments_;   // sorted by vaddr
  std::vector<MappedFile> files_;   // sorted by start
  std::vector<Mapping> maps_;
  std::vector<CoreThread> threads_;
  mutable std::map<std::string, std::unique_ptr<OpenedFile>> opened_;  // by recorded path
};

}  // namespace pyflame::core
