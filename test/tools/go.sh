#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs Debian's Go toolchain (golang-go) for the pprof writer's test,
# which reads pyflame's output with the real `go tool pprof`. Idempotent;
# exits 0 even when Go cannot be installed, so that the test reports SKIP
# with the reason instead of CI failing here.
set -uo pipefail

if command -v go >/dev/null; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "go.sh: not root; cannot install golang-go (the pprof tool test will be skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Other installers may hold the dpkg lock: wait for it rather than fail.
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
{ apt_get install -y -qq --no-install-recommends golang-go \
    || { apt_get update -qq && apt_get install -y -qq --no-install-recommends golang-go; }; } \
  || echo "go.sh: could not install golang-go; the pprof tool test will be skipped" >&2
exit 0
