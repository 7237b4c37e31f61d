// SPDX-License-Identifier: Apache-2.0
// A process's address space and the files it mapped, whether the process
// runs (Process) or was dumped to a core file (CoreFile): what finding and
// locating its interpreter needs, and no more.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "core/target/maps.h"
#include "core/target/memory.h"

namespace pyflame::core {

class TargetImage : public Memory {
 public:
  // The process's PID (in a core: the one it had), for messages.
  virtual pid_t pid() const = 0;
  // "process 123", "core file core.123 (process 123)": the subject of messages.
  virtual std::string describe() const = 0;
  virtual std::vector<Mapping> maps() const = 0;
  // The file behind mapping `m`, opened read-only and close-on-exec, checked
  // to be the one that was mapped; throws Error saying what was tried.
  virtual int open_mapped_file(const Mapping& m) const = 0;
  // The executable's path as the process knew it, and the file itself.
  virtual std::string exe_target_path() const = 0;
  virtual int open_executable() const = 0;
};

}  // namespace pyflame::core
