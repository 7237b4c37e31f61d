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
sanitize=1
[ "${PYFLAME_SKIP_SANITIZE:-0}" != 1 ] || sanitize=0
# The sanitized build (build-sanitize/, nine minutes of two cores) runs
# beside the default tests, at the lowest priority: the suite holds with
# other work on both cores (its thresholds follow from what each run
# achieved), and much of its time is recordings that wait.
if [ $sanitize = 1 ]; then
  nice -n 19 scripts/sanitize.sh --build-only >build/sanitize-build.log 2>&1 &
  sanitize_build=$!
fi
# Two tests at a time, for the same reason: it fits CI's time with the
# sanitized pass after it.
status=0
"${stress[@]}" ctest --preset default -j2 "$@" || status=$?
# The suite again under AddressSanitizer + UBSan, against six
# interpreters, minus the few tests scripts/sanitize.sh names
# (PYFLAME_SKIP_SANITIZE=1 skips this step).
if [ $sanitize = 1 ]; then
  if ! wait "$sanitize_build"; then
    tail -n 40 build/sanitize-build.log >&2
    echo "test.sh: the sanitized build failed (build/sanitize-build.log)" >&2
    exit 1
  fi
  tail -n 1 build/sanitize-build.log
  scripts/sanitize.sh --tests-only || status=$?
fi
exit $status
