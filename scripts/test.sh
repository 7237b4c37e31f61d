#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root): installs
# the build dependencies, provisions the test interpreters, builds every
# pyflameX.Y and runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
test/interpreters/provision.sh
for tool in test/tools/*.sh; do "$tool"; done  # browsers, go: tests skip visibly without them
cmake --preset default
cmake --build --preset default
ctest --preset default "$@"
