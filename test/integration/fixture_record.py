"""Workload for test_record.py: a known split of CPU time between three
functions, measured by the workload itself.  Runs on 2.7 and 3.6+.

    fixture_record.py [--seconds S] [--exit-code N]

Rounds of spin_a (50%), spin_b (30%) and spin_c (20%) of the round's time,
each spinning on one line (the HOT line named in the comment, which the test
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
spent = {"spin_a": 0.0, "spin_b": 0.0, "spin_c": 0.0}
lock = threading.Lock()
exit_code = [0]
stop = [False]


def spin_a(seconds):
    end = now() + seconds
    while now() < end: pass  # HOT spin_a


def spin_b(seconds):
    end = now() + seconds
    while now() < end: pass  # HOT spin_b


def spin_c(seconds):
    end = now() + seconds
    while now() < end: pass  # HOT spin_c


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
    # A round of 2.3 ms: not a multiple of any sampling interval the test uses.
    shares = (("spin_a", spin_a, 0.5), ("spin_b", spin_b, 0.3), ("spin_c", spin_c, 0.2))
    round_seconds = 0.0023
    while not stop[0] and (deadline is None or now() < deadline):
        for name, function, share in shares:
            start = now()
            function(round_seconds * share)
            took = now() - start
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
