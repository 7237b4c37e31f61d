// SPDX-License-Identifier: Apache-2.0
// Opening a file someone else named (a target's maps, a core's notes, the
// user): only a regular file, never blocking on a FIFO, never a device.
#pragma once

#include <sys/stat.h>

#include <string>

namespace pyflame::core {

// Opens `path` read-only and close-on-exec if it is a regular file, without
// following a last symlink unless `follow` (the /proc magic links); -1 with
// errno set otherwise (ESTALE: replaced between the look and the open).
// `st` receives its identity.
int open_regular_file(const std::string& path, bool follow, struct stat& st);

}  // namespace pyflame::core
