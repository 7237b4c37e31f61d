#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fault-injection tests of `pyflameX.Y record` (issue 6) against one interpreter.

    test_faults.py --bin-dir DIR --interp NAME --case CASE [--manifest PATH] [--repeat N]

Each case is repeated (the count is printed) to catch races:

  target_dies      the target exits or is SIGKILLed while recorded,
                   nonblocking and --blocking: exit 7 within 5 s, saying
                   "exited", a whole profile holding the samples taken before
  target_execs     the same when the target execs another program (`sleep`),
                   saying "executed another program"
  thread_churn     threads created and destroyed at thousands per second while
                   recorded at 1000/s with -d: exit 0, on time, whole profile
  finalization     daemon threads (spinning, and blocked in I/O that wakes
                   after the interpreter began to finalize) while the main
                   thread exits, recorded at 2000/s through the shutdown: no
                   crash, exit 7, and no frame but those the interpreter
                   itself reports running in that fixture (recorded first
                   under a profile function), <unknown> (rare) and
                   <no Python frames>
  sigkill          the profiler SIGKILLed at random moments while --blocking,
                   every other time while it holds threads stopped: the
                   target is never left stopped and keeps running
  two_profilers    two recordings of one target at once, nonblocking (both
                   work) and --blocking (the second works or fails clearly)
  traced           the target already traced by strace, then by gdb: samples
                   nonblocking (the stopped stacks under gdb), exit 4 and the
                   profile written with --blocking, never a hang
  stopped          a SIGSTOPped target: -d 1 ends on time in both modes and
                   the target is left stopped, as it was
  namespace        a target in another PID and mount namespace (unshare):
                   dump gives host TIDs, names and idle states; record keeps
                   the busy thread only, and nothing of an idle program
  deleted_exe      a static interpreter whose executable was deleted, or
                   replaced by another program, after it started
  chroot_libpython an --enable-shared interpreter in a chroot, its tree
                   bind-mounted at the same or another path, or copied in:
                   dump and pyflame-detect find its libpython
  same_output      two recordings writing the same output path at the same
                   moment: the file is always one whole profile
  job_control      Ctrl-Z (SIGTSTP), SIGTTIN, SIGTTOU of a --blocking
                   recording: no target thread is held while it is stopped
  many_threads     2,000 target threads under a 1024-file limit: every
                   thread read, idle ones not counted, no false "exited"
  idle_threads     64 threads of known states, 54 blocked: without --idle
                   no blocked thread kept, the running ones (Python, C) kept

Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from typing import Dict, List, Optional, Sequence, Tuple

from pyflame_test import (DEFAULT_MANIFEST, EXIT_OK, EXIT_PERMISSION, EXIT_TARGET_EXITED,
                          PROFILER_TIMEOUT, READY_TIMEOUT, TIMEOUT_SCALE, Failure, Interpreter,
                          Missing, Skip, Target, find_interpreter, log,
                          main_wrapper, profiler_path, read_line, stopped_tasks, task_states,
                          wait_until_recording)

# The stack of a thread with no Python frame (under --idle).
NO_FRAMES = "<no Python frames>"
FRAME = re.compile(r"^(?P<function>.*) \((?P<filename>.*?)(:(?P<line>\d+))?\)$")

# A target for most cases, 2.7-compatible. Prints "ready" once its threads
# run, then obeys stdin: "exit" (the main thread calls sys.exit), "exec"
# (becomes `sleep 60`), "count" (how far the main thread's loop got); EOF
# ends it at once. The main thread and WORKERS threads spin in known
# functions, so that every sample has a known frame.
SPIN_CODE = r'''
import os, sys, threading
WORKERS = %(workers)d
progress = [0]
stop = []
def fault_spin():
    while not stop:
        progress[0] += 1
    sys.exit(0)
def fault_worker():
    x = 0
    while True:
        x += 1
def fault_commands():
    while True:
        line = sys.stdin.readline().strip()
        if not line:
            os._exit(0)
        if line == "exit":
            stop.append(1)
        if line == "exec":
            os.execv("/bin/sleep", ["sleep", "60"])
        if line == "count":
            sys.stdout.write("%%d\n" %% progress[0]); sys.stdout.flush()
for _ in range(WORKERS):
    t = threading.Thread(target=fault_worker); t.daemon = True; t.start()
def fault_main():
    t = threading.Thread(target=fault_commands); t.daemon = True; t.start()
    sys.stdout.write("ready\n"); sys.stdout.flush()
    fault_spin()
fault_main()
'''

# Creates and joins short-lived threads as fast as it can (thousands per
# second), from two creator threads.
CHURN_CODE = r'''
import sys, threading
def fault_short():
    sum(range(50))
def fault_creator():
    while True:
        batch = [threading.Thread(target=fault_short) for _ in range(8)]
        for t in batch: t.start()
        for t in batch: t.join()
        counter[0] += len(batch)
counter = [0]
for _ in range(2):
    t = threading.Thread(target=fault_creator); t.daemon = True; t.start()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
sys.stdout.write("%d\n" % counter[0]); sys.stdout.flush()
'''

# bpo-33608's shape: daemon threads spinning and daemon threads blocked in
# read() on a pipe that a forked child fills only after the main thread has
# returned, so they wake while (or after) the interpreter finalizes.
FINALIZE_CODE = r'''
import os, sys, threading, time
r, w = os.pipe()
def fault_daemon_spin():
    d = {}
    i = 0
    while True:
        i += 1
        d[i %% 64] = str(i)
def fault_daemon_io():
    while True:
        data = os.read(r, 1)
        fault_after_wake(data)
def fault_after_wake(data):
    x = 0
    for i in range(10000):
        x += i
for _ in range(3):
    t = threading.Thread(target=fault_daemon_spin); t.daemon = True; t.start()
for _ in range(4):
    t = threading.Thread(target=fault_daemon_io); t.daemon = True; t.start()
%(prewake)s
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
if os.fork() == 0:
    time.sleep(%(wake_delay)f)
    os.write(w, b"x" * 4096)
    os._exit(0)
def fault_exit():
    sys.exit(0)
fault_exit()
'''


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


class Recorder:
    """A running `pyflameX.Y record`; finish() waits for it with a deadline."""

    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None,
                 own_session: bool = True):
        self.argv = argv
        self.started = time.monotonic()
        # Job-control stops (SIGTSTP...) are discarded in an orphaned process
        # group, as a new session's is: own_session=False gives it a process
        # group of its own in our session instead.
        # Unbuffered for wait_until_recording().
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, start_new_session=own_session,
                                     preexec_fn=None if own_session else os.setpgrp, bufsize=0)
        self.early_err = b""

    def wait_started(self) -> None:
        try:
            self.early_err += wait_until_recording(self.proc)
        except Failure:
            self.kill()
            raise

    def finish(self, timeout: float = PROFILER_TIMEOUT) -> Tuple[int, str]:
        try:
            _, err = self.proc.communicate(timeout=timeout)
            err = self.early_err + err
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, err = self.proc.communicate()
            raise Failure("%s hung (killed after %.0fs)\n%s"
                          % (" ".join(self.argv), timeout, err.decode("utf-8", "replace")))
        return self.proc.returncode, err.decode("utf-8", "replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()


class Code(Target):
    """CODE, written to a script file, under INTERP; talked to through
    stdin/stdout. Waits for its first line (ready)."""

    def __init__(self, interp: Interpreter, code: str):
        tmpdir = interp.temp_dir()
        os.chmod(tmpdir, 0o755)
        self.script = os.path.join(tmpdir, "fault_fixture.py")
        with open(self.script, "w") as f:
            f.write(code)
        super().__init__(interp, [interp.inside_path(self.script)], tmpdir, stdout=subprocess.PIPE)
        try:
            self.read()
        except BaseException:
            self.close()
            raise

    def send(self, line: str) -> None:
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def read(self) -> str:
        return read_line(self.proc.stdout.fileno(), self, READY_TIMEOUT, "fault fixture").decode().strip()


def parse_collapsed(text: str, what: str) -> List[Tuple[List[Tuple[str, str]], int]]:
    stacks = []
    for raw in text.splitlines():
        stack, _, count = raw.rpartition(" ")
        expect(bool(stack) and count.isdigit(), "%s: malformed collapsed line %r" % (what, raw))
        frames = []
        for label in stack.split(";"):
            if label == NO_FRAMES:
                frames.append((label, ""))
                continue
            m = FRAME.match(label)
            expect(m is not None, "%s: malformed frame %r" % (what, label))
            frames.append((m.group("function"), m.group("filename")))
        stacks.append((frames, int(count)))
    return stacks


def samples_in(stacks, function: str) -> int:
    return sum(count for frames, count in stacks if any(f == function for f, _ in frames))


# The least share of the ticks that gave a sample (--stats-json: samples
# less errors) that must show fault_spin, where the main thread never leaves
# it: the rest is slack for a tick caught as the thread starts or ends. The
# recordings that use it take --idle: the main thread waits for the GIL
# (asleep, so idle) while the workers hold it, and without --idle only the
# ticks it runs would count. Measured: down to 89.4% with another test on
# the other core (a target that exits spends its last ticks in shutdown).
SPIN_SHARE = 0.8

# The fewest good samples a claim about a recording rests on. A count, not
# a rate: how many samples a second a run reaches depends on what else the
# machine does (CI's namespace case reached 42/s of 200/s next to the fuzz
# run), and the claims hold for every sample taken, however few.
MIN_GOOD_SAMPLES = 10


def spin_floor(stats: str, what: str) -> float:
    """SPIN_SHARE of the ticks of the recording whose --stats-json is STATS
    that gave a sample; at least MIN_GOOD_SAMPLES (a recording that sampled
    nothing must not pass by a floor of 0)."""
    with open(stats) as f:
        figures = json.load(f)
    return max(float(MIN_GOOD_SAMPLES), SPIN_SHARE * (figures["samples"] - figures["errors"]))


def check_running(target: Target, what: str, grace: float = 0.0) -> None:
    """The target is alive and no thread is stopped (waiting up to GRACE s)."""
    deadline = time.monotonic() + grace
    while True:
        expect(target.alive(), "%s: the target died" % what)
        stopped = stopped_tasks(target.pid)
        if not stopped:
            return
        if time.monotonic() >= deadline:
            raise Failure("%s: the target was left stopped: %s" % (what, stopped))
        time.sleep(0.01)


def record_argv(profiler: str, pid: int, out: str, blocking: bool, *extra: str) -> List[str]:
    return ([profiler, "record", "-p", str(pid), "-o", out] + list(extra)
            + (["--blocking"] if blocking else []))


# Nonblocking, then --blocking.
MODES = (False, True)


# ------------------------------------------------------------------- cases


def target_dies_once(profiler: str, interp: Interpreter, work: str, blocking: bool, how: str,
                     what: str, delay: float) -> None:
    out = os.path.join(work, "dies.txt")
    stats = os.path.join(work, "dies.json")
    with Code(interp, SPIN_CODE % {"workers": 2}) as target:
        rec = Recorder(record_argv(profiler, target.pid, out, blocking, "--rate", "500",
                                   "--idle", "--stats-json", stats))
        rec.wait_started()
        time.sleep(delay)
        if how == "exit":
            target.send("exit")
        elif how == "kill":
            os.kill(target.pid, signal.SIGKILL)
        else:
            target.send("exec")
        event = time.monotonic()
        code, err = rec.finish(timeout=15)
        late = time.monotonic() - event
    expect(code == EXIT_TARGET_EXITED, "%s: exit %d, expected %d\n%s"
           % (what, code, EXIT_TARGET_EXITED, err))
    # The exit code is the same for both endings; the message must say which.
    said_exec = "executed another program" in err
    said_exit = ("process %d exited" % target.pid) in err
    if how == "exec":
        expect(said_exec and not said_exit, "%s: the exec was not reported as one\n%s" % (what, err))
    else:
        expect(said_exit and not said_exec, "%s: the %s was not reported as an exit\n%s"
               % (what, how, err))
    expect(late < 5, "%s: the profiler ended %.1f s after the target %s" % (what, late, how))
    with open(out, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read(), what)
    spins = samples_in(stacks, "fault_spin")
    # Every tick before the event that gave a sample shows fault_spin (the
    # ticks after it are errors): a failure means the samples taken before
    # the target went were not all written.
    floor = spin_floor(stats, what)
    expect(spins >= floor, "%s: %d fault_spin samples kept, expected at least %.0f\n%s"
           % (what, spins, floor, err))


def target_dies(profiler: str, interp: Interpreter, work: str, repeat: int,
                hows: Sequence[str], modes: Sequence[bool] = MODES) -> None:
    rng = random.Random(6)
    failures = []
    for blocking in modes:
        for how in hows:
            passed = 0
            for n in range(repeat):
                what = "%s %s #%d" % ("--blocking" if blocking else "nonblocking", how, n + 1)
                try:
                    # The event comes this long after pyflame says it is
                    # recording (however slowly a sanitized one attaches).
                    target_dies_once(profiler, interp, work, blocking, how, what,
                                     rng.uniform(0.5, 1.0))
                    passed += 1
                except Failure as e:
                    failures.append(str(e))
                    break  # one failure per kind is enough to report
            log("target_dies: %s, %s: %d/%d runs exit 7 soon after, saying how, with a whole profile"
                % ("--blocking" if blocking else "nonblocking", how, passed, repeat))
    if failures:
        raise Failure("\n".join(failures))


def case_target_dies(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    target_dies(profiler, interp, work, repeat, ("exit", "kill"))


def case_target_execs(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    # With --blocking this is the exec-vs-PTRACE_SEIZE deadlock case (an exec
    # from a worker thread waits for threads we traced while holding the lock
    # seizing takes); the stopper's reaper breaks it (docs/reliability.md).
    target_dies(profiler, interp, work, repeat, ("exec",))


CHURN_FLOOR = 1000  # threads per second


def case_thread_churn(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    for blocking in MODES:
        for n in range(repeat):
            what = "%s #%d" % ("--blocking" if blocking else "nonblocking", n + 1)
            out = os.path.join(work, "churn.txt")
            stats = os.path.join(work, "churn.json")
            with Code(interp, CHURN_CODE) as target:
                rec = Recorder(record_argv(profiler, target.pid, out, blocking, "--rate", "1000",
                                           "-d", "3", "--idle", "--stats-json", stats))
                code, err = rec.finish()
                elapsed = time.monotonic() - rec.started
                check_running(target, what, grace=0.5)
                target.send("count")  # and exit
                created = int(target.read())
            expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err))
            expect(elapsed < 10, "%s: -d 3 took %.1f s" % (what, elapsed))
            with open(out, encoding="utf-8") as f:
                stacks = parse_collapsed(f.read(), what)
            with open(stats) as f:
                figures = json.load(f)
            seen = samples_in(stacks, "fault_creator") + samples_in(stacks, "fault_short")
            expect(seen > 0, "%s: no churn frames sampled\n%s" % (what, err))
            # The churn the docs quote: 2,300-5,000 threads/s measured on the
            # loaded 2-core test machine (load ~13), also while recorded with
            # --blocking. Below 1,000/s the case would not test a high rate.
            expect(created >= CHURN_FLOOR * elapsed,
                   "%s: the target made only %d threads in %.1f s (%.0f/s, expected %d/s)"
                   % (what, created, elapsed, created / elapsed, CHURN_FLOOR))
            # A sample can fail while a thread state is freed under the
            # walk (its thread list changed under every read); measured: at
            # most 0.8% of the ticks on 3.11 and 3.14, 1.3-2.3% on 2.7
            # nonblocking (whose list changes on every thread start), 1% with
            # --blocking. Over 5% means the walker fails on churn itself,
            # not on the odd race. Under the sanitizers a walk takes ten
            # times as long, and so sees the list change about ten times as
            # often (measured there: 18%): a quarter.
            limit = 0.25 if os.environ.get("PYFLAME_TEST_SANITIZED") == "1" else 0.05
            expect(figures["errors"] <= limit * figures["samples"],
                   "%s: %d errors in %d ticks (over %.0f%%)\n%s"
                   % (what, figures["errors"], figures["samples"], 100 * limit, err))
            log("thread_churn: %s: %d threads created in %.1f s (%.0f/s); %d samples, %d errors"
                % (what, created, elapsed, created / elapsed, figures["samples"], figures["errors"]))
    log("thread_churn: %d runs per mode, exit 0 on time" % repeat)


# Prepended to FINALIZE_CODE for the run that records which frames can run
# during its shutdown: a profile function, installed before any thread
# starts, writes every (function, file) on the stack at each call (the
# function as the collapsed output names it: co_qualname from 3.11), as it
# happens, to the file named by %(calls)r. It keeps what it needs in
# default arguments, because 2.7 sets module globals to None while it
# finalizes.
CALLS_PRELUDE = r'''
import os as _pf_os, sys as _pf_sys, threading as _pf_threading
def _pf_profile(frame, event, arg, _seen=set(), _write=_pf_os.write,
                _fd=_pf_os.open(%(calls)r, _pf_os.O_WRONLY | _pf_os.O_APPEND)):
    if event != "call":
        return
    while frame is not None:
        code = frame.f_code
        key = "%%s\t%%s\n" %% (getattr(code, "co_qualname", code.co_name), code.co_filename)
        if key not in _seen:
            _seen.add(key)
            _write(_fd, key.encode("utf-8") if not isinstance(key, bytes) else key)
        frame = frame.f_back
_pf_threading.setprofile(_pf_profile)
_pf_sys.setprofile(_pf_profile)
'''

WAKE_DELAYS = (0.0, 0.001, 0.005, 0.02)
PREWAKE = "os.write(w, b'x' * 4); time.sleep(0.3)"
SCRIPT = "<the fixture>"


def shutdown_frames(interp: Interpreter, work: str) -> set:
    """{(function, file)} of every frame that runs in FINALIZE_CODE's life,
    its shutdown included, as the interpreter itself reports it (one run
    per wake delay under CALLS_PRELUDE); the fixture's file is SCRIPT."""
    seen = set()
    for delay in WAKE_DELAYS:
        calls_dir = interp.temp_dir()
        try:
            os.chmod(calls_dir, 0o777)
            calls = os.path.join(calls_dir, "calls.tsv")
            open(calls, "w").close()
            # The I/O threads are also woken once before the shutdown: a
            # wake that comes only after it may find the process gone in
            # this slower, profiled run, and what it runs must be seen.
            code = (CALLS_PRELUDE % {"calls": interp.inside_path(calls)}
                    + FINALIZE_CODE % {"wake_delay": delay, "prewake": PREWAKE})
            with Code(interp, code) as target:
                script = interp.inside_path(target.script)
                target.send("go")
                target.proc.wait(timeout=READY_TIMEOUT)
            with open(calls, encoding="utf-8") as f:
                for line in f:
                    function, _, filename = line.rstrip("\n").partition("\t")
                    seen.add((function, SCRIPT if filename == script else filename))
        finally:
            shutil.rmtree(calls_dir, ignore_errors=True)
    expect({("fault_daemon_spin", SCRIPT), ("fault_exit", SCRIPT)} <= seen,
           "the profile function saw neither the fixture's threads nor its exit: %s"
           % sorted(seen))
    return seen


def check_no_garbage(stacks, legit: set, script: str, what: str) -> Tuple[int, int]:
    """Every frame is one that runs in this fixture's life and shutdown
    (LEGIT, recorded by the interpreter itself), <unknown> or <no Python
    frames>; returns (samples, samples with an <unknown> frame). A failure
    means a frame was read from freed or reused memory and printed as a
    plausible one."""
    total = unknown = 0
    for frames, count in stacks:
        total += count
        if ("<unknown>", "<unknown>") in frames:
            unknown += count
        for function, filename in frames:
            if (function, filename) in (("<unknown>", "<unknown>"), (NO_FRAMES, "")):
                continue
            key = (function, SCRIPT if filename == script else filename)
            if key not in legit:
                raise Failure("%s: frame %r (%r) never runs in this fixture, its shutdown "
                              "included: read from freed memory? Its stack: %s"
                              % (what, function, filename, frames))
    return total, unknown


def case_finalization(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    rng = random.Random(33608)
    legit = shutdown_frames(interp, work)
    log("finalization: %d (function, file) pairs run in the fixture's life and shutdown"
        % len(legit))
    for blocking in MODES:
        runs = repeat if not blocking else max(1, repeat // 2)
        total = unknown = 0
        for n in range(runs):
            what = "%s #%d" % ("--blocking" if blocking else "nonblocking", n + 1)
            out = os.path.join(work, "final.txt")
            code_text = FINALIZE_CODE % {"wake_delay": rng.choice(WAKE_DELAYS), "prewake": ""}
            with Code(interp, code_text) as target:
                script = interp.inside_path(target.script)
                rec = Recorder(record_argv(profiler, target.pid, out, blocking, "--rate", "2000",
                                           "--idle"))
                rec.wait_started()
                time.sleep(0.1)
                target.send("go")
                code, err = rec.finish()
            expect(code == EXIT_TARGET_EXITED, "%s: exit %d, expected 7\n%s" % (what, code, err))
            with open(out, encoding="utf-8") as f:
                stacks = parse_collapsed(f.read(), what)
            samples, unknowns = check_no_garbage(stacks, legit, script, what)
            total += samples
            unknown += unknowns
            expect(samples_in(stacks, "fault_daemon_spin") > 0,
                   "%s: no daemon thread sampled\n%s" % (what, err))
        # An <unknown> frame is the honest answer for a code object that
        # failed its checks, but measured there were none (0 in about 280
        # thousand samples on 2.7, 3.11 and 3.14): many would mean the
        # walker reads freed objects and only its checks save it.
        expect(unknown <= 0.001 * total, "%s: %d of %d samples hold an <unknown> frame"
               % ("--blocking" if blocking else "nonblocking", unknown, total))
        log("finalization: %s: %d shutdowns sampled at 2000/s, %d samples (%d with an "
            "<unknown> frame), no foreign frame"
            % ("--blocking" if blocking else "nonblocking", runs, total, unknown))


def traced_stops(pid: int, tracer: int) -> List[int]:
    """Tasks of PID in a ptrace stop ('t') under TRACER."""
    stopped = []
    for tid, state in task_states(pid).items():
        if state != "t":
            continue
        try:
            with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
                if any(line.split() == ["TracerPid:", str(tracer)] for line in f):
                    stopped.append(tid)
        except OSError:
            pass
    return stopped


def freeze_mid_sample(rec: Recorder, pid: int, rng: random.Random) -> int:
    """SIGSTOPs the profiler at a moment it holds threads of PID stopped
    (tries again, SIGCONT and a short random wait between, until it does);
    returns how many threads it held. The caller's SIGKILL then lands with
    them stopped, which is the case under test."""
    for _ in range(400):
        os.kill(rec.proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 2 * TIMEOUT_SCALE
        while task_states(rec.proc.pid).get(rec.proc.pid) != "T":
            expect(time.monotonic() < deadline, "the profiler did not stop on SIGSTOP")
            time.sleep(0.0005)
        held = traced_stops(pid, rec.proc.pid)
        if held:
            return len(held)
        os.kill(rec.proc.pid, signal.SIGCONT)
        time.sleep(rng.uniform(0, 0.003))
    raise Failure("in 400 tries the --blocking profiler never held a thread stopped: "
                  "the kill could not be made to land mid-sample")


def case_sigkill(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    rng = random.Random(9)
    out = os.path.join(work, "killed.txt")
    mid_sample = 0
    with Code(interp, SPIN_CODE % {"workers": 3}) as target:
        for n in range(repeat):
            rec = Recorder(record_argv(profiler, target.pid, out, True, "--rate", "1000"))
            # A slow (sanitized) profiler needs longer to attach: the moments
            # are stretched with the deadlines.
            time.sleep(rng.uniform(0.02, 0.4) * TIMEOUT_SCALE)
            if n % 2:
                # Every other kill is made to land while the profiler holds
                # threads stopped (checked in /proc): the case the kernel's
                # detach on the tracer's exit must handle. The others land
                # at random moments.
                freeze_mid_sample(rec, target.pid, rng)
                mid_sample += 1
            rec.kill()
            # The kernel detaches a dead tracer's tracees as the tracer
            # exits; once it is reaped nothing may be stopped.
            check_running(target, "kill #%d" % (n + 1), grace=0.2)
        target.send("count")
        before = int(target.read())
        time.sleep(0.2)
        target.send("count")
        after = int(target.read())
        expect(after > before, "the target's main thread stopped making progress")
    log("sigkill: %d SIGKILLs of a --blocking recording (%d at random moments, %d while it held "
        "threads stopped); the target was never left stopped and kept running"
        % (repeat, repeat - mid_sample, mid_sample))


def case_two_profilers(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    for blocking in MODES:
        for n in range(repeat):
            what = "%s #%d" % ("--blocking" if blocking else "nonblocking", n + 1)
            with Code(interp, SPIN_CODE % {"workers": 1}) as target:
                outs = [os.path.join(work, "two-%d.txt" % i) for i in range(2)]
                recs = [Recorder(record_argv(profiler, target.pid, o, blocking, "-d", "2",
                                             "--rate", "200", "--idle", "--stats-json",
                                             o + ".json"))
                        for o in outs]
                results = [r.finish() for r in recs]
                check_running(target, what, grace=0.5)
            worked = 0
            for (code, err), out in zip(results, outs):
                if not blocking or code == EXIT_OK:
                    expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err))
                    with open(out, encoding="utf-8") as f:
                        spins = samples_in(parse_collapsed(f.read(), what), "fault_spin")
                    floor = spin_floor(out + ".json", what)
                    expect(spins >= floor, "%s: %d fault_spin samples, expected at least %.0f\n%s"
                           % (what, spins, floor, err))
                    worked += 1
                else:
                    expect(code in (2, 3, 4) and err.startswith("pyflame"),
                           "%s: the second profiler failed unclearly (exit %d)\n%s" % (what, code, err))
            expect(worked >= 1, "%s: neither profiler worked" % what)
            log("two_profilers: %s: %d of 2 worked, the other failed clearly" % (what, worked)
                if worked < 2 else "two_profilers: %s: both worked" % what)


def wait_traced(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("TracerPid:") and int(line.split()[1]) != 0:
                    return int(line.split()[1])
        time.sleep(0.02)
    raise Failure("the tracer never attached to %d" % pid)


def check_traced(code: int, err: str, out: str, stats: str, blocking: bool, what: str) -> str:
    """What docs/reliability.md promises for a target another tool traces.

    Nonblocking (recorded with --idle): exit 0 and the main thread's
    fault_spin in the samples: running under strace, or the stopped stacks
    under gdb (which holds every thread stopped). The main thread never
    leaves fault_spin, so each tick that yielded a sample shows it; the
    floor allows the ticks counted as errors and 10% more. A failure means
    a traced target is not sampled (or, under gdb, its stopped threads are
    dropped). --blocking: the seize is refused; exit 4 naming the other
    tracer, and the profile so far written whole (a collapsed file, empty
    here: no tick got a sample)."""
    if blocking:
        expect(code == EXIT_PERMISSION and err.startswith("pyflame")
               and "already traced by another tool" in err,
               "%s: exit %d, expected %d saying the target is already traced\n%s"
               % (what, code, EXIT_PERMISSION, err))
        expect(os.path.isfile(out), "%s: no profile written at %s\n%s" % (what, out, err))
        with open(out, encoding="utf-8") as f:
            data = f.read()
        parse_collapsed(data, what)
        expect(data == "" or data.endswith("\n"), "%s: the profile is torn: %r" % (what, data[-200:]))
        return "exit 4 saying it is already traced, profile written (%d bytes)" % len(data)
    expect(code == EXIT_OK, "%s: exit %d, expected 0\n%s" % (what, code, err))
    with open(out, encoding="utf-8") as f:
        spins = samples_in(parse_collapsed(f.read(), what), "fault_spin")
    with open(stats) as f:
        figures = json.load(f)
    floor = 0.9 * (figures["samples"] - figures["errors"])
    expect(figures["samples"] - figures["errors"] >= MIN_GOOD_SAMPLES and spins >= floor,
           "%s: %d fault_spin samples of %d ticks (%d errors), expected at least %.0f\n%s"
           % (what, spins, figures["samples"], figures["errors"], floor, err))
    return "exit 0, %d fault_spin samples of %d ticks" % (spins, figures["samples"])


def case_traced(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    tools = [t for t in ("strace", "gdb") if shutil.which(t)]
    absent = [t for t in ("strace", "gdb") if t not in tools]
    failures = []
    for tool in tools:
        with Code(interp, SPIN_CODE % {"workers": 1}) as target:
            wait_spinning(target)
            if tool == "strace":
                argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(target.pid)]
            else:
                argv = ["gdb", "-q", "-nx", "-batch", "-p", str(target.pid), "-ex", "shell sleep 60"]
            tracer = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_traced(target.pid)
                if tool == "gdb":
                    time.sleep(0.5)  # gdb reads symbols with the target stopped
                for blocking in MODES:
                    for n in range(repeat):
                        what = "%s, %s #%d" % (tool, "--blocking" if blocking else "nonblocking", n + 1)
                        out = os.path.join(work, "traced.txt")
                        stats = os.path.join(work, "traced.json")
                        for path in (out, stats):
                            if os.path.exists(path):
                                os.unlink(path)
                        extra = ["-d", "1", "--rate", "200", "--stats-json", stats]
                        if not blocking:
                            extra.append("--idle")  # gdb holds the threads stopped: idle
                        rec = Recorder(record_argv(profiler, target.pid, out, blocking, *extra))
                        try:
                            code, err = rec.finish(timeout=15)
                            elapsed = time.monotonic() - rec.started
                            expect(elapsed < 8 * TIMEOUT_SCALE, "%s: -d 1 took %.1f s"
                                   % (what, elapsed))
                            log("traced: %s: %s" % (what, check_traced(code, err, out, stats,
                                                                       blocking, what)))
                        except Failure as e:
                            failures.append(str(e))
                            log("traced: %s: FAILED" % what)
            finally:
                os.killpg(tracer.pid, signal.SIGKILL)
                tracer.wait()
    if failures:
        raise Failure("\n".join(failures))
    if absent:
        raise Missing("%s not installed, so a target traced by it was not tried "
                      "(scripts/setup.sh and test/tools/fuzz.sh install strace and gdb)"
                      % " and ".join(absent))


def wait_spinning(target: Code) -> None:
    """Returns once the main thread is inside fault_spin."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        target.send("count")
        if int(target.read()) > 0:
            return
        expect(time.monotonic() < deadline, "the fixture never started spinning")
        time.sleep(0.01)


def case_stopped(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    # Decision (docs/reliability.md): a target stopped by SIGSTOP is recorded
    # as it is (its threads idle) and left stopped; resuming it would be the
    # profiler changing the target's state.
    with Code(interp, SPIN_CODE % {"workers": 1}) as target:
        wait_spinning(target)
        os.kill(target.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while set(task_states(target.pid).values()) != {"T"}:
            expect(time.monotonic() < deadline, "SIGSTOP did not stop the target: %s"
                   % task_states(target.pid))
            time.sleep(0.01)
        for blocking in MODES:
            for n in range(repeat):
                what = "%s #%d" % ("--blocking" if blocking else "nonblocking", n + 1)
                out = os.path.join(work, "stopped.txt")
                rec = Recorder(record_argv(profiler, target.pid, out, blocking, "-d", "1", "--idle"))
                code, err = rec.finish(timeout=15)
                elapsed = time.monotonic() - rec.started
                expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err))
                expect(elapsed < 6, "%s: -d 1 took %.1f s" % (what, elapsed))
                states = set(task_states(target.pid).values())
                expect(states == {"T"}, "%s: the stopped target's threads are now %s, expected "
                       "still stopped (T)" % (what, states))
                with open(out, encoding="utf-8") as f:
                    spins = samples_in(parse_collapsed(f.read(), what), "fault_spin")
                expect(spins > 0, "%s: --idle recorded no fault_spin sample\n%s" % (what, err))
        os.kill(target.pid, signal.SIGCONT)
        check_running(target, "after SIGCONT", grace=2)
        target.send("count")
        target.read()
    log("stopped: %d recordings per mode of a SIGSTOPped target ended on time and left it stopped"
        % repeat)


# For the namespace case: one busy thread (fault_busy, named pf-busy), one
# idle thread (fault_idle, named pf-idle, blocked on a lock for good) and the
# main thread blocked reading stdin. "stop" parks the busy thread (then the
# whole program is idle), "start" resumes it; each is answered "ok". Thread
# names are set through /proc/thread-self/comm, which every Python can write.
NS_CODE = r'''
import os, sys, threading
def name_thread(name):
    f = open("/proc/thread-self/comm", "w")
    f.write(name)
    f.close()
go = threading.Event()
go.set()
parked = threading.Event()
gate = threading.Lock()
gate.acquire()
named = []
def fault_busy():
    name_thread("pf-busy")
    named.append(1)
    x = 0
    while True:
        if not go.is_set():
            parked.set()
            go.wait()
        for _ in range(10000):
            x += 1
def fault_idle():
    name_thread("pf-idle")
    named.append(1)
    gate.acquire()
for target in (fault_busy, fault_idle):
    t = threading.Thread(target=target); t.daemon = True; t.start()
while len(named) < 2:
    pass
sys.stdout.write("ready\n"); sys.stdout.flush()
while True:
    line = sys.stdin.readline().strip()
    if not line:
        os._exit(0)
    if line == "stop":
        parked.clear(); go.clear(); parked.wait()
    if line == "start":
        go.set()
    sys.stdout.write("ok\n"); sys.stdout.flush()
'''


def host_thread_names(pid: int) -> Dict[int, str]:
    names = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names[int(tid)] = f.read().strip()
        except OSError:
            pass
    return names


def check_namespace_dump(profiler: str, pid: int, what: str) -> None:
    """dump names every thread by its host TID, with its name and idle state."""
    run = subprocess.run([profiler, "dump", "-p", str(pid), "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=PROFILER_TIMEOUT)
    err = run.stderr.decode("utf-8", "replace")
    expect(run.returncode == EXIT_OK, "%s: dump exit %d\n%s" % (what, run.returncode, err))
    threads = json.loads(run.stdout.decode("utf-8"))["threads"]
    host = host_thread_names(pid)
    expect(len(threads) == 3, "%s: %d threads, expected 3: %s" % (what, len(threads), threads))
    by_function = {}
    for t in threads:
        functions = [f["function"] for f in t["frames"]]
        expect(t["native_id"] in host, "%s: thread %s has TID %s, not one of the target's host "
               "TIDs %s" % (what, functions, t["native_id"], sorted(host)))
        expect(t["name"] == host[t["native_id"]], "%s: thread %s (TID %s) is named %r; the host "
               "says %r" % (what, functions, t["native_id"], t["name"], host[t["native_id"]]))
        for function in ("fault_busy", "fault_idle"):
            if function in functions:
                by_function[function] = t
    expect(set(by_function) == {"fault_busy", "fault_idle"},
           "%s: no busy and idle thread in %s" % (what, threads))
    busy, idle = by_function["fault_busy"], by_function["fault_idle"]
    expect(busy["name"] == "pf-busy" and busy["idle"] is False,
           "%s: the busy thread is %r, idle %r" % (what, busy["name"], busy["idle"]))
    expect(idle["name"] == "pf-idle" and idle["idle"] is True,
           "%s: the idle thread is %r, idle %r" % (what, idle["name"], idle["idle"]))
    main = [t for t in threads if t is not busy and t is not idle][0]
    expect(main["idle"] is True, "%s: the main thread (blocked reading) is not idle: %r"
           % (what, main))


def record_namespace(profiler: str, pid: int, work: str, blocking: bool, what: str) -> Tuple[dict, list]:
    out = os.path.join(work, "ns.txt")
    stats = os.path.join(work, "ns.json")
    code, err = Recorder(record_argv(profiler, pid, out, blocking, "-d", "1", "--rate", "200",
                                     "--threads", "--stats-json", stats)).finish()
    expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err))
    with open(stats, encoding="utf-8") as f:
        counters = json.load(f)
    with open(out, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read(), what)
    # --threads: each stack starts with "thread 'NAME' (tid TID)", TID ours.
    host = host_thread_names(pid)
    for frames, _ in stacks:
        root = re.match(r"^thread '(.*)'$", frames[0][0])
        tid = re.match(r"^tid (\d+)$", frames[0][1])
        expect(root is not None and tid is not None, "%s: stack root %r is not a named thread "
               "with a TID" % (what, frames[0]))
        expect(host.get(int(tid.group(1))) == root.group(1), "%s: thread %r (tid %s): the host's "
               "threads are %s" % (what, root.group(1), tid.group(1), host))
        if any(f == "fault_busy" for f, _ in frames):
            expect(root.group(1) == "pf-busy", "%s: fault_busy under %r" % (what, frames[0]))
    good = counters["samples"] - counters["errors"]
    expect(good >= MIN_GOOD_SAMPLES, "%s: only %d good samples in 1 s at 200/s (the claims "
           "above need %d)\n%s" % (what, good, MIN_GOOD_SAMPLES, err))
    expect(not stopped_tasks(pid), "%s: target left stopped" % what)
    return counters, stacks


def case_namespace(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise Skip("unshare is not installed")
    if os.geteuid() != 0:
        raise Skip("needs root for unshare --pid --mount-proc")
    tmpdir = interp.temp_dir()
    os.chmod(tmpdir, 0o755)
    script = os.path.join(tmpdir, "fault_fixture.py")
    with open(script, "w") as f:
        f.write(NS_CODE)
    argv = [unshare, "--pid", "--fork", "--mount-proc"] + interp.command([interp.inside_path(script)])
    proc = subprocess.Popen(argv, env=interp.environment(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    shim = _Shim(proc)

    def command(line: str) -> None:
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()
        answer = read_line(proc.stdout.fileno(), shim, READY_TIMEOUT, "namespaced fixture")
        expect(answer.strip() == b"ok", "the fixture answered %r to %s" % (answer, line))

    try:
        read_line(proc.stdout.fileno(), shim, READY_TIMEOUT, "namespaced fixture")
        pid = _python_child(proc.pid, os.path.basename(interp.python))
        with open("/proc/%d/status" % pid) as f:
            nspid = [l.split()[1:] for l in f if l.startswith("NSpid:")]
        expect(bool(nspid) and len(nspid[0]) == 2 and nspid[0][1] == "1",
               "the target %d is not PID 1 of a new namespace: NSpid %s" % (pid, nspid))
        for blocking in MODES:
            for n in range(repeat):
                what = "%s #%d" % ("--blocking" if blocking else "nonblocking", n + 1)
                if not blocking:
                    check_namespace_dump(profiler, pid, "dump " + what)
                # Busy: every good sample holds the busy thread, and only it.
                counters, stacks = record_namespace(profiler, pid, work, blocking, "busy " + what)
                good = counters["samples"] - counters["errors"]
                busy = samples_in(stacks, "fault_busy")
                total = sum(count for _, count in stacks)
                # --blocking is left out here: its stops wake the idle
                # threads, which then wait for the GIL the busy thread holds
                # and are seen running by the next sample (a target in our
                # own namespace shows the same; docs/reliability.md).
                expect(blocking or busy == total, "%s: %d of %d samples are not the busy "
                       "thread's: %s" % (what, total - busy, total, stacks))
                expect(busy >= 0.8 * good, "%s: the busy thread is in %d of %d good samples"
                       % (what, busy, good))
                # All idle: no sample at all (idle threads are left out).
                command("stop")
                counters, stacks = record_namespace(profiler, pid, work, blocking, "idle " + what)
                command("start")
                expect(blocking or counters["thread_samples"] == 0 and not stacks,
                       "%s: an idle program recorded %d busy thread samples in %d samples: %s"
                       % (what, counters["thread_samples"], counters["samples"], stacks))
        log("namespace: PID 1 of its own PID+mount namespace (host PID %d): dump gave host TIDs, "
            "names and idle states; recorded busy and all-idle %d times per mode (host TIDs and "
            "names in both; only the busy thread, and nothing of the idle program, nonblocking)"
            % (pid, repeat))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        shutil.rmtree(tmpdir, ignore_errors=True)


class _Shim:
    """Enough of a Target for read_line's error messages."""

    def __init__(self, proc):
        self.proc = proc

    def stderr_text(self) -> str:
        return ""


def _python_child(pid: int, name: str, timeout: float = 10) -> int:
    """The descendant of PID whose comm starts like NAME (unshare forks, chroot execs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        todo = [pid]
        while todo:
            p = todo.pop()
            try:
                with open("/proc/%d/comm" % p) as f:
                    comm = f.read().strip()
                with open("/proc/%d/task/%d/children" % (p, p)) as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            if p != pid and name.startswith(comm[:15]):
                return p
            todo.extend(kids)
        time.sleep(0.05)
    raise Failure("no %s process under %d" % (name, pid))


def case_deleted_exe(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    if interp.mode != "static" or interp.chrooted or interp.env:
        raise Skip("needs a static, unchrooted interpreter (e.g. debian12-3.11); %s is not"
                   % interp.name)
    for how in ("deleted", "replaced"):
        for n in range(repeat):
            what = "%s #%d" % (how, n + 1)
            bindir = tempfile.mkdtemp(prefix="pyflame-exe-")
            os.chmod(bindir, 0o755)
            copy = os.path.join(bindir, os.path.basename(interp.python))
            shutil.copy(interp.python, copy)
            os.chmod(copy, 0o755)
            moved = Interpreter(interp.name, interp.minor, interp.version, interp.mode, interp.root,
                                copy, interp.headers, interp.env)
            try:
                with Code(moved, SPIN_CODE % {"workers": 1}) as target:
                    if how == "deleted":
                        os.unlink(copy)
                    else:
                        # Another program under the same name: its symbols are wrong.
                        other = copy + ".new"
                        shutil.copy("/bin/sleep", other)
                        os.rename(other, copy)
                    with open("/proc/%d/maps" % target.pid) as f:
                        expect("(deleted)" in f.read(), "%s: maps do not show the file deleted" % what)
                    out = os.path.join(work, "deleted.txt")
                    code, err = Recorder(record_argv(profiler, target.pid, out, False, "-d", "1",
                                                     "--rate", "200", "--idle", "--stats-json",
                                                     out + ".json")).finish()
                    expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err))
                    with open(out, encoding="utf-8") as f:
                        spins = samples_in(parse_collapsed(f.read(), what), "fault_spin")
                    floor = spin_floor(out + ".json", what)
                    expect(spins >= floor, "%s: %d fault_spin samples, expected at least %.0f\n%s"
                           % (what, spins, floor, err))
            finally:
                shutil.rmtree(bindir, ignore_errors=True)
        log("deleted_exe: executable %s after start: recorded correctly %d times" % (how, repeat))


def _mounts_under(path: str) -> List[str]:
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if (p + "/").startswith(prefix)]


def case_chroot_libpython(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    """An --enable-shared interpreter (pyenv) in a chroot, its tree bind-mounted
    (in a private mount namespace, like a container's volume) at the same
    path or another one, or copied in. /proc/PID/maps names its libpython by
    a path that is neither the host's file nor one under /proc/PID/root."""
    if interp.mode != "shared" or interp.chrooted or interp.env:
        raise Skip("needs an --enable-shared, unchrooted interpreter (pyenv); %s is not" % interp.name)
    if os.geteuid() != 0:
        raise Skip("needs root for chroot and bind mounts")
    tools = {t: shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin")
             for t in ("unshare", "chroot", "mount", "setpriv", "ldd")}
    missing = [t for t, path in tools.items() if path is None]
    if missing:
        raise Skip("%s not installed" % ", ".join(missing))
    prefix = os.path.dirname(os.path.dirname(interp.python))
    libs = [f for f in os.listdir(os.path.join(prefix, "lib"))
            if f.startswith("libpython%s" % interp.minor) and ".so." in f]
    stdlib = os.path.join(prefix, "lib", "python%s" % interp.minor)
    if len(libs) != 1 or not os.path.isdir(stdlib):
        raise Skip("%s: no single libpython%s*.so.* and stdlib under %s/lib"
                   % (interp.name, interp.minor, prefix))
    libpython = os.path.join(prefix, "lib", libs[0])
    # The C library and loader the interpreter needs, copied in.
    ldd = subprocess.run([tools["ldd"], interp.python, libpython], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    system_libs = sorted({w for w in ldd.split() if w.startswith("/") and not w.startswith(prefix)})
    nobody = os.path.join(work, os.path.basename(profiler))
    shutil.copy(profiler, nobody)
    os.chmod(nobody, 0o755)
    bin_dir = os.path.dirname(profiler)
    detect = [p for p in (os.path.join(bin_dir, "pyflame-detect"),
                          os.path.join(bin_dir, "..", "lib", "pyflame", "pyflame-detect"))
              if os.path.exists(p)]
    variants = [
        # name, where the tree is inside, bind the whole tree (else copy the
        # binaries and bind the stdlib), run the profiler unprivileged
        ("bind, same path", prefix, True, False),
        ("bind, other path", "/opt/python", True, False),
        ("copy, other path", "/opt/python", False, False),
        # CAP_SYS_PTRACE alone may not open /proc/PID/map_files: the fallback.
        ("copy, other path, profiler uid 65534 with CAP_SYS_PTRACE only", "/opt/python", False, True),
    ]
    for name, inside, bind_all, unprivileged in variants:
        for n in range(repeat):
            what = "%s #%d" % (name, n + 1)
            root = tempfile.mkdtemp(prefix="chroot-", dir=work)
            os.chmod(root, 0o755)
            proc = None
            try:
                for lib in system_libs:
                    dest = root + lib
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    shutil.copy(lib, dest)
                binds = []
                if bind_all:
                    binds.append((prefix, inside))
                else:
                    for src in (interp.python, libpython):
                        dest = root + inside + src[len(prefix):]
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        shutil.copy(src, dest)
                    binds.append((stdlib, inside + stdlib[len(prefix):]))
                for _, dest in binds:
                    os.makedirs(root + dest, exist_ok=True)
                os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
                with open(os.path.join(root, "tmp", "fault_fixture.py"), "w") as f:
                    f.write(SPIN_CODE % {"workers": 1})
                python = inside + interp.python[len(prefix):]
                env = interp.environment()
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                if inside != prefix:
                    env["LD_LIBRARY_PATH"] = inside + "/lib"  # its RUNPATH names the host's tree
                # unshare --mount (no fork): the mounts live and die with the
                # target's own mount namespace; the host never sees them.
                script = ('set -e; root=$1; shift; while [ "$1" != -- ]; do '
                          'mount --bind "$1" "$root$2"; shift 2; done; shift; exec "$@"')
                argv = [tools["unshare"], "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", root]
                for src, dest in binds:
                    argv += [src, dest]
                argv += ["--", tools["chroot"], root, python, "/tmp/fault_fixture.py"]
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
                shim = _Shim(proc)
                read_line(proc.stdout.fileno(), shim, READY_TIMEOUT, "chrooted fixture")
                pid = proc.pid  # unshare, sh and chroot exec: the pid is the interpreter's
                with open("/proc/%d/maps" % pid) as f:
                    mapped = [l.split(None, 5)[5].strip() for l in f
                              if len(l.split(None, 5)) == 6 and libs[0] in l]
                expect(bool(mapped), "%s: %s is not mapped" % (what, libs[0]))
                where = mapped[0]
                # Neither the old way (under /proc/PID/root) nor, for a bind
                # mount, the host path opens it: the test would prove nothing.
                expect(not os.path.exists("/proc/%d/root%s" % (pid, where)),
                       "%s: %s exists under the target's root" % (what, where))
                if unprivileged:
                    start_end = [l.split()[0] for l in open("/proc/%d/maps" % pid) if libs[0] in l][0]
                    probe = subprocess.run(
                        [tools["setpriv"], "--reuid=65534", "--regid=65534", "--clear-groups",
                         "--inh-caps=+sys_ptrace", "--ambient-caps=+sys_ptrace", "head", "-c1",
                         "/proc/%d/map_files/%s" % (pid, start_end)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if probe.returncode == 0:
                        log("NOTE: %s: this kernel lets CAP_SYS_PTRACE open map_files; the "
                            "fallback is not exercised" % what)
                prefix_argv = ([tools["setpriv"], "--reuid=65534", "--regid=65534", "--clear-groups",
                                "--inh-caps=+sys_ptrace", "--ambient-caps=+sys_ptrace"]
                               if unprivileged else [])
                binary = nobody if unprivileged else profiler
                run = subprocess.run(prefix_argv + [binary, "dump", "-p", str(pid)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     timeout=PROFILER_TIMEOUT, universal_newlines=True)
                expect(run.returncode == EXIT_OK and "fault_spin" in run.stdout
                       and ("Python %s" % interp.version) in run.stdout,
                       "%s: dump of %s (maps: %s) exit %d\n%s%s"
                       % (what, pid, where, run.returncode, run.stdout, run.stderr))
                if detect and not unprivileged:
                    run = subprocess.run([detect[0], "--pid", str(pid)], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, timeout=PROFILER_TIMEOUT,
                                         universal_newlines=True)
                    expect(run.returncode == 0 and run.stdout.split()[:1] == [interp.minor],
                           "%s: pyflame-detect --pid %d: exit %d\n%s%s"
                           % (what, pid, run.returncode, run.stdout, run.stderr))
            finally:
                if proc is not None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                left = _mounts_under(root)
                if left:  # never delete through a mount (it would be the interpreter's tree)
                    raise Failure("%s: mounts left on the host under %s: %s" % (what, root, left))
                shutil.rmtree(root, ignore_errors=True)
        log("chroot_libpython: %s: dump and pyflame-detect read it %d times (maps: %s)"
            % (name, repeat, where))


def process_state(pid: int) -> Optional[str]:
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def wait_state(pid: int, states: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        if (process_state(pid) or "?") in states:
            return True
        time.sleep(0.002)
    return False


def case_job_control(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    """Ctrl-Z (SIGTSTP), SIGTTIN and SIGTTOU of a --blocking recording at
    random moments: once the profiler has stopped, no thread of the target
    is held (state t); continued, it records on and ends with exit 130 and a
    whole profile. Before, 1-5 target threads stayed in t while the profiler
    was stopped."""
    rng = random.Random(5)
    out = os.path.join(work, "tstp.txt")
    signals = [signal.SIGTSTP] * (repeat - 2) + [signal.SIGTTIN, signal.SIGTTOU]
    with Code(interp, SPIN_CODE % {"workers": 4}) as target:
        rec = Recorder(record_argv(profiler, target.pid, out, True, "--rate", "1000"),
                       own_session=False)
        try:
            time.sleep(0.3 * TIMEOUT_SCALE)
            for n, sig in enumerate(signals):
                time.sleep(rng.uniform(0.01, 0.1))
                rec.proc.send_signal(sig)
                what = "%s #%d" % (signal.Signals(sig).name, n + 1)
                expect(wait_state(rec.proc.pid, "T"), "%s: the profiler did not stop (state %s)"
                       % (what, process_state(rec.proc.pid)))
                # Stopped now: whatever it holds stays held until SIGCONT.
                check_running(target, what + " (profiler stopped)")
                rec.proc.send_signal(signal.SIGCONT)
                expect(wait_state(rec.proc.pid, "RSD"), "%s: the profiler did not continue" % what)
            rec.proc.send_signal(signal.SIGINT)
            code, err = rec.finish()
        finally:
            rec.kill()
        expect(code == 130, "exit %d after SIGINT, expected 130\n%s" % (code, err))
        check_running(target, "after the recording", grace=0.2)
    with open(out, encoding="utf-8") as f:
        stacks = parse_collapsed(f.read(), "job control")
    expect(samples_in(stacks, "fault_spin") > 0, "no fault_spin sample in the profile")
    log("job_control: %d job-control stops of a --blocking recording at 1000/s; the target was "
        "never held while the profiler was stopped" % len(signals))


# 2,000 threads blocked on an event, one spinning: more threads than the
# usual limit of 1024 open files.
MANY_THREADS_CODE = r"""
import sys, threading
threading.stack_size(256 * 1024)
event = threading.Event()
def fault_idle():
    event.wait()
def fault_busy():
    x = 0
    while True:
        x += 1
threads = [threading.Thread(target=fault_idle) for _ in range(%(count)d)]
for t in threads:
    t.daemon = True
    t.start()
t = threading.Thread(target=fault_busy); t.daemon = True; t.start()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def case_many_threads(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    """A target with 2,000 threads, read by a profiler whose open-file limit
    is 1024 (soft and hard): every thread's name and idle state are read,
    idle threads are not counted as running, and --blocking does not say
    the target exited. Before: dump --json gave 982 threads idle and name
    null, record kept idle threads, record --blocking exited 7."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise Skip("no prlimit (util-linux)")
    count = 2000
    limited = [prlimit, "--nofile=1024:1024", "--"]
    with Code(interp, MANY_THREADS_CODE % {"count": count}) as target:
        deadline = time.monotonic() + 30 * TIMEOUT_SCALE
        while len(task_states(target.pid)) < count + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        for n in range(repeat):
            run = subprocess.run(limited + [profiler, "dump", "--json", "-p", str(target.pid)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=PROFILER_TIMEOUT, universal_newlines=True)
            expect(run.returncode == EXIT_OK, "dump: exit %d\n%s" % (run.returncode, run.stderr[-2000:]))
            threads = json.loads(run.stdout)["threads"]
            unread = [t["native_id"] for t in threads if t["idle"] is None or t["name"] is None]
            expect(len(threads) >= count + 2 and not unread,
                   "dump: %d threads, %d with idle or name null (e.g. %s)"
                   % (len(threads), len(unread), unread[:5]))
            busy = [t for t in threads if t["frames"] and t["frames"][0]["function"] == "fault_busy"]
            expect(busy and all(t["idle"] is False for t in busy), "dump: the busy thread is not active")
            for blocking in MODES:
                what = "record%s #%d" % (" --blocking" if blocking else "", n + 1)
                out = os.path.join(work, "many.txt")
                argv = limited + record_argv(profiler, target.pid, out, blocking, "-d", "1.5",
                                             "--rate", "20" if blocking else "100")
                rec = Recorder(argv)
                code, err = rec.finish()
                expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err[-2000:]))
                with open(out, encoding="utf-8") as f:
                    stacks = parse_collapsed(f.read(), what)
                busy_n, idle_n = samples_in(stacks, "fault_busy"), samples_in(stacks, "fault_idle")
                expect(busy_n > 0, "%s: no sample of the busy thread\n%s" % (what, err))
                # No idle thread may count as running, in either mode (a
                # --blocking stop that cuts a wait short marks it idle).
                expect(idle_n == 0, "%s: %d samples of idle threads kept (busy: %d)"
                       % (what, idle_n, busy_n))
        check_running(target, "after the recordings", grace=0.2)
    log("many_threads: %d threads under a 1024-file limit: dump read every thread; record kept "
        "the busy thread only, both modes (%d times)" % (count, repeat))


# 64 threads of known states (docs/how-it-works.md, "Idle threads"): 54
# blocked on an event for good, 4 spinning in Python, 2 hashing in C
# without the GIL (the same Python stack for as long as the call lasts),
# and 4 that nap 20 ms in time.sleep, then spin 20 ms in Python, in turn.
IDLE_THREADS_CODE = r"""
import hashlib, sys, threading, time
event = threading.Event()
data = b"x" * (1 << 20)  # 2-3 ms a hash (2.7 may hold the GIL for it)
def fault_idle():
    event.wait()
def fault_busy():
    time.sleep(1)  # the main thread starts every thread first (see the test)
    x = 0
    while True:
        x += 1
def fault_hash():
    time.sleep(1)
    while True:
        hashlib.sha256(data).digest()
def fault_nap():
    time.sleep(0.02)
def fault_work():
    end = time.time() + 0.02
    while time.time() < end:
        pass
def fault_turns():
    time.sleep(1)
    while True:
        fault_nap()
        fault_work()
kinds = [fault_idle] * 54 + [fault_busy] * 4 + [fault_hash] * 2 + [fault_turns] * 4
for kind in kinds:
    t = threading.Thread(target=kind)
    t.daemon = True
    t.start()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def case_idle_threads(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    """64 threads whose states are known, recorded without --idle at
    1000/s and with --blocking, and dumped: never a sample of a blocked thread, always
    samples of the running ones, Python or C, and fewer of a thread's naps
    than of its work."""
    with Code(interp, IDLE_THREADS_CODE) as target:
        deadline = time.monotonic() + 30 * TIMEOUT_SCALE
        while len(task_states(target.pid)) < 65 and time.monotonic() < deadline:
            time.sleep(0.05)
        # The busy threads wait a second before they spin, so that the main
        # thread starts them all and reaches its read first: 2.7's GIL can
        # keep a thread that wants it waiting for a minute while others spin.
        def other_running() -> bool:
            return any(s == "R" for tid, s in task_states(target.pid).items() if tid != target.pid)
        while not other_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # every thread in its function
        for n in range(repeat):
            run = subprocess.run([profiler, "dump", "--json", "-p", str(target.pid)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=PROFILER_TIMEOUT, universal_newlines=True)
            expect(run.returncode == EXIT_OK, "dump: exit %d\n%s" % (run.returncode, run.stderr[-2000:]))
            threads = json.loads(run.stdout)["threads"]

            def kind(t):
                names = [f["function"] for f in t["frames"]]
                return next((k for k in ("fault_idle", "fault_busy", "fault_hash", "fault_nap",
                                         "fault_work") if k in names), None)
            blocked = [t for t in threads if kind(t) == "fault_idle"]
            expect(len(blocked) == 54 and all(t["idle"] is True for t in blocked),
                   "dump: %d blocked threads, %d of them not idle" % (
                       len(blocked), sum(1 for t in blocked if t["idle"] is not True)))
            running = [t for t in threads if kind(t) in ("fault_busy", "fault_hash", "fault_work")
                       and t["idle"] is False]
            expect(running, "dump: no running thread among the busy ones")
            for blocking in MODES:
                what = "record%s #%d" % (" --blocking" if blocking else "", n + 1)
                out = os.path.join(work, "idle-threads.txt")
                argv = record_argv(profiler, target.pid, out, blocking, "-d", "2",
                                   "--rate", "50" if blocking else "1000")
                code, err = Recorder(argv).finish()
                expect(code == EXIT_OK, "%s: exit %d\n%s" % (what, code, err[-2000:]))
                with open(out, encoding="utf-8") as f:
                    stacks = parse_collapsed(f.read(), what)
                n_of = {k: samples_in(stacks, k) for k in ("fault_idle", "fault_busy", "fault_hash",
                                                           "fault_nap", "fault_work")}
                expect(n_of["fault_idle"] == 0, "%s: %d samples of blocked threads kept: %s"
                       % (what, n_of["fault_idle"], n_of))
                # Python and C. Not each Python function: 2.7's hashlib holds
                # the GIL while it hashes, and under --blocking the hashers
                # took 84 of 85 samples there.
                expect(n_of["fault_busy"] + n_of["fault_work"] > 0 and n_of["fault_hash"] > 0,
                       "%s: a running function never sampled: %s\n%s" % (what, n_of, err))
                # The nap and the work take as long, but a napping thread
                # is kept only while its sleep's call, done, waits for the
                # GIL or a CPU (runnable, sleep still on its stack; measured
                # 122-432 samples against 611-840 of work). A thread kept as
                # running after it fell asleep would give the naps as many
                # samples as the work.
                # Judged on 100 samples or more: on 2.7 the hashers can
                # starve the other threads of the GIL for a whole run, and
                # on fewer the two counts part by chance (16 and 16 of a
                # --blocking run at 50/s, next to another test).
                expect(n_of["fault_nap"] + n_of["fault_work"] < 100 or
                       n_of["fault_nap"] < n_of["fault_work"],
                       "%s: napping threads kept as running: %s" % (what, n_of))
                log("idle_threads: %s: samples %s" % (what, n_of))
        check_running(target, "after the recordings", grace=0.2)
    log("idle_threads: 64 threads (54 blocked, 4 spinning, 2 hashing in C, 4 napping and "
        "spinning in turn): dump and record in both modes kept no blocked thread (%d times)"
        % repeat)


def whole_profile(path: str, what: str) -> str:
    """Which format the file at PATH is, wholly; Failure if it is torn."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise Failure("%s: torn pprof file: %s" % (what, e))
        expect(b"fault_spin" in raw, "%s: pprof without fault_spin" % what)
        return "pprof"
    if data.startswith(b"<?xml"):
        try:
            ElementTree.fromstring(data)
        except ElementTree.ParseError as e:
            raise Failure("%s: torn SVG: %s" % (what, e))
        return "svg"
    if data.startswith(b"{"):
        try:
            json.loads(data.decode("utf-8"))
        except ValueError as e:
            raise Failure("%s: torn speedscope JSON: %s" % (what, e))
        return "speedscope"
    stacks = parse_collapsed(data.decode("utf-8"), what)
    expect(data.endswith(b"\n") and samples_in(stacks, "fault_spin") > 0,
           "%s: torn collapsed file" % what)
    return "collapsed"


def case_same_output(profiler: str, interp: Interpreter, work: str, repeat: int) -> None:
    formats = ["collapsed", "speedscope", "flamegraph", "pprof"]
    seen: Dict[str, int] = {}
    with Code(interp, SPIN_CODE % {"workers": 1}) as target:
        for n in range(repeat):
            out = os.path.join(work, "same-output")
            pair = [formats[n % 4], formats[(n + 1) % 4]]
            recs = [Recorder([profiler, "record", "-p", str(target.pid), "-d", "0.5", "--rate", "500",
                              "-f", fmt, "-o", out]) for fmt in pair]
            for rec in recs:
                code, err = rec.finish()
                expect(code == EXIT_OK, "#%d: exit %d\n%s" % (n + 1, code, err))
            kind = whole_profile(out, "#%d (%s vs %s)" % (n + 1, pair[0], pair[1]))
            seen[kind] = seen.get(kind, 0) + 1
            leftovers = [f for f in os.listdir(work) if f.startswith("same-output") and f != "same-output"]
            expect(not leftovers, "#%d: temporary files left behind: %s" % (n + 1, leftovers))
    log("same_output: %d races of two recordings onto one path, always one whole profile (%s)"
        % (repeat, ", ".join("%s %d" % kv for kv in sorted(seen.items()))))


CASES = {
    "target_dies": (case_target_dies, 5),
    "target_execs": (case_target_execs, 5),
    "thread_churn": (case_thread_churn, 2),
    "finalization": (case_finalization, 6),
    "sigkill": (case_sigkill, 50),
    "two_profilers": (case_two_profilers, 2),
    "traced": (case_traced, 1),
    "stopped": (case_stopped, 2),
    "namespace": (case_namespace, 2),
    "deleted_exe": (case_deleted_exe, 2),
    "chroot_libpython": (case_chroot_libpython, 1),
    "same_output": (case_same_output, 12),
    "job_control": (case_job_control, 22),
    "many_threads": (case_many_threads, 1),
    "idle_threads": (case_idle_threads, 1),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--interp", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    parser.add_argument("--repeat", type=int, help="repetitions (default: the case's own)")
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    body, default_repeat = CASES[args.case]
    repeat = args.repeat or default_repeat
    log("%s on %s, repeat count %d" % (args.case, interp.name, repeat))
    work = tempfile.mkdtemp(prefix="pyflame-faults-")
    os.chmod(work, 0o755)
    try:
        body(profiler, interp, work, repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
