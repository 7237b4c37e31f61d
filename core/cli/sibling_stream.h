// SPDX-License-Identifier: Apache-2.0
// --subprocesses: a process of another Python version is read by the
// pyflameX.Y built for that version, started here in its hidden `stream`
// mode; it samples that one process and writes its samples to a pipe in
// the version-free form of core/output/sample_stream.h, which is read here
// without blocking, once per tick.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/output/sample_stream.h"
#include "core/sampling/snapshot.h"

namespace pyflame::core {

struct RunOptions;

// pyflame<build> (pyflame3.12, pyflame3.13t) as the `pyflame` wrapper
// finds it: beside this binary (the file it runs, symbolic links
// followed), then in PATH. nullopt if none.
std::optional<std::string> find_sibling_binary(const std::string& build);

// A sibling started with its standard output on a pipe (close-on-exec
// here), standard input /dev/null, in a process group of its own.
struct SpawnedSibling {
  pid_t pid = -1;
  int stdout_fd = -1;
};
// Throws Error if it cannot be started.
SpawnedSibling spawn_sibling(const std::string& binary, std::vector<std::string> args);
// waitpid's status as the shell says it (128 + N for signal N); -1 when
// not `block`ing and it has not ended.
int wait_exit_code(pid_t pid, bool block);

class SiblingStream {
 public:
  // Starts `binary stream -p PID` with the sampling options of `options`;
  // throws Error if it cannot be started.
  SiblingStream(const std::string& binary, pid_t pid, const RunOptions& options);
  // A sibling still running is killed and reaped.
  ~SiblingStream();
  SiblingStream(const SiblingStream&) = delete;
  SiblingStream& operator=(const SiblingStream&) = delete;

  // Takes in what has arrived, without blocking, handing each sample to
  // `each` with the seconds since the sibling began. False once the stream
  // has ended: the sibling closed it and was reaped (or it was malformed,
  // and the sibling killed).
  using SampleFn = std::function<void(const ThreadSample&, double)>;
  bool poll(const SampleFn& each);
  // Asks the sibling to end its recording (SIGTERM): it sends its counts
  // and closes the stream.
  void stop();
  // poll() until the stream ends or `seconds` pass; then kills the
  // sibling if it still runs.
  void drain(const SampleFn& each, double seconds);

  pid_t sibling_pid() const { return sibling_; }
  const SampleStreamReader& reader() const { return reader_; }
  // The sibling's exit code, once reaped (128 + N for a signal).
  std::optional<int> exit_code() const { return exit_code_; }
  // What went wrong with the stream itself (malformed), if anything.
  const std::string& failure() const { return failure_; }

 private:
  void reap(bool block);

  pid_t sibling_ = -1;
  int fd_ = -1;
  SampleStreamReader reader_;
  std::optional<int> exit_code_;
  std::string failure_;
  bool eof_ = false;
};

}  // namespace pyflame::core
