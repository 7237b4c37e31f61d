#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what pyflame needs to build and test, from Debian's archive.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  zlib1g-dev                 # gzip of the pprof output
  libfmt-dev libspdlog-dev   # formatting and logging
  libcli11-dev               # command line
  libncurses-dev             # top's full-screen view
  libdw-dev                  # --native: elfutils' unwinder and symbols
  catch2                     # unit tests
  python3 python3-dev        # test harness; headers for the demo's pyflame3.11
  python3-numpy              # --native's numpy test: C code under the Python line
  util-linux                 # setpriv, unshare, for the unprivileged-user and namespace tests
  bsdutils                   # script(1): a terminal for record's status-line test
  tmux                       # a terminal to drive top in its test
  strace gdb                 # faults/traced: a target already traced
  libcap2-bin                # setcap, for the hostile-user/capability test
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
