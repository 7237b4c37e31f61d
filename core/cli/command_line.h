// SPDX-License-Identifier: Apache-2.0
// The command line of every pyflameX.Y, defined once. The binaries parse
// their arguments with it, and pyflame-detect parses the `pyflame`
// wrapper's arguments with it to find the target (a PID, or the command
// after `--`/`-t`), so that no other copy knows which options take a value.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pyflame::core {

struct DumpArgs {
  int pid = 0;
  std::optional<std::string> core;     // --core FILE: a core dump instead of a process
  std::vector<std::string> lib_search;  // --lib-search DIR, in order
  std::optional<std::string> executable;
  bool json = false;
  bool blocking = false;
  bool native = false, native_all = false;
  bool locals = false;  // each Python frame's variables
  bool subprocesses = false;  // the process and all its descendants
  std::optional<std::string> mode;  // wall (the default here), cpu or gil
};

// What the record options parse into, before they are checked.
struct RecordArgs {
  std::optional<int> pid;
  std::optional<double> duration;
  std::optional<double> rate;
  std::optional<double> interval;
  std::optional<std::string> output;
  std::optional<std::string> format;
  std::optional<std::string> stats_json;
  std::optional<std::string> mode;  // wall, cpu (the default) or gil
  bool threads = false, idle = false, exclude_idle = false, gil = false, blocking = false;
  bool flamechart = false, no_status = false;
  bool native = false, native_all = false;
  bool subprocesses = false;
};

// `top`'s own options; the sampling ones parse into a RecordArgs.
struct TopArgs {
  std::optional<double> refresh;  // --interval: seconds between tables
  bool once = false;
  std::optional<size_t> rows;
};

class CommandLine {
 public:
  CommandLine(const std::string& description, const std::string& name);
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // Splits off the command to launch (everything after the first `--`, or
  // after Pyflame's `-t`/`--trace`, untouched), then parses the rest;
  // throws CLI::Success for --help and CLI::ParseError as CLI11 does, and
  // applies -v to the log level.
  void parse(int argc, char** argv);

  // The command after `--`/`-t`; {""} when the marker had nothing after it.
  const std::vector<std::string>& command() const { return command_; }
  // The PID named by `dump -p`, `record -p` or the classic `-p`.
  std::optional<int> pid() const;

  CLI::App app;
  bool show_version = false;
  int verbosity = 0;
  DumpArgs dump;
  RecordArgs record;   // `record ...`
  RecordArgs classic;  // Pyflame's classic form: `pyflameX.Y -p PID [-s SECS] ...`
  RecordArgs top_sampling;  // `top`'s sampling options (a subset of record's)
  TopArgs top;
  // The hidden `stream` command: what a parent's --subprocesses starts in
  // a sibling pyflameX.Y (core/cli/stream.h).
  RecordArgs stream;
  CLI::App* dump_cmd = nullptr;
  CLI::App* record_cmd = nullptr;
  CLI::App* top_cmd = nullptr;
  CLI::App* stream_cmd = nullptr;

 private:
  std::vector<std::string> command_;
};

}  // namespace pyflame::core
