# SPDX-License-Identifier: Apache-2.0
"""Workload for test_aliasing.py: a program that repeats exactly every
PERIOD seconds of wall time.  Runs on 2.7 and 3.6+.

    fixture_periodic.py [--period SECONDS]

Each cycle starts at a multiple of the period (an absolute schedule, as a
timer-driven program's would): spin_a spins until half the period has
passed, spin_b until 0.8 of it, spin_c until its end (50/30/20).  The
deadlines are absolute: a function stalled past its deadline (the machine
was busy) returns at once, so the phase never drifts.  The split the test compares
with is what the fixture measured (wall time between entering and leaving
each function), not those figures.  Prints one JSON line when it starts;
reads commands on stdin from an idle thread: "report" answers with the
seconds spent in each function so far.
"""
import json
import os
import sys
import threading
import time

now = getattr(time, "perf_counter", time.time)
PERIOD = 0.01
PHASES = (("spin_a", 0.5), ("spin_b", 0.8), ("spin_c", 1.0))
spent = {"spin_a": 0.0, "spin_b": 0.0, "spin_c": 0.0}
lock = threading.Lock()


def spin_a(until):
    while now() < until: pass  # HOT spin_a


def spin_b(until):
    while now() < until: pass  # HOT spin_b


def spin_c(until):
    while now() < until: pass  # HOT spin_c


FUNCTIONS = {"spin_a": spin_a, "spin_b": spin_b, "spin_c": spin_c}


def commands():
    while True:
        line = sys.stdin.readline()
        if not line:
            os._exit(0)
        if line.strip() == "report":
            with lock:
                text = json.dumps({"spent": dict(spent)})
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def cycles(period):
    start = now()
    cycle = 0
    while True:
        base = start + cycle * period
        for name, end in PHASES:
            entered = now()
            FUNCTIONS[name](base + end * period)
            left = now()
            with lock:
                spent[name] += left - entered
        cycle += 1


def main():
    args = sys.argv[1:]
    period = float(args[args.index("--period") + 1]) if "--period" in args else PERIOD
    t = threading.Thread(target=commands, name="commands")
    t.daemon = True
    t.start()
    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    cycles(period)


main()
