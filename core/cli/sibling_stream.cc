// SPDX-License-Identifier: Apache-2.0
#include "core/cli/sibling_stream.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/cli/sampling_run.h"
#include "core/errors.h"
#include "core/target/regular_file.h"
#include "core/log.h"
#include "core/sampling/sample_mode.h"

extern char** environ;

namespace pyflame::core {
namespace {

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// More than a tick's worth is never read at once: a sibling that floods
// the pipe cannot hold the sampling loop.
constexpr size_t kMaxReadPerPoll = 1 << 20;

}  // namespace

std::optional<std::string> find_sibling_binary(const std::string& build) {
  const std::string name = "pyflame" + build;
  std::vector<std::string> dirs;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) dirs.push_back(directory_of(std::string(self, static_cast<size_t>(n))));
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (true) {
      const size_t colon = rest.find(':');
      std::string_view dir = rest.substr(0, colon);
      // An empty entry is the current directory, for execvp; not for us:
      // a profiler run from a directory the target's owner controls must
      // not run what they left there.
      if (!dir.empty() && dir.front() == '/') dirs.emplace_back(dir);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const std::string& dir : dirs) {
    std::string candidate = dir + "/" + name;
    if (is_executable_file(candidate)) return candidate;
  }
  return std::nullopt;
}

SpawnedSibling spawn_sibling(const std::string& binary, std::vector<std::string> args) {
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error(ExitCode::kFailure, fmt::format("pyflame: cannot make a pipe: {}", std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // Its own process group: a Ctrl-C at the terminal is ours to pass on
  // (SiblingStream::stop), after our own last tick, not the sibling's to
  // act on first.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  SpawnedSibling spawned;
  const int err = ::posix_spawn(&spawned.pid, binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (err != 0) {
    ::close(fds[0]);
    throw Error(ExitCode::kFailure, fmt::format("pyflame: cannot run {}: {}", binary, std::strerror(err)));
  }
  spawned.stdout_fd = fds[0];
  return spawned;
}

int wait_exit_code(pid_t pid, bool block) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

SiblingStream::SiblingStream(const std::string& binary, pid_t pid, const RunOptions& options) {
  std::vector<std::string> args = {"stream", "-p", std::to_string(pid), "--rate",
                                   fmt::format("{:.9g}", 1.0 / options.interval_seconds), "--mode",
                                   std::string(sample_mode_name(options.mode))};
  if (options.blocking) args.push_back("--blocking");
  if (options.native_all) args.push_back("--native-all");
  else if (options.native) args.push_back("--native");
  SpawnedSibling spawned = spawn_sibling(binary, std::move(args));
  sibling_ = spawned.pid;
  fd_ = spawned.stdout_fd;
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  PYFLAME_DEBUG_LOG("process {}: read by {} (pid {})", pid, binary, sibling_);
}

SiblingStream::~SiblingStream() {
  if (fd_ >= 0) ::close(fd_);
  if (sibling_ > 0 && !exit_code_) {
    ::kill(sibling_, SIGKILL);
    reap(true);
  }
}

void SiblingStream::reap(bool block) {
  if (sibling_ <= 0 || exit_code_) return;
  if (int code = wait_exit_code(sibling_, block); code >= 0) exit_code_ = code;
}

bool SiblingStream::poll(const SampleFn& each) {
  if (eof_) {
    reap(false);
    return !exit_code_;
  }
  char buf[65536];
  size_t taken = 0;
  while (taken < kMaxReadPerPoll) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // EAGAIN: nothing more for now
    if (n == 0) {
      eof_ = true;
      break;
    }
    taken += static_cast<size_t>(n);
    try {
      reader_.feed(std::string_view(buf, static_cast<size_t>(n)));
    } catch (const Error& e) {
      // Our own sibling wrote it, so this is a bug, not an attack; the
      // stream is ended either way, its samples so far kept.
      failure_ = e.what();
      ::kill(sibling_, SIGKILL);
      eof_ = true;
    }
    for (const SampleStreamReader::Sample& s : reader_.samples()) each(s.thread, s.elapsed);
    reader_.clear_samples();
    if (eof_) break;
  }
  if (eof_) {
    // It closed its end: it exits next (a moment at most).
    reap(true);
    return false;
  }
  return true;
}

void SiblingStream::stop() {
  if (sibling_ > 0 && !exit_code_) ::kill(sibling_, SIGTERM);
}

void SiblingStream::drain(const SampleFn& each, double seconds) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(seconds));
  while (poll(each)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      ::kill(sibling_, SIGKILL);
      break;
    }
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  // Killed: its end of the pipe closes as it dies; wait for that, not spin.
  while (poll(each)) {
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, -1);
  }
}

}  // namespace pyflame::core
