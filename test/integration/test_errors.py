#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of pyflameX.Y's error paths: exit codes and messages.

    test_errors.py --bin-dir DIR [--manifest PATH]

Prints `PASS name`, `FAIL name: why` or `SKIP name: why` per case and a
closing `N passed, N failed, N skipped` line.  Exit 0 if every case passed, 1 if
something failed, 77 if a case was skipped (it names it; in CI a missing
interpreter or binary fails instead, see pyflame_test.Missing).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional

from pyflame_test import (build_key, free_pid, Cases, DEFAULT_MANIFEST, EXIT_NO_PROCESS, EXIT_NOT_PYTHON, EXIT_OK,
                          EXIT_PERMISSION, EXIT_TARGET_EXITED, EXIT_USAGE, EXIT_WRONG_VERSION,
                          PINGPONG_CODE, PROFILER_TIMEOUT, READY_TIMEOUT, TEST_FAIL, TEST_PASS, TEST_SKIP,
                          Failure, Interpreter, Missing, Result, Skip, dump, missing, log, read_line,
                          run, start_python, stopped_tasks, suite_interpreters)

NOBODY = 65534
EXIT_RACE_RUNS = 30

# Exits (normally or abruptly) after a random delay, while 8 threads sit 200
# frames deep, so that a dump has a fair chance of overlapping the exit.
EXITING_CODE = (
    "import os, random, sys, threading, time\n"
    "def deep(n, event):\n"
    "    if n:\n"
    "        return deep(n - 1, event)\n"
    "    event.wait()\n"
    "event = threading.Event()\n"
    "for i in range(8):\n"
    "    t = threading.Thread(target=deep, args=(200, event))\n"
    "    t.daemon = True\n"
    "    t.start()\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "time.sleep(random.uniform(0, 0.03))\n"
    "if random.random() < 0.5:\n"
    "    os._exit(0)\n"
)

# PINGPONG_CODE plus a thread spinning in Python (running while --blocking stops it).
SPINNING_PINGPONG_CODE = (
    "import threading\n"
    "def spin():\n"
    "    while True: pass\n"
    "t = threading.Thread(target=spin)\n"
    "t.daemon = True\n"
    "t.start()\n"
) + PINGPONG_CODE


def expect(result: Result, code: int, *needles: str) -> None:
    """Failure unless RESULT exited CODE with a "pyflame..." message holding NEEDLES."""
    if result.returncode != code:
        raise Failure("expected exit %d, got %s\n%s" % (code, result.status(), result.describe()))
    message = result.stderr_text
    if not message.startswith("pyflame"):
        raise Failure("stderr does not start with 'pyflame'\n%s" % result.describe())
    missing = [n for n in needles if n not in message]
    if missing:
        raise Failure("message lacks %s\n%s" % (missing, result.describe()))


def find_binaries(bin_dir: str) -> Dict[str, str]:
    """{minor: path} of the pyflameX.Y executables in BIN_DIR."""
    found = {}
    for path in glob.glob(os.path.join(bin_dir, "pyflame*")):
        m = re.fullmatch(r"pyflame(\d+\.\d+t?)", os.path.basename(path))
        if m and os.access(path, os.X_OK):
            found[m.group(1)] = path
    return dict(sorted(found.items(), key=lambda kv: build_key(kv[0])))


# ------------------------------------------------------------------- cases


def case_bad_usage(binary: str) -> None:
    expect(run([binary, "dump"]), EXIT_USAGE)
    expect(run([binary, "dump", "-p", "not-a-pid"]), EXIT_USAGE)
    expect(run([binary, "no-such-subcommand"]), EXIT_USAGE)
    # One rule for dump and record: a PID is a positive number (dump -p 0
    # exited 3, record -p 0 exited 2).
    for pid in ("0", "-3"):
        expect(run([binary, "dump", "-p", pid]), EXIT_USAGE, "PID")
        expect(run([binary, "record", "-p", pid, "-d", "1"]), EXIT_USAGE, "PID")


def kernel_thread() -> Optional[int]:
    """A kernel thread's PID (PF_KTHREAD in its flags), or None if none is visible."""
    for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[6]) & 0x00200000:  # field 9, PF_KTHREAD
            return int(name)
    return None


def case_kernel_thread(binary: str) -> None:
    """A kernel thread is not a Python process (5); it said "exited" (7)."""
    pid = kernel_thread()
    if pid is None:
        raise Skip("no kernel thread visible in /proc (a PID namespace?)")
    expect(dump(binary, pid), EXIT_NOT_PYTHON, str(pid), "kernel thread")
    expect(run([binary, "record", "-p", str(pid), "-d", "1"]), EXIT_NOT_PYTHON, str(pid), "kernel thread")


def case_no_such_process(binary: str) -> None:
    pid = free_pid()
    expect(run([binary, "dump", "-p", str(pid), "--json"]), EXIT_NO_PROCESS, str(pid))


def case_not_python(binary: str) -> None:
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        expect(dump(binary, sleeper.pid), EXIT_NOT_PYTHON, "Python")
    finally:
        sleeper.kill()
        sleeper.wait()


def case_wrong_version(binary: str, interp: Interpreter) -> None:
    with start_python(interp, PINGPONG_CODE) as target:
        expect(dump(binary, target.pid), EXIT_WRONG_VERSION, interp.minor, "pyflame" + interp.minor)


def nobody_can_run(binary: str) -> bool:
    return run(["test", "-x", binary], as_user=NOBODY).returncode == 0


def case_permission_denied(binary: str, interp: Interpreter) -> None:
    if os.geteuid() != 0:
        raise Skip("needs root (to own the target while the profiler runs as uid %d)" % NOBODY)
    if shutil.which("setpriv") is None and shutil.which("runuser") is None:
        raise Skip("neither setpriv nor runuser is available")
    copy_dir = None
    try:
        if not nobody_can_run(binary):
            # The build tree may not be traversable by nobody: run a copy.
            copy_dir = tempfile.mkdtemp(prefix="pyflame-test-bin-")
            os.chmod(copy_dir, 0o755)
            binary = shutil.copy(binary, copy_dir)
            os.chmod(binary, 0o755)
        with start_python(interp, PINGPONG_CODE) as target:
            result = run([binary, "dump", "-p", str(target.pid), "--json"], as_user=NOBODY)
            expect(result, EXIT_PERMISSION, "CAP_SYS_PTRACE", "kernel.yama.ptrace_scope")
    finally:
        if copy_dir:
            shutil.rmtree(copy_dir, ignore_errors=True)


def check_race_run(result: Result, pid: int) -> None:
    if result.returncode is None or result.returncode < 0:
        raise Failure(result.status())
    if result.returncode not in (EXIT_OK, EXIT_NO_PROCESS, EXIT_TARGET_EXITED):
        raise Failure("exit %d, expected 0, 3 or 7" % result.returncode)
    if result.returncode == EXIT_OK or result.stdout:
        # Either a whole JSON document or nothing at all.
        try:
            doc = json.loads(result.stdout.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Failure("stdout is neither empty nor one JSON document (%s)" % e)
        if not isinstance(doc, dict) or doc.get("pid") != pid:
            raise Failure("JSON document is not a dump of pid %d" % pid)
    if result.returncode != EXIT_OK and not result.stderr_text.startswith("pyflame"):
        raise Failure("stderr does not start with 'pyflame'")
    if result.returncode == EXIT_TARGET_EXITED and "exited" not in result.stderr_text:
        raise Failure("exit 7 without 'exited' in the message")


def case_target_exits(binaries: Dict[str, str], interps: List[Interpreter]) -> str:
    outcomes: Dict[str, int] = {}
    failures: List[str] = []
    for run_number in range(EXIT_RACE_RUNS):
        interp = interps[run_number % len(interps)]
        blocking = run_number % 3 == 2
        what = "run %d (%s%s)" % (run_number, interp.name, ", --blocking" if blocking else "")
        with start_python(interp, EXITING_CODE) as target:
            # Reap the target the moment it exits, so that its pid disappears.
            reaper = threading.Thread(target=target.proc.wait, daemon=True)
            reaper.start()
            result = dump(binaries[interp.minor], target.pid, blocking=blocking)
            outcomes[result.status()] = outcomes.get(result.status(), 0) + 1
            try:
                check_race_run(result, target.pid)
            except Failure as e:
                failures.append("%s: %s\n%s" % (what, e, result.describe()))
            reaper.join(READY_TIMEOUT)
            if reaper.is_alive():
                failures.append("%s: target %d did not exit after the dump (left stopped?)"
                                % (what, target.pid))
    summary = "%d runs: %s" % (EXIT_RACE_RUNS, ", ".join(
        "%d x %s" % (n, status) for status, n in sorted(outcomes.items())))
    if failures:
        raise Failure("%d failed; %s\n%s" % (len(failures), summary, "\n".join(failures[:3])))
    return summary


BLOCKING_EXIT_RUNS = 40


def case_blocking_exit_race(binary: str, interp: Interpreter) -> str:
    """dump --blocking of a target that exits meanwhile: 0, 3 or 7, never 4.

    The kernel refuses to seize a thread past its exit (EPERM, as for a
    thread another tracer holds), and the exited process stays a zombie
    until its parent reaps it. Here it is reaped only after the dump, so
    every exit between the attach and the seize is such a refusal; it was
    reported as "already traced by another tool" (exit 4).
    """
    outcomes: Dict[str, int] = {}
    failures: List[str] = []
    for run_number in range(BLOCKING_EXIT_RUNS):
        with start_python(interp, EXITING_CODE) as target:
            result = dump(binary, target.pid, blocking=True)
            outcomes[result.status()] = outcomes.get(result.status(), 0) + 1
            try:
                check_race_run(result, target.pid)
            except Failure as e:
                failures.append("run %d: %s\n%s" % (run_number, e, result.describe()))
            try:
                target.proc.wait(timeout=READY_TIMEOUT)
            except subprocess.TimeoutExpired:
                failures.append("run %d: target %d did not exit after the dump (left stopped? %s)"
                                % (run_number, target.pid, stopped_tasks(target.pid)))
    summary = "%d runs: %s" % (BLOCKING_EXIT_RUNS, ", ".join(
        "%d x %s" % (n, status) for status, n in sorted(outcomes.items())))
    if failures:
        raise Failure("%d failed; %s\n%s" % (len(failures), summary, "\n".join(failures[:3])))
    return summary


# Finalizes its interpreter, then waits in a C exit handler (pause()), as an
# embedding program that finalized Python and went on would: the runtime is
# there, no interpreter is. 2.7-compatible.
FINALIZED_CODE = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None)\n"
    "libc.__cxa_atexit(ctypes.cast(libc.pause, ctypes.c_void_p), None, None)\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
)


def wait_in_pause(target) -> None:
    """Until the target waits in its exit handler: finalization is over."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/wchan" % target.pid) as f:
                if "pause" in f.read():
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise Failure("target %d never reached its pause() exit handler" % target.pid)


def loads_ctypes(interp: Interpreter) -> bool:
    """Whether ctypes works under INTERP (the sid chroots have no libffi)."""
    probe = subprocess.run(interp.command(["-c", "import ctypes; ctypes.CDLL(None)"]),
                           env=interp.environment(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=READY_TIMEOUT)
    return probe.returncode == 0


def case_finalized(binary: str, interp: Interpreter) -> str:
    """A finalized interpreter: "no interpreter" (5) while its process lives on,
    "exited" (7) when it exits while pyflame looks.

    dump met targets between finalization and exit in `target_exits` and said
    "not Python"; it now gives such a process a moment to exit.
    """
    with start_python(interp, FINALIZED_CODE) as target:
        wait_in_pause(target)
        expect(dump(binary, target.pid), EXIT_NOT_PYTHON, "no interpreter")
    with start_python(interp, FINALIZED_CODE) as target:
        wait_in_pause(target)
        started = time.monotonic()
        argv = [binary, "dump", "-p", str(target.pid), "--json"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.1)  # the wait for its exit lasts 250 ms
        target.proc.kill()
        out, err = proc.communicate(timeout=PROFILER_TIMEOUT)
        result = Result(argv, proc.returncode, out, err, time.monotonic() - started)
        expect(result, EXIT_TARGET_EXITED, "exited")
    return "5 while it lives, 7 once it exits"


def case_blocking_resumes(binary: str, interp: Interpreter) -> None:
    with start_python(interp, SPINNING_PINGPONG_CODE) as target:
        result = dump(binary, target.pid, blocking=True)
        if result.returncode != EXIT_OK:
            raise Failure("dump --blocking: %s\n%s" % (result.status(), result.describe()))
        stopped = stopped_tasks(target.pid)
        if stopped:
            raise Failure("target left stopped: tasks %s" % stopped)
        # It must also still run: it answers a ping.
        target.proc.stdin.write(b"ping\n")
        target.proc.stdin.flush()
        answer = read_line(target.proc.stdout.fileno(), target, READY_TIMEOUT, "target after dump")
        if answer != b"pong\n":
            raise Failure("target answered %r to a ping" % answer)


# -------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="directory holding pyflameX.Y")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    args = parser.parse_args()

    binaries = find_binaries(args.bin_dir)
    if not binaries:
        return missing("no pyflameX.Y executables in %s" % args.bin_dir)
    cases = Cases()
    for minor, binary in binaries.items():
        cases.run("bad_usage[%s]" % minor, lambda: case_bad_usage(binary))
        cases.run("no_such_process[%s]" % minor, lambda: case_no_such_process(binary))
        cases.run("not_python[%s]" % minor, lambda: case_not_python(binary))
        cases.run("kernel_thread[%s]" % minor, lambda: case_kernel_thread(binary))

    try:
        interps = suite_interpreters(args.manifest)
        why_none = "no interpreter in %s has a pyflame binary in %s" % (args.manifest, args.bin_dir)
    except Skip as e:
        interps, why_none = [], str(e)
    usable = [i for i in interps if i.minor in binaries]
    # One interpreter per minor (the first in the manifest) for the per-minor cases.
    per_minor: Dict[str, Interpreter] = {}
    for interp in interps:
        per_minor.setdefault(interp.minor, interp)

    minors = sorted(per_minor, key=build_key)
    if len(minors) < 2:
        cases.run("wrong_version", lambda: _skip("needs interpreters of two minor versions (%s)"
                                                 % (", ".join(minors) or why_none)))
    for minor, binary in binaries.items():
        if minor not in per_minor or len(minors) < 2:
            continue
        # The neighbouring minor: the closest layouts are the likeliest to pass unnoticed.
        other = per_minor[minors[(minors.index(minor) + 1) % len(minors)]]
        cases.run("wrong_version[pyflame%s vs %s]" % (minor, other.name),
                  lambda: case_wrong_version(binary, other))

    if not usable:
        for name in ("permission_denied", "target_exits", "blocking_exit_race", "blocking_resumes",
                     "finalized"):
            cases.run(name, lambda: _skip(why_none))
    else:
        first = usable[0]
        cases.run("permission_denied[%s]" % first.name,
                  lambda: case_permission_denied(binaries[first.minor], first))
        cases.run("target_exits[%s]" % ",".join(m for m in minors if m in binaries and m in {i.minor for i in usable}),
                  lambda: case_target_exits(binaries, usable))
        cases.run("blocking_exit_race[%s]" % first.name,
                  lambda: case_blocking_exit_race(binaries[first.minor], first))
        for minor, interp in per_minor.items():
            if minor in binaries:
                cases.run("blocking_resumes[%s]" % interp.name,
                          lambda: case_blocking_resumes(binaries[minor], interp))
        # Every minor whose interpreters can load ctypes (FINALIZED_CODE
        # needs it; 3.14 and 3.15 come only from sid chroots, without
        # libffi). The path is the same for all: no interpreter in the list.
        for minor in minors:
            with_ctypes = [i for i in usable if i.minor == minor and loads_ctypes(i)]
            if with_ctypes:
                cases.run("finalized[%s]" % with_ctypes[0].name,
                          lambda: case_finalized(binaries[minor], with_ctypes[0]))
            elif minor in binaries:
                log("finalized[%s]: not run, no %s interpreter here loads ctypes" % (minor, minor))
    return cases.summary()


def _skip(why: str) -> None:
    # Interpreters and binaries come from provision.sh and the build.
    raise Missing(why)


if __name__ == "__main__":
    raise SystemExit(main())
