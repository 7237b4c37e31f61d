#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `pyflameX.Y dump` against one interpreter.

    test_dump.py --bin-dir DIR --interp NAME [--manifest PATH] [--blocking]
    test_dump.py --fixture-only --interp NAME [--manifest PATH]

Starts fixture_dump.py under interpreter NAME (a manifest row), dumps it with
DIR/pyflame<minor> and compares every thread's stack with the one the fixture
computed for itself.  --fixture-only checks the fixture and the /proc states
of its threads without running a profiler.  Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import difflib
import re
from typing import List, Optional

from pyflame_test import (EXIT_OK, Failure, Interpreter, Result, Target, dump,
                          find_interpreter, log, main_wrapper, parse_json_document,
                          profiler_path, start_fixture, stopped_tasks, task_comm,
                          task_states, wait_for_idle_states, DEFAULT_MANIFEST)

IDLE_ATTEMPTS = 3
# Dumps taken for the GIL check (see gil_problems).
GIL_DUMPS = 7
UNKNOWN = "<unknown>"
# The manifest has X.Y.Z; a pre-release interpreter may report e.g. 3.15.0a1.
PRERELEASE_SUFFIX = re.compile(r"((a|b|rc)\d+)?\+?")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def render(frame) -> str:
    """One line of a stack diff."""
    if not isinstance(frame, dict):
        return repr(frame)
    return "%s [%s] %s:%s" % (frame.get("function"), frame.get("qualname"),
                              frame.get("filename"), frame.get("line"))


def frame_problem(want: dict, got, has_qualname: bool) -> Optional[str]:
    """Why GOT (a profiler frame) does not match WANT (a fixture frame), or None."""
    if not isinstance(got, dict):
        return "frame is not an object"
    if got.get("function") != want["function"]:
        return "function %r, expected %r" % (got.get("function"), want["function"])
    qualname = got.get("qualname")
    if has_qualname and qualname != want["qualname"]:
        return "qualname %r, expected %r" % (qualname, want["qualname"])
    if not has_qualname and qualname is not None:
        return "qualname %r, expected null (no co_qualname before 3.11)" % (qualname,)
    # Every frame, threading's bootstrap included, exactly: the fixture read
    # their files and lines from its own frames (sys._current_frames()) while
    # each thread sat where it is dumped.
    filename, line = got.get("filename"), got.get("line")
    if filename != want["filename"]:
        return "filename %r, expected %r" % (filename, want["filename"])
    if not is_int(line) or line != want["line"]:
        return "line %r, expected %r" % (line, want["line"])
    return None


def compare_frames(role: str, want: List[dict], got, has_qualname: bool) -> List[str]:
    if not isinstance(got, list):
        return ["thread %s: frames is %r, not a list" % (role, type(got).__name__)]
    problems = []
    expected_lines, actual_lines = [], []
    for index in range(max(len(want), len(got))):
        w = want[index] if index < len(want) else None
        g = got[index] if index < len(got) else None
        why = None
        if w is None:
            why = "unexpected extra frame"
        elif g is None:
            why = "missing"
        else:
            why = frame_problem(w, g, has_qualname)
        if w is not None:
            expected_lines.append(render(w))
        if g is not None:
            actual_lines.append(render(g))
        if why is not None and len(problems) < 10:
            problems.append("thread %s frame %d: %s" % (role, index, why))
    if len(got) != len(want):
        problems.append("thread %s: %d frames, expected %d" % (role, len(got), len(want)))
    if problems:
        diff = difflib.unified_diff(expected_lines, actual_lines, "expected (fixture)",
                                    "actual (pyflame)", n=2, lineterm="")
        problems.append("thread %s stack diff (innermost first):\n%s"
                        % (role, "\n".join(list(diff)[:120])))
    return problems


class DumpCheck:
    def __init__(self, interp: Interpreter, target: Target):
        self.interp = interp
        self.target = target
        self.ready = target.ready
        self.has_qualname = bool(self.ready["has_qualname"])
        self.by_ident = {t["thread_id"]: t for t in self.ready["threads"]}
        self.expected_idle = {t["thread_id"]: t["idle"] for t in self.ready["threads"]}

    def check_fixture(self) -> List[str]:
        problems = ["fixture self-check: %s" % e for e in self.ready["selfcheck_errors"]]
        if self.ready["python_version"] != self.interp.version:
            problems.append("manifest says %s is %s but it reports %s"
                            % (self.interp.name, self.interp.version, self.ready["python_version"]))
        if self.ready["pid"] != self.target.pid:
            problems.append("fixture reports pid %s, started %d" % (self.ready["pid"], self.target.pid))
        tids = {t["native_id"]: t["idle"] for t in self.ready["threads"]}
        if None in tids:
            # No native ids (< 3.8 without ctypes): the main thread's TID is
            # the pid; of the others, only one may be running.
            log("note: the fixture could not get its threads' native ids; "
                "checking that only one thread besides main runs")
            why = wait_for_idle_states(self.target.pid, {self.target.pid: True},
                                       max_running=1)
        else:
            why = wait_for_idle_states(self.target.pid, tids)
        if why:
            problems.append("threads not in the expected states: %s" % why)
        return problems

    def check_document(self, doc: dict) -> List[str]:
        problems = []
        if doc.get("pid") != self.target.pid:
            problems.append("pid %r, expected %d" % (doc.get("pid"), self.target.pid))
        version = doc.get("python_version")
        if not (isinstance(version, str) and version.startswith(self.interp.version)
                and PRERELEASE_SUFFIX.fullmatch(version[len(self.interp.version):])):
            problems.append("python_version %r, expected %r" % (version, self.interp.version))
        threads = doc.get("threads")
        if not isinstance(threads, list) or not all(isinstance(t, dict) for t in threads):
            return problems + ["threads is not a list of objects"]
        got_ids = [t.get("thread_id") for t in threads]
        if sorted(map(str, got_ids)) != sorted(map(str, self.by_ident)):
            problems.append("thread_ids %s, expected %s (%s)" % (
                sorted(got_ids, key=str), sorted(self.by_ident),
                ", ".join("%s=%s" % (t["role"], t["thread_id"]) for t in self.ready["threads"])))
        gil_holders = [t.get("thread_id") for t in threads if t.get("holds_gil") is True]
        if len(gil_holders) > 1:
            problems.append("holds_gil is true for %d threads: %s" % (len(gil_holders), gil_holders))
        for thread in threads:
            want = self.by_ident.get(thread.get("thread_id"))
            if want is not None:
                problems += self.check_thread(want, thread)
        return problems

    def check_thread(self, want: dict, got: dict) -> List[str]:
        role = want["role"]
        problems = []
        # A free-threaded build has no GIL: nobody holds it or lacks it.
        gil_known = (lambda v: v is None) if self.interp.free_threaded else (lambda v: isinstance(v, bool))
        for key, allowed in (("native_id", is_int), ("name", lambda v: isinstance(v, str)),
                             ("holds_gil", gil_known),
                             ("idle", lambda v: isinstance(v, bool))):
            if key not in got:
                problems.append("thread %s: no %r field" % (role, key))
            elif got[key] is not None and not allowed(got[key]):
                problems.append("thread %s: %s is %r" % (role, key, got[key]))
        tid = got.get("native_id")
        if want["native_id"] is not None:
            if tid is None and self.interp.version_tuple >= (3, 8):
                problems.append("thread %s: native_id is null (3.8+ has it)" % role)
            elif tid is not None and tid != want["native_id"]:
                problems.append("thread %s: native_id %r, expected %d" % (role, tid, want["native_id"]))
        elif tid is not None and tid not in task_states(self.target.pid):
            problems.append("thread %s: native_id %r is not a task of %d" % (role, tid, self.target.pid))
        tid = tid if is_int(tid) else want["native_id"]
        name = got.get("name")
        if name is not None and tid is not None:
            comm = task_comm(self.target.pid, tid)
            if name != comm:
                problems.append("thread %s: name %r, /proc says %r" % (role, name, comm))
        frames = got.get("frames")
        if isinstance(frames, list) and any(isinstance(f, dict) and f.get("function") == UNKNOWN
                                            for f in frames):
            problems.append("thread %s: has %s frames" % (role, UNKNOWN))
        problems += compare_frames(role, want["frames"], frames, self.has_qualname)
        if role == "recursion" and isinstance(frames, list):
            depth = sum(1 for f in frames if isinstance(f, dict) and f.get("function") == "recurse")
            if depth != self.ready["recursion_depth"]:
                problems.append("thread recursion: %d recurse frames, expected %d"
                                % (depth, self.ready["recursion_depth"]))
        return problems

    def gil_problems(self, docs: List[dict]) -> List[str]:
        """The GIL holder, exactly, over several dumps.

        The busy thread spins in pure Python while every other thread waits
        in C with the GIL released (a lock, os.read): nobody asks for the
        GIL, so the busy thread keeps it and is its holder in every dump but
        a rare one caught in a switch. Every version tells the holder
        (2.7/3.6 _PyThreadState_Current, 3.7-3.11 the runtime's
        gilstate.tstate_current, 3.12+ the interpreter's GIL: locked and
        last_holder). A failure means holds_gil is read from the wrong place
        or not at all (null), or names a waiting thread as the holder: the
        --gil filter would then keep the wrong samples.
        """
        if self.interp.free_threaded:
            # No GIL (PYTHON_GIL unset): holds_gil is null for every thread.
            return ["dump %d: thread %s: holds_gil is %s on a free-threaded build"
                    % (number, thread.get("thread_id"), thread.get("holds_gil"))
                    for number, doc in enumerate(docs, 1) for thread in doc.get("threads") or []
                    if thread.get("holds_gil") is not None]
        busy = next(t["thread_id"] for t in self.ready["threads"] if t["role"] == "busy")
        problems, busy_held = [], 0
        for number, doc in enumerate(docs, 1):
            for thread in doc.get("threads") or []:
                ident, held = thread.get("thread_id"), thread.get("holds_gil")
                role = self.by_ident.get(ident, {}).get("role", ident)
                if held is None:
                    problems.append("dump %d: thread %s: holds_gil is null" % (number, role))
                elif held and ident != busy:
                    problems.append("dump %d: the waiting thread %s holds the GIL" % (number, role))
                elif held:
                    busy_held += 1
        if busy_held * 2 <= len(docs):
            problems.append("the busy thread held the GIL in %d of %d dumps, expected most"
                            % (busy_held, len(docs)))
        return problems

    def idle_problems(self, doc: dict) -> List[str]:
        problems = []
        for thread in doc.get("threads") or []:
            ident = thread.get("thread_id") if isinstance(thread, dict) else None
            if ident in self.expected_idle and thread.get("idle") != self.expected_idle[ident]:
                problems.append("thread %s: idle %r, expected %r" % (
                    self.by_ident[ident]["role"], thread.get("idle"), self.expected_idle[ident]))
        return problems


def checked_dump(profiler: str, target: Target, blocking: bool, json_output: bool = True) -> Result:
    result = dump(profiler, target.pid, json_output=json_output, blocking=blocking)
    if result.returncode != EXIT_OK:
        raise Failure("dump failed: %s\n%s" % (result.status(), result.describe()))
    if not target.alive():
        raise Failure("target died during the dump\n%s" % result.describe())
    stopped = stopped_tasks(target.pid)
    if stopped:
        raise Failure("target left stopped after the dump: %s\n%s" % (stopped, result.describe()))
    return result


def run_checks(args: argparse.Namespace, interp: Interpreter, profiler: Optional[str]) -> int:
    with start_fixture(interp) as target:
        check = DumpCheck(interp, target)
        problems = check.check_fixture()
        if problems or profiler is None:
            report(problems, "fixture under %s (pid %d, %s)" % (
                interp.name, target.pid, ", ".join(
                    "%s=%d frames" % (t["role"], len(t["frames"])) for t in target.ready["threads"])))
            return 1 if problems else 0

        result = checked_dump(profiler, target, args.blocking)
        doc = parse_json_document(result)
        problems = check.check_document(doc)
        idle = check.idle_problems(doc)
        attempt = 1
        while idle and not problems and attempt < IDLE_ATTEMPTS:
            # The spinning thread can be caught preempted: retry the idle check only.
            log("note: attempt %d: %s; retrying" % (attempt, "; ".join(idle)))
            attempt += 1
            idle = check.idle_problems(parse_json_document(checked_dump(profiler, target, args.blocking)))
        problems += idle
        problems += check.gil_problems(
            [doc] + [parse_json_document(checked_dump(profiler, target, args.blocking))
                     for _ in range(GIL_DUMPS - 1)])
        if problems:
            problems.append("JSON dump was:\n%s" % result.describe())

        text = checked_dump(profiler, target, args.blocking, json_output=False)
        names = sorted({f["function"] for t in target.ready["threads"]
                        for f in t["frames"] if f["kind"] == "fixture"})
        missing = [n for n in names if n not in text.stdout_text]
        if missing:
            problems.append("text dump does not mention %s\n%s" % (missing, text.describe()))
        report(problems, "pyflame%s dump%s of %s (pid %d)" % (
            interp.minor, " --blocking" if args.blocking else "", interp.name, target.pid))
        return 1 if problems else 0


def report(problems: List[str], what: str) -> None:
    if problems:
        log("FAIL %s" % what)
        for p in problems:
            log("  - " + p.replace("\n", "\n    "))
    else:
        log("PASS %s" % what)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", help="directory holding pyflameX.Y")
    parser.add_argument("--interp", required=True, help="interpreter name (manifest row)")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--blocking", action="store_true", help="dump with --blocking")
    parser.add_argument("--fixture-only", action="store_true",
                        help="check the fixture under NAME, run no profiler")
    args = parser.parse_args()
    if not args.fixture_only and not args.bin_dir:
        parser.error("--bin-dir is required unless --fixture-only")
    interp = find_interpreter(args.manifest, args.interp)
    profiler = None if args.fixture_only else profiler_path(args.bin_dir, interp.minor)
    return run_checks(args, interp, profiler)


if __name__ == "__main__":
    main_wrapper(main)
