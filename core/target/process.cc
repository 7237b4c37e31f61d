// SPDX-License-Identifier: Apache-2.0
#include "core/target/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/errors.h"
#include "core/log.h"
#include "core/target/privilege.h"
#include "core/target/regular_file.h"

namespace pyflame::core {

std::optional<std::string> read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      errno = err;
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

namespace {

// Field 9 of /proc/PID/stat holds the task's flags; PF_KTHREAD marks a
// kernel thread (include/linux/sched.h).
bool is_kernel_thread(pid_t pid) {
  constexpr uint64_t kPfKthread = 0x00200000;
  auto stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::optional<uint64_t> flags = stat_number(*stat, 9);
  return flags && (*flags & kPfKthread) != 0;
}

}  // namespace

Process::Process(pid_t pid) : pid_(pid), proc_("/proc/" + std::to_string(pid)) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH)) throw_no_such_process(pid);
  // A kernel thread has no memory of its own, let alone an interpreter.
  if (is_kernel_thread(pid))
    throw Error(ExitCode::kNotPython, "pyflame: process " + std::to_string(pid) +
                                          " is a kernel thread, not a Python process");
  // A zombie has no memory left to read.
  if (auto t = task(pid); t && (t->state == 'Z' || t->state == 'X'))
    throw Error(ExitCode::kTargetExited,
                "pyflame: process " + std::to_string(pid) + " has exited (it is a zombie)");
  // With more privilege than our caller (setcap, setuid), only the caller's
  // own processes; their memory is read through one /proc/PID/mem opened
  // between two checks: it stays the memory of the program checked (after
  // an exec, reads fail) however the process changes later.
  if (privilege::elevated()) {
    privilege::check_target(pid);
    {
      privilege::Raised raised;
      mem_fd_ = ::open((proc_ + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (mem_fd_ < 0) throw_for_errno(errno, pid, "opening the memory");
    privilege::check_target(pid);
    vm_readv_works_ = false;
  }
  // Reading maps needs the same permission as reading memory, so this is
  // where a missing privilege shows first.
  if (!read_text_file(proc_ + "/maps")) throw_for_errno(errno, pid, "reading the memory map");
}

Process::~Process() {
  if (mem_fd_ >= 0) ::close(mem_fd_);
}

void Process::count_call(std::span<const iovec> remote) const {
  ++stats_.calls;
  stats_.ranges += remote.size();
  stats_.last_call_sizes.clear();
  for (const iovec& r : remote) {
    stats_.bytes += r.iov_len;
    stats_.last_call_sizes.push_back(r.iov_len);
  }
}

bool Process::read(RemoteAddr addr, std::span<std::byte> into) const {
  if (into.empty()) return true;
  if (vm_readv_works_) {
    iovec local{into.data(), into.size()};
    iovec remote{reinterpret_cast<void*>(addr.value()), into.size()};
    count_call(std::span(&remote, 1));
    ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (n == static_cast<ssize_t>(into.size())) return true;
    if (n >= 0 || errno != ENOSYS) return false;
    vm_readv_works_ = false;  // kernels without it: use /proc/PID/mem
  }
  return read_proc_mem(addr, into);
}

void Process::read_many(std::span<const ReadRequest> requests, std::vector<bool>& ok) const {
  ok.assign(requests.size(), false);
  constexpr size_t kMaxRanges = 1024;  // IOV_MAX
  iovec local[kMaxRanges];
  iovec remote[kMaxRanges];
  size_t next = 0;
  while (next < requests.size()) {
    if (!vm_readv_works_) {
      ok[next] = read(requests[next].addr, requests[next].into);
      ++next;
      continue;
    }
    size_t count = std::min(kMaxRanges, requests.size() - next);
    for (size_t i = 0; i < count; ++i) {
      const ReadRequest& r = requests[next + i];
      local[i] = {r.into.data(), r.into.size()};
      remote[i] = {reinterpret_cast<void*>(r.addr.value()), r.into.size()};
    }
    count_call(std::span(remote, count));
    ssize_t n = ::process_vm_readv(pid_, local, count, remote, count, 0);
    if (n < 0 && errno == ENOSYS) {
      vm_readv_works_ = false;
      continue;
    }
    // The kernel stops at the first range it cannot read: the ranges before
    // it are whole; that one failed (or is partial); go on after it.
    size_t done = n > 0 ? static_cast<size_t>(n) : 0;
    size_t i = 0;
    for (; i < count && done >= requests[next + i].into.size(); ++i) {
      done -= requests[next + i].into.size();
      ok[next + i] = true;
    }
    next += std::min(i + 1, count);
  }
}

size_t Process::read_prefix(RemoteAddr addr, std::span<std::byte> into) const {
  if (into.empty()) return 0;
  if (vm_readv_works_) {
    iovec local{into.data(), into.size()};
    iovec remote{reinterpret_cast<void*>(addr.value()), into.size()};
    count_call(std::span(&remote, 1));
    ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (n >= 0 || errno != ENOSYS) return n > 0 ? static_cast<size_t>(n) : 0;
    vm_readv_works_ = false;
  }
  // /proc/PID/mem: page by page until one fails.
  size_t done = 0;
  while (done < into.size()) {
    size_t chunk = std::min<size_t>(4096 - ((addr.value() + done) & 4095), into.size() - done);
    if (!read_proc_mem(addr + static_cast<int64_t>(done), into.subspan(done, chunk))) break;
    done += chunk;
  }
  return done;
}

bool Process::read_proc_mem(RemoteAddr addr, std::span<std::byte> into) const {
  if (mem_fd_ < 0) {
    mem_fd_ = ::open((proc_ + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    if (mem_fd_ < 0) return false;
  }
  size_t done = 0;
  while (done < into.size()) {
    ssize_t n = ::pread(mem_fd_, into.data() + done, into.size() - done,
                        static_cast<off_t>(addr.value() + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool Process::alive() const { return process_alive(pid_); }

bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  errno = 0;
  auto stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  // Out of descriptors tells nothing about the target: it is there.
  if (!stat) return errno == EMFILE || errno == ENFILE;
  std::optional<char> state = state_from_stat(*stat);
  return !state || (*state != 'Z' && *state != 'X');
}

bool Process::alive_past_exit(int patience_ms) const {
  for (int waited = 0;; waited += 5) {
    if (!alive()) return false;
    struct stat st;
    if (::stat((proc_ + "/exe").c_str(), &st) == 0 || errno != ENOENT) return true;
    if (waited >= patience_ms) return true;
    ::usleep(5000);
  }
}

bool Process::exits_within(int patience_ms) const {
  for (int waited = 0;; waited += 5) {
    if (!alive()) return true;
    if (waited >= patience_ms) return false;
    ::usleep(5000);
  }
}

std::vector<Mapping> Process::maps() const {
  auto text = read_text_file(proc_ + "/maps");
  if (!text) throw_for_errno(errno, pid_, "reading the memory map");
  return parse_maps(*text);
}

std::optional<TaskInfo> Process::task(pid_t tid) const {
  std::string dir = proc_ + "/task/" + std::to_string(tid);
  auto stat = read_text_file(dir + "/stat");
  if (!stat) return std::nullopt;
  TaskInfo info;
  info.tid = tid;
  info.state = state_from_stat(*stat).value_or('?');
  if (auto comm = read_text_file(dir + "/comm")) {
    while (!comm->empty() && comm->back() == '\n') comm->pop_back();
    info.name = std::move(*comm);
  }
  return info;
}

std::optional<uint64_t> stat_number(std::string_view stat, int field) {
  size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos || field < 3) return std::nullopt;
  size_t at = paren + 1;
  for (int f = 3;; ++f) {  // fields after the comm: 3 (state) ...
    while (at < stat.size() && stat[at] == ' ') ++at;
    if (at >= stat.size()) return std::nullopt;
    size_t end = stat.find(' ', at);
    if (end == std::string_view::npos) end = stat.size();
    if (f == field) {
      uint64_t value = 0;
      auto [ptr, ec] = std::from_chars(stat.data() + at, stat.data() + end, value);
      if (ec != std::errc()) return std::nullopt;
      return value;
    }
    at = end;
  }
}

std::optional<char> state_from_stat(std::string_view stat) {
  size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos || paren + 2 >= stat.size()) return std::nullopt;
  return stat[paren + 2];
}

std::vector<pid_t> task_ids(pid_t pid) {
  std::vector<pid_t> result;
  DIR* dir = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) throw_target_exited(pid);
    throw_for_errno(errno, pid, "listing the threads");
  }
  while (dirent* entry = ::readdir(dir)) {
    pid_t tid = 0;
    std::string_view name(entry->d_name);
    auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), tid);
    if (ec == std::errc() && ptr == name.data() + name.size()) result.push_back(tid);
  }
  ::closedir(dir);
  std::sort(result.begin(), result.end());
  return result;
}

std::vector<TaskInfo> Process::tasks() const {
  std::vector<TaskInfo> result;
  for (pid_t tid : task_ids(pid_))
    if (auto info = task(tid)) result.push_back(std::move(*info));
  return result;
}

int Process::open_mapped_file(const Mapping& m) const {
  const std::string path(strip_deleted(m.path));
  std::string tried;
  auto note = [&](const std::string& what, const std::string& why) {
    tried += fmt::format("{}{}: {}", tried.empty() ? "" : "; ", what, why);
  };
  struct stat st;
  const std::string map_file = fmt::format("{}/map_files/{:x}-{:x}", proc_, m.start, m.end);
  if (int fd = open_regular_file(map_file, true, st); fd >= 0) return fd;
  note(map_file, std::strerror(errno));

  std::vector<std::string> candidates;
  if (!path.empty() && path.front() == '/') {
    candidates.push_back(path);
    char root[4096];
    ssize_t n = ::readlink((proc_ + "/root").c_str(), root, sizeof root - 1);
    if (n > 1) {  // a root other than "/"
      std::string_view r(root, static_cast<size_t>(n));
      if (path.size() > r.size() && path.compare(0, r.size(), r) == 0 && path[r.size()] == '/')
        candidates.push_back(proc_ + "/root" + path.substr(r.size()));
    }
    candidates.push_back(proc_ + "/root" + path);
  }
  // The device must match too; on overlayfs (containers) a file's st_dev is
  // the overlay's while maps shows the layer's device, so an inode-only match
  // is taken when nothing matches both.
  const dev_t dev = makedev(m.dev_major, m.dev_minor);
  int inode_only = -1;
  std::string inode_only_path;
  for (const std::string& c : candidates) {
    int fd = open_regular_file(c, false, st);
    if (fd < 0) {
      note(c, std::strerror(errno));
      continue;
    }
    if (st.st_ino == m.inode && st.st_dev == dev) {
      if (inode_only >= 0) ::close(inode_only);
      return fd;
    }
    if (st.st_ino == m.inode && inode_only < 0) {
      inode_only = fd;
      inode_only_path = c;
      continue;
    }
    ::close(fd);
    note(c, fmt::format("another file (device {}:{} inode {}, mapped {:x}:{:x} inode {})",
                        major(st.st_dev), minor(st.st_dev), st.st_ino, m.dev_major, m.dev_minor,
                        m.inode));
  }
  if (inode_only >= 0) {
    PYFLAME_DEBUG_LOG("{}: matched by inode only (overlayfs?)", inode_only_path);
    return inode_only;
  }
  throw Error(ExitCode::kFailure, fmt::format("pyflame: cannot open {}, mapped by process {} ({})",
                                              m.path, pid_, tried));
}

std::string Process::exe_path() const { return proc_ + "/exe"; }

std::string Process::describe() const { return fmt::format("process {}", pid_); }

int Process::open_executable() const {
  struct stat st;
  int fd = open_regular_file(exe_path(), true, st);
  if (fd < 0)
    throw Error(ExitCode::kFailure, fmt::format("pyflame: cannot open {}: {}", exe_path(),
                                                std::strerror(errno)));
  return fd;
}

std::string Process::exe_target_path() const {
  char buf[4096];
  ssize_t n = ::readlink((proc_ + "/exe").c_str(), buf, sizeof buf - 1);
  if (n < 0) throw_for_errno(errno, pid_, "reading the executable path");
  return std::string(strip_deleted(std::string_view(buf, static_cast<size_t>(n))));
}

}  // namespace pyflame::core
