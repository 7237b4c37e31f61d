#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a `top` sample costs next to a `record` sample (issue 16: top must
never cost more per sample than record). Run as root:

    scripts/bench.sh --top                       # or:
    test/bench/top_cost.py --bin-dir build/bin [--interp NAME ...] [--rounds N]

For each interpreter and stack workload (depth 10, 100, 500; one thread),
interleaved pairs of `record` and `top --interval` on the same process at the
highest rate, both `--mode wall` (no state reads: what is left is the walk
and what each command does with the sample). Each run's median time per
sample comes from its --stats-json (the timed span includes the consumer:
the profile's interning for record, the table's update for top). Prints a
markdown table of the medians over the pairs and the ratio top / record.
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

WORKLOADS = [("depth10", 10), ("depth100", 100), ("depth500", 500)]


def median_us(argv, stats, seconds):
    if os.path.exists(stats):
        os.unlink(stats)
    result = run_tool(argv, seconds + TOOL_GRACE)
    if result.returncode != 0 or not os.path.exists(stats):
        raise RuntimeError("%s failed\n%s" % (argv[1], result.describe()))
    with open(stats) as f:
        figures = json.load(f)
    return figures["sample_us_median"], figures["samples"] / max(figures["elapsed_seconds"], 1e-9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--manifest", default=pt.DEFAULT_MANIFEST)
    ap.add_argument("--interp", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    names = args.interp or ["pyenv-2.7.18", "pyenv-3.11.7", "sid-3.15"]
    out = ["| interpreter | workload | record µs/sample | top µs/sample | **top / record** (range) "
           "| record samples/s | top samples/s |", "|---|---|---|---|---|---|---|"]
    work = tempfile.mkdtemp(prefix="pyflame-topcost-")
    try:
        for name in names:
            interp = pt.find_interpreter(args.manifest, name)
            binary = pt.profiler_path(args.bin_dir, interp.minor)
            for workload, depth in WORKLOADS:
                with Workload(interp, ["--mode", "stack", "--depth", str(depth), "--threads", "1",
                                       "--blocked", "0"]) as wl:
                    stats = os.path.join(work, "stats.json")
                    common = ["-p", str(wl.pid), "-d", "%g" % args.seconds, "--rate", str(MAX_RATE),
                              "--mode", "wall", "--stats-json", stats]
                    record = [binary, "record"] + common + ["-o", os.devnull, "--no-status"]
                    top = [binary, "top"] + common + ["--interval", "1", "--rows", "5"]
                    pairs = []
                    for i in range(args.rounds):
                        order = (record, top) if i % 2 == 0 else (top, record)
                        got = {argv[1]: median_us(argv, stats, args.seconds) for argv in order}
                        pairs.append((got["record"], got["top"]))
                    ratios = [t[0] / r[0] for r, t in pairs]
                    rec_us = statistics.median(r[0] for r, _ in pairs)
                    top_us = statistics.median(t[0] for _, t in pairs)
                    out.append("| %s | %s | %.1f | %.1f | **%.2f** (%.2f-%.2f) | %.0f | %.0f |" % (
                        name, workload, rec_us, top_us, statistics.median(ratios), min(ratios),
                        max(ratios), statistics.median(r[1] for r, _ in pairs),
                        statistics.median(t[1] for _, t in pairs)))
                    print(out[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
