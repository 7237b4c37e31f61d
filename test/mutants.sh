#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Deliberate breakages ("mutants") of pyflame, each of which some test must
# catch: shows that the tests can fail, and which ones do. A developer tool,
# not part of CI (docs/reliability.md, "Tests that can fail").
#
#   test/mutants.sh [--work DIR] [--baseline] [--keep] [MUTANT...]
#
# Copies the committed tree (git archive HEAD) to DIR/tree (default
# /tmp/pyflame-mutants), configures it once, and for each mutant: restores
# the copy, applies the breakage (an exact text replacement; the script stops
# if its anchor is gone, so it never tests an unbroken copy by mistake),
# builds only pyflame3.11 (and what it needs) and runs the mutant's tests
# with ctest. A mutant is KILLED when at least one of its tests fails, and
# SURVIVED otherwise (a test that should have caught it did not). Exit 0
# when every mutant was killed, 1 otherwise. --baseline first runs every
# listed test on the unbroken copy (they must pass there, or a kill proves
# nothing). Needs the 3.11 test interpreters (pyenv-3.11.7), as root.
#
# Mutants (name: what breaks; the tests that must catch it):
#   threading_frame: dump --json reports threading.py frames as
#                    /nonexistent/evil/threading.py, line + 1000;  dump/
#   no_gil:          holds_gil is never set (null);                dump/
#   drop_innermost:  every stack loses its innermost frame;        dump/, record/
#   idle_busy:       every thread is reported active (not idle);   dump/, record/
#   exit_code:       a target that exits gives exit 1, not 7;      record/, faults/target_dies/
#   torn_emitted:    the consistency check (layout_sample.cc's
#                    confirm()) accepts every walk;                 churn/, churn-dump/
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work=/tmp/pyflame-mutants
baseline=0
keep=0
mutants=()
while (($#)); do
  case "$1" in
    --work) work="$2"; shift 2 ;;
    --baseline) baseline=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) mutants+=("$1"); shift ;;
  esac
done
all=(threading_frame no_gil drop_innermost idle_busy exit_code torn_emitted)
((${#mutants[@]})) || mutants=("${all[@]}")

I=pyenv-3.11.7
tests_of() {
  case "$1" in
    threading_frame|no_gil) echo "^dump/$I/nonblocking\$" ;;
    drop_innermost|idle_busy) echo "^(dump|record)/$I/nonblocking\$" ;;
    exit_code) echo "^(record/$I/nonblocking|faults/target_dies/$I)\$" ;;
    torn_emitted) echo "^churn(-dump)?/$I\$" ;;
    *) echo "unknown mutant $1 (known: ${all[*]})" >&2; exit 2 ;;
  esac
}

# mutate FILE OLD NEW: replace the one occurrence of OLD in FILE by NEW.
mutate() {
  python3 - "$tree/$1" "$2" "$3" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit("mutants.sh: %s: the anchor occurs %d times, expected once:\n%s"
             % (path, text.count(old), old))
open(path, "w").write(text.replace(old, new))
EOF
}

apply() {
  case "$1" in
    threading_frame)
      mutate core/output/dump_writer.cc '      append_field(out, "filename", f.filename);
      append_field(out, "line", f.line);' \
'      const bool evil = f.filename.ends_with("threading.py");
      append_field(out, "filename", evil ? std::string_view("/nonexistent/evil/threading.py") : f.filename);
      append_field(out, "line", evil && f.line ? std::optional<int>(*f.line + 1000) : f.line);' ;;
    no_gil)
      mutate versions/walker/layout_walk.cc \
        '      if (holder) thread.holds_gil = *holder == *tstate;' '      (void)holder;' ;;
    drop_innermost)
      mutate versions/walker/layout_sample.cc \
        '  out.threads.resize(threads);
  for (size_t t = 0; t < threads; ++t) out.torn += out.threads[t].torn;' \
        '  out.threads.resize(threads);
  for (size_t t = 0; t < threads; ++t)
    if (!out.threads[t].frames.empty()) out.threads[t].frames.erase(out.threads[t].frames.begin());
  for (size_t t = 0; t < threads; ++t) out.torn += out.threads[t].torn;' ;;
    idle_busy)
      mutate core/target/thread_states.cc "    t.idle = task->state != 'R';" "    t.idle = false;" ;;
    exit_code)
      mutate core/errors.h '  kTargetExited = 7,' '  kTargetExited = 1,' ;;
    torn_emitted)
      mutate versions/walker/layout_sample.cc \
        'bool LayoutInterpreter::confirm(core::Snapshot& out, size_t threads) {' \
        'bool LayoutInterpreter::confirm(core::Snapshot& out, size_t threads) {
  if (threads < 1000000) { for (size_t t = 0; t < threads; ++t) out.threads[t].torn = false; return true; }' ;;
  esac
}

tree="$work/tree"
build="$tree/build"
rm -rf "$tree"
mkdir -p "$tree"
git -C "$src" archive HEAD | tar -x -C "$tree"
git -C "$tree" init -q && git -C "$tree" add -A && git -C "$tree" -c user.name=m -c user.email=m@m commit -qm base
echo "mutants: configuring $tree"
cmake -S "$tree" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/configure.log" 2>&1 \
  || { tail -30 "$work/configure.log"; exit 1; }
build_it() {
  cmake --build "$build" -j2 --target pyflame3.11 >"$work/build-$1.log" 2>&1 \
    || { echo "mutants: $1 does not build (see $work/build-$1.log)"; tail -20 "$work/build-$1.log"; return 1; }
}
run_tests() { # NAME REGEX
  ctest --test-dir "$build" -R "$2" --output-on-failure >"$work/ctest-$1.log" 2>&1
}

if ((baseline)); then
  build_it baseline
  regex="$(for m in "${mutants[@]}"; do tests_of "$m"; done | paste -sd'|')"
  if ! run_tests baseline "$regex"; then
    echo "mutants: the tests fail on the unbroken tree (see $work/ctest-baseline.log)"
    grep -E "Failed|\*\*\*" "$work/ctest-baseline.log" | head
    exit 1
  fi
  echo "baseline: $(grep -c ' Passed' "$work/ctest-baseline.log") tests pass on the unbroken tree"
fi

survived=()
for m in "${mutants[@]}"; do
  git -C "$tree" checkout -q -- .
  apply "$m"
  if ! build_it "$m"; then survived+=("$m(no build)"); continue; fi
  if run_tests "$m" "$(tests_of "$m")"; then
    echo "SURVIVED $m: $(tests_of "$m") all passed (see $work/ctest-$m.log)"
    survived+=("$m")
  else
    failed="$(grep -oE '[0-9]+ - [^ ]+ \((Failed|Timeout|SEGFAULT|Exception)[^)]*\)' "$work/ctest-$m.log" | paste -sd, )"
    echo "KILLED $m by: $failed"
    grep -E '^ *- |^FAIL' "$work/ctest-$m.log" | head -3 | sed 's/^/    /'
  fi
done
git -C "$tree" checkout -q -- .
((keep)) || rm -rf "$tree"
if ((${#survived[@]})); then
  echo "mutants: survived: ${survived[*]}"
  exit 1
fi
echo "mutants: all ${#mutants[@]} killed"
