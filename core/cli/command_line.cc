// SPDX-License-Identifier: Apache-2.0
#include "core/cli/command_line.h"

#include <charconv>
#include <string_view>

#include "core/log.h"

namespace pyflame::core {
namespace {

// A PID is a positive decimal number; anything else is refused with the
// same words wherever it is given.
CLI::Validator process_id() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int pid = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
        if (ec != std::errc() || end != text.data() + text.size() || pid <= 0)
          return "'" + text + "' is not a process ID (a PID is a positive number)";
        return {};
      },
      "PID");
}

void add_verbose(CLI::App* cmd, int& verbosity) {
  cmd->add_flag("-v,--verbose", verbosity,
                "say what pyflame does on standard error (-v: info, -vv: debug; "
                "or PYFLAME_LOG=debug|info|warn)");
}

// Which threads a sample keeps: --mode and its aliases, for record and top.
void add_mode_options(CLI::App* cmd, RecordArgs& a) {
  cmd->add_option("--mode", a.mode,
                  "which threads to sample: wall (every thread, idle or not), cpu (running "
                  "threads; the default) or gil (the thread holding the GIL)");
  cmd->add_flag("--idle", a.idle, "= --mode wall");
  cmd->add_flag("-x,--exclude-idle", a.exclude_idle, "= --mode cpu (the default; Pyflame's -x)");
  cmd->add_flag("--gil", a.gil, "= --mode gil");
}

// --native and --native-all, for dump, record and top.
void add_native_options(CLI::App* cmd, bool& native, bool& native_all) {
  cmd->add_flag("--native", native,
                "also show C/C++ frames: each thread's native stack merged with its Python "
                "frames (stops the target's threads for each sample, as --blocking does)");
  cmd->add_flag("--native-all", native_all,
                "--native, with the interpreter's own call machinery and thread starts shown");
}

void add_subprocesses_option(CLI::App* cmd, bool& subprocesses) {
  cmd->add_flag("--subprocesses", subprocesses,
                "also profile the target's child processes, theirs, and every one started "
                "later; each read by the pyflameX.Y of its own Python version");
}

// The same options serve `record` and Pyflame's classic top-level form.
void add_record_options(CLI::App* cmd, RecordArgs& a) {
  cmd->add_option("-p,--pid", a.pid, "process to profile (or give a command after --)")
      ->check(process_id());
  cmd->add_option("-d,--duration,-s,--seconds", a.duration,
                  "seconds to record (default: until Ctrl-C or the target exits)");
  cmd->add_option("--rate", a.rate, "samples per second (default 100)");
  cmd->add_option("-r,--interval", a.interval, "seconds between samples (Pyflame's form of --rate)");
  cmd->add_option("-o,--output", a.output, "output file (default: standard output)");
  cmd->add_option("-f,--format", a.format,
                  "collapsed, flamegraph (svg), speedscope, pprof or flamechart "
                  "(default: from the output's extension, else collapsed)");
  cmd->add_flag("--threads", a.threads, "start each stack with its thread");
  add_mode_options(cmd, a);
  cmd->add_flag("--blocking", a.blocking, "stop the target's threads for each sample");
  add_native_options(cmd, a.native, a.native_all);
  cmd->add_flag("--flamechart", a.flamechart, "timestamped stacks, one line per sample (= --format flamechart)");
  cmd->add_option("--stats-json", a.stats_json, "write sampling statistics (rate, cost, errors) as JSON here");
  cmd->add_flag("--no-status", a.no_status, "no live status line on a terminal");
  add_subprocesses_option(cmd, a.subprocesses);
}

}  // namespace

CommandLine::CommandLine(const std::string& description, const std::string& name)
    : app(description, name) {
  app.require_subcommand(0, 1);
  app.add_flag("-V,--version", show_version, "print version and build details, then exit");
  add_verbose(&app, verbosity);

  dump_cmd = app.add_subcommand("dump", "print every thread's Python stack once");
  CLI::Option* dump_pid =
      dump_cmd->add_option("-p,--pid", dump.pid, "process to read")->check(process_id());
  CLI::Option* dump_core = dump_cmd->add_option(
      "--core", dump.core,
      "read a core file (the kernel's, or `gcore PID`'s) instead of a running process");
  dump_pid->excludes(dump_core);
  dump_cmd->add_option("--lib-search", dump.lib_search,
                       "with --core: a directory holding copies of the files the process had "
                       "mapped (its libpython, its executable), for a core read on another "
                       "machine or after they moved; may be repeated")
      ->type_name("DIR")->needs(dump_core)->allow_extra_args(false);
  dump_cmd->add_option("--executable", dump.executable,
                       "with --core: the program that dumped it, when not at its recorded path")
      ->needs(dump_core);
  dump_cmd->add_flag("--json", dump.json, "machine-readable output (see docs/usage.md)");
  dump_cmd->add_flag("--blocking", dump.blocking,
                     "stop the target's threads while reading, for a consistent snapshot");
  dump_cmd->add_option("--mode", dump.mode,
                       "which threads to show: wall (every thread; the default), cpu (running "
                       "threads) or gil (the thread holding the GIL)");
  add_native_options(dump_cmd, dump.native, dump.native_all);
  dump_cmd->add_flag("--locals", dump.locals,
                     "also show each Python frame's arguments and local variables (cells and "
                     "free variables included): None, bools, ints, floats, str and bytes by "
                     "value (long ones cut short), list/tuple/dict/set by type and length, "
                     "other objects as <TYPE at 0xADDR>");
  add_subprocesses_option(dump_cmd, dump.subprocesses);
  add_verbose(dump_cmd, verbosity);

  record_cmd = app.add_subcommand(
      "record", "sample a process (-p PID) or a command (after --) and write a profile");
  add_record_options(record_cmd, record);
  add_verbose(record_cmd, verbosity);
  top_cmd = app.add_subcommand(
      "top", "a live view of the functions a process (-p PID) or a command (after --) spends its "
             "time in; full screen on a terminal, plain text otherwise");
  RecordArgs& t = top_sampling;
  top_cmd->add_option("-p,--pid", t.pid, "process to watch (or give a command after --)")->check(process_id());
  top_cmd->add_option("--rate", t.rate, "samples per second (default 100)");
  add_mode_options(top_cmd, t);
  top_cmd->add_flag("--blocking", t.blocking, "stop the target's threads for each sample");
  add_native_options(top_cmd, t.native, t.native_all);
  top_cmd->add_option("-d,--duration", t.duration, "seconds to run (default: until q, Ctrl-C or the target exits)");
  top_cmd->add_option("--interval", top.refresh,
                      "print a plain table every SECONDS (also on a terminal); default: a full-screen "
                      "view refreshed every second, or plain text every second when not on a terminal");
  top_cmd->add_flag("--once", top.once, "print one table after one interval, then exit");
  top_cmd->add_option("--rows", top.rows, "rows of a plain table (default 20; 0: all)");
  top_cmd->add_option("--stats-json", t.stats_json, "write sampling statistics (rate, cost, errors) as JSON here");
  add_subprocesses_option(top_cmd, t.subprocesses);
  add_verbose(top_cmd, verbosity);
  // Hidden: not for people. Samples one process and writes its samples to
  // standard output in the form of core/output/sample_stream.h.
  stream_cmd = app.add_subcommand("stream", "");
  stream_cmd->group("");
  stream_cmd->add_option("-p,--pid", stream.pid, "process to sample")->check(process_id())->required();
  stream_cmd->add_option("--rate", stream.rate, "samples per second");
  stream_cmd->add_option("-d,--duration", stream.duration, "seconds to run");
  add_mode_options(stream_cmd, stream);
  stream_cmd->add_flag("--blocking", stream.blocking, "stop the target's threads for each sample");
  add_native_options(stream_cmd, stream.native, stream.native_all);
  add_verbose(stream_cmd, verbosity);
  add_record_options(&app, classic);
}

void CommandLine::parse(int argc, char** argv) {
  command_.clear();
  for (int i = 1; i < argc; ++i) {
    std::string_view arg(argv[i]);
    if (arg == "--" || arg == "-t" || arg == "--trace") {
      command_.assign(argv + i + 1, argv + argc);
      argc = i;
      if (command_.empty()) command_.push_back("");  // noticed by the caller
      break;
    }
  }
  app.parse(argc, argv);
  raise_verbosity(verbosity);
}

std::optional<int> CommandLine::pid() const {
  if (dump_cmd->parsed()) return dump.pid;
  if (record_cmd->parsed()) return record.pid;
  if (top_cmd->parsed()) return top_sampling.pid;
  if (stream_cmd->parsed()) return stream.pid;
  return classic.pid;
}

}  // namespace pyflame::core
