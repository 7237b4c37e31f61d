#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs COMMAND with a CPU hog (a busy loop at normal priority) on every core,
# as a busy CI machine would, and exports PYFLAME_TEST_STRESS=1 to it:
#
#   scripts/with-cpu-hogs.sh ctest --preset default -R '^record/'
#
# The hogs end with the command (or when this script is interrupted); the
# command's exit status is this script's.
set -euo pipefail

hogs=()
stop_hogs() {
  local pid
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${hogs[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cores=$(nproc)
for ((i = 0; i < cores; i++)); do
  (trap - INT TERM; while :; do :; done) &
  hogs+=("$!")
done
echo "with-cpu-hogs: $cores busy loop(s) running: ${hogs[*]}" >&2
PYFLAME_TEST_STRESS=1 "$@"
