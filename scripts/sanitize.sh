#!/usr/bin/env bash
# Builds pyflame with AddressSanitizer + UBSan (the `sanitize` preset:
# build-sanitize/, Debug, _GLIBCXX_DEBUG) and runs the unit tests, the fuzz
# corpus replays and a subset of the integration tests under it.
#
#   scripts/sanitize.sh [--build-dir DIR] [--interp NAME] [-- CTEST_ARGS...]
#
# The subset: dump and record against one interpreter (default
# pyenv-3.11.7) in both modes, the error paths, cli-errors and the fault
# cases that exercise the teardown paths. Prints how long each step took.
# Exit status: ctest's.
set -euo pipefail
cd "$(dirname "$0")/.."
build=""
interp=pyenv-3.11.7
extra=()
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --interp) interp="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "sanitize.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

minor="$(awk -F'\t' -v n="$interp" '$1 == n { print $2 }' \
  "${PYFLAME_TEST_INTERPRETERS:-/var/cache/pyflame/interpreters}/manifest.tsv" 2>/dev/null || true)"
targets=(pyflame_unit_tests fuzz_elf fuzz_maps fuzz_line_table fuzz_strings fuzz_writers)
[[ -n "$minor" ]] && targets+=("pyflame$minor")

start=$SECONDS
if [[ -n "$build" ]]; then
  cmake --preset sanitize -B "$build" >/dev/null
else
  cmake --preset sanitize >/dev/null
  build=build-sanitize
fi
cmake --build "$build" -j2 --target "${targets[@]}"
built=$SECONDS
echo "sanitize.sh: built ${targets[*]} in $((built - start)) s"

# Leaks are reported too; a sanitizer report fails the test that hit it.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Sanitized binaries are slower: stretch the integration deadlines.
export PYFLAME_TEST_TIMEOUT_SCALE="${PYFLAME_TEST_TIMEOUT_SCALE:-3}"
subset="^(unit/|fuzz-corpus/|errors$|cli-errors$|dump/$interp/|record/$interp/|faults/(target_dies|thread_churn|finalization|sigkill|same_output)/$interp$)"
status=0
ctest --test-dir "$build" --output-on-failure -R "$subset" "${extra[@]}" || status=$?
echo "sanitize.sh: build $((built - start)) s, tests $((SECONDS - built)) s, total $((SECONDS - start)) s"
exit $status
