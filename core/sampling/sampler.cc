// SPDX-License-Identifier: Apache-2.0
#include "core/sampling/sampler.h"

#include <optional>

#include <fmt/format.h>

#include <algorithm>

#include "core/errors.h"
#include "core/log.h"
#include "core/native/registers.h"
#include "core/target/python_binary.h"
#include "core/target/thread_stopper.h"

namespace pyflame::core {

Sampler::Sampler(const Process& process, Interpreter& interpreter, bool blocking, bool read_idle)
    : process_(process), interpreter_(interpreter), pid_(process.pid()), blocking_(blocking), read_idle_(read_idle),
      states_(process) {}

bool Sampler::sample(Snapshot& snapshot) {
  if (unwinder_) return sample_native(snapshot);
  // With --blocking the states are read before the stop (a stopped thread
  // is not idle), every thread's, looked for now: a thread first seen
  // during the stop would read as stopped. Without it they are read after
  // the walk, by fill(), only where the walk says a thread may be running
  // (docs/how-it-works.md, "Idle threads").
  if (read_idle_ && blocking_) states_.discover();
  bool ok = false;
  {
    std::optional<ThreadStopper> stopper;
    if (blocking_) stopper.emplace(pid_, read_idle_);
    ok = interpreter_.sample(snapshot);
    if (stopper) states_.note_waiting(stopper->waiting());
  }  // the threads run again before anything else is read
  if (ok) states_.fill(snapshot, /*refresh=*/read_idle_ && !blocking_);
  return ok;
}

std::unique_ptr<Unwinder> make_native_unwinder(const BuildInfo& build, const TargetImage& image) {
  if (!native_unwinding_supported())
    throw Error(ExitCode::kUsage, "pyflame: --native unwinds x86-64 processes only");
  NativeFrameRules rules;
  rules.eval_loop_functions = build.eval_loop_functions;
  rules.interpreter_path = std::string(strip_deleted(PythonBinary::find(image).target_path()));
  return std::make_unique<Unwinder>(image, std::move(rules));
}

void Sampler::enable_native(const BuildInfo& build, bool show_internal) {
  unwinder_ = make_native_unwinder(build, process_);
  show_internal_ = show_internal;
}

bool Sampler::sample_native(Snapshot& snapshot) {
  // The walk into a snapshot of our own: the walker keeps frames across
  // samples in the snapshot it is given, and the merged stacks are others.
  if (read_idle_) states_.discover();
  unwinder_->begin_sample();
  bool ok = false;
  {
    std::optional<ThreadStopper> held;
    try {
      held.emplace(pid_, read_idle_);
    } catch (const Error& e) {
      if (e.code() != ExitCode::kPermissionDenied) throw;
      throw Error(ExitCode::kPermissionDenied,
                  fmt::format("pyflame: --native stops each thread with ptrace to read its "
                              "registers, and process {} cannot be stopped: it is already traced "
                              "(a debugger, strace, another profiler), or ptrace is not permitted "
                              "(needs CAP_SYS_PTRACE or kernel.yama.ptrace_scope=0); without "
                              "--native, pyflame samples the Python frames without stopping it",
                              pid_));
    }
    ThreadStopper& stopper = *held;
    ok = interpreter_.sample(walked_);
    states_.note_waiting(stopper.waiting());
    if (ok) {
      // The TIDs, while the threads are still stopped: each is unwound now.
      states_.fill(walked_, /*refresh=*/false);
      natives_.resize(walked_.threads.size());
      for (size_t i = 0; i < walked_.threads.size(); ++i) {
        NativeStack& native = natives_[i];
        native.frames.clear();
        native.complete = false;
        const ThreadSample& t = walked_.threads[i];
        if (!t.native_id) continue;
        if (auto regs = read_registers(static_cast<pid_t>(*t.native_id)))
          unwinder_->unwind(static_cast<pid_t>(*t.native_id), *regs, native);
      }
    }
  }  // the threads run again
  if (!ok) return false;
  merge_snapshot(walked_, natives_, show_internal_, snapshot, native_counts_);
  return true;
}

}  // namespace pyflame::core
