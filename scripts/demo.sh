#!/usr/bin/env bash
# Builds pyflame, starts the bundled demo program and prints its stacks.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default

python=${PYTHON:-python3}
minor=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
profiler=build/bin/pyflame$minor
if [ ! -x "$profiler" ]; then
  echo "demo: no $profiler was built (no Python $minor headers found); set PYTHON to another interpreter" >&2
  exit 1
fi

# The demo tells us, through a pipe, when its threads are in place.
ready=$(mktemp -u)
mkfifo "$ready"
"$python" docs/demo.py "$ready" &
demo=$!
trap 'kill $demo 2>/dev/null; rm -f "$ready"' EXIT
read -r _ <"$ready"
echo "== $profiler dump -p $demo"
"$profiler" dump -p "$demo"
