#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Sampling that does not alias: `record` at the default 100 Hz of a program
that repeats exactly every 10 ms (the sampling period).

    test_aliasing.py --bin-dir DIR --interp NAME [--manifest PATH] [--seconds S]

fixture_periodic.py spends each 10 ms cycle in spin_a, spin_b and spin_c
(50/30/20 of it, on an absolute wall-clock schedule, measured by the fixture
itself). Recorded with `record -p PID -d 12` at the default rate, the sampled
shares must match the measured ones within 5 percentage points.

With intervals of 0.95-1.05 periods (pyflame before issue 11) the phase of
the samples within the cycle drifts by a random walk of about 3% of a period
per sample, so a recording sees a few phases many times: in a simulation 90%
of 12 s recordings were off by more than 5 points. With intervals uniform
over 0.5-1.5 periods every sample's phase is uniform and independent, the
shares are binomial: 1200 samples give a standard deviation of at most 1.4
points, 5 points is 3.5 of it. The test requires a number of spin samples
derived from the achieved rate (--stats-json), and 1000 at least, so that
the bound holds; fewer fail.

Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile

from pyflame_test import (DEFAULT_MANIFEST, PROFILER_TIMEOUT, READY_TIMEOUT, Failure, Target,
                          find_interpreter, log, main_wrapper, profiler_path, read_line, run)
from pyflame_test import parse_collapsed

HERE = os.path.dirname(os.path.abspath(__file__))
SPINS = ("spin_a", "spin_b", "spin_c")
TOLERANCE = 0.05
MIN_SAMPLES = 1000  # the binomial bound above needs this many


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--interp", required=True)
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    parser.add_argument("--seconds", type=float, default=12)
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    work = tempfile.mkdtemp(prefix="pyflame-aliasing-")
    try:
        out = os.path.join(work, "periodic.txt")
        stats_path = os.path.join(work, "stats.json")
        tmpdir = interp.temp_dir()
        fixture = os.path.join(tmpdir, "fixture_periodic.py")
        shutil.copyfile(os.path.join(HERE, "fixture_periodic.py"), fixture)
        os.chmod(tmpdir, 0o755)
        with Target(interp, [interp.inside_path(fixture)], tmpdir, stdout=subprocess.PIPE) as target:
            fd = target.proc.stdout.fileno()
            read_line(fd, target, READY_TIMEOUT, "periodic fixture")

            def report():
                target.proc.stdin.write(b"report\n")
                target.proc.stdin.flush()
                return json.loads(read_line(fd, target, READY_TIMEOUT, "report").decode())["spent"]

            before = report()
            result = run([profiler, "record", "-p", str(target.pid), "-d", str(args.seconds),
                          "-o", out, "--stats-json", stats_path],
                         PROFILER_TIMEOUT + args.seconds)
            after = report()
        if result.returncode != 0:
            raise Failure("record: %s" % result.describe())
        with open(stats_path) as f:
            stats = json.load(f)
        with open(out, encoding="utf-8") as f:
            stacks = parse_collapsed(f.read())
        counts = dict.fromkeys(SPINS, 0)
        for frames, count in stacks:
            function, filename, _ = frames[-1]
            if function in counts and filename.endswith("fixture_periodic.py"):
                counts[function] += count
        total = sum(counts.values())
        spent = {name: after[name] - before[name] for name in SPINS}
        measured_total = sum(spent.values())
        report_text = ", ".join("%s sampled %.1f%% measured %.1f%%"
                                % (name, 100.0 * counts[name] / max(total, 1),
                                   100.0 * spent[name] / measured_total) for name in SPINS)
        log("%d spin samples of %d ticks (%.1f/s asked %.0f/s, %d late): %s"
            % (total, stats["samples"], stats["achieved_rate"], stats["requested_rate"],
               stats["late"], report_text))
        # every good tick catches the spinning thread (the other one is idle)
        minimum = max(MIN_SAMPLES, 0.9 * (stats["samples"] - stats["errors"]))
        if total < minimum:
            raise Failure("only %d samples in the spin functions, expected %.0f" % (total, minimum))
        for name in SPINS:
            sampled = counts[name] / total
            measured = spent[name] / measured_total
            if abs(sampled - measured) > TOLERANCE:
                raise Failure("%s sampled %.1f%% but the workload measured %.1f%% (over 5 "
                              "points): the sampling locked onto the program's period\n%s"
                              % (name, 100 * sampled, 100 * measured, report_text))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
