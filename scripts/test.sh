#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root): installs
# the build dependencies, provisions the test interpreters, builds every
# pyflameX.Y and runs ctest, then the sanitizer build's subset.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
test/interpreters/provision.sh
for tool in test/tools/*.sh; do "$tool"; done  # browsers, go: tests skip visibly without them
cmake --preset default
cmake --build --preset default
ctest --preset default "$@"
# The same code under AddressSanitizer + UBSan: unit tests, fuzz corpora and
# the integration tests of one interpreter (PYFLAME_SKIP_SANITIZE=1 skips).
if [ "${PYFLAME_SKIP_SANITIZE:-0}" != 1 ]; then
  scripts/sanitize.sh
fi
