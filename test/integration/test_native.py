#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `--native` (dump and record) against one interpreter.

    test_native.py --bin-dir DIR --interp NAME [--manifest PATH] [--case CASE]...
    test_native.py --build-only --interp NAME [--manifest PATH]

Builds native_ext/native_ext.c, a small C extension (and for the cpp case
native_ext/native_cpp.cc, a C++ one), against the interpreter's own headers
(the manifest's headers column) into a directory the interpreter sees
(inside its root when it runs in one), and runs a fixture that imports it:

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
- cpp: the main thread runs <module> -> py_spin_cpp() -> native_cpp.spin()
  (C++, `extern "C"` cpp_spin) -> pyflame_test::spin_in<int>(1) (a
  template, noinline) -> pyflame_test::inlined_spin() (always_inline: no
  frame of its own on the C stack, a DWARF inlined subroutine; inline, not
  static, for its DWARF to have a linkage name: see native_cpp.cc). `dump
  --native --json` must show exactly pyflame_test::inlined_spin() (with
  "inlined": true, at the loop's line), `int pyflame_test::spin_in<int>(int)`
  (demangled, not inlined, at the call of inlined_spin()), cpp_spin,
  py_spin_cpp, <module>; `record --native` to collapsed text: every stack
  ends with py_spin_cpp;cpp_spin [native_cpp.so];int
  pyflame_test::spin_in<int>(int) [native_cpp.so];pyflame_test::inlined_spin()
  [native_cpp.so]. Built with `c++` ($CXX); none: skipped.
- dlopen: native_ext.so is loaded after the recording began. The fixture
  waits on stdin without it; `record --native -d 4` attaches, the test
  then lets the fixture import it and run the merged case's outer(): at
  least max(10, half the samples taken once it spins: the achieved rate
  over the rest of the run, from --stats-json) samples must end with
  outer;ext_call_back [native_ext.so];py_callback;ext_spin [native_ext.so]
  (the profiler picked the new library up), and the summary count of
  thread stacks "not merged" must be 0.

--build-only builds the extensions, imports them under the interpreter and
checks the fixture, without a profiler. Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import List, Optional, Sequence

from pyflame_test import (DEFAULT_MANIFEST, EXIT_USAGE, PROFILER_TIMEOUT, READY_TIMEOUT,
                          STATE_TIMEOUT, TIMEOUT_SCALE, Cases, CollapsedFrame, Failure,
                          Interpreter, Missing, Result, Target, clip, find_interpreter, kill_group,
                          log, main_wrapper, parse_collapsed, parse_json_document, profiler_path,
                          read_line, run, stopped_tasks, task_states, wait_for_syscall,
                          wait_until_recording)

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION_SOURCE = os.path.join(HERE, "native_ext", "native_ext.c")
EXTENSION = "native_ext"
# Python 2.7 and 3.x both import NAME.so (3.x also has its tagged suffixes).
EXTENSION_FILE = EXTENSION + ".so"
CFLAGS = ["-O1", "-g", "-fPIC", "-shared", "-fno-omit-frame-pointer"]
CPP_SOURCE = os.path.join(HERE, "native_ext", "native_cpp.cc")
CPP_EXTENSION = "native_cpp"
CPP_FILE = CPP_EXTENSION + ".so"
# The C++ module uses nothing of the C++ library: without exceptions and
# RTTI, and with --as-needed, it needs no libstdc++.so (which the chrooted
# interpreters do not have).
CXXFLAGS = CFLAGS + ["-fno-exceptions", "-fno-rtti", "-Wl,--as-needed"]
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
# The dlopen case's recording: long enough for the import after it began.
DLOPEN_RECORD_SECONDS = 4
DLOPEN_RATE = 100
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
if sys.argv[1:] != ["dlopen"]:
    import native_ext  # the dlopen case imports it once the recording began

def sleeper():
    time.sleep(100)  # AT sleeper

def py_callback():
    native_ext.spin()  # AT py_callback

def outer():
    native_ext.call_back(py_callback)  # AT outer

def py_spin_cpp():
    native_cpp.spin()  # AT py_spin_cpp

if sys.argv[1:] == ["sleeping"]:
    thread = threading.Thread(target=sleeper, name="sleeper")
    thread.daemon = True
    thread.start()
    sys.stdout.write("ready\n"); sys.stdout.flush()
    sys.stdin.readline()
elif sys.argv[1:] == ["merged"]:
    sys.stdout.write("ready\n"); sys.stdout.flush()
    outer()  # AT <module>
elif sys.argv[1:] == ["cpp"]:
    import native_cpp
    sys.stdout.write("ready\n"); sys.stdout.flush()
    py_spin_cpp()  # AT <module>:cpp
elif sys.argv[1:] == ["dlopen"]:
    sys.stdout.write("ready\n"); sys.stdout.flush()
    sys.stdin.readline()
    import native_ext
    sys.stdout.write("spinning\n"); sys.stdout.flush()
    outer()  # AT <module>:dlopen
elif sys.argv[1:] == ["import"]:
    sys.stdout.write("imported %s\n" % native_ext.__file__); sys.stdout.flush()
elif sys.argv[1:] == ["import-cpp"]:
    import native_cpp
    sys.stdout.write("imported %s\n" % native_cpp.__file__); sys.stdout.flush()
"""

# The main thread's stack in the merged case, innermost first.
MERGED_STACK = [("native", "ext_spin"), ("python", "py_callback"), ("native", "ext_call_back"),
                ("python", "outer"), ("python", "<module>")]

# The main thread's stack in the cpp case, innermost first: (kind, function,
# inlined, the "AT" marker of its line: native_cpp.cc's for a native frame,
# FIXTURE_CODE's for a Python one). An inlined frame is at the PC's line,
# the frame it was inlined into at the call's, both at the same address.
# SPIN_IN is the demangler's rendering of the template instance (return
# type, qualified name, template and parameter types), as the profiler
# prints it.
SPIN_IN = "int pyflame_test::spin_in<int>(int)"
CPP_STACK = [("native", "pyflame_test::inlined_spin()", True, "inlined_spin"),
             ("native", SPIN_IN, False, "spin_in"),
             ("native", "cpp_spin", False, "cpp_spin"),
             ("python", "py_spin_cpp", False, "py_spin_cpp"),
             ("python", "<module>", False, "<module>:cpp")]

# The native summary line of `record --native` (docs/usage.md).
NATIVE_SUMMARY = re.compile(r"pyflame: --native: (?P<merged>\d+) thread stacks merged [^,]*, "
                            r"(?P<cut_short>\d+) unwound only part way [^,]*, "
                            r"(?P<mismatched>\d+) not merged")

# System calls a thread in time.sleep() waits in, per machine (2.7 to 3.10
# sleep in select, 3.11+ in clock_nanosleep or nanosleep).
SLEEP_SYSCALLS = {
    "x86_64": {23, 35, 230, 270},  # select, nanosleep, clock_nanosleep, pselect6
    "aarch64": {72, 101, 115},  # pselect6, nanosleep, clock_nanosleep
}


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def marker_lines(text: str = FIXTURE_CODE, comment: str = "#") -> dict:
    lines = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = re.search(re.escape(comment) + r" AT (\S+)$", line)
        if m:
            lines[m.group(1)] = number
    return lines


def cpp_marker_lines() -> dict:
    """native_cpp.cc's "// AT name" lines."""
    with open(CPP_SOURCE, encoding="utf-8") as f:
        return marker_lines(f.read(), "//")


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


def cxx_compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise Missing("no C++ compiler `c++` to build %s (scripts/setup.sh installs "
                      "build-essential)" % CPP_FILE)
    return cxx


def build_extension(interp: Interpreter, directory: str, cpp: bool = False) -> str:
    """Builds native_ext.so (CPP: native_cpp.so) into DIRECTORY (a host
    path) against INTERP's headers."""
    name, source = (CPP_FILE, CPP_SOURCE) if cpp else (EXTENSION_FILE, EXTENSION_SOURCE)
    output = os.path.join(directory, name)
    argv = ([cxx_compiler()] + CXXFLAGS if cpp else [compiler()] + CFLAGS) + [
        "-I" + d for d in include_dirs(interp)] + ["-o", output, source]
    result = run(argv, COMPILE_TIMEOUT)
    expect(result.returncode == 0, "building %s for %s failed:\n%s"
           % (name, interp.name, result.describe()))
    os.chmod(output, 0o755)
    return output


class Fixture(Target):
    """FIXTURE_CODE with native_ext.so (and with CPP native_cpp.so) beside
    it, run as CASE under INTERP; waits for its first line (kept in
    `first_line`)."""

    def __init__(self, interp: Interpreter, case: str, cpp: bool = False):
        tmpdir = interp.temp_dir()
        try:
            build_extension(interp, tmpdir)
            if cpp:
                build_extension(interp, tmpdir, cpp=True)
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


def check_import(interp: Interpreter, mode: str, library: str, cpp: bool = False) -> str:
    """The fixture in MODE imports its extension (LIBRARY) and exits 0;
    the line it printed."""
    with Fixture(interp, mode, cpp=cpp) as target:
        line = target.first_line
        target.proc.wait(timeout=READY_TIMEOUT)
        expect(target.proc.returncode == 0 and line.startswith("imported ")
               and line.endswith(library),
               "%s under %s: %r, exit %s\n%s"
               % (mode, interp.name, line, target.proc.returncode, target.stderr_text()))
    return line


def case_build(interp: Interpreter) -> str:
    """The extension builds and imports; the merged fixture spins and the
    sleeping one sleeps."""
    line = check_import(interp, "import", EXTENSION_FILE)
    with Fixture(interp, "merged") as target:
        wait_spinning(target)
        time.sleep(SETTLE_SECONDS)
        expect(target.alive(), "the merged fixture died:\n%s" % target.stderr_text())
    with Fixture(interp, "sleeping") as target:
        wait_sleeping(target)
    return "imported %s; the merged fixture spins, the sleeping one sleeps" % line.split(" ", 1)[1]


def case_build_cpp(interp: Interpreter) -> str:
    """The C++ extension builds and imports; the cpp fixture spins."""
    line = check_import(interp, "import-cpp", CPP_FILE, cpp=True)
    with Fixture(interp, "cpp", cpp=True) as target:
        wait_spinning(target)
        time.sleep(SETTLE_SECONDS)
        expect(target.alive(), "the cpp fixture died:\n%s" % target.stderr_text())
    return "imported %s; the cpp fixture spins" % line.split(" ", 1)[1]


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


def frame_problem(frame, kind: str, function: str, target: Fixture,
                  extension: str = EXTENSION, marker: Optional[str] = None) -> Optional[str]:
    """Why FRAME (a dump --json frame) is not KIND FUNCTION of the fixture
    (a native one in EXTENSION, a Python one at the line marked MARKER,
    by default FUNCTION)."""
    if not isinstance(frame, dict):
        return "not an object"
    if frame.get("kind") != kind:
        return "kind %r, expected %r" % (frame.get("kind"), kind)
    if frame.get("function") != function:
        return "function %r, expected %r" % (frame.get("function"), function)
    if kind == "native":
        library = frame.get("library")
        if not isinstance(library, str) or not os.path.basename(library).startswith(extension):
            return "library %r, expected %s.so" % (library, extension)
        if not is_int(frame.get("address")):
            return "address %r is not an integer" % (frame.get("address"),)
        return None
    if frame.get("filename") != target.script_inside:
        return "filename %r, expected %r" % (frame.get("filename"), target.script_inside)
    line = marker_lines()[marker or function]
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


def stack_problems(frames: list, expected: list, problem_of) -> List[str]:
    """What keeps FRAMES from being exactly EXPECTED (tuples that start with
    kind and function), frame by frame: problem_of(frame, expected_entry)
    says what is wrong with one frame, or None."""
    problems = []
    for index in range(max(len(frames), len(expected))):
        if index >= len(expected):
            problems.append("#%d: unexpected extra frame %s" % (index, render(frames[index])))
        elif index >= len(frames):
            problems.append("#%d: missing %s %s" % (index, expected[index][0], expected[index][1]))
        else:
            why = problem_of(frames[index], expected[index])
            if why:
                problems.append("#%d: %s" % (index, why))
    return problems


def check_default(frames: list, target: Fixture) -> None:
    problems = stack_problems(frames, MERGED_STACK,
                              lambda frame, want: frame_problem(frame, want[0], want[1], target))
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


def record_native(profiler: str, target: Fixture, out: str) -> Result:
    """record --native -d RECORD_SECONDS of TARGET to OUT: exit 0, and
    the target still running."""
    result = run([profiler, "record", "--native", "-p", str(target.pid), "-o", out,
                  "-d", str(RECORD_SECONDS)], PROFILER_TIMEOUT + RECORD_SECONDS)
    expect(result.returncode == 0, "record --native%s: %s" % (usage_hint(result), result.describe()))
    check_target(target)
    return result


def check_record(profiler: str, target: Fixture, work: str) -> str:
    """record --native -d 2 to collapsed text: every stack ends with the
    fixture's four frames."""
    lines = marker_lines()
    script = target.script_inside
    out = os.path.join(work, "merged.txt")
    result = record_native(profiler, target, out)
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

        return run_checks(target, [default, everything,
                                   lambda: check_record(profiler, target, work)])


def run_checks(target: Target, checks) -> str:
    """Runs every check of one fixture (while it lives) and reports all
    their failures together, with what passed."""
    notes, failures = [], []
    for check in checks:
        try:
            notes.append(check())
        except Failure as e:
            failures.append(str(e))
        if not target.alive():
            break
    expect(not failures, "\n".join(failures + (["passed: " + "; ".join(notes)] if notes else [])))
    return "; ".join(notes)


def cpp_frame_problem(frame, kind: str, function: str, inlined: bool, marker: str,
                      target: Fixture) -> Optional[str]:
    """Why FRAME is not the cpp fixture's KIND FUNCTION (CPP_STACK's row)."""
    if kind == "python":
        return frame_problem(frame, kind, function, target, marker=marker)
    why = frame_problem(frame, kind, function, target, extension=CPP_EXTENSION)
    if why:
        return why
    if inlined and frame.get("inlined") is not True:
        return "inlined is %r, expected true" % (frame.get("inlined"),)
    if not inlined and "inlined" in frame:
        return "inlined is %r, expected absent" % (frame.get("inlined"),)
    filename = frame.get("filename")
    if not isinstance(filename, str) or os.path.basename(filename) != os.path.basename(CPP_SOURCE):
        return "filename %r, expected %s (DWARF)" % (filename, os.path.basename(CPP_SOURCE))
    line = cpp_marker_lines()[marker]
    if frame.get("line") != line:
        return "line %r, expected %d" % (frame.get("line"), line)
    return None


def check_cpp_dump(frames: list, target: Fixture) -> None:
    problems = stack_problems(frames, CPP_STACK,
                              lambda frame, want: cpp_frame_problem(frame, *want, target=target))
    if not problems and frames[0].get("address") != frames[1].get("address"):
        problems.append("the inlined frame's address %r is not that of the frame it is inlined "
                        "into, %r" % (frames[0].get("address"), frames[1].get("address")))
    expect(not problems, "dump --native: the main thread's stack is not %s:\n    %s\n    %s"
           % (" <- ".join(f for _, f, _, _ in CPP_STACK), "\n    ".join(problems),
              render_stack(frames)))


def collapsed_text(frames) -> str:
    return ";".join("%s [%s]" % (f.function, f.filename) if f.native
                    else "%s (%s:%s)" % (f.function, f.filename, f.line) for f in frames)


def check_cpp_record(profiler: str, target: Fixture, work: str) -> str:
    """record --native -d 2 to collapsed text: every stack ends with
    py_spin_cpp and the three C++ frames, the template demangled."""
    # parse_collapsed on a native label with parentheses and <> in its
    # name: it ends in "]", so it is native, named up to its " [".
    sample = parse_collapsed("a (f.py:1);%s [%s];b [c.so] 3\n" % (SPIN_IN, CPP_FILE))
    expect(sample == [([("a", "f.py", 1), (SPIN_IN, CPP_FILE, None), ("b", "c.so", None)], 3)]
           and [f.native for f in sample[0][0]] == [False, True, True],
           "parse_collapsed misreads %r: %r" % (SPIN_IN, sample))
    script = target.script_inside
    out = os.path.join(work, "cpp.txt")
    result = record_native(profiler, target, out)
    err = result.stderr_text
    with open(out, encoding="utf-8") as f:
        text = f.read()
    label = "%s [%s]" % (SPIN_IN, CPP_FILE)
    expect(label in text.replace("\n", ";").split(";"),
           "record --native: no frame %r in the collapsed output:\n%s\n%s" % (label, text, err))
    stacks = parse_native_collapsed(text)
    want = [("py_spin_cpp", script, marker_lines()["py_spin_cpp"], False)] + [
        (function, CPP_FILE, None, True) for _, function, _, _ in CPP_STACK[2::-1]]
    total, cut_short, wrong = 0, 0, []
    for frames, count in stacks:
        if any(f.native and f.filename == "" for f in frames):
            # An unwind that stopped short says so with a marker (seen once,
            # sanitized under load): honest, not a wrong frame; counted.
            cut_short += count
            continue
        total += count
        tail = frames[-len(want):]
        good = len(tail) == len(want) and all(
            tuple(f) == (function, file, line) and f.native == native
            for f, (function, file, line, native) in zip(tail, want))
        if not good:
            wrong.append("%d x %s" % (count, collapsed_text(frames)))
    expect(total >= MIN_RECORD_SAMPLES, "record --native -d %d: %d samples, expected at least %d\n"
           "%s\n%s" % (RECORD_SECONDS, total, MIN_RECORD_SAMPLES, text, err))
    expect(not wrong, "record --native: %d stacks do not end with %s:\n    %s\n%s"
           % (len(wrong), collapsed_text([CollapsedFrame(*w) for w in want]),
              "\n    ".join(wrong[:10]), err))
    return "record: %d samples in %d stacks (%d more cut short)" % (total, len(stacks), cut_short)


def case_cpp(profiler: str, interp: Interpreter, work: str) -> str:
    """dump --native and record --native of the main thread spinning in
    C++: demangled names, an inlined frame."""
    cxx_compiler()  # a Skip (Missing) before anything else without one
    with Fixture(interp, "cpp", cpp=True) as target:
        expect(target.first_line == "ready", "fixture said %r" % target.first_line)
        wait_spinning(target)
        time.sleep(SETTLE_SECONDS)

        def default() -> str:
            frames = main_thread(native_dump(profiler, target), target)
            check_cpp_dump(frames, target)
            return "dump: %s" % " <- ".join(str(f.get("function")) for f in frames)

        return run_checks(target, [default, lambda: check_cpp_record(profiler, target, work)])


# A marker frame of --native (docs/usage.md), in no library: its label is
# the bracketed text alone, which parse_collapsed does not take.
NATIVE_MARKER = re.compile(r"^\[[^\[\]]*\]$")


def parse_native_collapsed(text: str) -> list:
    """parse_collapsed, and a marker label ("[native stack not unwound
    further]") as a native frame of that name in library ""."""
    stacks = []
    for raw in text.splitlines():
        stack, _, count = raw.rpartition(" ")
        labels = stack.split(";")
        markers = {i for i, label in enumerate(labels) if NATIVE_MARKER.match(label)}
        placeholder = ";".join("marker [-]" if i in markers else label
                               for i, label in enumerate(labels))
        [(frames, number)] = parse_collapsed("%s %s\n" % (placeholder, count))
        stacks.append(([CollapsedFrame(labels[i], "", None, native=True) if i in markers else f
                        for i, f in enumerate(frames)], number))
    return stacks


def mapped(pid: int, name: str) -> bool:
    """Whether a file named NAME is mapped into process PID."""
    with open("/proc/%d/maps" % pid, encoding="utf-8", errors="replace") as f:
        return any(line.rstrip("\n").endswith("/" + name) for line in f)


def case_dlopen(profiler: str, interp: Interpreter, work: str) -> str:
    """record --native started before native_ext.so is loaded: the stacks
    through it once it is must be merged all the same."""
    lines = marker_lines()
    out = os.path.join(work, "dlopen.txt")
    stats_path = os.path.join(work, "dlopen-stats.json")
    with Fixture(interp, "dlopen") as target:
        script = target.script_inside
        expect(target.first_line == "ready", "fixture said %r" % target.first_line)
        why = wait_for_syscall(target.pid, target.pid, "read", 0, READY_TIMEOUT)
        expect(not why, "the fixture's main thread never blocked reading stdin: %s" % why)
        expect(not mapped(target.pid, EXTENSION_FILE),
               "%s is loaded before the fixture imports it" % EXTENSION_FILE)
        argv = [profiler, "record", "--native", "-d", str(DLOPEN_RECORD_SECONDS), "--rate",
                str(DLOPEN_RATE), "-p", str(target.pid), "-o", out, "--stats-json", stats_path]
        # Unbuffered for wait_until_recording().
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, bufsize=0)
        try:
            early = wait_until_recording(proc)
            recording = time.monotonic()
            target.proc.stdin.write(b"go\n")
            target.proc.stdin.flush()
            line = read_line(target.proc.stdout.fileno(), target, READY_TIMEOUT,
                             "the dlopen fixture's import").decode("utf-8", "replace").strip()
            spinning = time.monotonic()
            expect(line == "spinning", "fixture said %r" % line)
            expect(mapped(target.pid, EXTENSION_FILE),
                   "%s is not mapped after the import" % EXTENSION_FILE)
            try:
                stdout, stderr = proc.communicate(timeout=PROFILER_TIMEOUT + DLOPEN_RECORD_SECONDS)
                code: Optional[int] = proc.returncode
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                code = None
        finally:
            kill_group(proc)
        result = Result(argv, code, stdout, early + stderr, time.monotonic() - recording)
        expect(result.returncode == 0, "record --native: %s" % result.describe())
        check_target(target)
    err = result.stderr_text
    summary = NATIVE_SUMMARY.search(err)
    expect(summary is not None, "record --native: no --native summary on stderr\n%s" % err)
    with open(out, encoding="utf-8") as f:
        text = f.read()
    with open(stats_path, encoding="utf-8") as f:
        stats = json.load(f)
    stacks = parse_native_collapsed(text)
    want = [("outer", script, lines["outer"], False), ("ext_call_back", EXTENSION_FILE, None, True),
            ("py_callback", script, lines["py_callback"], False),
            ("ext_spin", EXTENSION_FILE, None, True)]
    good, spin_other, others = 0, [], 0
    for frames, count in stacks:
        tail = frames[-len(want):]
        if len(tail) == len(want) and all(
                tuple(f) == (function, file, line) and f.native == native
                for f, (function, file, line, native) in zip(tail, want)):
            good += count
        elif frames and frames[-1].native and frames[-1].function == "ext_spin":
            spin_other.append("%d x %s" % (count, collapsed_text(frames)))
        else:
            others += count
    # The samples taken once the fixture spun: the run's achieved rate over
    # the part of it after "spinning" (the recording's clock began about
    # when it said it was recording).
    elapsed = float(stats.get("elapsed_seconds") or 0)
    rate = float(stats.get("achieved_rate") or 0)
    after = max(0.0, recording + elapsed - spinning)
    needed = max(MIN_RECORD_SAMPLES, int(rate * after / 2))
    figures = ("%d samples end in outer;ext_call_back;py_callback;ext_spin, %d other stacks end in "
               "ext_spin, %d samples elsewhere; %d samples in %.2f s (%.1f/s), %.2f s of them "
               "after the fixture began to spin: at least %d expected; %s"
               % (good, sum(int(s.split(" ", 1)[0]) for s in spin_other), others,
                  stats.get("samples"), elapsed, rate, after, needed, summary.group(0)))
    problems = []
    if good < needed:
        problems.append("too few samples through the library loaded after the recording began")
    if int(summary.group("mismatched")) != 0:
        problems.append("%s thread stacks not merged" % summary.group("mismatched"))
    expect(not problems, "record --native, %s loaded after it began: %s\n%s\n"
           "stacks ending in ext_spin but not in outer;ext_call_back;py_callback;ext_spin:\n    %s"
           "\n--- collapsed ---\n%s--- stderr ---\n%s"
           % (EXTENSION_FILE, "; ".join(problems), figures, "\n    ".join(spin_other[:10]) or "none",
              clip(text), err))
    return figures


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


CASES = ["merged", "sleeping", "cpp", "dlopen"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir")
    parser.add_argument("--interp", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--case", action="append", choices=CASES,
                        help="run only this case (repeatable); default: all")
    parser.add_argument("--build-only", action="store_true",
                        help="build and import the extension and start the fixture, no profiler")
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    cases = Cases()
    if args.build_only:
        log("native: building %s and %s for %s" % (EXTENSION_FILE, CPP_FILE, interp.name))
        cases.run("build", lambda: case_build(interp))
        cases.run("build-cpp", lambda: case_build_cpp(interp))
        return cases.summary()
    if not args.bin_dir:
        parser.error("--bin-dir is required (or --build-only)")
    profiler = profiler_path(args.bin_dir, interp.minor)
    log("native on %s" % interp.name)
    work = tempfile.mkdtemp(prefix="pyflame-native-")
    try:
        selected: Sequence[str] = args.case or CASES
        if "merged" in selected:
            cases.run("merged", lambda: case_merged(profiler, interp, work))
        if "sleeping" in selected:
            cases.run("sleeping", lambda: case_sleeping(profiler, interp))
        if "cpp" in selected:
            cases.run("cpp", lambda: case_cpp(profiler, interp, work))
        if "dlopen" in selected:
            cases.run("dlopen", lambda: case_dlopen(profiler, interp, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    main_wrapper(main)
