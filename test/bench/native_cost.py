#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a `--native` sample costs next to a `--blocking` one, and how many
stacks it merged (issue 14). Run as root:

    scripts/bench.sh --native                    # or:
    test/bench/native_cost.py --bin-dir build/bin [--interp NAME ...] [--rounds N]

For each interpreter: one thread 100 Python frames deep whose innermost
frame spins in C (native_ext.spin(), the test suite's extension built
against the interpreter's headers), recorded at the highest rate in
interleaved pairs of `record --blocking` and `record --native` (both
`--mode wall`: every sample stops the threads; what --native adds is the
register read, the stack copy, the unwind and the merge). Each run's median
time per sample comes from its --stats-json; the merge counts too. Prints a
markdown table: the medians over the pairs, the ratio native / blocking,
and the share of thread stacks not merged (the goal: under 1%).

The peer the issue names, Austin's `austinp`, is not in Debian's `austin`
package (it ships `austin` alone), so no peer is measured here.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import pyflame_test as pt  # noqa: E402
from harness import MAX_RATE, TOOL_GRACE, Workload, run_tool  # noqa: E402
from test_native import build_extension  # noqa: E402

DEPTH = 100


def record(argv, stats, seconds):
    if os.path.exists(stats):
        os.unlink(stats)
    result = run_tool(argv, seconds + TOOL_GRACE)
    if result.returncode != 0 or not os.path.exists(stats):
        raise RuntimeError("%s failed\n%s" % (" ".join(argv), result.describe()))
    with open(stats) as f:
        return json.load(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--manifest", default=pt.DEFAULT_MANIFEST)
    ap.add_argument("--interp", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    names = args.interp or ["pyenv-2.7.18", "pyenv-3.11.7", "debian12-3.11", "sid-3.15"]
    out = ["| interpreter | --blocking µs/sample | --native µs/sample | **native / blocking** (range) "
           "| --native samples/s | not merged | cut short |", "|---|---|---|---|---|---|---|"]
    work = tempfile.mkdtemp(prefix="pyflame-nativecost-")
    try:
        for name in names:
            interp = pt.find_interpreter(args.manifest, name)
            binary = pt.profiler_path(args.bin_dir, interp.minor)
            with Workload(interp, ["--mode", "stack", "--depth", str(DEPTH), "--threads", "1",
                                   "--blocked", "0", "--leaf", "native"],
                          prepare=lambda d, i=interp: build_extension(i, d)) as wl:
                stats = os.path.join(work, "stats.json")
                common = [binary, "record", "-p", str(wl.pid), "-d", "%g" % args.seconds,
                          "--rate", str(MAX_RATE), "--mode", "wall", "--stats-json", stats,
                          "-o", os.devnull, "--no-status"]
                blocking, native = common + ["--blocking"], common + ["--native"]
                pairs = []
                merged = not_merged = cut_short = 0
                for i in range(args.rounds):
                    order = (blocking, native) if i % 2 == 0 else (native, blocking)
                    got = {}
                    for argv in order:
                        got[argv[-1]] = record(argv, stats, args.seconds)
                    n = got["--native"]
                    merged += n["native_merged"]
                    not_merged += n["native_not_merged"]
                    cut_short += n["native_cut_short"]
                    pairs.append((got["--blocking"], n))
                ratios = [n["sample_us_median"] / b["sample_us_median"] for b, n in pairs]
                all_stacks = max(merged + not_merged + cut_short, 1)
                out.append("| %s | %.1f | %.1f | **%.2f** (%.2f-%.2f) | %.0f | %.2f%% | %.2f%% |" % (
                    name, statistics.median(b["sample_us_median"] for b, _ in pairs),
                    statistics.median(n["sample_us_median"] for _, n in pairs),
                    statistics.median(ratios), min(ratios), max(ratios),
                    statistics.median(n["achieved_rate"] for _, n in pairs),
                    100.0 * not_merged / all_stacks, 100.0 * cut_short / all_stacks))
                print(out[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
