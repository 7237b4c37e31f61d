#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds pyflame, starts the bundled demo program, prints its stacks once,
# then records it for 3 seconds into an interactive flamegraph (demo.svg).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
python=${PYTHON:-python3}
minor=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
profiler=build/bin/pyflame$minor
cmake --preset default >/dev/null
# Only what the demo runs: this version's binary (the tests take longer).
if ! grep -Eq "^PYFLAME_BINARIES:INTERNAL=(.*;)?pyflame$minor(;|$)" build/CMakeCache.txt; then
  echo "demo: no headers of Python $minor were found, so there is no $profiler; set PYTHON to another interpreter" >&2
  exit 1
fi
echo "== building $profiler (only the binary the demo runs)"
cmake --build --preset default --target "pyflame$minor"

# The demo tells us, through a pipe, when its threads are in place.
ready=$(mktemp -u)
mkfifo "$ready"
"$python" docs/demo.py "$ready" &
demo=$!
trap 'kill $demo 2>/dev/null; rm -f "$ready"' EXIT
read -r _ <"$ready"
echo "== $profiler dump -p $demo"
"$profiler" dump -p "$demo"
out=${OUT:-demo.svg}
echo "== $profiler record -p $demo -d 3 -o $out"
"$profiler" record -p "$demo" -d 3 --threads -o "$out"
echo "open $out in a browser: click to zoom, Search to highlight"
