// SPDX-License-Identifier: Apache-2.0
// The open-file limit: raised for pyflame, restored for what it launches.
#pragma once

namespace pyflame::core {

// Raises the soft RLIMIT_NOFILE to the hard one (a target with thousands of
// threads is read through a few descriptors more than the usual 1024; see
// ThreadStates, which budgets them anyway). Remembers the limit it found.
void raise_open_file_limit();

// In a forked child before exec: gives the command the soft limit pyflame
// was started with (a program may rely on it, e.g. for select()).
// Async-signal-safe.
void restore_open_file_limit();

}  // namespace pyflame::core
