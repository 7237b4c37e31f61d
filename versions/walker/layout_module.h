// SPDX-License-Identifier: Apache-2.0
// The PythonModule of every pyflameX.Y: one walker for all versions, driven
// by the layout table that the version's own headers produced (layout.c).
// Frame-model families (PyFrameObject chains, _PyInterpreterFrame chains,
// tagged references) are chosen by that table, never by version numbers.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/target/memory.h"
#include "core/sampling/python_module.h"
#include "versions/layout.h"

namespace pyflame::versions {

class LayoutModule : public core::PythonModule {
 public:
  explicit LayoutModule(const pyflame_layout& layout);
  const core::BuildInfo& build_info() const override { return info_; }
  std::unique_ptr<core::Interpreter> locate(const core::TargetImage& image,
                                            const core::PythonBinary& binary) const override;
  const pyflame_layout& layout() const { return layout_; }

 private:
  const pyflame_layout& layout_;
  core::BuildInfo info_;
};

// The target's objects and types that dump --locals tells values by: an
// object is shown as a value only if it is one of these singletons or its
// ob_type is exactly one of these types (null: the target has no such
// symbol, and no object is taken for one).
struct ValueSymbols {
  core::RemoteAddr none, true_, false_;  // _Py_NoneStruct, _Py_TrueStruct, _Py_FalseStruct (2.7: _Py_ZeroStruct)
  core::RemoteAddr int_type;             // PyInt_Type (2.7)
  core::RemoteAddr long_type;            // PyLong_Type
  core::RemoteAddr float_type, list_type, tuple_type, dict_type, set_type, frozenset_type;
  core::RemoteAddr cell_type;            // PyCell_Type
};

// Where the walker starts, in the target's address space: what
// LayoutModule::locate() finds in the interpreter's ELF file. Tests and the
// walker's fuzz target give them directly, for a fake image.
struct TargetSymbols {
  core::RemoteAddr code_type, frame_type, text_type, bytes_type;  // type objects
  core::RemoteAddr runtime;         // _PyRuntime (3.7+)
  core::RemoteAddr interp_head;     // interp_head (2.7, 3.6); null: search scan_ranges
  core::RemoteAddr tstate_current;  // _PyThreadState_Current (2.7, 3.6), may be null
  std::vector<std::pair<core::RemoteAddr, uint64_t>> scan_ranges;  // writable data
  // Readable and writable mappings [start, end), sorted: where an interpreter
  // state found by scanning may be. Empty: anywhere.
  std::vector<std::pair<uint64_t, uint64_t>> scan_targets;
  std::string version;              // full version, e.g. "3.11.7"
  std::string target_path;          // the executable or library, for messages
  ValueSymbols values;              // dump --locals
};

// The walker over any memory. Throws Error when the image does not hold an
// interpreter of this layout.
std::unique_ptr<core::Interpreter> make_layout_interpreter(const pyflame_layout& layout,
                                                           const core::Memory& target, int pid,
                                                           const TargetSymbols& symbols);

// Hex digest of every offset and size in `layout`: two binaries with the
// same fingerprint read the same structs.
std::string layout_fingerprint(const pyflame_layout& layout);

// Defined once per version (this_version.cc): the module of this binary.
const core::PythonModule& this_version();

}  // namespace pyflame::versions
