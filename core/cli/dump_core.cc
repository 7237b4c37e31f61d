// SPDX-License-Identifier: Apache-2.0
#include "core/cli/dump_core.h"

#include <fmt/format.h>

#include "core/errors.h"
#include "core/output/dump_writer.h"
#include "core/output/output_file.h"
#include "core/native/merge.h"
#include "core/sampling/sample_mode.h"
#include "core/sampling/sampler.h"
#include "core/target/attach.h"
#include "core/target/core_file.h"
#include "core/target/native_threads.h"
#include "core/target/privilege.h"

namespace pyflame::core {

namespace {

// The Linux TID of each thread whose interpreter does not record it
// (before 3.11): found in its pthread struct, among the core's threads.
void name_threads(const CoreFile& core, Snapshot& snapshot) {
  std::vector<uint64_t> unresolved;
  for (const ThreadSample& t : snapshot.threads)
    if (!t.native_id) unresolved.push_back(t.thread_id);
  if (unresolved.empty()) return;
  std::vector<TaskInfo> tasks;
  for (const CoreThread& c : core.threads()) tasks.push_back(TaskInfo{c.tid, '?', {}});
  NativeThreadResolver resolver;
  const auto tids = resolver.resolve(core, unresolved, tasks);
  for (ThreadSample& t : snapshot.threads)
    for (size_t i = 0; i < unresolved.size(); ++i)
      if (!t.native_id && t.thread_id == unresolved[i] && tids[i]) t.native_id = *tids[i];
}

}  // namespace

int dump_core(const PythonModule& module, const DumpArgs& options, SampleMode mode) {
  // The core and every file it names are read with the caller's own rights:
  // a capability to trace processes says nothing about reading files.
  privilege::drop();
  CoreFile core(*options.core, CoreFileOptions{options.lib_search, options.executable});
  std::unique_ptr<Interpreter> interpreter = locate_interpreter(module, core);
  interpreter->set_locals(options.locals);

  Snapshot snapshot;
  if (!interpreter->sample(snapshot))
    throw Error(ExitCode::kInconsistent,
                fmt::format("pyflame: {}: its thread list could not be read (the process was "
                            "starting or finalizing its interpreter when it dumped)",
                            core.describe()));
  name_threads(core, snapshot);
  // Outlives the output: native frames' strings are its symbols'.
  std::unique_ptr<Unwinder> unwinder;
  if (options.native || options.native_all) {
    // Each thread unwound from the registers the core holds for it.
    unwinder = make_native_unwinder(module.build_info(), core);
    unwinder->begin_sample();
    std::vector<NativeStack> natives(snapshot.threads.size());
    for (size_t i = 0; i < snapshot.threads.size(); ++i) {
      const ThreadSample& t = snapshot.threads[i];
      if (!t.native_id) continue;
      for (const CoreThread& c : core.threads())
        if (c.tid == *t.native_id && c.registers) unwinder->unwind(c.tid, *c.registers, natives[i]);
    }
    Snapshot merged;
    MergeCounts counts;
    merge_snapshot(snapshot, natives, options.native_all, merged, counts);
    snapshot = std::move(merged);
  }
  snapshot.pid = core.pid();
  snapshot.python_version = interpreter->python_version();
  for (const ThreadSample& t : snapshot.threads)
    if (t.torn)
      fmt::print(stderr,
                 "pyflame: thread {:#x} was pushing or popping a frame when the core was taken: "
                 "its frames are not one moment's and are not shown\n",
                 t.thread_id);
  std::erase_if(snapshot.threads, [mode](const ThreadSample& t) { return !mode_keeps(mode, t); });
  for (const std::string& file : core.unverified_files())
    fmt::print(stderr,
               "pyflame: note: {} could not be checked against the core (the page with its "
               "build-id was not dumped); if it is another build than the process ran, frames "
               "read from it may be wrong\n",
               file);
  std::string text = options.json ? snapshot_to_json(snapshot, options.locals)
                                  : snapshot_to_text(snapshot, options.locals);
  write_standard_output(text);
  return 0;
}

}  // namespace pyflame::core
