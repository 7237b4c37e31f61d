// SPDX-License-Identifier: Apache-2.0
// main() of every pyflameX.Y: hand this binary's Python version to core.
#include "core/sampling/python_module.h"
#include "versions/walker/layout_module.h"

int main(int argc, char** argv) {
  return pyflame::core::run(pyflame::versions::this_version(), argc, argv);
}
