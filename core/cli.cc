// The command line shared by every pyflameX.Y (see docs/usage.md).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fmt/format.h>
#include <optional>

#include "core/dump_writer.h"
#include "core/errors.h"
#include "core/native_threads.h"
#include "core/python_module.h"
#include "core/thread_stopper.h"

#ifndef PYFLAME_VERSION
#define PYFLAME_VERSION "0.1.0"
#endif

namespace pyflame::core {
namespace {

struct DumpOptions {
  int pid = 0;
  bool json = false;
  bool blocking = false;
};

std::string binary_name(const BuildInfo& info) {
  return fmt::format("pyflame{}.{}", info.major, info.minor);
}

void check_version(const BuildInfo& info, const PythonBinary& binary, int pid) {
  const PythonVersionId& found = binary.version();
  if (found.major == info.major && found.minor == info.minor) return;
  throw Error(ExitCode::kWrongVersion,
              fmt::format("{}: process {} runs Python {} (found from {} in {}), but this binary "
                          "reads Python {}.{}; use pyflame{}.{} (or the `pyflame` wrapper, which "
                          "picks it)",
                          binary_name(info), pid, found.full, found.how, binary.target_path(),
                          info.major, info.minor, found.major, found.minor));
}

// Names, idle state and TIDs come from /proc, not from the interpreter.
// `tasks` is read before any thread is stopped: a stopped thread is not idle.
void add_native_details(const Process& process, const std::vector<TaskInfo>& tasks,
                        NativeThreadResolver& resolver, Snapshot& snap) {
  std::vector<uint64_t> unresolved;
  for (const ThreadSample& t : snap.threads)
    if (!t.native_id) unresolved.push_back(t.thread_id);
  if (!unresolved.empty()) {
    auto tids = resolver.resolve(process, unresolved, tasks);
    size_t k = 0;
    for (ThreadSample& t : snap.threads)
      if (!t.native_id) {
        if (tids[k]) t.native_id = *tids[k];
        ++k;
      }
  }
  for (ThreadSample& t : snap.threads) {
    if (!t.native_id) continue;
    for (const TaskInfo& task : tasks) {
      if (task.tid != *t.native_id) continue;
      t.name = task.name;
      t.idle = task.state != 'R';
    }
  }
}

int dump(const PythonModule& module, const DumpOptions& options) {
  Process process(options.pid);
  std::unique_ptr<Interpreter> interpreter;
  try {
    PythonBinary binary = PythonBinary::find(process);
    check_version(module.build_info(), binary, options.pid);
    interpreter = module.locate(process, binary);
  } catch (const Error&) {
    // Whatever looked wrong, a target that vanished meanwhile explains it.
    if (!process.alive()) throw_target_exited(options.pid);
    throw;
  }

  Snapshot snapshot;
  snapshot.pid = options.pid;
  snapshot.python_version = interpreter->python_version();
  bool ok = false;
  NativeThreadResolver resolver;
  {
    std::vector<TaskInfo> tasks = process.tasks();
    std::optional<ThreadStopper> stopper;
    if (options.blocking) stopper.emplace(options.pid);
    // A running target can change under a read; a few retries get a
    // consistent sample (with --blocking the first one is).
    for (int attempt = 0; attempt < 5 && !ok; ++attempt) {
      snapshot.threads.clear();
      ok = interpreter->sample(snapshot);
      if (!ok && !process.alive()) throw_target_exited(options.pid);
    }
    if (ok) add_native_details(process, tasks, resolver, snapshot);
  }
  if (!ok) {
    if (!process.alive()) throw_target_exited(options.pid);
    throw Error(ExitCode::kFailure,
                fmt::format("pyflame: could not read a consistent stack of process {} "
                            "(its interpreter may be finalizing); try --blocking",
                            options.pid));
  }
  std::string text = options.json ? snapshot_to_json(snapshot) : snapshot_to_text(snapshot);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : static_cast<int>(ExitCode::kFailure);
}

std::string version_text(const BuildInfo& info) {
  return fmt::format(
      "{} {}\n"
      "built for Python {}.{} from the headers of Python {} ({})\n"
      "layout fingerprint {}\n",
      binary_name(info), PYFLAME_VERSION, info.major, info.minor, info.headers_version,
      info.headers_path, info.layout_fingerprint);
}

}  // namespace

int run(const PythonModule& module, int argc, char** argv) {
  const BuildInfo& info = module.build_info();
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app(fmt::format("{}: a sampling profiler for CPython {}.{} processes",
                           binary_name(info), info.major, info.minor),
               binary_name(info));
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("-V,--version", show_version, "print version and build details, then exit");

  DumpOptions dump_options;
  CLI::App* dump_cmd = app.add_subcommand("dump", "print every thread's Python stack once");
  dump_cmd->add_option("-p,--pid", dump_options.pid, "process to read")->required();
  dump_cmd->add_flag("--json", dump_options.json, "machine-readable output (see docs/usage.md)");
  dump_cmd->add_flag("--blocking", dump_options.blocking,
                     "stop the target's threads while reading, for a consistent snapshot");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s\nRun `%s --help` for usage.\n", binary_name(info).c_str(),
                 e.what(), binary_name(info).c_str());
    return static_cast<int>(ExitCode::kUsage);
  }
  if (show_version) {
    std::fputs(version_text(info).c_str(), stdout);
    return 0;
  }
  try {
    if (dump_cmd->parsed()) return dump(module, dump_options);
    std::fputs(app.help().c_str(), stderr);
    return static_cast<int>(ExitCode::kUsage);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pyflame: internal error: %s\n", e.what());
    return static_cast<int>(ExitCode::kFailure);
  }
}

}  // namespace pyflame::core
