// SPDX-License-Identifier: Apache-2.0
// Opening and reading a file someone else named (a target's maps, a core's
// notes, the user): only a regular file, never blocking on a FIFO, never a
// device; read with pread, never mapped (a file truncated under a mapping
// raises SIGBUS).
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace pyflame::core {

// Opens `path` read-only and close-on-exec if it is a regular file, without
// following a last symlink unless `follow` (the /proc magic links); -1 with
// errno set otherwise (ESTALE: replaced between the look and the open).
// `st` receives its identity.
int open_regular_file(const std::string& path, bool follow, struct stat& st);

// Whether `path` is a regular file we may execute (as execvp(3) would run
// it).
bool is_executable_file(const std::string& path);

// Reads exactly `size` bytes at `offset`; false on a short read (a file
// truncated meanwhile) or an error.
bool read_exact_at(int fd, uint64_t offset, void* into, size_t size);

}  // namespace pyflame::core
