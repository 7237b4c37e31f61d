// SPDX-License-Identifier: Apache-2.0
#include "core/cli/stream.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "core/cli/stop_signals.h"
#include "core/errors.h"
#include "core/output/sample_stream.h"
#include "core/target/privilege.h"
#include "core/target/thread_stopper.h"

namespace pyflame::core {
namespace {

// Writes all of `bytes` to standard output; false once the parent is gone.
bool write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

class StreamingConsumer : public SampleConsumer {
 public:
  explicit StreamingConsumer(int pid) : pid_(pid) {}

  void attached(const std::string& python_version, double) override {
    writer_.hello(pid_, python_version);
  }
  void thread_sample(const ThreadSample& thread, double elapsed, uint32_t) override {
    if (!writer_.sample(thread, elapsed)) ++unsent_;
  }
  bool after_tick(const Counters&, double, bool) override {
    // Once per tick, whatever the number of threads: one write.
    if (writer_.buffered() > 0 && !write_all(writer_.take())) return false;
    // Our parent went away (killed without a chance to stop us).
    return ::getppid() == parent_;
  }
  void finish(const Counters& c, StreamEnding ending) {
    writer_.finish({c.ticks, c.errors + unsent_, c.late, c.thread_samples - unsent_, c.torn, c.retries},
                   ending);
    write_all(writer_.take());
  }

 private:
  int pid_;
  pid_t parent_ = ::getppid();
  SampleStreamWriter writer_;
  uint64_t unsent_ = 0;  // samples the format had no room for
};

}  // namespace

int stream(const PythonModule& module, const RunOptions& options) {
  // Ends with its parent, whatever kills it.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  StopSignals stop_signals;
  SamplingRun sampling(module, options);
  StreamingConsumer consumer(sampling.pid());
  try {
    sampling.run(consumer);
  } catch (const Error& e) {
    // A child that ends before it could be read is common (a short-lived
    // worker) and no error: the stream just ends. Anything else is said.
    if (e.code() != ExitCode::kTargetExited && e.code() != ExitCode::kNoSuchProcess) throw;
    consumer.finish(Counters{}, StreamEnding::kExited);
    return 0;
  }
  if (options.blocking) ThreadStopper::release_stragglers(std::chrono::seconds(1));
  privilege::drop();
  const RunOutcome& o = sampling.outcome();
  consumer.finish(o.counters, o.target_execed  ? StreamEnding::kExeced
                              : o.target_exited ? StreamEnding::kExited
                                                : StreamEnding::kStopped);
  if (o.fatal) {
    std::fprintf(stderr, "%s\n", o.fatal->what());
    return static_cast<int>(o.fatal->code());
  }
  return 0;
}

}  // namespace pyflame::core
