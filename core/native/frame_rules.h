// SPDX-License-Identifier: Apache-2.0
// Which native frames are the interpreter's own: the eval loop, whose
// frames the Python frames it ran replace, and the call machinery and
// thread starts that --native hides unless --native-all. A rule of names
// (docs/how-it-works.md, "Native frames"); the eval loop's names come from
// the version (BuildInfo::eval_loop_functions).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pyflame::core {

enum class NativeRole {
  kShown,     // shown: the program's own C code, libraries, libc waits
  kInternal,  // interpreter call machinery or a thread start: hidden by default
  kEvalLoop,  // an eval-loop call: replaced by the Python frames it ran
};

struct NativeFrameRules {
  std::vector<std::string> eval_loop_functions;  // e.g. "_PyEval_EvalFrameDefault"
  std::string interpreter_path;                  // maps path of libpython or the executable

  // `function` as the symbol table names it (compiler suffixes such as
  // ".cold" or ".constprop.0" are looked through; empty when no symbol
  // covers the address); `library` the module's maps path. The unnamed
  // functions of a stripped interpreter are internal: no reader could tell
  // one from another.
  NativeRole classify(std::string_view function, std::string_view library) const;
};

// The function a compiler-made part or clone belongs to: "f.cold" -> "f".
std::string_view base_function_name(std::string_view symbol);

}  // namespace pyflame::core
