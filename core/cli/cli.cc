// SPDX-License-Identifier: Apache-2.0
// The command line shared by every pyflameX.Y (see docs/usage.md).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <optional>

#include "core/target/attach.h"
#include "core/output/dump_writer.h"
#include "core/errors.h"
#include "core/target/fd_limit.h"
#include "core/output/output_file.h"
#include "core/target/privilege.h"
#include "core/sampling/python_module.h"
#include "core/cli/command_line.h"
#include "core/cli/dump_core.h"
#include "core/cli/dump_live.h"
#include "core/cli/dump_tree.h"
#include "core/cli/exit_code_of.h"
#include "core/cli/record.h"
#include "core/cli/stream.h"
#include "core/cli/top.h"
#include "core/sampling/sample_mode.h"
#include "core/sampling/sampler.h"
#include "core/target/thread_stopper.h"

#ifndef PYFLAME_VERSION
#define PYFLAME_VERSION "0.1.0"
#endif

namespace pyflame::core {
namespace {

Error usage(const std::string& message) { return Error(ExitCode::kUsage, "pyflame: " + message); }

// --mode, or what its aliases say: --idle is wall, --gil is gil (with or
// without --idle, as before --mode), -x is cpu. An alias that says
// something else than --mode is refused rather than guessed.
SampleMode check_mode(const std::optional<std::string>& mode, bool idle, bool exclude_idle, bool gil,
                      SampleMode fallback) {
  if (idle && exclude_idle) throw usage("--idle and -x/--exclude-idle contradict each other");
  std::optional<SampleMode> by_alias;
  if (gil) by_alias = SampleMode::kGil;
  else if (idle) by_alias = SampleMode::kWall;
  else if (exclude_idle) by_alias = SampleMode::kCpu;
  if (!mode) return by_alias.value_or(fallback);
  std::optional<SampleMode> asked = parse_sample_mode(*mode);
  if (!asked) throw usage(fmt::format("unknown mode '{}': use wall, cpu or gil", *mode));
  if (by_alias && *by_alias != *asked)
    throw usage(fmt::format("--mode {} contradicts {}", *mode,
                            gil ? "--gil" : idle ? "--idle" : "-x/--exclude-idle"));
  return *asked;
}

int dump(const PythonModule& module, const DumpArgs& options) {
  // dump shows every thread unless asked otherwise: it answers "where is
  // each thread", idle ones included.
  const SampleMode mode = check_mode(options.mode, false, false, false, SampleMode::kWall);
  if (options.core) {
    if (options.blocking) throw usage("--blocking stops a running process; a core file needs no stop");
    if (mode == SampleMode::kCpu)
      throw usage("--mode cpu needs each thread's run state, which a core file does not record; "
                  "use wall or gil");
    return dump_core(module, options, mode);
  }
  if (options.pid == 0) throw usage("dump needs -p PID, or --core FILE");
  // The same rule as record's -p: a PID is a positive number.
  if (options.pid <= 0) throw usage(fmt::format("invalid PID {}", options.pid));
  if (options.subprocesses) return dump_tree(module, options, mode);
  std::string text = dump_live(module, options.pid, options, mode);
  privilege::drop();  // nothing is written with a capability
  write_standard_output(text);
  return 0;
}

std::string version_text(const BuildInfo& info) {
  return fmt::format(
      "{} {}\n"
      "built for {}; layout measured from the headers of Python {}\n"
      "layout fingerprint {}\n",
      binary_name(info), PYFLAME_VERSION, info.python(), info.headers_version,
      info.layout_fingerprint);
}

RecordOptions check_record_args(const RecordArgs& a, std::vector<std::string> command,
                                std::optional<double> default_duration) {
  RecordOptions o;
  if (a.pid.has_value() == !command.empty())
    throw usage(a.pid ? "give either -p PID or a command to launch, not both"
                      : "nothing to profile: give -p PID, or a command after -- (or -t)");
  if (a.pid && *a.pid <= 0) throw usage(fmt::format("invalid PID {}", *a.pid));
  o.run.pid = a.pid;
  o.run.command = std::move(command);
  if (a.rate && a.interval) throw usage("give --rate or -r/--interval, not both");
  // The rate's bounds are the interval's: from one sample an hour (a rate
  // closer to 0 makes the interval infinite, or too long for a clock) to
  // 1,000,000 a second.
  constexpr double kMaxRate = 1e6;
  constexpr double kMaxInterval = 3600;
  if (a.rate) {
    if (!(*a.rate >= 1.0 / kMaxInterval) || *a.rate > kMaxRate)
      throw usage(fmt::format("--rate must be between 1/3600 (one sample an hour) and {:.0f} samples "
                              "per second, not {}", kMaxRate, *a.rate));
    o.run.interval_seconds = 1.0 / *a.rate;
  }
  if (a.interval) {
    if (!(*a.interval >= 1.0 / kMaxRate) || *a.interval > kMaxInterval)
      throw usage(fmt::format("-r/--interval must be between 0.000001 and 3600 seconds, not {}", *a.interval));
    o.run.interval_seconds = *a.interval;
  }
  o.run.duration_seconds = a.duration ? a.duration : (o.run.pid ? default_duration : std::nullopt);
  if (o.run.duration_seconds && !(*o.run.duration_seconds > 0 && std::isfinite(*o.run.duration_seconds)))
    throw usage(fmt::format("the duration must be a positive number of seconds, not {}", *o.run.duration_seconds));
  if (a.format && a.flamechart) throw usage("--flamechart is a format; give it or --format, not both");
  if (a.format) {
    o.format = parse_format(*a.format);
    if (!o.format)
      throw usage(fmt::format("unknown format '{}': use collapsed, flamegraph, speedscope, pprof or flamechart",
                              *a.format));
  }
  if (a.flamechart) o.format = OutputFormat::kFlamechart;
  if (a.output && a.output->empty()) throw usage("the output path is empty");
  o.output = a.output;
  o.thread_roots = a.threads;
  o.run.mode = check_mode(a.mode, a.idle, a.exclude_idle, a.gil, SampleMode::kCpu);
  o.run.native = a.native || a.native_all;
  o.run.native_all = a.native_all;
  o.run.blocking = a.blocking || o.run.native;  // an unwind needs the thread stopped
  o.status = !a.no_status;
  o.stats_json = a.stats_json;
  o.run.subprocesses = a.subprocesses;
  return o;
}

TopOptions check_top_args(const CommandLine& line, std::vector<std::string> command) {
  const RecordOptions r = check_record_args(line.top_sampling, std::move(command), std::nullopt);
  TopOptions o;
  o.run = r.run;
  o.stats_json = r.stats_json;
  const TopArgs& t = line.top;
  if (t.refresh) {
    if (!(*t.refresh >= 0.1 && *t.refresh <= 3600))
      throw usage(fmt::format("--interval must be between 0.1 and 3600 seconds, not {}", *t.refresh));
    o.refresh_seconds = *t.refresh;
    o.plain = true;
  }
  if (t.once) o.once = o.plain = true;
  if (t.rows) o.rows = *t.rows;
  return o;
}

}  // namespace

int run(const PythonModule& module, int argc, char** argv) {
  privilege::init();  // first: with more privilege than our caller, become the caller
  raise_open_file_limit();
  const BuildInfo& info = module.build_info();
  ::signal(SIGPIPE, SIG_IGN);
  CommandLine line(fmt::format("{}: a sampling profiler for {}CPython {}.{} processes",
                               binary_name(info), info.free_threaded ? "free-threaded " : "",
                               info.major, info.minor),
                   binary_name(info));
  try {
    line.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return line.app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s\nRun `%s --help` for usage.\n", binary_name(info).c_str(),
                 e.what(), binary_name(info).c_str());
    return static_cast<int>(ExitCode::kUsage);
  }
  std::vector<std::string> command = line.command();
  if (command.size() == 1 && command[0].empty()) {
    std::fprintf(stderr, "%s: no command after -- or -t\n", binary_name(info).c_str());
    return static_cast<int>(ExitCode::kUsage);
  }
  if (line.show_version) {
    std::fputs(version_text(info).c_str(), stdout);
    return 0;
  }
  return exit_code_of([&] {
    if (line.dump_cmd->parsed()) {
      if (!command.empty()) throw usage("dump takes no command");
      return dump(module, line.dump);
    }
    if (line.top_cmd->parsed()) return top(module, check_top_args(line, std::move(command)));
    if (line.stream_cmd->parsed()) {
      if (!command.empty()) throw usage("stream takes no command");
      RecordOptions o = check_record_args(line.stream, {}, std::nullopt);
      o.run.wait_for_interpreter = true;  // a child may not be Python yet
      return stream(module, o.run);
    }
    if (line.record_cmd->parsed())
      return record(module, check_record_args(line.record, std::move(command), std::nullopt));
    if (line.classic.pid || !command.empty())  // Pyflame records one second by default
      return record(module, check_record_args(line.classic, std::move(command), 1.0));
    std::fputs(line.app.help().c_str(), stderr);
    return static_cast<int>(ExitCode::kUsage);
  });
}

}  // namespace pyflame::core
