// SPDX-License-Identifier: Apache-2.0
// A live target process: its memory, its maps, its threads.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/target/maps.h"
#include "core/target/remote.h"
#include "core/target/target_image.h"

namespace pyflame::core {

struct TaskInfo {
  pid_t tid = 0;
  char state = '?';  // from /proc/PID/task/TID/stat: R running, S sleeping, ...
  std::string name;  // /proc/PID/task/TID/comm
};

class Process : public TargetImage {
 public:
  // Checks that `pid` names a live process we may read; throws Error.
  explicit Process(pid_t pid);
  ~Process() override;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const override { return pid_; }
  std::string describe() const override;

  // Memory, through process_vm_readv (one call per 1024 ranges), or
  // /proc/PID/mem where that is refused.
  bool read(RemoteAddr addr, std::span<std::byte> into) const override;
  void read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const override;
  size_t read_prefix(RemoteAddr addr, std::span<std::byte> into) const override;
  // What the reads above have cost so far: system calls, remote ranges and
  // bytes, and the range sizes of the latest call (in steady sampling, the
  // sample's whole read set). For the benchmark (--stats-json).
  struct ReadStats {
    uint64_t calls = 0;
    uint64_t ranges = 0;
    uint64_t bytes = 0;
    std::vector<size_t> last_call_sizes;
  };
  const ReadStats& read_stats() const { return stats_; }
  // Whether the target still runs, to tell "gone" from "unmapped" after a failed read.
  bool alive() const;
  // alive(), but a process whose address space is gone (exiting: it is not
  // a zombie yet) is watched for up to `patience_ms` until it is one or
  // has its exe back (an exec). For deciding why a read failed.
  bool alive_past_exit(int patience_ms = 250) const;
  // Whether it is gone, or a zombie, within `patience_ms`.
  bool exits_within(int patience_ms) const;

  std::vector<Mapping> maps() const override;
  std::vector<TaskInfo> tasks() const;
  std::optional<TaskInfo> task(pid_t tid) const;

  // Opens the file behind mapping `m` (read-only, close-on-exec) and returns
  // the descriptor; throws Error saying what was tried. A maps path is not
  // one the target or we can always open (a chroot, a bind mount in another
  // mount namespace, a container), so: /proc/PID/map_files/START-END (the
  // very file, but following it needs CAP_SYS_ADMIN or
  // CAP_CHECKPOINT_RESTORE), else the first regular file with the mapping's
  // device and inode among the maps path as it is, that path under
  // /proc/PID/root with the target's root taken off, and under /proc/PID/root
  // as it is.
  int open_mapped_file(const Mapping& m) const override;
  // The target's executable, as a path that opens the very file it runs
  // (even if deleted or replaced on disk).
  std::string exe_path() const;
  std::string exe_target_path() const override;  // readlink of /proc/PID/exe
  int open_executable() const override;  // through /proc/PID/exe

 private:
  bool read_proc_mem(RemoteAddr addr, std::span<std::byte> into) const;
  void count_call(std::span<const iovec> remote) const;

  pid_t pid_;
  std::string proc_;  // "/proc/PID"
  mutable int mem_fd_ = -1;
  mutable bool vm_readv_works_ = true;
  mutable ReadStats stats_;
};

// Numeric field `field` (as proc(5) numbers them: 3 is the state) of a
// /proc/.../stat line, counted after the last ')': the command name may
// contain anything. nullopt if missing or not a number.
std::optional<uint64_t> stat_number(std::string_view stat, int field);

// The state letter of a /proc/.../stat line (R running, S sleeping, Z ...):
// it follows the last ')', since the command name may contain anything.
std::optional<char> state_from_stat(std::string_view stat);

// Whether `pid` is a live process: neither gone nor a zombie (what
// Process::alive() says, for a process not opened).
bool process_alive(pid_t pid);

// The thread ids of process `pid` (a listing of /proc/PID/task, nothing
// read per thread): cheap enough for every sample. Throws Error.
std::vector<pid_t> task_ids(pid_t pid);

// Reads a whole (small) file; nullopt with errno set on failure.
std::optional<std::string> read_text_file(const std::string& path);

}  // namespace pyflame::core
