// SPDX-License-Identifier: Apache-2.0
// Compiled once per version: binds that version's measured layout to the
// shared walker.
#include "versions/walker/layout_module.h"

namespace pyflame::versions {

const core::PythonModule& this_version() {
  static const LayoutModule module(*pyflame_measured_layout());
  return module;
}

}  // namespace pyflame::versions
