#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The benchmark (docs/benchmarks.md): builds every pyflameX.Y and the floor
# program, installs the peers, and measures pyflame against them on the
# provisioned interpreters. Not part of the test command. As root:
#
#   scripts/bench.sh                  # representative set, ~10 minutes
#   scripts/bench.sh --quick          # 3.11 and 3.15, shorter runs, ~2 minutes
#   scripts/bench.sh --all            # every provisioned interpreter
#   scripts/bench.sh --interp sid-3.15 --only cost --workload depth100
#   scripts/bench.sh --hostile        # peak RSS against a hostile target, ~1 minute
#   scripts/bench.sh --top            # top's cost per sample next to record's, ~4 minutes
#   scripts/bench.sh --native         # --native's cost per sample next to --blocking's, ~2 minutes
#   scripts/bench.sh --subprocesses   # record --subprocesses' CPU on 16 busy workers, ~1 minute
#
# Prints a markdown table; writes JSON to $BUILD_DIR/bench/results.json and
# the table to $BUILD_DIR/bench/results.md. BUILD_DIR defaults to build/
# (the default preset's); set it to use another build tree.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: run as root (the profilers read other processes)" >&2
  exit 2
fi
test/interpreters/provision.sh >/dev/null
test/tools/bench_peers.sh
if [ "$build" = build ]; then
  cmake --preset default >/dev/null
else
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=$(cmake --build "$build" --target help | sed -n 's/^\.\.\. \(pyflame[0-9][0-9.]*t\?\)$/\1/p')
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target vm_readv_floor $targets >/dev/null
mkdir -p "$build/bench"
if [ "${1:-}" = --top ]; then  # top's cost per sample next to record's (test/bench/top_cost.py)
  shift
  exec python3 test/bench/top_cost.py --bin-dir "$build/bin" "$@"
fi
if [ "${1:-}" = --native ]; then  # --native's cost per sample next to --blocking's (test/bench/native_cost.py)
  shift
  exec python3 test/bench/native_cost.py --bin-dir "$build/bin" "$@"
fi
if [ "${1:-}" = --subprocesses ]; then  # its CPU on a busy tree (test/bench/bench_subprocesses.py)
  shift
  exec python3 test/bench/bench_subprocesses.py --bin-dir "$build/bin" "$@"
fi
if [ "${1:-}" = --hostile ]; then  # peak RSS against a hostile target (test/bench/hostile.py)
  shift
  exec python3 test/bench/hostile.py --bin-dir "$build/bin" "$@"
fi
exec python3 test/bench/run.py --bin-dir "$build/bin" --floor-bin "$build/test/vm_readv_floor" \
  --json "$build/bench/results.json" --markdown "$build/bench/results.md" "$@"
