#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `pyflameX.Y record`'s command-line and environment errors.

    test_cli_errors.py --bin-dir DIR [--manifest PATH]

Each case runs one pyflame binary (the first interpreter of the manifest
whose pyflameX.Y is built) with a bad command line or in a bad environment
and checks the documented exit code and a clear message on stderr:

- bad --rate / -r / --duration values (a rate below one sample an hour
  too), an unknown --format or --mode, a --mode its alias contradicts, -p
  together with a command, no target at all: exit 2, the offending value
  named;
- -d honoured whatever the interval (--rate 0.001 -d 0.3 ends in 0.3 s);
- a launched command that is no Python: exit 5, saying so, no profile; a
  launched recording whose profile cannot be written (/dev/full): exit 1,
  after the command has ended;
- an output that cannot be written (a missing directory, a directory, a
  directory nobody may not write to): exit 2 *before* sampling starts: the
  launched command never runs, an attached target is not touched;
- a PID that is no process: exit 3; a zombie: exit 3 or 7 naming the zombie;
- a root target recorded as nobody: exit 4, naming CAP_SYS_PTRACE and
  kernel.yama.ptrace_scope.

Prints `PASS name`, `FAIL name: why` or `SKIP name: why` per case, then
`N passed, N failed, N skipped`. Exit 0 if every case passed, 1 if something
failed, 77 if a case was skipped (named; see pyflame_test.Cases).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

from pyflame_test import (free_pid, DEFAULT_MANIFEST, EXIT_NO_PROCESS, EXIT_NOT_PYTHON, EXIT_PERMISSION,
                          EXIT_TARGET_EXITED, EXIT_USAGE, PINGPONG_CODE, Cases, Failure,
                          Interpreter, Result, Skip, log, missing, read_manifest, run, start_python,
                          stopped_tasks)

NOBODY = 65534
# Errors of the command line must come before any sampling: well under this
# (and under the -d 8 the output cases ask for).
FAST = 5.0


def expect(result: Result, codes, *needles: str, fast: bool = True) -> None:
    """Failure unless RESULT exited with one of CODES, quickly, with a
    "pyflame: ..." message holding every NEEDLE (case-insensitive)."""
    codes = (codes,) if isinstance(codes, int) else tuple(codes)
    if result.returncode not in codes:
        raise Failure("expected exit %s, got %s\n%s"
                      % (" or ".join(map(str, codes)), result.status(), result.describe()))
    message = result.stderr_text
    if not message.startswith("pyflame"):
        raise Failure("stderr does not start with 'pyflame'\n%s" % result.describe())
    missing = [n for n in needles if n.lower() not in message.lower()]
    if missing:
        raise Failure("message lacks %s\n%s" % (missing, result.describe()))
    if fast and result.seconds > FAST:
        raise Failure("took %.1f s: the error was not found before sampling\n%s"
                      % (result.seconds, result.describe()))


class Env:
    """The binary under test, a target it may attach to, a scratch directory."""

    def __init__(self, binary: str, interp: Interpreter) -> None:
        self.binary = binary
        self.interp = interp
        self.work = tempfile.mkdtemp(prefix="pyflame-cli-")
        os.chmod(self.work, 0o755)
        self.target = start_python(interp, PINGPONG_CODE)

    def record(self, *args: str, as_user: Optional[int] = None, binary: Optional[str] = None) -> Result:
        return run([binary or self.binary, "record"] + list(args), as_user=as_user)

    def attach(self, *args: str) -> Result:
        return self.record("-p", str(self.target.pid), *args)

    def check_target_untouched(self) -> None:
        if not self.target.alive():
            raise Failure("the target died")
        stopped = stopped_tasks(self.target.pid)
        if stopped:
            raise Failure("the target was left stopped: %s" % stopped)

    def close(self) -> None:
        self.target.close()
        shutil.rmtree(self.work, ignore_errors=True)


# ------------------------------------------------------------------- cases


def case_bad_rate(env: Env) -> None:
    # 1e-320 made the interval infinite (and the loop spin); the minimum is
    # one sample an hour, the longest -r.
    for value in ("0", "-1", "nan", "inf", "1e12", "abc", "1e-320", "0.0002"):
        expect(env.attach("--rate", value, "-d", "1"), EXIT_USAGE, "rate")
    for value in ("0", "-0.5", "nan", "1e9"):
        expect(env.attach("-r", value, "-d", "1"), EXIT_USAGE, "interval")
    env.check_target_untouched()


def case_bad_duration(env: Env) -> None:
    for value in ("0", "-1", "nan", "-inf", "abc"):
        expect(env.attach("-d", value), EXIT_USAGE, "duration")
    env.check_target_untouched()


def case_duration_honoured(env: Env) -> None:
    """-d ends the recording on time, however long the interval: no sleep
    passes the deadline (a 5 s mean interval made -d 1 last 2.5-7.5 s, an
    interval of 1000 s made -d 0.3 last until killed)."""
    for rate, duration in (("0.2", 1.0), ("0.001", 0.3), ("1", 2.0)):
        result = env.attach("--rate", rate, "-d", str(duration), "-o", os.devnull)
        if result.returncode != 0:
            raise Failure("--rate %s -d %s: %s\n%s" % (rate, duration, result.status(), result.describe()))
        # Attaching takes a moment (more on a loaded machine); the sampling
        # itself must not outlast the duration by a whole interval.
        if result.seconds > duration + 1.5:
            raise Failure("--rate %s -d %s took %.1f s\n%s"
                          % (rate, duration, result.seconds, result.describe()))
    env.check_target_untouched()


def case_unknown_format(env: Env) -> None:
    expect(env.attach("--format", "bogus", "-d", "1"), EXIT_USAGE, "bogus", "collapsed", "speedscope")
    expect(env.attach("-f", "", "-d", "1"), EXIT_USAGE, "format")


def case_bad_mode(env: Env) -> None:
    """An unknown --mode, or an alias that says another mode, is refused."""
    expect(env.attach("--mode", "bogus", "-d", "1"), EXIT_USAGE, "bogus", "wall", "cpu", "gil")
    for alias, mode in (("--idle", "cpu"), ("--gil", "wall"), ("-x", "wall"), ("--gil", "cpu")):
        expect(env.attach("--mode", mode, alias, "-d", "1"), EXIT_USAGE, "contradicts", alias)
    result = run([env.binary, "dump", "-p", str(env.target.pid), "--mode", "bogus"])
    expect(result, EXIT_USAGE, "bogus")
    env.check_target_untouched()


def case_target_conflicts(env: Env) -> None:
    expect(env.record("-p", str(env.target.pid), "-d", "1", "--", "true"), EXIT_USAGE, "either")
    expect(env.record("-d", "1"), EXIT_USAGE, "-p")
    for pid in ("0", "-3", "abc"):
        result = env.record("-p", pid, "-d", "1")
        expect(result, EXIT_USAGE, pid)


def launch_must_not_start(env: Env, output: str, as_user: Optional[int] = None,
                          binary: Optional[str] = None, *needles: str) -> None:
    """A launch with an unwritable OUTPUT fails with exit 2 before the command runs."""
    marker = os.path.join(env.work, "command-ran")
    if os.path.exists(marker):
        os.unlink(marker)
    result = env.record("-o", output, "-d", "1", "--", "/bin/sh", "-c", "echo > " + marker,
                        as_user=as_user, binary=binary)
    expect(result, EXIT_USAGE, output, *needles)
    if os.path.exists(marker):
        raise Failure("the command ran although the output %s cannot be written" % output)


def case_output_missing_directory(env: Env) -> None:
    missing = os.path.join(env.work, "no-such-dir", "out.txt")
    expect(env.attach("-o", missing, "-d", "8"), EXIT_USAGE, missing, "no such file")
    launch_must_not_start(env, missing)
    env.check_target_untouched()


def case_output_is_directory(env: Env) -> None:
    expect(env.attach("-o", env.work, "-d", "8"), EXIT_USAGE, env.work, "directory")
    launch_must_not_start(env, env.work)


def nobody_copy(env: Env) -> str:
    """A copy of the binary that nobody can execute (the build tree may be private)."""
    if os.geteuid() != 0:
        raise Skip("needs root (to run the profiler as uid %d)" % NOBODY)
    if shutil.which("setpriv") is None and shutil.which("runuser") is None:
        raise Skip("neither setpriv nor runuser is available")
    path = os.path.join(env.work, os.path.basename(env.binary))
    if not os.path.exists(path):
        shutil.copy(env.binary, path)
        os.chmod(path, 0o755)
    return path


def case_output_permission(env: Env) -> None:
    binary = nobody_copy(env)
    locked = os.path.join(env.work, "root-only")
    os.mkdir(locked, 0o755)  # root's; nobody may enter but not create
    output = os.path.join(locked, "out.txt")
    # Launch mode: the command is nobody's own, so only the output is wrong;
    # the scratch directory is opened up so that nobody's command could leave
    # its marker there, were it (wrongly) started.
    os.chmod(env.work, 0o777)
    try:
        launch_must_not_start(env, output, NOBODY, binary, "permission denied")
    finally:
        os.chmod(env.work, 0o755)
    if os.path.exists(output):
        raise Failure("%s was created by nobody" % output)


def case_launch_not_python(env: Env) -> None:
    """A command that never starts a Python interpreter is reported as such
    (exit 5), not as an empty profile with exit 0."""
    out = os.path.join(env.work, "not-python.txt")
    for command in (["/bin/sleep", "1"], ["/bin/true"]):
        result = env.record("-o", out, "--", *command)
        expect(result, EXIT_NOT_PYTHON, "never started a Python", fast=False)
        if os.path.exists(out):
            raise Failure("a profile was written for %s\n%s" % (command, result.describe()))


def case_launch_write_fails(env: Env) -> None:
    """In launch mode with -d, a profile that cannot be written (a full
    device) exits 1 only after the command has ended: it never goes on
    running (and printing) after pyflame is gone."""
    marker = os.path.join(env.work, "command-done")
    if os.path.exists(marker):
        os.unlink(marker)
    code = ("import time\n"
            "end = time.time() + 2\n"
            "while time.time() < end: pass\n"
            "open(%r, 'w').close()\n" % marker)
    argv = [env.binary, "record", "-d", "0.5", "-o", "/dev/full", "--"] + env.interp.command(["-c", code])
    # Not run(): its pipes would wait for the command too. The command's
    # output goes to a file; pyflame's own exit is what is timed.
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=env.interp.environment(), start_new_session=True)
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise Failure("pyflame hung")
        done = os.path.exists(marker)
        seconds = time.monotonic() - start
        err.seek(0)
        message = err.read().decode("utf-8", "replace")
    try:
        os.killpg(proc.pid, 9)  # whatever is left of the command
    except ProcessLookupError:
        pass
    if status != 1 or "No space left on device" not in message:
        raise Failure("expected exit 1 naming the full device, got %d after %.1f s\n%s"
                      % (status, seconds, message))
    if not done:
        raise Failure("pyflame exited (after %.1f s) while the command still ran\n%s" % (seconds, message))
    if "written" in message:
        raise Failure("claims the profile was written\n%s" % message)


def case_no_such_process(env: Env) -> None:
    pid = free_pid()
    expect(env.record("-p", str(pid), "-d", "1"), EXIT_NO_PROCESS, str(pid))


def case_zombie(env: Env) -> None:
    # `sleep 0` exits at once; its parent became `sleep 60`, which never reaps it.
    parent = subprocess.Popen(["/bin/sh", "-c", "sleep 0 & exec sleep 60"], start_new_session=True)
    try:
        zombie = None
        deadline = time.monotonic() + 10
        while zombie is None and time.monotonic() < deadline:
            try:
                with open("/proc/%d/task/%d/children" % (parent.pid, parent.pid)) as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            for kid in kids:
                try:
                    with open("/proc/%s/stat" % kid) as f:
                        stat = f.read()
                except OSError:
                    continue
                if stat[stat.rindex(")") + 2] == "Z":
                    zombie = int(kid)
            time.sleep(0.02)
        if zombie is None:
            raise Skip("could not make a zombie (no /proc/PID/task/TID/children?)")
        for mode in ([], ["--blocking"]):
            expect(env.record("-p", str(zombie), "-d", "1", *mode),
                   (EXIT_NO_PROCESS, EXIT_TARGET_EXITED), str(zombie), "zombie")
    finally:
        parent.kill()
        parent.wait()


def case_permission(env: Env) -> None:
    binary = nobody_copy(env)
    for mode in ([], ["--blocking"]):
        result = env.record("-p", str(env.target.pid), "-d", "1", *mode, as_user=NOBODY,
                            binary=binary)
        expect(result, EXIT_PERMISSION, str(env.target.pid), "CAP_SYS_PTRACE",
               "kernel.yama.ptrace_scope")
    env.check_target_untouched()


CASES = [
    ("bad_rate", case_bad_rate),
    ("bad_duration", case_bad_duration),
    ("duration_honoured", case_duration_honoured),
    ("unknown_format", case_unknown_format),
    ("bad_mode", case_bad_mode),
    ("target_conflicts", case_target_conflicts),
    ("output_missing_directory", case_output_missing_directory),
    ("output_is_directory", case_output_is_directory),
    ("output_permission", case_output_permission),
    ("launch_not_python", case_launch_not_python),
    ("launch_write_fails", case_launch_write_fails),
    ("no_such_process", case_no_such_process),
    ("zombie", case_zombie),
    ("permission", case_permission),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--interp", help="interpreter name (default: the first usable one)")
    args = parser.parse_args()
    try:
        interps = read_manifest(args.manifest)
    except Skip as e:
        return missing(str(e))
    chosen = None
    for interp in interps:
        if args.interp and interp.name != args.interp:
            continue
        binary = os.path.join(args.bin_dir, "pyflame" + interp.minor)
        if os.access(binary, os.X_OK) and not interp.chrooted:
            chosen = (binary, interp)
            break
    if chosen is None:
        return missing("no unchrooted interpreter in %s has a pyflame binary in %s"
                       % (args.manifest, args.bin_dir))
    log("cli-errors: %s against %s" % (chosen[0], chosen[1].name))
    env = Env(*chosen)
    cases = Cases()
    try:
        for name, body in CASES:
            cases.run(name, lambda: body(env))
    finally:
        env.close()
    return cases.summary()


if __name__ == "__main__":
    sys.exit(main())
