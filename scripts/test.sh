#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite, from a fresh Debian 12 machine (as root): installs
# the build dependencies, provisions the test interpreters, builds every
# pyflameX.Y and runs ctest, then builds everything again with ASan+UBSan
# and runs ctest once more under the sanitizers (six interpreters there).
#
#   scripts/test.sh [--stress] [CTEST ARGS...]
#
# --stress runs the ctest step with a CPU hog on every core
# (scripts/with-cpu-hogs.sh; the tests see PYFLAME_TEST_STRESS=1), the way a
# busy CI machine runs it: no test may depend on an idle machine. E.g.
# `scripts/test.sh --stress -R '^record/'`.
set -euo pipefail
cd "$(dirname "$0")/.."

stress=()
if [ "${1:-}" = --stress ]; then
  stress=(scripts/with-cpu-hogs.sh)
  shift
fi

scripts/setup.sh
test/interpreters/provision.sh
for tool in test/tools/*.sh; do "$tool"; done  # browsers, go: tests skip visibly without them
cmake --preset default
cmake --build --preset default
# Two tests at a time: the suite's thresholds follow from what each run
# achieved, so it holds with other work on both cores, and it fits CI's
# time with the sanitized pass after it.
"${stress[@]}" ctest --preset default -j2 "$@"
# The suite again under AddressSanitizer + UBSan (build-sanitize/),
# against six interpreters, minus the few tests scripts/sanitize.sh names
# (PYFLAME_SKIP_SANITIZE=1 skips this step).
if [ "${PYFLAME_SKIP_SANITIZE:-0}" != 1 ]; then
  scripts/sanitize.sh
fi
