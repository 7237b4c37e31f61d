#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the reliability tests use: clang and its libFuzzer runtime
# (test/fuzz/run.sh), strace and gdb (test_faults.py's already-traced
# target). Idempotent; never fails the run itself: without a tool the tests
# that need it print SKIP (and fail under CI=true, see docs/reliability.md).
set -u
need=()
command -v clang >/dev/null 2>&1 && command -v clang++ >/dev/null 2>&1 || need+=(clang)
# libFuzzer, ASan and UBSan runtimes of Debian 12's clang 14.
compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null || need+=(libclang-rt-14-dev)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v gdb >/dev/null 2>&1 || need+=(gdb)
if ((${#need[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "test/tools/fuzz.sh: not root, cannot install ${need[*]}; their tests will SKIP" >&2
  exit 0
fi
echo "test/tools/fuzz.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${need[@]}" >/tmp/pyflame-fuzz-tools.log 2>&1; then
  apt-get update >>/tmp/pyflame-fuzz-tools.log 2>&1 || true
  apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/pyflame-fuzz-tools.log 2>&1 \
    || echo "test/tools/fuzz.sh: could not install ${need[*]} (see /tmp/pyflame-fuzz-tools.log); their tests will SKIP" >&2
fi
exit 0
