# SPDX-License-Identifier: Apache-2.0
"""Workload for test_record.py: a known split of CPU time between three
functions, measured by the workload itself.  Runs on 2.7 and 3.6+.

    fixture_record.py [--seconds S] [--exit-code N]

Rounds of spin_a, spin_b and spin_c doing 5, 3 and 2 units of the same
work (so about 50/30/20 of the time; the test compares with what is measured,
not with these figures), each spinning on one line (the HOT line named in the comment, which the test
finds by that comment).  Prints one JSON line "ready" when it starts; reads
commands on stdin from a helper thread (idle, so not in the profile):
"report" answers with the seconds spent in each function so far, "exit" ends
the process with --exit-code.  With --seconds it also ends by itself and
prints the report last.
"""
import json
import os
import sys
import threading
import time

now = getattr(time, "perf_counter", time.time)
# The split is measured in this thread's CPU time: a --blocking profiler
# stops the thread at each sample, and wall time would charge those stops to
# whichever function was stopped (2.7's time.clock is CPU time on Linux).
cpu_now = (getattr(time, "thread_time", None) or getattr(time, "process_time", None)
           or time.clock)
counter = getattr(__builtins__, "xrange", range)
spent = {"spin_a": 0.0, "spin_b": 0.0, "spin_c": 0.0}
lock = threading.Lock()
exit_code = [0]
stop = [False]


def spin_a(n):
    for _ in counter(n): pass  # HOT spin_a


def spin_b(n):
    for _ in counter(n): pass  # HOT spin_b


def spin_c(n):
    for _ in counter(n): pass  # HOT spin_c


def report():
    with lock:
        line = json.dumps({"spent": dict(spent), "pid": os.getpid()})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def commands():
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "exit":
            stop[0] = True
            return
        if line.strip() == "report":
            report()


def run_rounds(deadline):
    # Work, not deadlines: a function stalled by the scheduler must not end
    # early and shift the phase of the round (wall-clock spins lock onto the
    # sampling period that way).
    shares = (("spin_a", spin_a, 5), ("spin_b", spin_b, 3), ("spin_c", spin_c, 2))
    # A unit is 3000 iterations, 40-70 us (2.7-3.13, reference machine). A
    # nonblocking sample of a stack that moves within the few microseconds
    # of its two readings is read again (docs/how-it-works.md, "Short
    # calls"), which leans a profile away from calls not much longer than
    # that: with 1000-iteration units (spin_c about 25 us on 3.9) spin_a
    # took 51-53% for its 50% here and up to 66% on a slower machine. The
    # split is checked on calls well above that scale.
    unit = 3000
    while not stop[0] and (deadline is None or now() < deadline):
        for name, function, share in shares:
            start = cpu_now()
            function(unit * share)
            took = cpu_now() - start
            with lock:
                spent[name] += took


def main():
    args = sys.argv[1:]
    seconds = None
    if "--seconds" in args:
        seconds = float(args[args.index("--seconds") + 1])
    if "--exit-code" in args:
        exit_code[0] = int(args[args.index("--exit-code") + 1])
    if seconds is None:
        t = threading.Thread(target=commands, name="commands")
        t.daemon = True
        t.start()
    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    run_rounds(None if seconds is None else now() + seconds)
    report()
    sys.exit(exit_code[0])


main()
