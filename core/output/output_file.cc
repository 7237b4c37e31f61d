// SPDX-License-Identifier: Apache-2.0
#include "core/output/output_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "core/errors.h"

namespace pyflame::core {
namespace {

Error usage_error(const std::string& path, const std::string& why) {
  return Error(ExitCode::kUsage, fmt::format("pyflame: cannot write the output file {}: {}", path, why));
}

std::pair<std::string, std::string> split(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

std::optional<std::string> real_dir(const std::string& dir) {
  char buf[PATH_MAX];
  if (::realpath(dir.c_str(), buf) == nullptr) return std::nullopt;
  return std::string(buf);
}

bool under_proc(const std::string& dir) { return dir == "/proc" || dir.rfind("/proc/", 0) == 0; }

// /proc/self/fd/N, /proc/OURPID/fd/N (after realpath of the directory): N.
std::optional<int> own_fd(const std::string& dir, const std::string& base) {
  if (dir != fmt::format("/proc/{}/fd", ::getpid())) return std::nullopt;
  char* end = nullptr;
  long n = std::strtol(base.c_str(), &end, 10);
  if (base.empty() || *end != '\0' || n < 0 || n > INT_MAX) return std::nullopt;
  if (::fcntl(static_cast<int>(n), F_GETFD) < 0) return std::nullopt;
  return static_cast<int>(n);
}

mode_t current_umask() {
  mode_t mask = ::umask(022);
  ::umask(mask);
  return mask;
}

// Writes everything to fd; false with errno on failure.
bool write_all(int fd, std::string_view contents) {
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = EIO;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// A reader that went away: end as `cat` would, by SIGPIPE, without a word.
[[noreturn]] void die_of_sigpipe() {
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(SIGPIPE);
  std::_Exit(128 + SIGPIPE);
}

}  // namespace

void write_standard_output(std::string_view contents) {
  if (write_all(STDOUT_FILENO, contents)) return;
  if (errno == EPIPE) die_of_sigpipe();
  throw Error(ExitCode::kFailure,
              fmt::format("pyflame: cannot write the profile to standard output: {}", std::strerror(errno)));
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  if (path_ == "-") {
    kind_ = Kind::kStdout;
    return;
  }
  // Follow symbolic links ourselves, to see what the path ends at: a magic
  // link of /proc (/dev/stdout -> /proc/self/fd/1 -> "pipe:[...]") is written
  // through as it is, never resolved to a name and renamed over.
  std::string p = path_;
  bool magic = false;
  struct stat st {};
  bool exists = false;
  for (int hops = 0;; ++hops) {
    auto [dir, base] = split(p);
    if (base.empty() || base == "." || base == "..")
      throw Error(ExitCode::kUsage, fmt::format("pyflame: output path {} names a directory, not a file", path_));
    auto canonical = real_dir(dir);
    if (!canonical) throw usage_error(path_, fmt::format("{} (in directory {})", std::strerror(errno), dir));
    if (under_proc(*canonical)) magic = true;
    p = (*canonical == "/" ? "" : *canonical) + "/" + base;
    if (::lstat(p.c_str(), &st) != 0) {
      if (errno != ENOENT) throw usage_error(path_, std::strerror(errno));
      break;  // a new file
    }
    exists = true;
    if (!S_ISLNK(st.st_mode) || magic) break;
    if (hops >= 40) throw usage_error(path_, std::strerror(ELOOP));
    // fs.protected_symlinks' rule, which resolving by hand would bypass: in
    // a sticky world-writable directory (/tmp) only a link of ours or of the
    // directory's owner is followed.
    struct stat dst;
    if (::stat(canonical->c_str(), &dst) == 0 && (dst.st_mode & S_ISVTX) && (dst.st_mode & S_IWOTH) &&
        st.st_uid != ::geteuid() && st.st_uid != dst.st_uid)
      throw usage_error(path_, fmt::format("{} is a symbolic link of another user (uid {}) in the "
                                           "sticky directory {}; not following it",
                                           p, st.st_uid, *canonical));
    char target[PATH_MAX];
    ssize_t n = ::readlink(p.c_str(), target, sizeof target - 1);
    if (n < 0) throw usage_error(path_, std::strerror(errno));
    target[n] = '\0';
    p = target[0] == '/' ? std::string(target) : *canonical + "/" + target;
    exists = false;
  }

  if (magic && exists) {
    auto [dir, base] = split(p);
    if (auto fd = own_fd(dir, base)) {  // our own descriptor: share it, offset and O_APPEND included
      fd_ = ::fcntl(*fd, F_DUPFD_CLOEXEC, 3);
      if (fd_ < 0) throw usage_error(path_, std::strerror(errno));
      kind_ = Kind::kWriteThrough;
      return;
    }
    if (::stat(p.c_str(), &st) != 0) throw usage_error(path_, std::strerror(errno));
  }
  if (exists && S_ISDIR(st.st_mode))
    throw Error(ExitCode::kUsage, fmt::format("pyflame: output path {} is a directory", path_));
  if (exists && (magic || !S_ISREG(st.st_mode))) {
    kind_ = Kind::kWriteThrough;
    if (S_ISSOCK(st.st_mode)) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      if (p.size() >= sizeof addr.sun_path) throw usage_error(path_, "socket path too long");
      std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw usage_error(path_, std::strerror(errno));
      return;
    }
    // A FIFO waits here for its reader, as the shell's `>` does.
    int flags = O_WRONLY | O_NOCTTY | O_CLOEXEC | (S_ISREG(st.st_mode) ? O_TRUNC : 0);
    fd_ = ::open(p.c_str(), flags);
    if (fd_ < 0) throw usage_error(path_, std::strerror(errno));
    return;
  }

  // A regular file or a new one: a temporary file in the same directory
  // (rename() within one file system is atomic).
  kind_ = Kind::kReplace;
  destination_ = p;
  new_mode_ = 0666 & ~current_umask();
  auto [dir, base] = split(destination_);
  std::string pattern = (dir == "/" ? "" : dir) + "/." + base + ".XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  fd_ = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd_ < 0) throw usage_error(path_, fmt::format("{} (in directory {})", std::strerror(errno), dir));
  temp_path_ = name.data();
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

std::string OutputFile::description() const { return kind_ == Kind::kStdout ? "standard output" : path_; }

void OutputFile::commit(std::string_view contents) {
  if (kind_ == Kind::kStdout) {
    write_standard_output(contents);
    return;
  }
  auto fail = [&](const char* what) {
    throw Error(ExitCode::kFailure, fmt::format("pyflame: {} {}: {}", what, path_, std::strerror(errno)));
  };
  if (!write_all(fd_, contents)) fail("cannot write the profile to");
  if (kind_ == Kind::kWriteThrough) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR) fail("cannot write the profile to");
    return;
  }
  // The file replaced keeps its mode and (where we may set it) its owner.
  struct stat st;
  if (::stat(destination_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    if (::fchown(fd_, st.st_uid, st.st_gid) != 0) {
      // Not ours to give away: it becomes ours, as any rewrite would make it.
    }
    if (::fchmod(fd_, st.st_mode & 0777) != 0) fail("cannot set the mode of");
  } else if (::fchmod(fd_, new_mode_) != 0) {
    fail("cannot set the mode of");
  }
  if (::fsync(fd_) != 0) fail("cannot sync");
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot write the profile to");
  if (::rename(temp_path_.c_str(), destination_.c_str()) != 0) fail("cannot rename the profile to");
  temp_path_.clear();
}

}  // namespace pyflame::core
