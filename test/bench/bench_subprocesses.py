#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What `record --subprocesses` costs on a busy process tree (issue 17: 16
worker processes at 100 Hz each, goal under 10% of one core). Run as root:

    scripts/bench.sh --subprocesses              # or:
    test/bench/bench_subprocesses.py --bin-dir build/bin [--workers 16] [--seconds 5]
                                     [--rate 100] [--rounds 3]

Workloads (test/integration/fixture_subprocesses.py, every worker busy on
the wall clock, the parent waiting):

- pool: a 3.11 parent (pyenv-3.11.7) with a fork multiprocessing.Pool of
  --workers workers, all read by pyflame3.11 itself;
- mixed: the same parent with --workers `subprocess` children, half 3.11
  and half 3.12 (pyenv-3.12.1): the 3.12 ones are read by a sibling
  pyflame3.12 that streams its samples back.

Each is recorded attached, `pyflame3.11 record --subprocesses -p PID --rate RATE
-d SECONDS -o FILE.txt`, --rounds times. The profiler's CPU time is its own
and its children's (the siblings): the larger of what wait4() reports for
it (itself and the children it reaped) and what /proc said of it and its
descendants at the last poll (every 20 ms) before it exited. Printed as a
percentage of one core over the run's wall time, with the process samples
per second the profile holds (the sum of its counts over the wall time;
16 busy workers at 100 Hz: about 1600). If py-spy is installed, `py-spy
record --subprocesses -r RATE -d SECONDS -p PID -o /dev/null --nonblocking`
on the same workload is measured the same way and printed beside it; if not,
the table says so.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import pyflame_test as pt  # noqa: E402

FIXTURE = os.path.join(HERE, "..", "integration", "fixture_subprocesses.py")
PARENT = "pyenv-3.11.7"
OTHER = "pyenv-3.12.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL = 0.02
GRACE = 30.0


def proc_cpu(pid, children=False):
    """utime+stime of PID in seconds (plus cutime+cstime: its reaped
    children), or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    # Fields 14-17 (utime, stime, cutime, cstime); fields[0] is field 3.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


class Run:
    def __init__(self, argv, returncode, wall, cpu_wait4, cpu_polled, stderr):
        self.argv, self.returncode, self.wall = argv, returncode, wall
        self.cpu_wait4, self.cpu_polled, self.stderr = cpu_wait4, cpu_polled, stderr

    @property
    def cpu(self):
        return max(self.cpu_wait4, self.cpu_polled)

    @property
    def core_percent(self):
        return 100.0 * self.cpu / self.wall


def measure(argv, timeout):
    """Runs ARGV, polling /proc for it and its descendants until it exits."""
    err = tempfile.TemporaryFile()
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err, start_new_session=True)
    last = {}  # pid -> CPU seconds at the last poll (the profiler: with its reaped children)
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() - start > timeout:
            os.killpg(proc.pid, 9)
            _, status, rusage = os.wait4(proc.pid, 0)
            break
        seen = {proc.pid: proc_cpu(proc.pid, children=True)}
        for child in pt.descendants(proc.pid)[1:]:
            seen[child] = proc_cpu(child)
        for child, cpu in seen.items():
            if cpu is not None:
                last[child] = cpu
        # A child the profiler reaped counts in its cutime from then on.
        for child in list(last):
            if child != proc.pid and child not in seen:
                del last[child]
        time.sleep(POLL)
    wall = time.monotonic() - start
    err.seek(0)
    return Run(argv, os.waitstatus_to_exitcode(status), wall,
               rusage.ru_utime + rusage.ru_stime, sum(last.values()),
               err.read().decode("utf-8", "replace"))


def profile_samples(path):
    """The process samples a collapsed profile holds, and its processes."""
    total, processes = 0, set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            total += int(count)
            root = stack.split(";", 1)[0]
            if root.startswith("process "):
                processes.add(root.split(":", 1)[0])
    return total, len(processes)


class Workload:
    """The fixture, started under the 3.11 parent; killed (its process
    group) on close."""

    def __init__(self, interp, args):
        self.target = pt.Target(interp, [FIXTURE] + list(args), "", stdout=subprocess.PIPE)
        line = pt.read_line(self.target.proc.stdout.fileno(), self.target, 120, "workload")
        self.ready = json.loads(line.decode("ascii").splitlines()[0])
        self.pid = self.target.pid

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.target.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--manifest", default=pt.DEFAULT_MANIFEST)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    parent = pt.find_interpreter(args.manifest, PARENT)
    binary = pt.profiler_path(args.bin_dir, parent.minor)
    other = pt.find_interpreter(args.manifest, OTHER)
    pt.profiler_path(args.bin_dir, other.minor)
    pyspy = shutil.which("py-spy")
    burn = "%g" % (args.seconds * (args.rounds * (2 if pyspy else 1)) + 60)
    half = args.workers // 2
    workloads = [
        ("pool: %d x 3.11 (fork)" % args.workers,
         ["pool", "--start-method", "fork", "--workers", str(args.workers), "--seconds", burn]),
        ("mixed: %d x 3.11 + %d x 3.12" % (args.workers - half, half),
         ["versions", "--role", "pool", "--seconds", burn]
         + sum((["--python", parent.python] for _ in range(args.workers - half)), [])
         + sum((["--python", other.python] for _ in range(half)), [])),
    ]
    work = tempfile.mkdtemp(prefix="pyflame-bench-subprocesses-")
    rows, figures = [], []
    header = ("| workload | tool | CPU, % of one core (median, range) | CPU s | wall s "
              "| process samples/s | processes |")
    print("%d workers, %g Hz, %g s, %d rounds; load average %s"
          % (args.workers, args.rate, args.seconds, args.rounds,
             " ".join("%.2f" % x for x in os.getloadavg())), flush=True)
    try:
        for name, scenario in workloads:
            with Workload(parent, scenario) as wl:
                time.sleep(0.5)  # the workers settle into their loops
                runs = {"pyflame": [], "py-spy": []}
                for _ in range(args.rounds):
                    out = os.path.join(work, "profile.txt")
                    stats = os.path.join(work, "stats.json")
                    argv = [binary, "record", "--subprocesses", "-p", str(wl.pid),
                            "--rate", str(args.rate), "-d", "%g" % args.seconds, "-o", out,
                            "--stats-json", stats, "--no-status"]
                    run = measure(argv, args.seconds + GRACE)
                    if run.returncode != 0:
                        raise SystemExit("pyflame failed (exit %s):\n%s"
                                         % (run.returncode, run.stderr))
                    run.samples, run.processes = profile_samples(out)
                    runs["pyflame"].append(run)
                    if pyspy:
                        argv = [pyspy, "record", "--subprocesses", "--nonblocking",
                                "-r", str(args.rate), "-d", "%g" % args.seconds,
                                "-p", str(wl.pid), "-o", os.devnull]
                        run = measure(argv, args.seconds + GRACE)
                        run.samples, run.processes = None, None
                        runs["py-spy"].append(run)
                for tool, done in runs.items():
                    if not done:
                        rows.append("| %s | %s | not available (py-spy is not installed) "
                                    "| | | | |" % (name, tool))
                        print(rows[-1], flush=True)
                        continue
                    failed = [r for r in done if r.returncode != 0]
                    if failed:
                        rows.append("| %s | %s | failed: exit %s | | | | |"
                                    % (name, tool, failed[0].returncode))
                        print(rows[-1], failed[0].stderr[-500:], flush=True)
                        continue
                    percents = [r.core_percent for r in done]
                    rates = [r.samples / r.wall for r in done if r.samples is not None]
                    rows.append("| %s | %s | **%.1f%%** (%.1f-%.1f) | %.2f | %.2f | %s | %s |" % (
                        name, tool, statistics.median(percents), min(percents), max(percents),
                        statistics.median(r.cpu for r in done),
                        statistics.median(r.wall for r in done),
                        "%.0f" % statistics.median(rates) if rates else "-",
                        max(r.processes for r in done) if rates else "-"))
                    print(rows[-1], flush=True)
                    figures.append({"workload": name, "tool": tool,
                                    "core_percent": percents,
                                    "cpu_seconds": [r.cpu for r in done],
                                    "cpu_wait4": [r.cpu_wait4 for r in done],
                                    "cpu_polled": [r.cpu_polled for r in done],
                                    "wall_seconds": [r.wall for r in done],
                                    "samples_per_second": rates})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(header)
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workers": args.workers, "rate": args.rate, "seconds": args.seconds,
                       "figures": figures}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
