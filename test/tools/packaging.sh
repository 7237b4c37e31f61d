#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the packaging and wrapper tests need, from Debian's archive:
# lintian (package checks), shellcheck (the wrapper), mmdebstrap (a clean
# root to install the packages in), dpkg-dev
# (dpkg-shlibdeps computes the packages' dependencies), fakeroot, file, and
# rpm (rpmbuild, for the optional RPMs). Idempotent; exits 0 even when
# something cannot be installed, so that the tests report SKIP with the
# reason instead of CI failing here.
set -uo pipefail

wanted=(lintian shellcheck dpkg-dev fakeroot file rpm mmdebstrap)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' \
    || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "packaging.sh: not root; cannot install ${missing[*]} (packaging tests will be skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# One at a time, so that one package that cannot be had does not keep the others out.
for pkg in "${missing[@]}"; do
  apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 \
         && apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; } \
    || echo "packaging.sh: could not install $pkg; the tests that need it will be skipped" >&2
done
exit 0
