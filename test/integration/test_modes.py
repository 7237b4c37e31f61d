#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `--mode wall|cpu|gil` against one interpreter.

    test_modes.py --bin-dir DIR --interp NAME [--manifest PATH] [--blocking]

The target runs six threads whose states are known: the main thread blocked
reading stdin, three blocked on an event, one spinning in Python (it holds
the GIL but for the hand-overs) and one hashing a large buffer in C (without
the GIL on 3.x; 2.7 may keep it). It is recorded for 1 s at 200/s in each
mode (with --blocking when given it), and dumped in each mode:

- wall keeps every thread of every sample: the blocked ones are 4 of 6 of
  the thread samples (within 5 points), the spinning one 1 of 6;
- cpu keeps no blocked thread, and a busy one in at least half the samples
  (whichever holds the GIL runs; which one that is depends on whether this
  build's sha256 lets the GIL go: pyenv's 2.7 and 3.6 keep it);
- gil keeps at most one thread a sample, never a blocked one, and a busy
  one in at least half the samples (the spinning thread wants the GIL
  whenever the hashing one lets it go);
- dump shows all six threads by default and with --mode wall, no blocked
  thread with --mode cpu, at most one with --mode gil.

A free-threaded build (PEP 703) has no GIL: --mode gil keeps no thread and
says why, and dump --mode gil shows none. Its own case, parallel: sixteen
threads each spin in their own function, all at once; recorded with
--mode cpu, every thread's samples are in its own function only, and a
sample finds at least half of them runnable (with a GIL, the ones waiting
for it sleep: one or two a sample). The target's CPU time per second of
wall time is reported beside it.

Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from typing import Dict, List, Tuple

from pyflame_test import (DEFAULT_MANIFEST, PROFILER_TIMEOUT, TIMEOUT_SCALE, Cases, Failure,
                          Interpreter, Missing, Target, find_interpreter, log, main_wrapper,
                          parse_collapsed, profiler_path, run, start_python, stopped_tasks,
                          task_states, wait_for_syscall, READY_TIMEOUT)

# The fewest good samples the shares below are judged on; a count, not a
# rate (a loaded machine reaches fewer samples a second).
MIN_GOOD_SAMPLES = 10

MODES_CODE = r"""
import hashlib, sys, threading, time
event = threading.Event()
data = b"x" * (1 << 20)
def mode_blocked():
    event.wait()
def mode_spin():
    time.sleep(1)  # until the main thread is in its read (see start_target)
    x = 0
    while True:
        x += 1
def mode_hash():
    time.sleep(1)
    while True:
        hashlib.sha256(data).digest()
for kind in [mode_blocked] * 3 + [mode_spin, mode_hash]:
    t = threading.Thread(target=kind)
    t.daemon = True
    t.start()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
"""

THREADS = 6
BLOCKED = ("mode_blocked",)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def functions_of(frames) -> List[str]:
    return [f[0] for f in frames]


def classify(functions: List[str]) -> str:
    """Which of the fixture's threads a stack (function names) belongs to."""
    for name in ("mode_blocked", "mode_spin", "mode_hash"):
        if name in functions:
            return name
    return "main" if functions else "empty"


def start_target(interp: Interpreter) -> Target:
    target = start_python(interp, MODES_CODE)
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while len(task_states(target.pid)) < THREADS and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(len(task_states(target.pid)) >= THREADS,
           "the fixture has %d threads, expected %d" % (len(task_states(target.pid)), THREADS))
    # The busy threads start spinning a second after they start, when the
    # main thread is in its read: 2.7's GIL can keep a thread that wants it
    # waiting for a minute while two others spin (seen: no "ready" in 180 s).
    why = wait_for_syscall(target.pid, target.pid, "read", 0, READY_TIMEOUT)
    expect(not why, "the fixture's main thread never blocked reading stdin: %s" % why)
    # ... and then the busy ones run.
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while not any(s == "R" for tid, s in task_states(target.pid).items() if tid != target.pid):
        expect(time.monotonic() < deadline, "no thread of the fixture ever ran: %s"
               % task_states(target.pid))
        time.sleep(0.05)
    return target


def record(profiler: str, target: Target, work: str, mode: str,
           blocking: bool) -> Tuple[Dict[str, int], int, str]:
    """Records MODE for 1 s: (thread samples by fixture thread, good ticks, stderr)."""
    out = os.path.join(work, "modes-%s.txt" % mode)
    stats = os.path.join(work, "modes-%s.json" % mode)
    argv = [profiler, "record", "-p", str(target.pid), "-d", "1", "--rate", "200", "--mode", mode,
            "-o", out, "--stats-json", stats] + (["--blocking"] if blocking else [])
    result = run(argv, PROFILER_TIMEOUT)
    err = result.stderr.decode("utf-8", "replace")
    expect(result.returncode == 0, "--mode %s: exit %s\n%s" % (mode, result.returncode, err))
    expect(target.alive() and not stopped_tasks(target.pid),
           "--mode %s: the target died or was left stopped" % mode)
    with open(stats, encoding="utf-8") as f:
        figures = json.load(f)
    good = figures["samples"] - figures["errors"]
    expect(good >= MIN_GOOD_SAMPLES, "--mode %s: %d good samples, the shares need %d\n%s"
           % (mode, good, MIN_GOOD_SAMPLES, err))
    counts: Dict[str, int] = {}
    with open(out, encoding="utf-8") as f:
        for frames, n in parse_collapsed(f.read()):
            kind = classify(functions_of(frames))
            counts[kind] = counts.get(kind, 0) + n
    return counts, good, err


def share(counts: Dict[str, int], *kinds: str) -> float:
    total = sum(counts.values())
    return sum(counts.get(k, 0) for k in kinds) / float(total) if total else 0.0


def case_record(profiler: str, interp: Interpreter, work: str, blocking: bool) -> str:
    with start_target(interp) as target:
        seen = {mode: record(profiler, target, work, mode, blocking) for mode in ("wall", "cpu", "gil")}
    wall, _, err = seen["wall"]
    blocked = share(wall, "mode_blocked", "main")
    expect(abs(blocked - 4.0 / THREADS) <= 0.05 and abs(share(wall, "mode_spin") - 1.0 / THREADS) <= 0.05,
           "wall: blocked threads %.1f%% (expected %.1f), spinning %.1f%% (expected %.1f): %s\n%s"
           % (100 * blocked, 400.0 / THREADS, 100 * share(wall, "mode_spin"), 100.0 / THREADS, wall, err))
    cpu, good, err = seen["cpu"]
    expect(cpu.get("mode_blocked", 0) == 0 and cpu.get("main", 0) == 0,
           "cpu: a blocked thread was sampled: %s\n%s" % (cpu, err))
    busy = cpu.get("mode_spin", 0) + cpu.get("mode_hash", 0)
    expect(busy >= 0.5 * good, "cpu: %d busy thread samples in %d samples: %s\n%s"
           % (busy, good, cpu, err))
    gil, good, err = seen["gil"]
    if interp.free_threaded:
        expect(sum(gil.values()) == 0 and "free-threaded Python runs without" in err,
               "gil on a free-threaded build: %s, and no word of why\n%s" % (gil, err))
        return "thread samples by thread: %s" % {m: seen[m][0] for m in seen}
    expect(sum(gil.values()) <= good, "gil: %d thread samples in %d samples: more than one holder"
           % (sum(gil.values()), good))
    expect(gil.get("mode_blocked", 0) == 0 and gil.get("main", 0) == 0,
           "gil: a blocked thread held the GIL: %s\n%s" % (gil, err))
    busy = gil.get("mode_spin", 0) + gil.get("mode_hash", 0)
    expect(busy >= 0.5 * good, "gil: a busy thread held the GIL in %d of %d samples: %s\n%s"
           % (busy, good, gil, err))
    return "thread samples by thread: %s" % {m: seen[m][0] for m in seen}


def dumped(profiler: str, target: Target, *extra: str) -> List[str]:
    result = run([profiler, "dump", "-p", str(target.pid), "--json"] + list(extra))
    expect(result.returncode == 0, "dump %s: %s" % (" ".join(extra), result.describe()))
    threads = json.loads(result.stdout.decode("utf-8"))["threads"]
    return [classify([f["function"] for f in t["frames"]]) for t in threads]


def case_dump(profiler: str, interp: Interpreter, blocking: bool) -> str:
    extra = ["--blocking"] if blocking else []
    with start_target(interp) as target:
        every = dumped(profiler, target, *extra)
        wall = dumped(profiler, target, "--mode", "wall", *extra)
        cpu = dumped(profiler, target, "--mode", "cpu", *extra)
        gil = dumped(profiler, target, "--mode", "gil", *extra)
    expect(len(every) == THREADS and sorted(every) == sorted(wall),
           "dump: %s by default, %s with --mode wall; expected %d threads" % (every, wall, THREADS))
    expect(not any(k in ("mode_blocked", "main") for k in cpu), "dump --mode cpu: %s" % cpu)
    expect(len(gil) <= (0 if interp.free_threaded else 1) and
           not any(k in ("mode_blocked", "main") for k in gil), "dump --mode gil: %s" % gil)
    return "default %s; cpu %s; gil %s" % (sorted(every), sorted(cpu), gil)


PARALLEL_THREADS = 16
PARALLEL_SECONDS = 2
PARALLEL_CODE = r"""
import json, sys, threading
N = %(n)d
# One function per thread, each its own code object.
exec("".join("def ft_hot_%%d():\n    x = 0\n    while True:\n        x += 1\n" %% i
             for i in range(N)))
ids = {}
started = threading.Barrier(N + 1)
def worker(i):
    ids[threading.get_native_id()] = i
    started.wait()
    globals()["ft_hot_%%d" %% i]()
for i in range(N):
    threading.Thread(target=worker, args=(i,), daemon=True).start()
started.wait()
with open(%(info)r, "w") as f:
    json.dump({"gil": sys._is_gil_enabled(), "ids": ids}, f)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def case_parallel(profiler: str, interp: Interpreter, blocking: bool) -> str:
    tmp = interp.temp_dir()
    try:
        info_path = os.path.join(tmp, "parallel.json")
        code = PARALLEL_CODE % {"n": PARALLEL_THREADS, "info": interp.inside_path(info_path)}
        out = os.path.join(tmp, "parallel.txt")
        with start_python(interp, code) as target:
            with open(info_path, encoding="utf-8") as f:
                info = json.load(f)
            expect(info["gil"] is False, "the fixture runs with the GIL enabled: %s" % info)
            owner = {int(tid): i for tid, i in info["ids"].items()}
            cpu_before, wall_before = cpu_seconds(target.pid), time.monotonic()
            result = run([profiler, "record", "-p", str(target.pid), "-d", str(PARALLEL_SECONDS),
                          "--rate", "100", "--mode", "cpu", "--threads", "--format", "flamechart",
                          "-o", out] + (["--blocking"] if blocking else []), PROFILER_TIMEOUT)
            running = (cpu_seconds(target.pid) - cpu_before) / (time.monotonic() - wall_before)
            expect(result.returncode == 0 and target.alive() and not stopped_tasks(target.pid),
                   "record: %s" % result.describe())
        per_sample: Dict[str, int] = {}
        per_thread: Dict[int, Dict[str, int]] = {}
        with open(out, encoding="utf-8") as f:
            for line in f:
                at, _, stack = line.rstrip("\n").partition(" ")
                labels = stack.split(";")
                m = re.match(r"thread '.*' \(tid (\d+)\)$", labels[0])
                expect(m is not None, "no thread frame in %r" % line)
                tid = int(m.group(1))
                per_sample[at] = per_sample.get(at, 0) + 1
                hot = [l.split(" ")[0] for l in labels[1:] if l.startswith("ft_hot_")]
                counts = per_thread.setdefault(tid, {})
                for name in hot or ["(none)"]:
                    counts[name] = counts.get(name, 0) + 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    expect(len(per_sample) >= MIN_GOOD_SAMPLES, "%d samples kept a running thread, the check "
           "needs %d\n%s" % (len(per_sample), MIN_GOOD_SAMPLES, result.describe()))
    wrong = {tid: counts for tid, counts in per_thread.items()
             if tid not in owner or set(counts) != {"ft_hot_%d" % owner[tid]}}
    expect(not wrong, "samples outside their thread's own function (tid: counts): %s; threads: %s"
           % (wrong, owner))
    threads_per_sample = sum(per_sample.values()) / float(len(per_sample))
    # Spinning threads are always runnable (R) when nothing serialises
    # them, whatever the machine's load; waiting for a GIL they would sleep.
    expect(threads_per_sample >= PARALLEL_THREADS / 2.0,
           "%.2f runnable threads a sample of %d spinning ones (the target used %.2f CPUs)"
           % (threads_per_sample, PARALLEL_THREADS, running))
    return ("%d threads, each sampled only in its own function (%d of %d seen); %.2f running a "
            "sample, the target used %.2f CPUs" % (PARALLEL_THREADS, len(per_thread),
                                                   PARALLEL_THREADS, threads_per_sample, running))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--interp", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--blocking", action="store_true")
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    log("modes on %s%s" % (interp.name, " with --blocking" if args.blocking else ""))
    work = tempfile.mkdtemp(prefix="pyflame-modes-")
    cases = Cases()
    try:
        cases.run("record", lambda: case_record(profiler, interp, work, args.blocking))
        cases.run("dump", lambda: case_dump(profiler, interp, args.blocking))
        if interp.free_threaded:
            cases.run("parallel", lambda: case_parallel(profiler, interp, args.blocking))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    main_wrapper(main)
