// SPDX-License-Identifier: Apache-2.0
#include "core/cli/launched_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/target/fd_limit.h"
#include "core/cli/stop_signals.h"
#include "core/target/thread_stopper.h"

namespace pyflame::core {

using Clock = std::chrono::steady_clock;

LaunchedCommand::LaunchedCommand(const std::vector<std::string>& argv) {
  // exec's failure reaches us through a close-on-exec pipe.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error(ExitCode::kFailure, fmt::format("pyflame: pipe: {}", std::strerror(errno)));
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0)
    throw Error(ExitCode::kFailure, fmt::format("pyflame: fork: {}", std::strerror(errno)));
  if (pid_ == 0) {
    ::close(fds[0]);
    // Not our SIGPIPE disposition (ignored) nor our stop handlers.
    ::signal(SIGPIPE, SIG_DFL);
    for (int sig : kStopSignals) ::signal(sig, SIG_DFL);
    restore_open_file_limit();
    ::execvp(args[0], args.data());
    int err = errno;
    ssize_t ignored = ::write(fds[1], &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  ::close(fds[1]);
  int err = 0;
  ssize_t n;
  do n = ::read(fds[0], &err, sizeof err);
  while (n < 0 && errno == EINTR);
  ::close(fds[0]);
  if (n == sizeof err) {
    wait();
    throw Error(ExitCode::kUsage, fmt::format("pyflame: cannot run {}: {}", argv[0], std::strerror(err)));
  }
}


bool LaunchedCommand::poll() {
  if (status_) return true;
  int status;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_)
    status_ = status;
  else if (r < 0 && errno == ECHILD)  // reaped already, as a tracee (--blocking)
    status_ = ThreadStopper::reaped_status(pid_);
  return status_.has_value();
}

bool LaunchedCommand::wait(double seconds) {
  auto deadline = Clock::now() + std::chrono::duration<double>(std::max(seconds, 0.0));
  while (!poll()) {
    if (seconds < 0) {
      int status;
      pid_t r = ::waitpid(pid_, &status, 0);
      if (r == pid_) status_ = status;
      if (r < 0 && errno != EINTR) return false;
      continue;
    }
    if (Clock::now() >= deadline) return false;
    ::usleep(10000);
  }
  return true;
}

int LaunchedCommand::exit_code() const {
  if (!status_) return 0;
  if (WIFEXITED(*status_)) return WEXITSTATUS(*status_);
  if (WIFSIGNALED(*status_)) return 128 + WTERMSIG(*status_);
  return 1;
}

std::string LaunchedCommand::describe() const {
  if (!status_) return "is still running";
  if (WIFSIGNALED(*status_)) return fmt::format("was killed by signal {}", WTERMSIG(*status_));
  return fmt::format("exited with status {}", exit_code());
}


void finish_command(LaunchedCommand& command, int stop_signal) {
  if (stop_signal != 0 && !command.exited()) {
    // A Ctrl-C on the terminal reached the command too; give it a moment
    // before passing the signal on, so that it does not get it twice.
    if (!command.wait(1.0)) {
      ::kill(command.pid(), stop_signal);
      command.wait(5.0);
    }
  } else if (!command.exited()) {
    std::fprintf(stderr, "pyflame: recording done; waiting for the command (pid %d) to finish\n",
                 command.pid());
    command.wait();
  }
  std::fprintf(stderr, "pyflame: the command %s\n", command.describe().c_str());
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`*?[]{}()<>|&;#~") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

}  // namespace pyflame::core
