#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root): installs
# the build dependencies, provisions the test interpreters, builds every
# pyflameX.Y and runs ctest, then builds everything again with ASan+UBSan
# and runs the whole ctest once more under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
test/interpreters/provision.sh
for tool in test/tools/*.sh; do "$tool"; done  # browsers, go: tests skip visibly without them
cmake --preset default
cmake --build --preset default
ctest --preset default "$@"
# The whole suite again under AddressSanitizer + UBSan (build-sanitize/),
# minus the few tests scripts/sanitize.sh names with its reasons
# (PYFLAME_SKIP_SANITIZE=1 skips this step).
if [ "${PYFLAME_SKIP_SANITIZE:-0}" != 1 ]; then
  scripts/sanitize.sh
fi
