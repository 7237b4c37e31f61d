#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Exact samples of stacks that change every few microseconds (issue 11).

    test_churn.py --bin-dir DIR --interp NAME [--manifest PATH] [--case record|dump]
    test_churn.py ... --blocking       (the oracle's own check: no false impossibles)
    test_churn.py --classify PROFILE --model MODEL.json   (standalone oracle)

Runs fixture_churn.py (recursion, exceptions through 14 frames, generators
summed from C, coroutines driven by hand, threads starting and ending
without pause; every possible stack is known) under interpreter NAME and
classifies every sample pyflame takes of it as possible or impossible:

- record: `record -p PID -d 5 --rate 1000 --format collapsed` (nonblocking);
  at most 0.1% of the samples may be impossible, and the profile must hold
  at least half the samples the achieved rate (--stats-json) promises, and
  at least 1/0.1% of them, so that the bound means something;
- dump: `dump --json` 30 times (10 under the sanitizers); every stack
  dumped must be possible. A dump that says it could not read a consistent
  stack (exit 8, or a message suggesting --blocking) is counted as "no
  stack"; at most one in ten is allowed.

A sample is impossible when it holds an `<unknown>` frame, when its root is
neither the fixture's `<module>` nor the thread bootstrap threading.py
starts every thread with, when a frame could not have called the next one
from the line it shows, when the innermost frame's line lies outside its
function, or when a recursion is deeper than the fixture ever goes.

The allowed calls come from two places. Between the fixture's own functions,
from its syntax tree: a call by name on a line (fixture_churn.py keeps every
call on one line) and the `# resumes NAME` marks on lines that resume a
generator or coroutine through C (next, send). Everything touching the
standard library (thread bootstrap, Thread.start/join, weakref callbacks),
and the thread roots, from the interpreter itself: the fixture runs its
workload briefly under a profile function before it is ready and reports
every call it saw (see fixture_churn.py). The calls it saw between fixture
functions must all be allowed by the syntax tree, a check of the oracle.

--classify applies the same oracle to a collapsed profile of the fixture
taken by anything (e.g. another profiler, for the benchmark): MODEL.json is
the model this test saves with --save-model; see classify_stacks().

Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from pyflame_test import (DEFAULT_MANIFEST, PROFILER_TIMEOUT, READY_TIMEOUT, Failure,
                          Interpreter, Skip, Target, find_interpreter, log, main_wrapper,
                          parse_collapsed, profiler_path, read_line, run, stopped_tasks)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_FILES = ("fixture_churn.py", "fixture_churn_async.py")
RESUMES = re.compile(r"#\s*resumes\s+(?P<names>\w+(\s+\w+)*)\s*$")

IMPOSSIBLE_MAX = 0.001      # share of samples
RECORD_SECONDS = 5
RECORD_RATE = 1000
# Each sanitized dump costs about 2.5 s (a Debug, ASan binary reading the
# ELF files afresh): 30 of them took 60-90 s per interpreter. The sanitized
# pass looks for memory errors along the same paths; the default pass
# checks 30 dumps' exactness.
DUMPS = 10 if os.environ.get("PYFLAME_TEST_SANITIZED") == "1" else 30
DUMP_NO_STACK_MAX = DUMPS // 10
EXIT_INCONSISTENT = 8       # dump: no consistent stack could be read (issue 11)

Frame = Tuple[str, str, Optional[int]]  # (function label, file name, line)


# ------------------------------------------------------------------ oracle


def fixture_structure(source: str, filename: str, known: Set[str]):
    """(functions, calls) of one fixture file: functions maps a name to its
    (first line, last line); calls holds (caller, line, callee) for each call
    of a name in KNOWN and each `# resumes NAME` mark. Module code is the
    function "<module>"."""
    tree = ast.parse(source, filename)
    lines = source.splitlines()
    functions: Dict[str, Tuple[int, int]] = {"<module>": (1, len(lines))}
    calls: Set[Tuple[str, int, str]] = set()
    scopes = []  # (first, last, name), to find the scope of a mark

    def walk(scope: str, body: Iterable[ast.AST]) -> None:
        stack = list(body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if scope == "<module>":  # the fixture's functions are all module-level
                    functions[node.name] = (first, node.end_lineno)
                    scopes.append((first, node.end_lineno, node.name))
                    walk(node.name, node.body)
                continue
            if isinstance(node, (ast.Lambda, ast.ClassDef)):
                continue
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else \
                    func.attr if isinstance(func, ast.Attribute) else None
                if name in known:
                    if node.end_lineno != node.lineno:
                        raise Failure("%s:%d: a call of %s over several lines (the oracle "
                                      "needs one line per call)" % (filename, node.lineno, name))
                    calls.add((scope, node.lineno, name))
            stack.extend(ast.iter_child_nodes(node))

    walk("<module>", tree.body)
    for number, text in enumerate(lines, 1):
        m = RESUMES.search(text)
        if m:
            inside = [s for s in scopes if s[0] <= number <= s[1]]
            if not inside:
                raise Failure("%s:%d: a `# resumes` mark outside a function" % (filename, number))
            for name in m.group("names").split():
                calls.add((inside[-1][2], number, name))
    return functions, calls


def defined_names(source: str) -> Set[str]:
    return {node.name for node in ast.parse(source).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


class Oracle:
    """Which stacks of fixture_churn.py are possible, on one interpreter.

    MODEL is what from_ready() builds (JSON-serialisable, --save-model)."""

    def __init__(self, model: dict):
        self.model = model
        self.roots = {tuple(r) for r in model["roots"]}
        self.stdlib_edges = {tuple(e) for e in model["stdlib_edges"]}
        self.fixture_edges = {tuple(e) for e in model["fixture_edges"]}
        self.functions = {(f, n): (a, b) for f, n, a, b in model["functions"]}
        self.recursion = {(a, b): n for a, b, n in model["recursion"]}
        self.fixture_files = set(model["fixture_files"])

    @staticmethod
    def from_ready(ready: dict, sources: Dict[str, str]) -> "Oracle":
        """READY: the fixture's ready line; SOURCES: fixture file name as the
        interpreter sees it -> its text."""
        known = set()
        for text in sources.values():
            known |= defined_names(text)
        owner: Dict[str, str] = {}
        functions, fixture_edges = [], set()
        for filename, text in sources.items():
            for name in defined_names(text):
                if name in owner:
                    raise Failure("function %s defined in two fixture files" % name)
                owner[name] = filename
        for filename, text in sources.items():
            funcs, calls = fixture_structure(text, filename, known)
            functions += [[filename, name, a, b] for name, (a, b) in funcs.items()]
            for caller, line, callee in calls:
                fixture_edges.add((filename, caller, line, owner[callee], callee))
        fixture_files = set(sources)
        main_file = ready["files"]["main"]
        stdlib_edges = set()
        unexplained = []
        for edge in ready["edges"]:
            edge = tuple(edge)
            if edge[0] in fixture_files and edge[3] in fixture_files:
                if edge not in fixture_edges:  # the syntax tree missed a call the fixture made
                    unexplained.append(edge)
            else:
                stdlib_edges.add(edge)
        if unexplained:
            raise Failure("the oracle is incomplete: the fixture made calls its syntax tree "
                          "does not allow: %s" % unexplained)
        roots = [[main_file, "<module>"]] + [list(r) for r in ready["roots"]]
        for r in ready["roots"]:
            if r[0] in fixture_files:
                raise Failure("a thread's first frame was the fixture's %s" % (r,))
        return Oracle({
            "python": ready.get("version"),
            "fixture_files": sorted(fixture_files),
            "roots": roots,
            "stdlib_edges": sorted(stdlib_edges),
            "fixture_edges": sorted(fixture_edges),
            "functions": sorted(functions),
            "recursion": ready["recursion"],
        })

    def why_impossible(self, frames: Sequence[Frame]) -> Optional[str]:
        """None if the stack FRAMES (root first) can happen, else why not."""
        if not frames:
            return "an empty stack"
        for function, filename, _ in frames:
            if function == "<unknown>" or filename == "<unknown>":
                return "an <unknown> frame"
        if (frames[0][1], frames[0][0]) not in self.roots:
            return "root %s is neither <module> nor the thread bootstrap" % label(frames[0])
        for caller, callee in zip(frames, frames[1:]):
            edge = (caller[1], caller[0], caller[2], callee[1], callee[0])
            both = caller[1] in self.fixture_files and callee[1] in self.fixture_files
            if edge not in (self.fixture_edges if both else self.stdlib_edges):
                return "%s cannot call %s" % (label(caller), label(callee))
        function, filename, line = frames[-1]
        if filename in self.fixture_files:
            span = self.functions.get((filename, function))
            if span is None:
                return "no function %s in the fixture" % label(frames[-1])
            if line is not None and not span[0] <= line <= span[1]:
                return "innermost %s: line outside %s (lines %d-%d)" % (
                    label(frames[-1]), function, span[0], span[1])
        run_start = 0
        for i in range(1, len(frames) + 1):
            if i < len(frames) and frames[i][0] == frames[run_start][0] \
                    and frames[i][1] == frames[run_start][1]:
                continue
            depth = i - run_start
            if depth > 1 and frames[run_start][1] in self.fixture_files:
                entry = frames[run_start - 1][0] if run_start else "<root>"
                limit = self.recursion.get((entry, frames[run_start][0]))
                if limit is None or depth > limit:
                    return "%d frames of %s entered from %s (at most %s)" % (
                        depth, frames[run_start][0], entry, limit)
            run_start = i
        return None


def label(frame: Frame) -> str:
    function, filename, line = frame
    return "%s (%s%s)" % (function, filename, "" if line is None else ":%d" % line)


def classify_stacks(oracle: Oracle, stacks: Iterable[Tuple[Sequence[Frame], int]]):
    """(total samples, impossible samples, {reason: [(count, stack)]}) of
    STACKS, (frames root first, count) pairs; the entry point for the
    benchmark (parse another profiler's output into frames first)."""
    total = impossible = 0
    reasons: Dict[str, List[Tuple[int, str]]] = {}
    for frames, count in stacks:
        total += count
        why = oracle.why_impossible(frames)
        if why is not None:
            impossible += count
            reasons.setdefault(why, []).append((count, ";".join(label(f) for f in frames)))
    return total, impossible, reasons


def describe_impossible(reasons, limit: int = 8) -> str:
    ordered = sorted(reasons.items(), key=lambda kv: -sum(c for c, _ in kv[1]))
    out = []
    for why, examples in ordered[:limit]:
        n = sum(c for c, _ in examples)
        count, stack = max(examples)
        out.append("%d x %s\n      e.g. (%d) %s" % (n, why, count, stack))
    if len(ordered) > limit:
        out.append("... and %d more reasons" % (len(ordered) - limit))
    return "\n    ".join(out)


# ----------------------------------------------------------------- fixture


class ChurnFixture(Target):
    """fixture_churn.py under INTERP; .oracle is built from its ready line."""

    def __init__(self, interp: Interpreter):
        tmpdir = interp.temp_dir()
        sources = {}
        for name in FIXTURE_FILES:
            shutil.copyfile(os.path.join(HERE, name), os.path.join(tmpdir, name))
            with open(os.path.join(HERE, name), encoding="utf-8") as f:
                sources[interp.inside_path(os.path.join(tmpdir, name))] = f.read()
        os.chmod(tmpdir, 0o755)
        super().__init__(interp, [interp.inside_path(os.path.join(tmpdir, FIXTURE_FILES[0]))],
                         tmpdir, stdout=subprocess.PIPE)
        try:
            line = read_line(self.proc.stdout.fileno(), self, READY_TIMEOUT, "churn fixture")
            self.ready = json.loads(line.decode("utf-8"))
            if "async" not in self.ready["files"]:  # 2.7: the async module is not used
                sources = {k: v for k, v in sources.items() if k == self.ready["files"]["main"]}
            self.oracle = Oracle.from_ready(self.ready, sources)
        except BaseException:
            self.close()
            raise


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def test_record(profiler: str, interp: Interpreter, work: str, save_model: Optional[str],
                blocking: bool) -> None:
    out = os.path.join(work, "churn.txt")
    stats_path = os.path.join(work, "churn-stats.json")
    with ChurnFixture(interp) as target:
        if save_model:
            with open(save_model, "w") as f:
                json.dump(target.oracle.model, f, indent=1)
        argv = [profiler, "record", "-p", str(target.pid), "-d", str(RECORD_SECONDS),
                "--rate", str(RECORD_RATE), "--format", "collapsed", "-o", out,
                "--stats-json", stats_path] + (["--blocking"] if blocking else [])
        result = run(argv, PROFILER_TIMEOUT + RECORD_SECONDS)
        expect(result.returncode == 0, "record: %s" % result.describe())
        expect(target.alive(), "the target died while pyflame recorded it")
        stopped = stopped_tasks(target.pid)
        expect(not stopped, "pyflame left target threads stopped: %s" % stopped)
    with open(out, encoding="utf-8") as f:
        text = f.read()
    if save_model:
        shutil.copyfile(out, save_model + ".collapsed")
    with open(stats_path) as f:
        stats = json.load(f)
    total, impossible, reasons = classify_stacks(target.oracle, parse_collapsed(text))
    share = impossible / total if total else 1.0
    # Every good tick samples at least the thread holding the GIL (always busy).
    ticks = stats["achieved_rate"] * stats["elapsed_seconds"]
    # Half the ticks' worth, and at least 100. Below 1/0.1% samples (a
    # sanitized or --blocking run is slow) the bound on the impossible share
    # allows none at all, which is stricter, not looser.
    minimum = max(0.5 * (ticks - stats["errors"]), 100)
    summary = ("%d samples (%.0f ticks/s, %d errors, torn %s, retries %s), %d impossible "
               "(%.2f%%), %d distinct stacks"
               % (total, stats["achieved_rate"], stats["errors"], stats.get("torn", "n/a"),
                  stats.get("retries", "n/a"), impossible, 100 * share, len(text.splitlines())))
    log("record: " + summary)
    if reasons:
        log("record: impossible samples by reason:\n    " + describe_impossible(reasons))
    expect(total == stats["thread_samples"],
           "the profile holds %d samples, --stats-json says %d" % (total, stats["thread_samples"]))
    expect(total >= minimum, "record: only %d samples, expected at least %.0f (%s)"
           % (total, minimum, summary))
    expect(share <= IMPOSSIBLE_MAX, "record: %.2f%% of the samples are impossible (at most "
           "%.1f%% allowed): %s" % (100 * share, 100 * IMPOSSIBLE_MAX, summary))


def test_dump(profiler: str, interp: Interpreter) -> None:
    no_stack, checked, wrong = 0, 0, []
    with ChurnFixture(interp) as target:
        for _ in range(DUMPS):
            result = run([profiler, "dump", "-p", str(target.pid), "--json"])
            if result.returncode == EXIT_INCONSISTENT or (
                    result.returncode == 1 and "--blocking" in result.stderr_text):
                no_stack += 1
                continue
            expect(result.returncode == 0, "dump: %s" % result.describe())
            doc = json.loads(result.stdout.decode("utf-8"))
            for thread in doc["threads"]:
                frames = [(f["qualname"] or f["function"], f["filename"], f["line"])
                          for f in reversed(thread["frames"])]
                if not frames:
                    continue  # a thread before its first frame or after its last
                checked += 1
                why = target.oracle.why_impossible(frames)
                if why:
                    wrong.append("%s: %s" % (why, ";".join(label(f) for f in frames)))
        expect(target.alive(), "the target died while pyflame dumped it")
        stopped = stopped_tasks(target.pid)
        expect(not stopped, "pyflame left target threads stopped: %s" % stopped)
    log("dump: %d dumps, %d thread stacks checked, %d impossible, %d without a consistent "
        "stack" % (DUMPS, checked, len(wrong), no_stack))
    expect(not wrong, "dump: impossible stacks:\n    " + "\n    ".join(wrong[:10]))
    expect(no_stack <= DUMP_NO_STACK_MAX, "dump: %d of %d dumps read no consistent stack "
           "(at most %d allowed)" % (no_stack, DUMPS, DUMP_NO_STACK_MAX))
    expect(checked >= DUMPS, "dump: only %d thread stacks checked" % checked)


# An import-heavy start and a short run: what a launched recording reads
# while the interpreter starts, imports and ends (2.7-compatible). The run
# lasts a second: the sanitized profiler, on a loaded machine, once took
# longer to attach than a fixed count of 2,000,000 took to run.
LAUNCH_PROGRAM = ("import json, decimal, logging.handlers, xml.dom.minidom, email.mime.text\n"
                  "import time\n"
                  "i, end = 0, time.time() + 1.0\n"
                  "while time.time() < end: i += 1\n")
LAUNCH_RUNS = 3


def test_launch(profiler: str, interp: Interpreter, work: str) -> None:
    """Launch mode reads an interpreter that is starting: a stack read then
    must be as exact as any other (the issue saw stacks of <unknown> only
    at the start of 1-3% of short launched profiles)."""
    samples, unknown = 0, []
    for i in range(LAUNCH_RUNS):
        out = os.path.join(work, "launch%d.txt" % i)
        stats_path = os.path.join(work, "launch%d-stats.json" % i)
        argv = [profiler, "record", "--rate", "2000", "--format", "collapsed", "-o", out,
                "--stats-json", stats_path, "--no-status", "--"]
        argv += interp.command(["-c", LAUNCH_PROGRAM])
        result = run(argv, PROFILER_TIMEOUT, env=interp.environment())
        expect(result.returncode == 0, "launch: %s" % result.describe())
        with open(out, encoding="utf-8") as f:
            stacks = parse_collapsed(f.read())
        for frames, count in stacks:
            samples += count
            if any(f[0] == "<unknown>" or f[1] == "<unknown>" for f in frames):
                unknown.append("%d x %s" % (count, ";".join(label(f) for f in frames)))
    log("launch: %d runs, %d samples, %d stacks with an <unknown> frame"
        % (LAUNCH_RUNS, samples, len(unknown)))
    # The claim is about the samples there are: at least one a run (a
    # sanitized profiler attaches late, when the import-heavy start is
    # nearly done; measured 11 in 3 runs there, hundreds otherwise).
    expect(samples >= LAUNCH_RUNS, "launch: only %d samples in %d runs" % (samples, LAUNCH_RUNS))
    expect(not unknown, "launch: stacks with <unknown> frames:\n    " + "\n    ".join(unknown[:10]))


def classify_main(profile: str, model_path: str) -> int:
    with open(model_path) as f:
        oracle = Oracle(json.load(f))
    with open(profile, encoding="utf-8") as f:
        total, impossible, reasons = classify_stacks(oracle, parse_collapsed(f.read()))
    print(json.dumps({"samples": total, "impossible": impossible,
                      "share": impossible / total if total else None}))
    if reasons:
        print("    " + describe_impossible(reasons), file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir")
    parser.add_argument("--interp")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--case", choices=("record", "dump", "launch"), default="record")
    parser.add_argument("--blocking", action="store_true",
                        help="record with --blocking (checks the oracle: a stopped target's "
                        "stacks are all possible)")
    parser.add_argument("--save-model", help="write the oracle's model (and the profile "
                        "beside it, .collapsed) for --classify")
    parser.add_argument("--classify", metavar="PROFILE")
    parser.add_argument("--model")
    args = parser.parse_args()
    if args.classify:
        return classify_main(args.classify, args.model)
    if not args.bin_dir or not args.interp:
        parser.error("--bin-dir and --interp are required")
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    if args.case == "dump":
        test_dump(profiler, interp)
        return 0
    work = interp.temp_dir() if args.case == "launch" else tempfile.mkdtemp(prefix="pyflame-churn-")
    try:
        if args.case == "launch":
            test_launch(profiler, interp, work)
        else:
            test_record(profiler, interp, work, args.save_model, args.blocking)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
