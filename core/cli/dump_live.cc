// SPDX-License-Identifier: Apache-2.0
#include "core/cli/dump_live.h"

#include <unistd.h>

#include <chrono>
#include <memory>

#include <fmt/format.h>

#include "core/errors.h"
#include "core/output/dump_writer.h"
#include "core/sampling/sampler.h"
#include "core/target/attach.h"
#include "core/target/process.h"
#include "core/target/thread_stopper.h"

namespace pyflame::core {

std::string dump_live(const PythonModule& module, pid_t pid, const DumpArgs& options, SampleMode mode) {
  Process process(pid);
  std::unique_ptr<Interpreter> interpreter = attach(module, process);
  interpreter->set_strict(true);  // read once, by a person: confirm twice
  interpreter->set_locals(options.locals);

  Snapshot snapshot;
  snapshot.pid = pid;
  snapshot.python_version = interpreter->python_version();
  bool ok = false;
  const bool native = options.native || options.native_all;
  Sampler sampler(process, *interpreter, options.blocking || native, /*read_idle=*/true);
  if (native) sampler.enable_native(module.build_info(), options.native_all);
  // A running target can change under a read: the walker retries a torn
  // stack a few times per sample; a thread whose stack keeps moving (a busy
  // recursion) is sampled again, for up to about a second. With --blocking
  // the threads are stopped for each try, not across them: a target
  // stopped in the middle of its finalization (no thread list to read) must
  // go on to exit, which is then what we report.
  constexpr int kSamples = 1000;
  for (int attempt = 0; attempt < kSamples; ++attempt) {
    ok = sampler.sample(snapshot);
    if (!ok && !process.alive()) throw_target_exited(pid);
    if (ok && snapshot.torn == 0) break;
    ::usleep(static_cast<useconds_t>(attempt < 10 ? 100 : 1000));
  }
  if (options.blocking || native) ThreadStopper::release_stragglers(std::chrono::seconds(1));
  if (!ok || snapshot.torn != 0) {
    if (!process.alive()) throw_target_exited(pid);
    throw Error(ExitCode::kInconsistent,
                fmt::format("pyflame: could not read a consistent stack of process {}: {} "
                            "(a sample is shown only when every frame is from one moment); "
                            "try --blocking, which stops the threads while they are read",
                            pid,
                            ok ? "a thread's stack changed under every read"
                               : "its thread list could not be read (it may be finalizing)"));
  }
  std::erase_if(snapshot.threads, [mode](const ThreadSample& t) { return !mode_keeps(mode, t); });
  return options.json ? snapshot_to_json(snapshot, options.locals) : snapshot_to_text(snapshot, options.locals);
}

}  // namespace pyflame::core
