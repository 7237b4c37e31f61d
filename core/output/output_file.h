// SPDX-License-Identifier: Apache-2.0
// Where a profile goes (`-o PATH`, `--stats-json PATH`).
//
// - `-` is standard output.
// - A regular file, or a path that does not exist yet, is written whole:
//   to a temporary file `.NAME.XXXXXX` in the destination's directory, then
//   renamed over it. A symbolic link is followed (its target is replaced,
//   the link kept), except one owned by another user in a sticky
//   world-writable directory (fs.protected_symlinks' rule).
// - Anything else that exists (a character device such as /dev/null, a
//   FIFO, a socket, /dev/stdout, /proc/self/fd/N) is written through, in
//   place; it is never renamed over.
// - A new file gets 0666 less the umask; a replaced file keeps its mode
//   and, where we may set it, its owner.
// Every write is checked.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

namespace pyflame::core {

class OutputFile {
 public:
  // Opens the destination (or creates the temporary file) now, so that an
  // unwritable path fails before any sampling starts; throws Error (usage)
  // with the reason.
  explicit OutputFile(std::string path);
  ~OutputFile();  // removes the temporary file unless commit() succeeded
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Writes `contents` (then syncs and renames into place, for a replaced
  // file); throws Error on failure. A broken pipe on standard output ends
  // the process by SIGPIPE, quietly, as the shell expects.
  void commit(std::string_view contents);
  const std::string& path() const { return path_; }
  // "FILE" or "standard output", for messages.
  std::string description() const;

 private:
  enum class Kind { kStdout, kReplace, kWriteThrough };
  std::string path_;         // as given
  std::string destination_;  // the file renamed over (kReplace), symlinks resolved
  std::string temp_path_;
  Kind kind_ = Kind::kReplace;
  mode_t new_mode_ = 0644;
  int fd_ = -1;
};

// Writes all of `contents` to standard output; throws Error on failure (a
// broken pipe: dies by SIGPIPE, quietly).
void write_standard_output(std::string_view contents);

}  // namespace pyflame::core
