// SPDX-License-Identifier: Apache-2.0
#include "core/cli/dump_tree.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/cli/dump_live.h"
#include "core/cli/sibling_stream.h"
#include "core/errors.h"
#include "core/output/json.h"
#include "core/output/output_file.h"
#include "core/target/privilege.h"
#include "core/target/process.h"
#include "core/target/process_tree.h"
#include "core/target/python_binary.h"

namespace pyflame::core {
namespace {

// A sibling's dump: it reads one process, as ours does, so it gets as long
// as a slow dump could take, and as much output as a big one could give.
constexpr double kSiblingSeconds = 60;
constexpr size_t kMaxSiblingOutput = size_t{256} << 20;

struct ProcessDump {
  pid_t pid = 0;
  std::string command;
  std::string python_version;  // empty when not read
  std::string text;            // the dump (text or a JSON document)
  std::string skipped;         // why it is not shown, when it is not
};

// Runs `binary dump -p PID` with our options; its output, or why none.
std::string sibling_dump(const std::string& binary, pid_t pid, const DumpArgs& options,
                         SampleMode mode, std::string& skipped) {
  std::vector<std::string> args = {"dump", "-p", std::to_string(pid), "--mode", sample_mode_name(mode)};
  if (options.json) args.push_back("--json");
  if (options.blocking) args.push_back("--blocking");
  if (options.locals) args.push_back("--locals");
  if (options.native_all) args.push_back("--native-all");
  else if (options.native) args.push_back("--native");
  SpawnedSibling sibling = spawn_sibling(binary, std::move(args));
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(kSiblingSeconds));
  std::string out;
  char buf[65536];
  bool too_much = false, too_slow = false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      too_slow = true;
      break;
    }
    pollfd p{sibling.stdout_fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    ssize_t n = ::read(sibling.stdout_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    if (out.size() + static_cast<size_t>(n) > kMaxSiblingOutput) {
      too_much = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(sibling.stdout_fd);
  if (too_slow || too_much) ::kill(sibling.pid, SIGKILL);
  const int code = wait_exit_code(sibling.pid, true);
  if (too_slow) skipped = fmt::format("{} did not finish in {:g} s", binary, kSiblingSeconds);
  else if (too_much) skipped = fmt::format("{} wrote more than {} MiB", binary, kMaxSiblingOutput >> 20);
  else if (code != 0) skipped = fmt::format("{} exited with code {} (see its message above)", binary, code);
  return out;
}

// Reads `pid` by whichever binary can.
ProcessDump dump_one(const PythonModule& module, pid_t pid, const DumpArgs& options, SampleMode mode) {
  ProcessDump d;
  d.pid = pid;
  d.command = process_command_line(pid);
  try {
    std::optional<PythonVersionId> version;
    {
      Process process(pid);
      version = PythonBinary::find(process).version();
    }
    d.python_version = version->full;
    const BuildInfo& ours = module.build_info();
    if (version->build() == ours.build()) {
      d.text = dump_live(module, pid, options, mode);
    } else if (std::optional<std::string> binary = find_sibling_binary(version->build())) {
      d.text = sibling_dump(*binary, pid, options, mode, d.skipped);
    } else {
      d.skipped = fmt::format("Python {}, but pyflame{} is not installed", version->full,
                              version->build());
    }
  } catch (const Error& e) {
    std::string_view why = e.what();
    if (why.starts_with("pyflame: ")) why.remove_prefix(9);
    d.skipped = e.code() == ExitCode::kNotPython ? "not Python" : std::string(why);
  }
  if (!d.skipped.empty()) d.text.clear();
  return d;
}

std::string trim_newlines(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

int dump_tree(const PythonModule& module, const DumpArgs& options, SampleMode mode) {
  { Process root(options.pid); }  // it must exist and be ours to read; Python or not
  std::vector<pid_t> pids = {options.pid};
  ProcessTree tree(options.pid);
  for (const ProcessKey& key : tree.discover()) pids.push_back(key.pid);

  std::vector<ProcessDump> dumps;
  for (pid_t pid : pids) dumps.push_back(dump_one(module, pid, options, mode));
  privilege::drop();  // nothing is written with a capability

  std::string out;
  if (options.json) {
    out = "{\"processes\": [";
    for (size_t i = 0; i < dumps.size(); ++i) {
      const ProcessDump& d = dumps[i];
      out += i == 0 ? "\n" : ",\n";
      out += fmt::format("{{\"pid\": {}, \"command\": ", d.pid);
      append_json_string(out, d.command);
      if (!d.python_version.empty()) {
        out += ", \"python_version\": ";
        append_json_string(out, d.python_version);
      }
      if (d.skipped.empty()) {
        out += ", \"dump\": " + trim_newlines(d.text);
      } else {
        out += ", \"skipped\": ";
        append_json_string(out, d.skipped);
      }
      out += "}";
    }
    out += "\n]}\n";
  } else {
    for (const ProcessDump& d : dumps) {
      if (!d.skipped.empty()) {
        out += fmt::format("process {}: {} (not shown: {})\n\n", d.pid, d.command, d.skipped);
        continue;
      }
      out += fmt::format("process {}: {} (Python {})\n", d.pid, d.command, d.python_version);
      out += trim_newlines(d.text) + "\n\n";
    }
  }
  write_standard_output(out);
  if (tree.over_limit())
    std::fprintf(stderr, "pyflame: the process tree has more than %zu processes; the ones beyond are "
                         "not shown\n", ProcessTree::kMaxProcesses);
  // Success when some process was shown; else the root's own reason.
  for (const ProcessDump& d : dumps)
    if (d.skipped.empty()) return 0;
  std::fprintf(stderr, "pyflame: no process of the tree of process %d could be read as Python\n", options.pid);
  return static_cast<int>(ExitCode::kNotPython);
}

}  // namespace pyflame::core
