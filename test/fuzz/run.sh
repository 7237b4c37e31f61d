#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Time-boxed libFuzzer run of every fuzz target, with ASan and UBSan.
#
#   test/fuzz/run.sh [--build-dir DIR] [--seconds N] [TARGET...]
#
# Configures a clang build of the project in DIR (default build-fuzz) with
# PYFLAME_LIBFUZZER=ON, builds only the fuzz targets and runs each for N
# seconds (default 15) from a copy of its seed corpus, so new inputs never
# land in the source tree. A crash leaves its input in DIR/artifacts/ and
# fails the run. Exit 77 (skip) when clang or its libFuzzer runtime is
# missing (test/tools/fuzz.sh installs them) or a target named (or one of
# the defaults) is not configured here (a walker of a version whose headers
# were not found): the run did not fuzz all it claims. With CI=true both are
# failures (exit 1): the project's scripts install what they need.
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
build="$src/build-fuzz"
seconds=15
targets=()
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
# The walker is fuzzed with three layouts, one per frame model: 2.7 (frame
# objects, byte strings), 3.11 (interpreter frames) and 3.14 (tagged
# references, shim frames, _Py_DebugOffsets), where those versions are built.
((${#targets[@]})) || targets=(core elf maps line_table sample_stream strings writers walker_2_7 walker_3_11 walker_3_14)

# A skip, or a failure in CI (see above).
skip() {
  if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    echo "FAIL: $* (CI=true: what the project installs must be there)"
    exit 1
  fi
  echo "SKIP: $*"
  exit 77
}

cc="$(command -v clang || true)"
cxx="$(command -v clang++ || true)"
if [[ -z "$cc" || -z "$cxx" ]]; then
  skip "clang not installed (test/tools/fuzz.sh installs it)"
fi
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" 2>"$probe/err"; then
  skip "$cxx cannot link libFuzzer (libclang-rt-14-dev missing?): $(head -c 300 "$probe/err")"
fi

start=$SECONDS
# -O1 and line tables only: fuzzing wants fast builds and symbolized reports.
flags="-O1 -gline-tables-only -fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined"
mkdir -p "$build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE= \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DPYFLAME_ENABLE_SANITIZERS=ON -DPYFLAME_LIBFUZZER=ON >"$build/fuzz-configure.log" 2>&1 \
  || { cat "$build/fuzz-configure.log"; exit 1; }
defined="$(cmake --build "$build" --target help 2>/dev/null)"
kept=()
unconfigured=()
for t in "${targets[@]}"; do
  if grep -q "fuzz_$t\$" <<<"$defined"; then kept+=("$t"); else unconfigured+=("fuzz_$t"); fi
done
targets=("${kept[@]}")
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}" >"$build/fuzz-build.log" 2>&1 \
  || { tail -50 "$build/fuzz-build.log"; exit 1; }
echo "built ${#targets[@]} libFuzzer targets in $((SECONDS - start)) s"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for t in "${targets[@]}"; do
  bin="$(find "$build" -name "fuzz_$t" -type f -perm -u+x | head -1)"
  work="$build/fuzz-work/$t"
  mkdir -p "$work" "$build/artifacts"
  log="$build/fuzz-work/$t.log"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$build/artifacts/$t-" "$work" "$src/test/fuzz/corpus/${t%%_[0-9]*}" >"$log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "PASS fuzz_$t: $runs inputs in ${seconds} s, corpus $(ls "$work" | wc -l) files"
  else
    echo "FAIL fuzz_$t (input in $build/artifacts/):"
    grep -E 'ERROR|SUMMARY|fuzz check failed|runtime error|^    #[0-9] ' "$log" | head -40
    failed+=("$t")
  fi
done
echo "fuzzing took $((SECONDS - start)) s in all"
((${#failed[@]} == 0)) || { echo "FAILED: ${failed[*]}"; exit 1; }
((${#unconfigured[@]} == 0)) || skip "not configured here, so not fuzzed: ${unconfigured[*]}"
