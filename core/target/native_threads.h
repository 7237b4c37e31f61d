// SPDX-License-Identifier: Apache-2.0
// Maps Python threads to Linux threads (TIDs) for interpreters that do not
// record the TID themselves (before 3.11).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/target/process.h"

namespace pyflame::core {

// Python's thread ident is glibc's pthread_t: the address of the thread's
// `struct pthread`, which holds the TID at an offset private to glibc. Rather
// than hard-code that offset, it is found by looking: the one offset at which
// every known thread's struct holds a distinct live TID of the target. It is
// found once and checked again on every use (the target may use another libc
// than ours, e.g. in a container).
class NativeThreadResolver {
 public:
  std::vector<std::optional<pid_t>> resolve(const Memory& process,
                                            const std::vector<uint64_t>& pthreads,
                                            const std::vector<TaskInfo>& tasks);

 private:
  std::optional<int64_t> tid_offset_;
};

}  // namespace pyflame::core
