# SPDX-License-Identifier: Apache-2.0
# -*- coding: ascii -*-
"""Benchmark workloads for pyflame (see docs/benchmarks.md).

Runs unchanged on Python 2.7 and 3.6 ... 3.15: keep this file ASCII, without
f-strings or other post-2.7 syntax.  Every mode writes ONE line of JSON (the
readiness signal) to the file descriptor given by --fd once its stacks are in
place, then, for the measuring modes, one line per window of --window
seconds, and runs until it is killed (it starts no thread of its own beyond
the workload's, so that the thread counts are exact).

Modes:
  stack       --threads T threads, each DEPTH frames deep (counted from the
              thread's outermost frame), spinning on the CPU in the innermost
              frame.  T=1 is the main thread alone.  With --blocked B, B of
              them (never the main thread) wait on an event that is never
              set instead of spinning: the idle threads of a thread pool.
              With --leaf native the main thread spins in C instead, in
              native_ext.spin() (test/integration/native_ext, built beside
              this file by the harness): a native tail for --native.
  throughput  a CPU-bound pure-Python loop at depth --depth; each window line
              is "CLOCK ITERATIONS CPU": the clock at the end of the window,
              the iterations done in it and the process CPU seconds it used,
              so that the harness can compare throughput with and without a
              profiler attached.
  split       three functions, part_a, part_b and part_c, given work in the
              ratio 50:30:20; each window line is "CLOCK TA TB TC", the
              cumulative wall seconds spent inside each, measured here.
  varied      under --depth frames, walks 64 paths (6 levels, two functions a
              level, the path chosen by a counter), spinning briefly at each
              leaf: a program with a few hundred distinct stacks (leaf paths,
              their lines, the calls between levels), all of them seen within
              the first tens of thousands of samples, after which its profile
              stops growing.

The clock is time.monotonic where it exists (3.3+), else time.time; the
readiness line names it, so the harness reads the same clock.
"""
from __future__ import print_function

import json
import os
import sys
import threading
import time

CLOCK_NAME = "monotonic" if hasattr(time, "monotonic") else "time"
clock = getattr(time, CLOCK_NAME)
# Process CPU time: time.process_time (3.3+), time.clock on 2.7 (CPU time on Linux).
cpu_clock = getattr(time, "process_time", None) or getattr(time, "clock")
START_TIMEOUT = 60.0


def parse_args(argv):
    # argparse exists everywhere, but this keeps 2.7's and 3.15's behaviour identical.
    opts = {"mode": "stack", "depth": 10, "threads": 1, "blocked": 0, "window": 0.1,
            "fd": None, "leaf": "python"}
    i = 0
    while i < len(argv):
        key = argv[i].lstrip("-")
        if key not in opts or i + 1 >= len(argv):
            sys.exit("workload.py: bad argument %r" % argv[i])
        value = argv[i + 1]
        if key in ("mode", "leaf"):
            opts[key] = value
        else:
            opts[key] = float(value) if key == "window" else int(value)
        i += 2
    if opts["fd"] is None:
        sys.exit("workload.py: --fd is required")
    return opts


def frame_depth():
    """Frames of the calling thread, the caller's included."""
    n = 0
    f = sys._getframe(1)
    while f is not None:
        n += 1
        f = f.f_back
    return n


class Channel(object):
    def __init__(self, fd):
        self.fd = fd

    def send(self, line):
        data = (line + "\n").encode("ascii")
        while data:
            data = data[os.write(self.fd, data):]


# ------------------------------------------------------------------- stack


class Arrivals(object):
    def __init__(self, expected):
        self.expected = expected
        self.lock = threading.Lock()
        self.depths = []
        self.all_here = threading.Event()

    def arrive(self, depth):
        with self.lock:
            self.depths.append(depth)
            if len(self.depths) == self.expected:
                self.all_here.set()


def descend(levels, leaf, arg):
    if levels > 0:
        return descend(levels - 1, leaf, arg)
    return leaf(arg)


def spin_leaf(arrivals):
    arrivals.arrive(frame_depth())
    x = 0
    while True:
        x += 1


def wait_leaf(arrivals):
    arrivals.arrive(frame_depth())
    never = threading.Event()
    while True:
        never.wait()


def stack_thread(depth, arrivals, leaf):
    # This frame, descend() frames, the leaf: depth in all from the thread's
    # outermost frame (the caller's frames are counted in base).
    base = frame_depth()
    descend(depth - base - 2, leaf, arrivals)


def main_leaf(ctx):
    depth_here = frame_depth()
    arrivals, channel, threads, depth, blocked, leaf = ctx
    native_ext = __import__("native_ext") if leaf == "native" else None
    deadline = clock() + START_TIMEOUT
    while not arrivals.all_here.is_set():
        if clock() > deadline:
            sys.exit("workload.py: threads did not reach their depth")
        arrivals.all_here.wait(0.05)
    channel.send(json.dumps({"mode": "stack", "pid": os.getpid(), "clock": CLOCK_NAME,
                             "threads": threads, "blocked": blocked, "depth": depth,
                             "depths": sorted(arrivals.depths + [depth_here])}))
    if native_ext is not None:
        native_ext.spin()  # never returns
    x = 0
    while True:
        x += 1


def run_stack(opts, channel):
    threads, depth, blocked = opts["threads"], opts["depth"], opts["blocked"]
    if not 0 <= blocked < threads:
        sys.exit("workload.py: --blocked must leave the main thread spinning")
    arrivals = Arrivals(threads - 1)
    if threads == 1:
        arrivals.all_here.set()
    for i in range(threads - 1):
        waits = i >= threads - 1 - blocked
        t = threading.Thread(target=stack_thread,
                             args=(depth, arrivals, wait_leaf if waits else spin_leaf),
                             name="%s-%d" % ("wait" if waits else "spin", i))
        t.daemon = True
        t.start()
    base = frame_depth()
    descend(depth - base - 2, main_leaf, (arrivals, channel, threads, depth, blocked, opts["leaf"]))


# -------------------------------------------------------------- throughput


def cpu_loop(channel, window):
    """The measured loop: batches of arithmetic, the clock read per batch."""
    batch = 2000
    x = 1
    count = 0
    window_end = clock() + window
    cpu_start = cpu_clock()
    while True:
        for _ in range(batch):
            x = (x * 1103515245 + 12345) & 0x7fffffff
        count += batch
        now = clock()
        if now >= window_end:
            cpu_now = cpu_clock()
            channel.send("%.6f %d %.6f" % (now, count, cpu_now - cpu_start))
            count = 0
            cpu_start = cpu_now
            window_end = now + window


def throughput_leaf(ctx):
    channel, opts = ctx
    channel.send(json.dumps({"mode": "throughput", "pid": os.getpid(), "clock": CLOCK_NAME,
                             "depth": frame_depth() + 1, "window": opts["window"]}))
    cpu_loop(channel, opts["window"])


def run_throughput(opts, channel):
    base = frame_depth()
    descend(max(0, opts["depth"] - base - 3), throughput_leaf, (channel, opts))


# ------------------------------------------------------------------- split


# The three functions have the same body, so that their work per iteration
# is the same; only the iteration counts differ (5:3:2).
def part_a(n):
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7fffffff
    return x


def part_b(n):
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7fffffff
    return x


def part_c(n):
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7fffffff
    return x


def split_loop(channel, window):
    unit = 2000  # iterations per share point: a round is ~10 ms of work
    spent = [0.0, 0.0, 0.0]
    parts = [(part_a, 5 * unit), (part_b, 3 * unit), (part_c, 2 * unit)]
    window_end = clock() + window
    while True:
        for i, (function, n) in enumerate(parts):
            t0 = clock()
            function(n)
            spent[i] += clock() - t0
        now = clock()
        if now >= window_end:
            channel.send("%.6f %.6f %.6f %.6f" % (now, spent[0], spent[1], spent[2]))
            window_end = now + window


def run_split(opts, channel):
    channel.send(json.dumps({"mode": "split", "pid": os.getpid(), "clock": CLOCK_NAME,
                             "functions": ["part_a", "part_b", "part_c"],
                             "intended": [0.5, 0.3, 0.2], "window": opts["window"]}))
    split_loop(channel, opts["window"])


# ------------------------------------------------------------------ varied

LEVELS = 6


def make_tree():
    """Two functions per level; level L's pair call level L+1's pair."""
    source = []
    for level in range(LEVELS):
        for side in (0, 1):
            source.append("def v%d_%d(path, table):\n" % (level, side))
            if level + 1 < LEVELS:
                source.append("    return table[%d][(path >> %d) & 1](path, table)\n"
                              % (level + 1, level + 1))
            else:
                source.append("    x = 0\n    for _ in range(200):\n        x += 1\n"
                              "    return x\n")
    namespace = {}
    exec(compile("".join(source), "<varied>", "exec"), namespace)
    return [[namespace["v%d_%d" % (level, side)] for side in (0, 1)] for level in range(LEVELS)]


def varied_leaf(ctx):
    channel, table = ctx
    channel.send(json.dumps({"mode": "varied", "pid": os.getpid(), "clock": CLOCK_NAME,
                             "leaf_paths": 2 ** LEVELS, "depth": frame_depth() + LEVELS}))
    path = 0
    while True:
        table[0][path & 1](path, table)
        path = (path + 1) % (2 ** LEVELS)


def run_varied(opts, channel):
    # Under a fixed prefix of --depth frames, so that stacks are realistic.
    base = frame_depth()
    descend(max(0, opts["depth"] - base - 2), varied_leaf, (channel, make_tree()))


def main():
    opts = parse_args(sys.argv[1:])
    channel = Channel(opts["fd"])
    runner = {"stack": run_stack, "throughput": run_throughput, "split": run_split,
              "varied": run_varied}.get(opts["mode"])
    if runner is None:
        sys.exit("workload.py: unknown mode %r" % opts["mode"])
    if opts["mode"] == "stack" and opts["depth"] > 900:
        sys.setrecursionlimit(opts["depth"] + 100)
    try:
        runner(opts, channel)
    except (OSError, IOError):  # the harness closed the pipe: done
        os._exit(0)


if __name__ == "__main__":
    main()
