// The PythonModule of every pyflameX.Y: one walker for all versions, driven
// by the layout table that the version's own headers produced (layout.c).
// Frame-model families (PyFrameObject chains, _PyInterpreterFrame chains,
// tagged references) are chosen by that table, never by version numbers.
#pragma once

#include "core/python_module.h"
#include "versions/common/layout.h"

namespace pyflame::versions {

class LayoutModule : public core::PythonModule {
 public:
  LayoutModule(const pyflame_layout& layout, const char* headers_path);
  const core::BuildInfo& build_info() const override { return info_; }
  std::unique_ptr<core::Interpreter> locate(const core::Process& process,
                                            const core::PythonBinary& binary) const override;
  const pyflame_layout& layout() const { return layout_; }

 private:
  const pyflame_layout& layout_;
  core::BuildInfo info_;
};

// Hex digest of every offset and size in `layout`: two binaries with the
// same fingerprint read the same structs.
std::string layout_fingerprint(const pyflame_layout& layout);

// Defined once per version (this_version.cc): the module of this binary.
const core::PythonModule& this_version();

}  // namespace pyflame::versions
