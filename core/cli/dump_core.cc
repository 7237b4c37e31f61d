// SPDX-License-Identifier: Apache-2.0
#include "core/cli/dump_core.h"

#include <fmt/format.h>

#include <cstdio>

#include "core/errors.h"
#include "core/output/dump_writer.h"
#include "core/output/output_file.h"
#include "core/sampling/sample_mode.h"
#include "core/target/attach.h"
#include "core/target/core_file.h"
#include "core/target/privilege.h"

namespace pyflame::core {

int dump_core(const PythonModule& module, const DumpArgs& options) {
  auto usage = [](const std::string& m) { return Error(ExitCode::kUsage, "pyflame: " + m); };
  if (options.blocking) throw usage("--blocking stops a running process; a core file needs no stop");
  if (options.native || options.native_all)
    throw usage("--native reads a running process's registers; with --core it is not supported yet");
  SampleMode mode = SampleMode::kWall;
  if (options.mode) {
    auto asked = parse_sample_mode(*options.mode);
    if (!asked) throw usage(fmt::format("unknown mode '{}': use wall, cpu or gil", *options.mode));
    if (*asked == SampleMode::kCpu)
      throw usage("--mode cpu needs each thread's run state, which a core file does not record; "
                  "use wall or gil");
    mode = *asked;
  }
  // The core and every file it names are read with the caller's own rights:
  // a capability to trace processes says nothing about reading files.
  privilege::drop();
  CoreFile core(*options.core, CoreFileOptions{options.lib_search, options.executable});
  std::unique_ptr<Interpreter> interpreter = locate_interpreter(module, core);
  interpreter->set_locals(options.locals);

  Snapshot snapshot;
  snapshot.pid = core.pid();
  snapshot.python_version = interpreter->python_version();
  if (!interpreter->sample(snapshot))
    throw Error(ExitCode::kInconsistent,
                fmt::format("pyflame: {}: its thread list could not be read (the process was "
                            "starting or finalizing its interpreter when it dumped)",
                            core.describe()));
  for (const ThreadSample& t : snapshot.threads)
    if (t.torn)
      fmt::print(stderr,
                 "pyflame: thread {:#x} was pushing or popping a frame when the core was taken: "
                 "its frames are not one moment's and are not shown\n",
                 t.thread_id);
  std::erase_if(snapshot.threads, [mode](const ThreadSample& t) { return !mode_keeps(mode, t); });
  for (const std::string& file : core.unverified_files())
    std::fprintf(stderr,
                 "pyflame: note: %s could not be checked against the core (the page with its "
                 "build-id was not dumped); if it is another build than the process ran, frames "
                 "read from it may be wrong\n",
                 file.c_str());
  std::string text = options.json ? snapshot_to_json(snapshot, options.locals)
                                  : snapshot_to_text(snapshot, options.locals);
  write_standard_output(text);
  return 0;
}

}  // namespace pyflame::core
