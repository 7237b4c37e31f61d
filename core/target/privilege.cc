// SPDX-License-Identifier: Apache-2.0
#include "core/target/privilege.h"

#include <linux/capability.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/target/process.h"

namespace pyflame::core::privilege {
namespace {

constexpr uint64_t kPtrace = uint64_t{1} << CAP_SYS_PTRACE;

struct State {
  bool elevated = false;
  bool have_ptrace = false;  // CAP_SYS_PTRACE permitted (not yet dropped)
  uid_t ruid = 0;
  gid_t rgid = 0;
  std::string reason;
};
State g;

struct Caps {
  uint64_t effective = 0, permitted = 0, inheritable = 0;
};

std::optional<Caps> get_caps() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) return std::nullopt;
  auto join = [](uint32_t lo, uint32_t hi) { return uint64_t{lo} | (uint64_t{hi} << 32); };
  return Caps{join(data[0].effective, data[1].effective), join(data[0].permitted, data[1].permitted),
              join(data[0].inheritable, data[1].inheritable)};
}

bool set_caps(uint64_t effective, uint64_t permitted) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  data[0].effective = static_cast<uint32_t>(effective);
  data[1].effective = static_cast<uint32_t>(effective >> 32);
  data[0].permitted = static_cast<uint32_t>(permitted);
  data[1].permitted = static_cast<uint32_t>(permitted >> 32);
  return ::syscall(SYS_capset, &header, data) == 0;
}

// Failing to give up a privilege is not something to carry on after.
[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "pyflame: cannot drop privileges (%s): %s\n", what, std::strerror(errno));
  std::_Exit(static_cast<int>(ExitCode::kFailure));
}

// "Uid:\t0\t0\t0\t0" -> {0, 0, 0, 0}
std::optional<std::array<long, 4>> ids(const std::string& status, const char* key) {
  auto at = status.find(key);
  if (at == std::string::npos) return std::nullopt;
  std::istringstream in(status.substr(at + std::strlen(key), status.find('\n', at) - at));
  std::array<long, 4> out{};
  for (long& v : out)
    if (!(in >> v)) return std::nullopt;
  return out;
}

}  // namespace

void init() {
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  ::getresuid(&ruid, &euid, &suid);
  ::getresgid(&rgid, &egid, &sgid);
  g.ruid = ruid;
  g.rgid = rgid;
  Caps caps = get_caps().value_or(Caps{});
  // Ambient capabilities came from the caller: they are the caller's own.
  uint64_t ambient = 0;
  for (int cap = 0; cap < 64; ++cap)
    if ((caps.permitted >> cap & 1) && ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
      ambient |= uint64_t{1} << cap;

  std::string reason;
  auto add = [&](const std::string& why) { reason += (reason.empty() ? "" : ", ") + why; };
  if (ruid != euid || ruid != suid) add(fmt::format("setuid: effective uid {}, real uid {}", euid, ruid));
  if (rgid != egid || rgid != sgid) add(fmt::format("setgid: effective gid {}, real gid {}", egid, rgid));
  if (ruid != 0 && (caps.permitted & ~ambient) != 0)
    add(caps.permitted & kPtrace ? "the file capability CAP_SYS_PTRACE" : "file capabilities");
  if (reason.empty() && ::getauxval(AT_SECURE) != 0) add("a privileged exec (AT_SECURE)");
  if (reason.empty()) return;
  g.elevated = true;
  g.reason = reason;

  // A setuid binary becomes the caller, keeping (as a setuid-root binary)
  // only the capability the file-capability install would have given.
  if (euid != ruid || suid != ruid || egid != rgid || sgid != rgid) {
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fatal("PR_SET_KEEPCAPS");
    if (::setresgid(rgid, rgid, rgid) != 0) fatal("setresgid");
    if (::setresuid(ruid, ruid, ruid) != 0) fatal("setresuid");
    ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    caps = get_caps().value_or(Caps{});
  }
  g.have_ptrace = (caps.permitted & kPtrace) != 0;
  if (!set_caps(0, caps.permitted & kPtrace)) fatal("capset");
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  // The caller must not be able to ptrace us and borrow the capability
  // (a privileged exec already did this; a setresuid may not have).
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

bool elevated() { return g.elevated; }
const std::string& elevation_reason() { return g.reason; }

void check_target(pid_t pid) {
  if (!g.elevated) return;
  const std::string proc = fmt::format("/proc/{}", pid);
  // /proc/PID/stat belongs to the process's effective ids only while it is
  // dumpable, else to root: the kernel's task_dump_owner() (which exempts
  // the 0555 directory /proc/PID itself, so not that).
  struct stat st;
  if (::stat((proc + "/stat").c_str(), &st) != 0) throw_for_errno(errno, pid, "reading the status");
  auto status = read_text_file(proc + "/status");
  if (!status) throw_for_errno(errno, pid, "reading the status");
  auto uids = ids(*status, "Uid:");
  auto gids = ids(*status, "Gid:");
  std::string why;
  if (!uids || !gids) {
    why = "has no readable Uid:/Gid: lines in /proc/PID/status";
  } else if ((*uids)[0] != g.ruid || (*uids)[1] != g.ruid || (*uids)[2] != g.ruid ||
             (*gids)[0] != g.rgid || (*gids)[1] != g.rgid || (*gids)[2] != g.rgid) {
    why = fmt::format("runs as uid {}/{}/{}, gid {}/{}/{} (real/effective/saved)", (*uids)[0], (*uids)[1],
                      (*uids)[2], (*gids)[0], (*gids)[1], (*gids)[2]);
  } else if (g.ruid != 0 && (st.st_uid != g.ruid || st.st_gid != g.rgid)) {
    why = "is not dumpable (it changed its credentials, or set PR_SET_DUMPABLE to 0)";
  }
  if (why.empty()) return;
  throw Error(ExitCode::kPermissionDenied,
              fmt::format("pyflame: permission denied: process {} {}. This pyflame runs with more "
                          "privilege than its caller ({}), so it profiles only the caller's own "
                          "processes: real, effective and saved uid {} and gid {}, and dumpable. "
                          "To profile another user's process, run pyflame as root or as that user",
                          pid, why, g.reason, g.ruid, g.rgid));
}

Raised::Raised() {
  if (!g.elevated || !g.have_ptrace) return;
  if (!set_caps(kPtrace, kPtrace)) fatal("capset");
  raised_ = true;
}

Raised::~Raised() {
  if (raised_ && g.have_ptrace && !set_caps(0, kPtrace)) fatal("capset");
}

void drop() {
  if (!g.elevated || !g.have_ptrace) return;
  if (!set_caps(0, 0)) fatal("capset");
  g.have_ptrace = false;
}

}  // namespace pyflame::core::privilege
