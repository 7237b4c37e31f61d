// SPDX-License-Identifier: Apache-2.0
#include "core/target/attach.h"

#include <fmt/format.h>

#include "core/errors.h"
#include "core/log.h"

namespace pyflame::core {
namespace {

void check_version(const BuildInfo& info, const PythonBinary& binary, const std::string& who) {
  const PythonVersionId& found = binary.version();
  if (found.build() == info.build()) return;
  throw Error(ExitCode::kWrongVersion,
              fmt::format("{}: {} runs {} (found from {} in {}), but this binary "
                          "reads {}; use pyflame{} (or the `pyflame` wrapper, which "
                          "picks it)",
                          binary_name(info), who, found.python(), found.how, binary.target_path(),
                          info.python(), found.build()));
}

}  // namespace

std::string binary_name(const BuildInfo& info) {
  return "pyflame" + info.build();
}

std::unique_ptr<Interpreter> locate_interpreter(const PythonModule& module,
                                                const TargetImage& image) {
  return locate_interpreter(module, image, PythonBinary::find(image));
}

std::unique_ptr<Interpreter> locate_interpreter(const PythonModule& module, const TargetImage& image,
                                                const PythonBinary& binary) {
  const std::string who = image.describe();
  PYFLAME_INFO_LOG("{} runs Python {} (found from {}) in {}", who, binary.version().full,
                   binary.version().how, binary.target_path());
  check_version(module.build_info(), binary, who);
  std::unique_ptr<Interpreter> interpreter = module.locate(image, binary);
  PYFLAME_INFO_LOG("{}: found its interpreter list; reading it with the layout of Python {} "
                   "(fingerprint {})", who, module.build_info().headers_version,
                   module.build_info().layout_fingerprint);
  return interpreter;
}

std::unique_ptr<Interpreter> attach(const PythonModule& module, const Process& process,
                                    int finalized_patience_ms) {
  try {
    return locate_interpreter(module, process);
  } catch (const NoInterpreterError&) {
    // Finalized: its process exits next (a runtime that has not started
    // one yet, or an embedder that finalized and goes on, is not Python
    // for now).
    if (process.exits_within(finalized_patience_ms)) throw_target_exited(process.pid());
    throw;
  } catch (const Error&) {
    // Attaching to a process as it exits fails for want of its memory or
    // maps, before it is a zombie: that is an exit, not a non-Python.
    if (!process.alive_past_exit()) throw_target_exited(process.pid());
    throw;
  }
}

}  // namespace pyflame::core
