#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `--native` (dump and record) against one interpreter.

    test_native.py --bin-dir DIR --interp NAME [--manifest PATH] [--case CASE]...
    test_native.py --build-only --interp NAME [--manifest PATH]

Builds native_ext/native_ext.c, a small C extension, against the
interpreter's own headers (the manifest's headers column) into a directory
the interpreter sees (inside its root when it runs in one), and runs a
fixture that imports it:

- merged: the main thread runs <module> -> outer() -> native_ext.call_back
  (C: ext_call_back) -> py_callback() -> native_ext.spin() (C: ext_spin,
  which loops forever). `dump --native --json` must show exactly ext_spin,
  py_callback, ext_call_back, outer, <module> (innermost first: the eval
  loop's C frames replaced by the Python frames they ran, the interpreter's
  call machinery hidden); `--native-all` the same five in that order among
  more native frames, and no eval-loop frame; `record --native` to
  collapsed text: every stack ends, root first, with
  outer;ext_call_back [native_ext...];py_callback;ext_spin [native_ext...].
- sleeping: a thread in time.sleep(100) inside sleeper(): its innermost
  frame is native, in libc (clock_nanosleep, nanosleep or select: the
  symbol is glibc's and the version's, not checked), and the first Python
  frame outward is sleeper.

--build-only builds the extension, imports it under the interpreter and
checks the fixture, without a profiler. Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import List, Optional, Sequence

from pyflame_test import (DEFAULT_MANIFEST, EXIT_USAGE, PROFILER_TIMEOUT, READY_TIMEOUT,
                          STATE_TIMEOUT, TIMEOUT_SCALE, Cases, Failure, Interpreter, Missing,
                          Result, Target, find_interpreter, log, main_wrapper, parse_collapsed,
                          parse_json_document, profiler_path, read_line, run, stopped_tasks,
                          task_states, wait_for_syscall)

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION_SOURCE = os.path.join(HERE, "native_ext", "native_ext.c")
EXTENSION = "native_ext"
# Python 2.7 and 3.x both import NAME.so (3.x also has its tagged suffixes).
EXTENSION_FILE = EXTENSION + ".so"
CFLAGS = ["-O1", "-g", "-fPIC", "-shared", "-fno-omit-frame-pointer"]
COMPILE_TIMEOUT = 120 * TIMEOUT_SCALE
FIXTURE_FILE = "fixture_native.py"

# `dump` exits 8 when no consistent stack could be read (docs/usage.md):
# transient, so a dump is tried again, up to DUMP_ATTEMPTS times in all.
EXIT_NO_CONSISTENT_STACK = 8
TRANSIENT_EXITS = (EXIT_NO_CONSISTENT_STACK,)
DUMP_ATTEMPTS = 3
# How long the main thread spins in ext_spin after "ready" before the
# first dump: it has only two calls to make to get there.
SETTLE_SECONDS = 0.3 * TIMEOUT_SCALE
RECORD_SECONDS = 2
# The fewest samples a 2 s recording at the default 100/s must have: a
# floor, not a rate (stopping and unwinding every thread costs more than a
# read, and the machine may be loaded).
MIN_RECORD_SAMPLES = 10

# The eval loop's C function, which --native replaces by the Python frames
# it ran (GCC's clones of it too: .cold, .lto_priv.0, .isra.0).
EVAL_FRAME = re.compile(r"^(_PyEval_EvalFrameDefault|PyEval_EvalFrameEx)(\..+)?$")

# The fixture; 2.7-compatible. Lines marked "# AT name" are where each
# Python frame stands while the main thread spins (see marker_lines).
FIXTURE_CODE = r"""
import sys, threading, time
import native_ext

def sleeper():
    time.sleep(100)  # AT sleeper

def py_callback():
    native_ext.spin()  # AT py_callback

def outer():
    native_ext.call_back(py_callback)  # AT outer

if sys.argv[1:] == ["sleeping"]:
    thread = threading.Thread(target=sleeper, name="sleeper")
    thread.daemon = True
    thread.start()
    sys.stdout.write("ready\n"); sys.stdout.flush()
    sys.stdin.readline()
elif sys.argv[1:] == ["merged"]:
    sys.stdout.write("ready\n"); sys.stdout.flush()
    outer()  # AT <module>
elif sys.argv[1:] == ["import"]:
    sys.stdout.write("imported %s\n" % native_ext.__file__); sys.stdout.flush()
"""

# The main thread's stack in the merged case, innermost first.
MERGED_STACK = [("native", "ext_spin"), ("python", "py_callback"), ("native", "ext_call_back"),
                ("python", "outer"), ("python", "<module>")]

# System calls a thread in time.sleep() waits in, per machine (2.7 to 3.10
# sleep in select, 3.11+ in clock_nanosleep or nanosleep).
SLEEP_SYSCALLS = {
    "x86_64": {23, 35, 230, 270},  # select, nanosleep, clock_nanosleep, pselect6
    "aarch64": {72, 101, 115},  # pselect6, nanosleep, clock_nanosleep
}


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def marker_lines() -> dict:
    lines = {}
    for number, text in enumerate(FIXTURE_CODE.splitlines(), 1):
        m = re.search(r"# AT (\S+)$", text)
        if m:
            lines[m.group(1)] = number
    return lines


# ------------------------------------------------------------- the extension


def include_dirs(interp: Interpreter) -> List[str]:
    """The -I directories of INTERP's headers (host paths), or Missing."""
    if interp.headers in ("", "-"):
        raise Missing("%s has no usable headers in the manifest (headers column '-'): "
                      "test/interpreters/provision.sh found none to build %s against"
                      % (interp.name, EXTENSION_FILE))
    dirs = [d for d in interp.headers.split(":") if d]
    if not any(os.path.isfile(os.path.join(d, "Python.h")) for d in dirs):
        raise Missing("%s: no Python.h in the manifest's header directories %s"
                      % (interp.name, dirs))
    return dirs


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc")
    if not cc:
        raise Missing("no C compiler `cc` to build %s (scripts/setup.sh installs one)"
                      % EXTENSION_FILE)
    return cc


def build_extension(interp: Interpreter, directory: str) -> str:
    """Builds native_ext.so into DIRECTORY (a host path) against INTERP's headers."""
    output = os.path.join(directory, EXTENSION_FILE)
    argv = [compiler()] + CFLAGS + ["-I" + d for d in include_dirs(interp)] + [
        "-o", output, EXTENSION_SOURCE]
    result = run(argv, COMPILE_TIMEOUT)
    expect(result.returncode == 0, "building %s for %s failed:\n%s"
           % (EXTENSION_FILE, interp.name, result.describe()))
    os.chmod(output, 0o755)
    return output


class Fixture(Target):
    """FIXTURE_CODE with native_ext.so beside it, run as CASE under INTERP;
    waits for its first line (kept in `first_line`)."""

    def __init__(self, interp: Interpreter, case: str):
        tmpdir = interp.temp_dir()
        try:
            build_extension(interp, tmpdir)
            self.script = os.path.join(tmpdir, FIXTURE_FILE)
            with open(self.script, "w", encoding="utf-8") as f:
                f.write(FIXTURE_CODE)
            os.chmod(tmpdir, 0o755)
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        # The script's directory is sys.path[0]: `import native_ext` finds the .so.
        self.script_inside = interp.inside_path(self.script)
        super().__init__(interp, [self.script_inside, case], tmpdir, stdout=subprocess.PIPE)
        try:
            self.first_line = read_line(self.proc.stdout.fileno(), self, READY_TIMEOUT,
                                        "the %s fixture under %s" % (case, interp.name)
                                        ).decode("utf-8", "replace").strip()
        except BaseException:
            self.close()
            raise


def case_build(interp: Interpreter) -> str:
    """The extension builds and imports; the merged fixture spins and the
    sleeping one sleeps."""
    with Fixture(interp, "import") as target:
        line = target.first_line
        target.proc.wait(timeout=READY_TIMEOUT)
        expect(target.proc.returncode == 0 and line.startswith("imported ")
               and line.endswith(EXTENSION_FILE),
               "import native_ext under %s: %r, exit %s\n%s"
               % (interp.name, line, target.proc.returncode, target.stderr_text()))
    with Fixture(interp, "merged") as target:
        wait_spinning(target)
        time.sleep(SETTLE_SECONDS)
        expect(target.alive(), "the merged fixture died:\n%s" % target.stderr_text())
    with Fixture(interp, "sleeping") as target:
        wait_sleeping(target)
    return "imported %s; the merged fixture spins, the sleeping one sleeps" % line.split(" ", 1)[1]


# ------------------------------------------------------------------ checks


def wait_spinning(target: Target) -> None:
    """Waits until the target's main thread runs (it spins in ext_spin)."""
    deadline = time.monotonic() + STATE_TIMEOUT
    while task_states(target.pid).get(target.pid) != "R":
        expect(target.alive(), "the fixture exited:\n%s" % target.stderr_text())
        expect(time.monotonic() < deadline, "the fixture's main thread never ran: %s"
               % task_states(target.pid))
        time.sleep(0.01)


def native_dump(profiler: str, target: Target, *extra: str) -> dict:
    """`dump --native --json EXTRA -p PID`, tried again on a transient exit."""
    argv = [profiler, "dump", "--native"] + list(extra) + ["--json", "-p", str(target.pid)]
    result: Optional[Result] = None
    for attempt in range(1, DUMP_ATTEMPTS + 1):
        result = run(argv, PROFILER_TIMEOUT)
        if result.returncode not in TRANSIENT_EXITS:
            break
        log("note: attempt %d: %s; trying again" % (attempt, result.status()))
    assert result is not None
    expect(result.returncode == 0, "dump%s: %s" % (usage_hint(result), result.describe()))
    check_target(target)
    return parse_json_document(result)


def usage_hint(result: Result) -> str:
    """A note when the profiler refused its command line: one built
    without --native."""
    if result.returncode == EXIT_USAGE and "--native" in result.stderr_text:
        return " (exit 2 naming --native: this profiler does not support it)"
    return ""


def check_target(target: Target) -> None:
    expect(target.alive(), "the target died under the profiler:\n%s" % target.stderr_text())
    stopped = stopped_tasks(target.pid)
    expect(not stopped, "the profiler left target threads stopped: %s" % stopped)


def render(frame) -> str:
    if not isinstance(frame, dict):
        return repr(frame)
    if frame.get("kind") == "native":
        where = "" if frame.get("filename") is None else " %s:%s" % (frame.get("filename"),
                                                                   frame.get("line"))
        address = frame.get("address")
        return "native %s [%s] %s%s" % (frame.get("function"), frame.get("library"),
                                        hex(address) if isinstance(address, int) else address,
                                        where)
    return "%s %s (%s:%s)" % (frame.get("kind"), frame.get("function"), frame.get("filename"),
                              frame.get("line"))


def render_stack(frames) -> str:
    if not isinstance(frames, list):
        return repr(frames)
    return "\n    ".join(["frames, innermost first:"] + [render(f) for f in frames])


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def frame_problem(frame, kind: str, function: str, target: Fixture) -> Optional[str]:
    """Why FRAME (a dump --json frame) is not KIND FUNCTION of the fixture."""
    if not isinstance(frame, dict):
        return "not an object"
    if frame.get("kind") != kind:
        return "kind %r, expected %r" % (frame.get("kind"), kind)
    if frame.get("function") != function:
        return "function %r, expected %r" % (frame.get("function"), function)
    if kind == "native":
        library = frame.get("library")
        if not isinstance(library, str) or not os.path.basename(library).startswith(EXTENSION):
            return "library %r, expected %s" % (library, EXTENSION_FILE)
        if not is_int(frame.get("address")):
            return "address %r is not an integer" % (frame.get("address"),)
        return None
    if frame.get("filename") != target.script_inside:
        return "filename %r, expected %r" % (frame.get("filename"), target.script_inside)
    line = marker_lines()[function]
    if frame.get("line") != line:
        return "line %r, expected %d" % (frame.get("line"), line)
    return None


def main_thread(doc: dict, target: Target) -> list:
    """The main thread's frames: the thread with the fixture's outer()
    (native_id is null on some versions; the fixture has one thread)."""
    threads = doc.get("threads")
    expect(isinstance(threads, list) and len(threads) == 1,
           "expected the fixture's one thread, got %r" % (threads,))
    thread = threads[0]
    expect(thread.get("native_id") in (None, target.pid),
           "the thread's native_id is %r, expected %d" % (thread.get("native_id"), target.pid))
    frames = thread.get("frames")
    expect(isinstance(frames, list), "frames is %r, not a list" % (frames,))
    return frames


def check_default(frames: list, target: Fixture) -> None:
    problems = []
    for index in range(max(len(frames), len(MERGED_STACK))):
        if index >= len(MERGED_STACK):
            problems.append("#%d: unexpected extra frame %s" % (index, render(frames[index])))
        elif index >= len(frames):
            problems.append("#%d: missing %s %s" % ((index,) + MERGED_STACK[index]))
        else:
            why = frame_problem(frames[index], MERGED_STACK[index][0], MERGED_STACK[index][1], target)
            if why:
                problems.append("#%d: %s" % (index, why))
    expect(not problems, "dump --native: the main thread's stack is not %s:\n    %s\n    %s"
           % (" <- ".join(f for _, f in MERGED_STACK), "\n    ".join(problems),
              render_stack(frames)))


def check_all(frames: list, target: Fixture) -> None:
    # The five frames, in order, as a subsequence.
    found, position = [], 0
    for kind, function in MERGED_STACK:
        while position < len(frames) and frame_problem(frames[position], kind, function, target):
            position += 1
        expect(position < len(frames),
               "dump --native --native-all: %s %s not found after %s\n    %s"
               % (kind, function, found, render_stack(frames)))
        found.append(position)
        position += 1
    others = [f for i, f in enumerate(frames) if i not in found]
    expect(all(isinstance(f, dict) and f.get("kind") in ("python", "native") for f in others),
           "dump --native --native-all: a frame of no known kind\n    %s" % render_stack(frames))
    expect(any(f.get("kind") == "native" for f in others),
           "dump --native --native-all: no interpreter-internal native frame beside the "
           "fixture's\n    %s" % render_stack(frames))
    expect(not any(f.get("kind") == "python" for f in others),
           "dump --native --native-all: a Python frame the fixture does not have\n    %s"
           % render_stack(frames))
    evals = [f for f in frames if EVAL_FRAME.match(str(f.get("function")))]
    expect(not evals, "dump --native --native-all: the eval loop's frame was not replaced: %s\n"
           "    %s" % ([render(f) for f in evals], render_stack(frames)))


def check_record(profiler: str, target: Fixture, work: str) -> str:
    """record --native -d 2 to collapsed text: every stack ends with the
    fixture's four frames."""
    lines = marker_lines()
    script = target.script_inside
    out = os.path.join(work, "merged.txt")
    result = run([profiler, "record", "--native", "-p", str(target.pid), "-o", out,
                  "-d", str(RECORD_SECONDS)], PROFILER_TIMEOUT + RECORD_SECONDS)
    expect(result.returncode == 0, "record --native%s: %s" % (usage_hint(result), result.describe()))
    check_target(target)
    err = result.stderr_text
    expect("samples of" in err and "written to" in err,
           "record --native: no summary on stderr\n%s" % result.describe())
    with open(out, encoding="utf-8") as f:
        text = f.read()
    stacks = parse_collapsed(text)
    want = [("outer", script, lines["outer"], False), ("ext_call_back", None, None, True),
            ("py_callback", script, lines["py_callback"], False), ("ext_spin", None, None, True)]
    total, wrong = 0, []
    for frames, count in stacks:
        total += count
        tail = frames[-len(want):]
        good = len(tail) == len(want) and all(
            f.function == function and f.native == native and
            (f.filename.startswith(EXTENSION) if native else (f.filename, f.line) == (file, line))
            for f, (function, file, line, native) in zip(tail, want))
        good = good and not any(EVAL_FRAME.match(f.function) for f in frames)
        if not good:
            wrong.append("%d x %s" % (count, ";".join(
                "%s [%s]" % (f.function, f.filename) if f.native
                else "%s (%s:%s)" % (f.function, f.filename, f.line) for f in frames)))
    expect(total >= MIN_RECORD_SAMPLES, "record --native -d %d: %d samples, expected at least %d\n"
           "%s\n%s" % (RECORD_SECONDS, total, MIN_RECORD_SAMPLES, text, err))
    expect(not wrong, "record --native: %d stacks do not end with outer;ext_call_back [%s];"
           "py_callback;ext_spin [%s]:\n    %s\n%s"
           % (len(wrong), EXTENSION_FILE, EXTENSION_FILE, "\n    ".join(wrong[:10]), err))
    return "record: %d samples in %d stacks" % (total, len(stacks))


def case_merged(profiler: str, interp: Interpreter, work: str) -> str:
    """dump --native, dump --native --native-all and record --native of the
    main thread in ext_spin: each is checked, and all failures reported."""
    failures, notes = [], []
    with Fixture(interp, "merged") as target:
        expect(target.first_line == "ready", "fixture said %r" % target.first_line)
        wait_spinning(target)
        time.sleep(SETTLE_SECONDS)

        def default() -> str:
            check_default(main_thread(native_dump(profiler, target), target), target)
            return "dump: the five frames"

        def everything() -> str:
            frames = main_thread(native_dump(profiler, target, "--native-all"), target)
            check_all(frames, target)
            return "dump --native-all: %d frames" % len(frames)

        for check in (default, everything, lambda: check_record(profiler, target, work)):
            try:
                notes.append(check())
            except Failure as e:
                failures.append(str(e))
            if not target.alive():
                break
    expect(not failures, "\n".join(failures + (["passed: " + "; ".join(notes)] if notes else [])))
    return "; ".join(notes)


def wait_sleeping(target: Target) -> int:
    """Waits until the fixture's second thread sleeps and its main thread
    reads stdin; returns the sleeper's TID."""
    why = wait_for_syscall(target.pid, target.pid, "read", 0, READY_TIMEOUT)
    expect(not why, "the fixture's main thread never blocked reading stdin: %s" % why)
    numbers = SLEEP_SYSCALLS.get(os.uname().machine)
    deadline = time.monotonic() + STATE_TIMEOUT
    while True:
        states = task_states(target.pid)
        others = [tid for tid in states if tid != target.pid]
        if len(others) == 1:
            tid = others[0]
            if numbers is None:  # cannot tell the system call here: a state and a delay
                if states[tid] == "S":
                    time.sleep(SETTLE_SECONDS)
                    return tid
            else:
                try:
                    with open("/proc/%d/task/%d/syscall" % (target.pid, tid)) as f:
                        fields = f.read().split()
                except OSError:
                    fields = []
                if fields and fields[0].isdigit() and int(fields[0]) in numbers:
                    return tid
        expect(time.monotonic() < deadline, "the sleeper thread never slept: tasks %s" % states)
        time.sleep(0.01)


def case_sleeping(profiler: str, interp: Interpreter) -> str:
    with Fixture(interp, "sleeping") as target:
        expect(target.first_line == "ready", "fixture said %r" % target.first_line)
        tid = wait_sleeping(target)
        doc = native_dump(profiler, target)
    threads = doc.get("threads")
    expect(isinstance(threads, list), "threads is %r" % (threads,))
    sleepers = [t for t in threads if isinstance(t, dict) and isinstance(t.get("frames"), list)
                and any(isinstance(f, dict) and f.get("kind") == "python"
                        and f.get("function") == "sleeper" for f in t["frames"])]
    expect(len(sleepers) == 1, "expected one thread in sleeper(), got %d of %d threads"
           % (len(sleepers), len(threads)))
    thread = sleepers[0]
    expect(thread.get("native_id") in (None, tid), "the sleeper's native_id is %r, expected %d"
           % (thread.get("native_id"), tid))
    frames = thread["frames"]
    innermost = frames[0]
    expect(isinstance(innermost, dict) and innermost.get("kind") == "native",
           "the sleeper's innermost frame is not native\n    %s" % render_stack(frames))
    library = innermost.get("library")
    expect(isinstance(library, str) and os.path.basename(library).startswith("libc"),
           "the sleeper's innermost frame is not in libc: %s\n    %s"
           % (render(innermost), render_stack(frames)))
    expect(is_int(innermost.get("address")), "the innermost frame's address is %r"
           % (innermost.get("address"),))
    first_python = next((f for f in frames if isinstance(f, dict) and f.get("kind") == "python"), None)
    why = frame_problem(first_python, "python", "sleeper", target) if first_python else "none"
    expect(why is None, "the first Python frame outward from the innermost: %s\n    %s"
           % (why, render_stack(frames)))
    return "sleeper's innermost frame: %s" % render(innermost)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir")
    parser.add_argument("--interp", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--case", action="append", choices=["merged", "sleeping"],
                        help="run only this case (repeatable); default: all")
    parser.add_argument("--build-only", action="store_true",
                        help="build and import the extension and start the fixture, no profiler")
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    cases = Cases()
    if args.build_only:
        log("native: building %s for %s" % (EXTENSION_FILE, interp.name))
        cases.run("build", lambda: case_build(interp))
        return cases.summary()
    if not args.bin_dir:
        parser.error("--bin-dir is required (or --build-only)")
    profiler = profiler_path(args.bin_dir, interp.minor)
    log("native on %s" % interp.name)
    work = tempfile.mkdtemp(prefix="pyflame-native-")
    try:
        selected: Sequence[str] = args.case or ["merged", "sleeping"]
        if "merged" in selected:
            cases.run("merged", lambda: case_merged(profiler, interp, work))
        if "sleeping" in selected:
            cases.run("sleeping", lambda: case_sleeping(profiler, interp))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    main_wrapper(main)
