#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the packages: one Debian package per pyflameX.Y plus the common
# `pyflame` package (and the same as RPMs when rpmbuild is installed).
#
#   scripts/package.sh [OUTDIR]        default OUTDIR: BUILD/packages
#
# BUILD is $PYFLAME_BUILD_DIR, default build/. A build directory that does not
# exist yet is configured without the tests, so that only what ships is
# built; an existing one is built whole (cpack would build it whole anyway,
# one job at a time). Prints the package files, one per line, on stdout. See
# docs/install.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PYFLAME_BUILD_DIR:-$root/build}
out=${1:-$build/packages}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYFLAME_BUILD_TESTS=OFF >&2
else
  cmake "$build" >/dev/null  # pick up new interpreters, docs, version
fi
grep -q '^PYFLAME_BINARIES:INTERNAL=.' "$build/CMakeCache.txt" \
  || { echo "package.sh: no pyflameX.Y is configured in $build" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" >&2

# Reproducible packages: file times are the last commit's, unless the
# caller fixed them already (a source tree without git: the newest file).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null) \
    || SOURCE_DATE_EPOCH=$(find "$root" -path "$build" -prune -o -type f -printf '%T@\n' \
                           | sort -n | tail -1 | cut -d. -f1)
fi
export SOURCE_DATE_EPOCH

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/*.deb "$out"/*.rpm
cpack --config "$build/CPackConfig.cmake" -B "$out" >&2
rm -rf "$out/_CPack_Packages"
ls "$out"/*.deb "$out"/*.rpm 2>/dev/null || true
