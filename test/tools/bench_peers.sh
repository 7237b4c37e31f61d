#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the peers the benchmark (scripts/bench.sh) compares pyflame with:
# Debian's `austin` package; and `strace`, with which it counts pyflame's
# memory reads per sample. The other peer, CPython 3.15's own
# `python3.15 -m profiling.sampling`, ships with the provisioned sid-3.15
# interpreter (test/interpreters/provision.sh). Idempotent; exits 0 even when
# austin cannot be installed: the benchmark then leaves Austin's figures out
# and says so.
set -uo pipefail

missing=()
command -v austin >/dev/null || missing+=(austin)
command -v strace >/dev/null || missing+=(strace)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bench_peers.sh: not root; cannot install ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; } \
  || echo "bench_peers.sh: could not install ${missing[*]}; the benchmark will leave out their figures" >&2
exit 0
