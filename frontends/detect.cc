// SPDX-License-Identifier: Apache-2.0
// pyflame-detect: tells the `pyflame` wrapper which Python a process runs,
// or which Python a command would run, so that it can exec the matching
// pyflameX.Y. Version-agnostic: it links only the core.
//
//   pyflame-detect --pid PID        a running process (through /proc/PID/root)
//   pyflame-detect --exe COMMAND    a command about to be launched: looked up
//                                   in PATH; `#!` lines, `env` and pyenv
//                                   shims followed
//
//   pyflame-detect --args ARGS...   the wrapper's arguments (a process, a
//                                   command, or dump --core's file): parsed with the
//                                   binaries' own command line to find the
//                                   target; prints "MINOR FULL VERBOSE WHAT"
//                                   ("any none ..." for a non-Python target
//                                   of --subprocesses: any binary will do)
//
// Prints "MAJOR.MINOR FULL" (e.g. "3.11 3.11.7") and exits 0, or prints one
// line to stderr and exits with pyflameX.Y's codes (docs/usage.md): 2 usage,
// 3 no such process, 4 permission denied, 5 not Python (or PyPy), 1 other.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/cli/command_line.h"
#include "core/cli/exit_code_of.h"
#include "core/target/elf.h"
#include "core/errors.h"
#include "core/target/regular_file.h"
#include "core/log.h"
#include "core/target/core_file.h"
#include "core/target/process.h"
#include "core/target/python_binary.h"

namespace pyflame::core {
namespace {

constexpr int kMaxScriptDepth = 8;  // #! chains; Linux itself allows 4
constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";

std::string basename_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// As execvp(3) finds a command: a name with a slash is a path, otherwise the
// first executable file of that name in PATH (an empty entry is the
// current directory).
std::string resolve_command(const std::string& word) {
  if (word.empty()) throw Error(ExitCode::kUsage, "pyflame: the command to run is empty");
  if (word.find('/') != std::string::npos) {
    if (!is_executable_file(word))
      throw Error(ExitCode::kFailure,
                  fmt::format("pyflame: cannot run {}: {}", word,
                              ::access(word.c_str(), F_OK) == 0 ? "not an executable file"
                                                                 : "no such file"));
    return word;
  }
  const char* path = std::getenv("PATH");
  for (const std::string& dir : split(path != nullptr ? path : kDefaultPath, ':')) {
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + word;
    if (is_executable_file(candidate)) return candidate;
  }
  throw Error(ExitCode::kFailure,
              fmt::format("pyflame: cannot run {}: command not found in PATH", word));
}

// The interpreter named by a `#!` line, or nullopt if `path` is no script.
// Linux passes everything after the interpreter as one argument; for
// `#!/usr/bin/env [-S] [VAR=x] python3 -u` the program env would run is the
// first word that is neither an option nor an assignment.
std::optional<std::string> script_interpreter(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[2] = {};
  if (!in.read(head, 2) || head[0] != '#' || head[1] != '!') return std::nullopt;
  std::string line;
  std::getline(in, line);
  if (line.size() > 4096) line.resize(4096);
  std::vector<std::string> words;
  for (const std::string& w : split(line, ' '))
    for (const std::string& v : split(w, '\t'))
      if (!v.empty() && v != "\r") words.push_back(v);
  if (words.empty())
    throw Error(ExitCode::kNotPython, fmt::format("pyflame: {} has an empty #! line", path));
  if (basename_of(words[0]) != "env") return words[0];
  for (size_t i = 1; i < words.size(); ++i) {
    if (words[i][0] == '-' || words[i].find('=') != std::string::npos) continue;
    return resolve_command(words[i]);
  }
  throw Error(ExitCode::kNotPython,
              fmt::format("pyflame: {}: its #! line runs env without a program", path));
}

// A pyenv shim is a bash script ending in
//   exec "/root/.pyenv/libexec/pyenv" exec "$program" "$@"
// Its interpreter is bash; the Python it runs is what `pyenv which PROGRAM`
// says (for the current directory, as the shim would decide). Returns the
// pyenv executable if `path` is such a shim.
std::optional<std::string> pyenv_of_shim(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  for (int n = 0; n < 64 && std::getline(in, line); ++n) {
    const std::string marker = "\" exec \"$program\"";
    size_t end = line.find(marker);
    if (!line.starts_with("exec \"") || end == std::string::npos) continue;
    std::string pyenv = line.substr(6, end - 6);
    if (basename_of(pyenv) == "pyenv" && is_executable_file(pyenv)) return pyenv;
  }
  return std::nullopt;
}

std::string pyenv_which(const std::string& pyenv, const std::string& program) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error(ExitCode::kFailure, fmt::format("pyflame: pipe: {}", std::strerror(errno)));
  pid_t child = ::fork();
  if (child == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::execl(pyenv.c_str(), pyenv.c_str(), "which", program.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    throw Error(ExitCode::kFailure,
                fmt::format("pyflame: {} is a pyenv shim, and `{} which {}` failed", program, pyenv,
                            program));
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The run path of `info`'s file with $ORIGIN (its directory) expanded.
std::vector<std::string> run_path_dirs(const ElfDynamic& info, const std::string& path) {
  const std::string origin = std::filesystem::path(path).parent_path().string();
  std::vector<std::string> dirs;
  for (std::string dir : info.run_path) {
    for (const char* token : {"$ORIGIN", "${ORIGIN}"})
      if (dir.starts_with(token)) dir = origin + dir.substr(std::strlen(token));
    dirs.push_back(dir);
  }
  return dirs;
}

// Where the dynamic loader would find `soname` for `info`'s file: its
// run path (`dirs`), LD_LIBRARY_PATH, then the usual system directories. Good enough
// to read the patch level; the minor version comes from the name anyway.
std::optional<std::string> find_library(std::vector<std::string> dirs, const std::string& soname) {
  if (const char* env = std::getenv("LD_LIBRARY_PATH"))
    for (const std::string& d : split(env, ':')) dirs.push_back(d);
  for (const char* d : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib",
                        "/lib64", "/usr/lib64", "/lib", "/usr/lib"})
    dirs.emplace_back(d);
  for (const std::string& d : dirs) {
    if (d.empty()) continue;
    std::string candidate = d + "/" + soname;
    if (::access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return std::nullopt;
}

[[noreturn]] void not_python(const std::string& what, const std::string& why) {
  throw Error(ExitCode::kNotPython,
              fmt::format("pyflame: {} is not a Python interpreter: {}", what, why));
}

[[noreturn]] void pypy(const std::string& what) {
  throw Error(ExitCode::kNotPython,
              fmt::format("pyflame: {} is PyPy, which pyflame does not support "
                          "(it reads CPython's memory layout)", what));
}

PythonVersionId detect_command(const std::string& word) {
  std::string path = resolve_command(word);
  std::string what = word;
  for (int depth = 0;; ++depth) {
    if (depth > kMaxScriptDepth) not_python(word, "too many levels of #! scripts");
    if (auto pyenv = pyenv_of_shim(path)) {
      path = pyenv_which(*pyenv, basename_of(path));
      what = fmt::format("{} (which pyenv runs for {})", path, word);
      continue;
    }
    auto interpreter = script_interpreter(path);
    if (!interpreter) break;
    what = fmt::format("{} (the #! interpreter of {})", *interpreter, word);
    if (!is_executable_file(*interpreter))
      throw Error(ExitCode::kFailure, fmt::format("pyflame: cannot run {}: its #! interpreter {} "
                                                  "is not an executable file",
                                                  word, *interpreter));
    path = *interpreter;
  }
  // Names to guess from, the file's real one first: python3 -> python3.11.
  std::error_code ec;
  std::vector<std::string> names = {basename_of(std::filesystem::canonical(path, ec).string()),
                                    basename_of(path)};

  std::optional<ElfFile> elf;
  try {
    elf.emplace(path);
  } catch (const Error&) {
    not_python(what, "it is neither an ELF executable nor a #! script");
  }
  const ElfDynamic dyn = elf->dynamic();
  for (const std::string& lib : dyn.needed)
    if (lib.find("libpypy") != std::string::npos) pypy(what);
  if (elf->symbol("pypy_main_startup")) pypy(what);

  if (has_interpreter_symbols(*elf)) {
    if (auto v = interpreter_file_version(*elf, names)) return *v;
    not_python(what, "it contains a Python interpreter of unknown version");
  }
  // --enable-shared: the interpreter is the libpython it needs.
  for (const std::string& lib : dyn.needed) {
    auto v = version_from_file_name(lib);
    if (!v || !lib.starts_with("lib")) continue;
    if (auto found = find_library(run_path_dirs(dyn, path), lib)) {
      try {
        ElfFile library(*found);
        if (auto exact = interpreter_file_version(library, {lib})) return *exact;
      } catch (const Error&) {
      }
    }
    return *v;
  }
  not_python(what, "neither the executable nor a library it needs contains CPython");
}

PythonVersionId detect_process(const std::string& text) {
  int pid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (ec != std::errc() || end != text.data() + text.size() || pid <= 0)
    throw Error(ExitCode::kUsage, fmt::format("pyflame: '{}' is not a process ID", text));
  Process process(pid);
  try {
    return PythonBinary::find(process).version();
  } catch (const Error&) {
    if (!process.alive()) throw_target_exited(pid);
    throw;
  }
}

// With --subprocesses the target need not be Python (a shell script, a
// build, a test runner): every pyflameX.Y follows its tree and hands each
// process to the binary of its version. Then major is 0: "any binary".
template <typename Detect>
PythonVersionId detect_or_any(const CommandLine& line, Detect detect) {
  const bool tree = line.record.subprocesses || line.classic.subprocesses ||
                    line.top_sampling.subprocesses || line.dump.subprocesses;
  try {
    return detect();
  } catch (const Error& e) {
    if (!tree || e.code() != ExitCode::kNotPython) throw;
    return PythonVersionId{};
  }
}

// `--args ARGS...`: the wrapper's arguments, parsed with the binaries' own
// command line, name the target; prints "MINOR FULL VERBOSE WHAT" (VERBOSE
// 1 when -v or PYFLAME_LOG asks for info), or "help" for --help without a
// target.
int detect_from_arguments(int argc, char** argv) {
  // argv[1] is --args: parse from there, as if it were the program name.
  CommandLine line("pyflame", "pyflame");
  // Only the target matters here: what else is wrong with the arguments
  // the binary reports, in its own words.
  for (CLI::App* app : {&line.app, line.dump_cmd, line.record_cmd}) app->allow_extras();
  try {
    line.parse(argc - 1, argv + 1);
  } catch (const CLI::Success&) {
    std::puts("help");
    return std::fflush(stdout) == 0 ? 0 : static_cast<int>(ExitCode::kFailure);
  } catch (const CLI::ParseError& e) {
    throw Error(ExitCode::kUsage, fmt::format("pyflame: {}", e.what()));
  }
  PythonVersionId v;
  std::string what;
  if (line.dump_cmd->parsed() && line.dump.core) {
    // A core file: the version of the interpreter it had mapped.
    CoreFile core(*line.dump.core, CoreFileOptions{line.dump.lib_search, line.dump.executable});
    what = core.describe();
    v = PythonBinary::find(core).version();
  } else if (std::optional<int> pid = line.pid(); pid && *pid > 0) {
    what = fmt::format("process {}", *pid);
    v = detect_or_any(line, [&] { return detect_process(std::to_string(*pid)); });
  } else if (!line.command().empty() && !line.command()[0].empty()) {
    what = line.command()[0];
    v = detect_or_any(line, [&] { return detect_command(what); });
  } else {
    throw Error(ExitCode::kUsage, "pyflame: name a process (-p PID), a command (-t COMMAND... "
                                  "or record -- COMMAND...) or a core file (dump --core FILE)");
  }
  if (v.major == 0) {
    PYFLAME_INFO_LOG("{} is not Python; with --subprocesses any pyflameX.Y reads its tree", what);
    std::printf("any none %d %s\n", log_enabled(LogLevel::kInfo) ? 1 : 0, what.c_str());
    return std::fflush(stdout) == 0 ? 0 : static_cast<int>(ExitCode::kFailure);
  }
  PYFLAME_INFO_LOG("{} runs Python {} (from {})", what, v.full, v.how);
  std::printf("%s %s %d %s\n", v.build().c_str(), v.full.c_str(),
              log_enabled(LogLevel::kInfo) ? 1 : 0, what.c_str());
  return std::fflush(stdout) == 0 ? 0 : static_cast<int>(ExitCode::kFailure);
}

int run(int argc, char** argv) {
  const bool by_arguments = argc >= 2 && std::strcmp(argv[1], "--args") == 0;
  if (!by_arguments &&
      (argc != 3 || (std::strcmp(argv[1], "--pid") != 0 && std::strcmp(argv[1], "--exe") != 0))) {
    std::fputs("usage: pyflame-detect --pid PID | --exe COMMAND | --args PYFLAME-ARGS...\n", stderr);
    return static_cast<int>(ExitCode::kUsage);
  }
  return exit_code_of([&] {
    if (by_arguments) return detect_from_arguments(argc, argv);
    bool by_pid = std::strcmp(argv[1], "--pid") == 0;
    PythonVersionId v = by_pid ? detect_process(argv[2]) : detect_command(argv[2]);
    PYFLAME_INFO_LOG("{} {} runs Python {} (from {})", by_pid ? "process" : "command", argv[2],
                     v.full, v.how);
    std::printf("%s %s\n", v.build().c_str(), v.full.c_str());
    return std::fflush(stdout) == 0 ? 0 : static_cast<int>(ExitCode::kFailure);
  });
}

}  // namespace
}  // namespace pyflame::core

int main(int argc, char** argv) { return pyflame::core::run(argc, argv); }
