// SPDX-License-Identifier: Apache-2.0
// The seam between core and a Python version. Each pyflameX.Y links exactly
// one implementation, defined in versions/; core calls it and never looks at
// a Python struct itself.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/target/process.h"
#include "core/target/python_binary.h"
#include "core/sampling/snapshot.h"

namespace pyflame::core {

// What this binary was built for and from; printed by --version.
struct BuildInfo {
  int major = 0;
  int minor = 0;
  bool free_threaded = false;   // headers with Py_GIL_DISABLED (a pyflameX.Yt)
  // "3.11", or "3.13t" for a free-threaded build: the binary's suffix.
  std::string build() const {
    return std::to_string(major) + "." + std::to_string(minor) + (free_threaded ? "t" : "");
  }
  // "Python 3.11", or "free-threaded Python 3.13": how messages name it.
  std::string python() const {
    return std::string(free_threaded ? "free-threaded " : "") + "Python " + std::to_string(major) +
           "." + std::to_string(minor);
  }
  std::string headers_version;  // PY_VERSION of the headers, e.g. "3.11.7"
  std::string layout_fingerprint;
  // The C functions that run Python frames (the eval loop): --native
  // replaces each of their frames with the Python frames of that call.
  std::vector<std::string> eval_loop_functions;
};

// A located interpreter in one target process.
class Interpreter {
 public:
  virtual ~Interpreter() = default;
  virtual std::string python_version() const = 0;
  // Walks every thread into `out`; false if the sample is unusable (torn or
  // the interpreter is gone). Never throws for what it reads. Passing the
  // same Snapshot again, its frames untouched, lets the walker keep the
  // frames a thread's stack still shares with the last sample (and reuse
  // the storage); any other Snapshot is simply filled anew.
  virtual bool sample(Snapshot& out) = 0;
  // From now on, a stack that moved is shown only if one more reading of
  // its words, a little later and in a call of its own, agrees too: for a
  // one-shot dump, where a stack that cycles fast could otherwise show
  // each word the same phase in two readings (rare, but a dump is read
  // by a person, once).
  virtual void set_strict(bool strict) = 0;
  // From now on, every frame of a stack shown carries its variables
  // (Frame::locals), read once the sample's stacks are confirmed: for
  // `dump --locals` only, never while recording.
  virtual void set_locals(bool locals) = 0;
};

class PythonModule {
 public:
  virtual ~PythonModule() = default;
  virtual const BuildInfo& build_info() const = 0;
  // Finds the interpreter state in the target, live or dumped; throws Error
  // when the target is not this version or cannot be read.
  virtual std::unique_ptr<Interpreter> locate(const TargetImage& image,
                                              const PythonBinary& binary) const = 0;
};

// The command line of every pyflameX.Y: see docs/usage.md.
int run(const PythonModule& module, int argc, char** argv);

}  // namespace pyflame::core
