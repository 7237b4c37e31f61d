# SPDX-License-Identifier: Apache-2.0
"""The target traced by another tool or stopped with SIGSTOP, and the profiler under job control."""

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

from faults.common import *  # noqa: F401,F403  (the shared target, recorder and checks)


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
            # Recording first: a stop and continue of a profiler still
            # loading (a sanitized one on a busy machine took seconds) go by
            # unnoticed, and the SIGINT after them found no handler yet.
            rec.wait_started()
            time.sleep(0.1)
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
