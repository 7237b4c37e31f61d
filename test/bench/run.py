#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""pyflame's benchmark: cost per sample, highest rate, overhead on the target,
profiler cost, peak RSS and accuracy, with the peers measured in the same run
(CPython 3.15's `profiling.sampling`, "Tachyon", and Debian's Austin).

See docs/benchmarks.md for what each figure means and how it is measured.
Usually run through scripts/bench.sh, which builds what this needs.

Runs under the host's python3 (3.9+); standard library only. Needs root (the
profilers read other processes; peers in chroots need a mount namespace).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pyflame_test as pt  # noqa: E402  (manifest rows, the interpreters' environment)

WORKLOAD = os.path.join(HERE, "workload.py")
DEFAULT_SET = ["pyenv-2.7.18", "pyenv-3.8.18", "pyenv-3.11.7", "pyenv-3.12.1",
               "pyenv-3.13.0", "sid-3.14", "sid-3.15"]
STACK_WORKLOADS = [  # name, depth, threads, of which blocked (never the main thread)
    ("depth10", 10, 1, 0), ("depth100", 100, 1, 0), ("depth500", 500, 1, 0),
    ("threads1", 30, 1, 0), ("threads8", 30, 8, 0), ("threads64", 30, 64, 0),
    ("mixed8", 30, 8, 6), ("mixed64", 30, 64, 60),
]
MAX_RATE = 1000000  # asked for "far more than possible" (both CLIs accept it)
OVERHEAD_RATES = [100, 1000, 10000]
READY_TIMEOUT = 120.0
TOOL_GRACE = 30.0
SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
NO_FRAMES = "<no Python frames>"  # pyflame's line for a thread without a Python frame
CHURN_MINORS = ("3.11", "3.15")  # the churn step's interpreters (3.15: with Tachyon)
AUSTIN_MAX_MINOR = (3, 10)  # Austin 1.0.1 reads 2.7-3.10 (lines are wrong from 3.8)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------- tools


class ToolRun:
    """A finished profiler process: exit status, output, wall time, rusage."""

    def __init__(self, argv, returncode, stdout, stderr, start, end, rusage, hwm_kb):
        self.argv, self.returncode = argv, returncode
        self.stdout, self.stderr = stdout, stderr
        self.start, self.end = start, end
        self.rusage = rusage
        self.hwm_kb = hwm_kb  # polled every 5 ms while it ran

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def cpu(self) -> float:
        return self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else float("nan")

    @property
    def max_rss_kb(self) -> int:
        return self.hwm_kb

    def describe(self) -> str:
        return "$ %s\nexit %s\nstdout: %s\nstderr: %s" % (
            " ".join(self.argv), self.returncode, pt.clip(self.stdout, 1500),
            pt.clip(self.stderr, 1500))


def run_tool(argv: Sequence[str], timeout: float, interrupt_after: Optional[float] = None,
             env: Optional[Dict[str, str]] = None) -> ToolRun:
    """Runs ARGV, reaping it with wait4 to get its own CPU time and peak RSS.

    INTERRUPT_AFTER: send SIGINT after that many seconds (tools without a
    duration option stop and write their output on SIGINT)."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            env=env, start_new_session=True)
    rusage = None
    status = None
    interrupted = False
    deadline = start + timeout
    hwm_kb = 0
    while True:
        hwm_kb = max(hwm_kb, vm_hwm_kb(proc.pid))
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            status, rusage = st, ru
            break
        now = time.monotonic()
        if interrupt_after is not None and not interrupted and now - start >= interrupt_after:
            os.kill(proc.pid, signal.SIGINT)
            interrupted = True
        if now > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, st, ru = os.wait4(proc.pid, 0)
            status, rusage = None, ru
            break
        time.sleep(0.005)
    end = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status) if status is not None else -9
    out.seek(0)
    err.seek(0)
    return ToolRun(list(argv), proc.returncode if status is not None else None,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                   start, end, rusage, hwm_kb)


def vm_hwm_kb(pid: int) -> int:
    """Peak RSS of PID's current program (VmHWM), 0 once it has exited.

    Not getrusage's ru_maxrss: that survives fork and exec, so a profiler
    started from this (large) Python process would report this process's
    RSS as its own peak."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# --------------------------------------------------------------- workloads


class OwnMounts:
    """INTERP, whose processes start (when it lives in a chroot) in a mount
    namespace of their own with /proc mounted inside the chroot, so that a
    peer joining that namespace and chroot reads the target's
    /proc/PID/maps with the paths the target sees. Everything but command()
    is INTERP's: it stands in for the interpreter where a target class (as
    test_churn.py's ChurnFixture) builds its command from one."""

    def __init__(self, interp: pt.Interpreter):
        self._interp = interp

    def __getattr__(self, name):
        return getattr(self._interp, name)

    def command(self, args: Sequence[str]) -> List[str]:
        interp = self._interp
        if not interp.chrooted:
            return interp.command(args)
        # unshare and chroot exec: the pid is the interpreter's.
        return [shutil.which("unshare", path=SBIN_PATH) or "unshare", "--mount",
                "--propagation", "private", "sh", "-c",
                'mount -t proc proc "$0/proc" && c=$1 && shift && exec "$c" "$0" "$@"',
                interp.root,
                shutil.which("chroot", path=SBIN_PATH) or "chroot",
                interp.python] + list(args)


class Workload:
    """workload.py under one interpreter: started, ready, its lines collected.

    Targets in a chroot are started in a mount namespace of their own with
    /proc mounted inside the chroot: CPython's own profiler, run inside the
    same chroot and namespace, finds the target's files through
    /proc/PID/maps, which is only useful when reader and target share mounts.
    """

    def __init__(self, interp: pt.Interpreter, args: Sequence[str]):
        self.interp = interp
        self.tmpdir = interp.temp_dir()
        os.chmod(self.tmpdir, 0o755)
        script = os.path.join(self.tmpdir, "workload.py")
        shutil.copyfile(WORKLOAD, script)
        rfd, wfd = os.pipe()
        self.rfd = rfd
        argv = OwnMounts(interp).command([interp.inside_path(script), "--fd", str(wfd)]
                                         + list(args))
        env = interp.environment()
        env["PATH"] = SBIN_PATH
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     pass_fds=(wfd,), cwd="/", start_new_session=True)
        os.close(wfd)
        self.pid = self.proc.pid
        self.lines: List[List[float]] = []
        self.lock = threading.Lock()
        self.ready = self._read_ready()
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()

    def _read_ready(self) -> dict:
        buf = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise RuntimeError("workload under %s: not ready in %.0fs"
                                   % (self.interp.name, READY_TIMEOUT))
            r, _, _ = select.select([self.rfd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(self.rfd, 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode("utf-8", "replace")
                    self.close()
                    raise RuntimeError("workload under %s exited: %s" % (self.interp.name, err))
                buf += chunk
        line, _, self._rest = buf.partition(b"\n")
        return json.loads(line.decode("ascii"))

    def _collect(self) -> None:
        buf = self._rest
        while True:
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                try:
                    values = [float(v) for v in line.split()]
                except ValueError:
                    continue
                with self.lock:
                    self.lines.append(values)
            try:
                chunk = os.read(self.rfd, 65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk

    def clock(self) -> float:
        return time.monotonic() if self.ready.get("clock") == "monotonic" else time.time()

    def lines_between(self, t0: float, t1: float) -> List[List[float]]:
        with self.lock:
            return [v for v in self.lines if t0 <= v[0] <= t1]

    def wait_lines_until(self, t: float, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.lines and self.lines[-1][0] >= t:
                    return
            time.sleep(0.02)

    def close(self) -> None:
        pt.kill_group(self.proc)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("WARNING: workload %d did not die" % self.pid)
        try:
            os.close(self.rfd)
        except OSError:
            pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- profilers


def parse_collapsed_counts(text: str) -> List[tuple]:
    """[(stack, count)] from collapsed text ("a;b;c COUNT" lines)."""
    rows = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            rows.append((stack, int(count)))
    return rows


class Pyflame:
    name = "pyflame"

    def __init__(self, binary: str, name: str = "pyflame"):
        self.binary = binary
        self.name = name

    def record(self, wl: Workload, seconds: float, rate: float, blocking: bool,
               outdir: str, fmt: str = "collapsed", idle: bool = True) -> dict:
        # --idle: wall-clock sampling of every thread, as Tachyon (-a, wall
        # mode) and Austin sample by default; without it (idle=False, the
        # default mode) pyflame also tells idle threads from running ones
        # by their /proc state, which default_vs_idle() prices.
        out = os.path.join(outdir, "pyflame.out")
        stats = os.path.join(outdir, "pyflame-stats.json")
        for path in (out, stats):
            if os.path.exists(path):
                os.unlink(path)
        argv = [self.binary, "record", "-p", str(wl.pid), "-d", "%g" % seconds,
                "--rate", "%g" % rate, "-o", out, "--format", fmt, "--stats-json", stats,
                "--no-status"] + (["--idle"] if idle else [])
        if blocking:
            argv.append("--blocking")
        t0 = wl.clock()
        run = run_tool(argv, seconds + TOOL_GRACE)
        t1 = wl.clock()
        if run.returncode != 0 or not os.path.exists(stats):
            raise RuntimeError("pyflame record failed\n" + run.describe())
        with open(stats) as f:
            s = json.load(f)
        text = open(out, encoding="utf-8", errors="replace").read() if os.path.exists(out) else ""
        samples = s.get("samples", 0)
        return {
            "tool": "pyflame", "blocking": blocking, "rate_asked": rate,
            "samples": samples, "errors": s.get("errors"),
            "thread_samples": s.get("thread_samples"), "torn": s.get("torn"),
            "retries": s.get("retries"), "torn_share": s.get("torn_share"),
            "elapsed": s.get("elapsed_seconds"), "achieved_rate": s.get("achieved_rate"),
            "us_median": s.get("sample_us_median"), "us_p99": s.get("sample_us_p99"),
            "us_mean_at_max": (1e6 * s["elapsed_seconds"] / samples) if samples else None,
            "cpu_seconds": s.get("cpu_user_seconds", 0) + s.get("cpu_system_seconds", 0),
            "cpu_seconds_rusage": run.cpu,
            "max_rss_kb": run.max_rss_kb, "max_rss_kb_stats": s.get("max_rss_kb"),
            "read_calls_per_sample": s.get("read_calls_per_sample"),
            "read_ranges_per_sample": s.get("read_ranges_per_sample"),
            "read_bytes_per_sample": s.get("read_bytes_per_sample"),
            "read_sizes": s.get("last_read_sizes"),
            "stats": s, "t0": t0, "t1": t1, "collapsed": parse_collapsed_counts(text),
        }

    @staticmethod
    def part_of(stack: str, function: str) -> bool:
        return re.search(r"(?:^|;)%s \(" % re.escape(function), stack) is not None


class Tachyon:
    """CPython 3.15's `python3.15 -m profiling.sampling attach`, run inside the
    target's chroot and mount namespace (it reads /proc/PID/maps paths)."""
    name = "tachyon"

    def __init__(self, interp: pt.Interpreter):
        self.interp = interp

    def record(self, wl: Workload, seconds: float, rate: float, blocking: bool,
               outdir: str) -> dict:
        out_host = os.path.join(wl.tmpdir, "tachyon.collapsed")
        if os.path.exists(out_host):
            os.unlink(out_host)
        inner = [self.interp.python, "-m", "profiling.sampling", "attach", "-r", "%d" % rate,
                 "-d", "%d" % max(1, math.ceil(seconds)), "-a", "--realtime-stats", "--collapsed",
                 "-o", self.interp.inside_path(out_host)]
        if blocking:
            inner.append("--blocking")
        inner.append(str(wl.pid))
        if self.interp.chrooted:
            argv = ["nsenter", "--mount=/proc/%d/ns/mnt" % wl.pid, "chroot",
                    self.interp.root] + inner
        else:
            argv = inner
        env = {"PATH": SBIN_PATH, "LC_ALL": "C"}  # the chroot has no C.UTF-8 locale
        env.update(self.interp.env)
        t0 = wl.clock()
        run = run_tool(argv, seconds + TOOL_GRACE, env=env)
        t1 = wl.clock()
        text = run.stdout.replace("\r", "\n")
        m = re.search(r"Captured (\d+) samples in ([\d.]+) seconds", text)
        if run.returncode != 0 or not m:
            raise RuntimeError("tachyon failed\n" + run.describe())
        samples, elapsed = int(m.group(1)), float(m.group(2))
        # --realtime-stats prints its mean time per sample (the unwinder's
        # own cost, without the Python loop around it); keep the last one.
        unwind = re.findall(r"Stats: [\d.]+Hz \(([\d.]+)µs\)", text)
        # Failed samples (an unwinder error drops every thread of that tick)
        # are counted in its samples; it prints their share.
        failed = re.search(r"Error rate: ([\d.]+)", text)
        collapsed = open(out_host, encoding="utf-8", errors="replace").read() \
            if os.path.exists(out_host) else ""
        return {
            "tool": "tachyon", "blocking": blocking, "rate_asked": rate, "samples": samples,
            "elapsed": elapsed, "achieved_rate": samples / elapsed if elapsed else None,
            "us_median": None, "us_p99": None,
            "us_unwind_mean": float(unwind[-1]) if unwind else None,
            "errors": round(samples * float(failed.group(1)) / 100) if failed else None,
            "error_share": float(failed.group(1)) / 100 if failed else None,
            "us_mean_at_max": 1e6 * elapsed / samples if samples else None,
            "cpu_seconds": run.cpu, "max_rss_kb": run.max_rss_kb, "t0": t0, "t1": t1,
            "collapsed": parse_collapsed_counts(collapsed),
        }

    @staticmethod
    def part_of(stack: str, function: str) -> bool:
        return re.search(r":%s:\d+(?:;|$)" % re.escape(function), stack) is not None


class Austin:
    """Debian's austin 1.0.1: `austin -i US -p PID`, stopped with SIGINT; one
    output line per thread per sample; it prints its sampling time on exit."""
    name = "austin"

    def __init__(self, binary: str):
        self.binary = binary

    def record(self, wl: Workload, seconds: float, rate: float, blocking: bool,
               outdir: str) -> Optional[dict]:
        if blocking:
            return None  # austin has no stopping mode
        out = os.path.join(outdir, "austin.out")
        if os.path.exists(out):
            os.unlink(out)
        interval = max(1, int(round(1e6 / rate)))
        argv = [self.binary, "-i", str(interval), "-p", str(wl.pid), "-o", out]
        t0 = wl.clock()
        run = run_tool(argv, seconds + TOOL_GRACE, interrupt_after=seconds)
        t1 = wl.clock()
        m = re.search(r"Long sampling rate : (\d+)/(\d+)", run.stderr)
        avg = re.search(r"Sampling time \(min/avg/max\) : (\d+)/(\d+)/(\d+)", run.stderr)
        if not m:
            raise RuntimeError("austin failed\n" + run.describe())
        samples = int(m.group(2))
        lines = open(out, encoding="utf-8", errors="replace").read().splitlines() \
            if os.path.exists(out) else []
        elapsed = run.wall
        return {
            "tool": "austin", "blocking": False, "rate_asked": rate, "samples": samples,
            "elapsed": elapsed, "achieved_rate": samples / elapsed if elapsed else None,
            "us_median": None, "us_p99": None,
            "us_sample_mean": float(avg.group(2)) if avg else None,
            "us_mean_at_max": 1e6 * elapsed / samples if samples else None,
            "cpu_seconds": run.cpu, "max_rss_kb": run.max_rss_kb, "t0": t0, "t1": t1,
            "collapsed": [(line.rpartition(" ")[0], 1) for line in lines if line.strip()],
        }

    @staticmethod
    def part_of(stack: str, function: str) -> bool:
        return re.search(r";%s \(" % re.escape(function), stack) is not None


def peers_for(interp: pt.Interpreter, austin: Optional[str]) -> list:
    peers = []
    if interp.minor == "3.15":
        peers.append(Tachyon(interp))
    minor = tuple(int(x) for x in interp.minor.split("."))
    if austin and minor <= AUSTIN_MAX_MINOR:
        peers.append(Austin(austin))
    return peers


def slim(result: Optional[dict]) -> Optional[dict]:
    if result is None:
        return None
    return {k: v for k, v in result.items() if k not in ("collapsed", "t0", "t1", "stats")}


# ------------------------------------------------------------- measurements


def baseline_for(interp, args) -> Optional[Pyflame]:
    """The --baseline-bin-dir build of pyflame for INTERP, if there is one."""
    if not args.baseline_bin_dir:
        return None
    binary = os.path.join(args.baseline_bin_dir, "pyflame" + interp.minor)
    if not os.access(binary, os.X_OK):
        log("bench: no baseline for %s: %s not built" % (interp.name, binary))
        return None
    return Pyflame(binary, "pyflame_before")


def before_after(pyflame, baseline, first, wl, blocking, args, outdir):
    """(the baseline's first recording, the after/before figures): the
    baseline records WL right after pyflame's recording FIRST, for as long;
    then --baseline-rounds - 1 more pairs, the order alternating (B A, A B,
    ...) so that neither build always goes first. Each pair gives a ratio
    of two recordings seconds apart; the figures are their medians."""
    pairs = []
    after = first
    before = slim(baseline.record(wl, args.seconds, MAX_RATE, blocking, outdir))
    first_before = before
    pairs.append((after, before))
    for i in range(1, args.baseline_rounds):
        if i % 2:
            before = slim(baseline.record(wl, args.seconds, MAX_RATE, blocking, outdir))
            after = slim(pyflame.record(wl, args.seconds, MAX_RATE, blocking, outdir))
        else:
            after = slim(pyflame.record(wl, args.seconds, MAX_RATE, blocking, outdir))
            before = slim(baseline.record(wl, args.seconds, MAX_RATE, blocking, outdir))
        pairs.append((after, before))

    def figures(field):
        a = [p[0].get(field) for p in pairs]
        b = [p[1].get(field) for p in pairs]
        ratios = [x / y for x, y in zip(a, b) if x and y]
        return {"after": a, "before": b, "ratios": ratios,
                "after_median": statistics.median([x for x in a if x]) if any(a) else None,
                "before_median": statistics.median([y for y in b if y]) if any(b) else None,
                "ratio": statistics.median(ratios) if ratios else None}

    return first_before, {
        "rounds": len(pairs), "us_median": figures("us_median"),
        "us_mean_at_max": figures("us_mean_at_max"),
        "torn_share": [p[0].get("torn_share") for p in pairs],
        "retries_per_sample": [p[0]["retries"] / p[0]["samples"] if p[0].get("samples") and
                               p[0].get("retries") is not None else None for p in pairs],
    }


def default_vs_idle(pyflame, first_idle, wl, args, outdir) -> dict:
    """The price of the default mode's idle detection: WL recorded
    nonblocking without --idle right after FIRST_IDLE (its --idle
    recording), then --baseline-rounds - 1 more pairs, the order
    alternating, as before_after() does. Figures, not pass/fail: the
    median of each pair's default / --idle ratio of sample_us_median and
    of the µs per sample at the highest rate, and the thread samples kept
    per sample (--idle keeps every thread; the default mode only those
    it found running)."""
    pairs = [(slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir, idle=False)),
              first_idle)]
    for i in range(1, args.baseline_rounds):
        if i % 2:
            idle = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir))
            default = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir, idle=False))
        else:
            default = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir, idle=False))
            idle = slim(pyflame.record(wl, args.seconds, MAX_RATE, False, outdir))
        pairs.append((default, idle))

    def figures(field):
        d = [p[0].get(field) for p in pairs]
        i = [p[1].get(field) for p in pairs]
        ratios = [x / y for x, y in zip(d, i) if x and y]
        return {"default": d, "idle": i, "ratios": ratios,
                "default_median": statistics.median([x for x in d if x]) if any(d) else None,
                "idle_median": statistics.median([y for y in i if y]) if any(i) else None,
                "ratio": statistics.median(ratios) if ratios else None}

    def kept(r):
        return r["thread_samples"] / r["samples"] if r.get("samples") and \
            r.get("thread_samples") is not None else None

    return {"rounds": len(pairs), "us_median": figures("us_median"),
            "us_mean_at_max": figures("us_mean_at_max"),
            "threads_kept_default": [kept(p[0]) for p in pairs],
            "threads_kept_idle": [kept(p[1]) for p in pairs]}


def measure_cost(interp, pyflame, peers, args, outdir) -> dict:
    """Each stack workload at the highest rate, nonblocking and --blocking
    (and the baseline build's figures right after pyflame's, if given)."""
    results = {}
    baseline = baseline_for(interp, args)
    for name, depth, threads, blocked in STACK_WORKLOADS:
        if args.workloads and name not in args.workloads:
            continue
        with Workload(interp, ["--mode", "stack", "--depth", str(depth),
                               "--threads", str(threads), "--blocked", str(blocked)]) as wl:
            if wl.ready.get("depths") != [depth] * threads:
                raise RuntimeError("%s under %s: threads at depths %s, expected %d x %d"
                                   % (name, interp.name, wl.ready.get("depths"), threads, depth))
            row = {"depth": depth, "threads": threads, "blocked": blocked}
            for blocking in (False, True):
                key = "blocking" if blocking else "nonblocking"
                row["pyflame_" + key] = slim(pyflame.record(wl, args.seconds, MAX_RATE,
                                                            blocking, outdir))
                if threads > 1 and not blocking:
                    row["default_vs_idle"] = default_vs_idle(
                        pyflame, row["pyflame_" + key], wl, args, outdir)
                if baseline:
                    row["pyflame_before_" + key], row["pyflame_before_after_" + key] = before_after(
                        pyflame, baseline, row["pyflame_" + key], wl, blocking, args, outdir)
                for peer in peers:
                    try:
                        row["%s_%s" % (peer.name, key)] = slim(
                            peer.record(wl, args.seconds, MAX_RATE, blocking, outdir))
                    except RuntimeError as e:
                        row["%s_%s" % (peer.name, key)] = {"error": str(e)[:2000]}
            if name == "depth100" and args.floor_bin:
                shape = (row.get("pyflame_nonblocking") or {}).get("read_sizes")
                row["floor"] = measure_floor(args.floor_bin, wl.pid, shape)
            if name == "depth100":
                row["pyflame_reads_per_sample"] = count_reads(pyflame, wl, outdir)
        results[name] = row
        log("  cost %-10s pyflame %s" % (name, brief(row.get("pyflame_nonblocking"))))
        dv = row.get("default_vs_idle")
        if dv:
            log("  cost %-10s default / --idle: median %s us / %s us = %s, at max %s" % (
                name, num(dv["us_median"]["default_median"]), num(dv["us_median"]["idle_median"]),
                num(dv["us_median"]["ratio"], "%.2f"), num(dv["us_mean_at_max"]["ratio"], "%.2f")))
        if baseline:
            log("  cost %-10s before  %s" % (name, brief(row.get("pyflame_before_nonblocking"))))
    return results


def count_reads(pyflame, wl: Workload, outdir: str) -> Optional[dict]:
    """Memory reads per sample, counted by strace over a short recording
    (strace slows the profiler; only the counts are used)."""
    strace = shutil.which("strace")
    if not strace:
        return None
    trace = os.path.join(outdir, "strace.txt")
    stats = os.path.join(outdir, "strace-stats.json")
    run = run_tool([strace, "-f", "-c", "-e", "trace=process_vm_readv,pread64,openat,read",
                    "-o", trace, pyflame.binary, "record", "-p", str(wl.pid), "-d", "1",
                    "--rate", "200", "-o", os.path.join(outdir, "strace.out"),
                    "--stats-json", stats, "--no-status"], 60)
    if run.returncode != 0 or not os.path.exists(stats):
        return None
    with open(stats) as f:
        samples = json.load(f).get("samples") or 0
    calls = {}
    for line in open(trace):
        fields = line.split()
        if len(fields) >= 5 and fields[-1] in ("process_vm_readv", "pread64", "openat", "read"):
            calls[fields[-1]] = int(fields[3])
    if not samples:
        return None
    return {"samples": samples, "calls": calls,
            "per_sample": {k: v / samples for k, v in calls.items()}}


def brief(r: Optional[dict]) -> str:
    if not r or r.get("us_median") is None and r.get("us_mean_at_max") is None:
        return "-"
    return "median %.1fus p99 %.1fus rate %.0f/s" % (
        r.get("us_median") or float("nan"), r.get("us_p99") or float("nan"),
        r.get("achieved_rate") or 0)


def measure_floor(floor_bin: str, pid: int, shape: Optional[List[int]] = None) -> dict:
    argv = [floor_bin, "-p", str(pid), "--iterations", "5000", "--json",
            "--sizes", "64,1024,4096,16384,65536", "--pair", "1024,16384", "--gather", "101,512"]
    if shape:
        # pyflame's own read set (its last call): the kernel's share of a sample.
        argv += ["--ranges", ",".join(str(n) for n in shape)]
    run = run_tool(argv, 60)
    if run.returncode != 0:
        return {"error": run.describe()}
    doc = json.loads(run.stdout)
    by = {(r["kind"], r["bytes"]): r for r in doc["reads"]}
    one_tstate = by[("single", 1024)]["us_median"]
    one_chunk = by[("single", 16384)]["us_median"]
    # 3.11+: the thread state, then the data-stack chunk it points to.
    doc["floor_311plus_us"] = one_tstate + one_chunk
    # ... or both in one call, trusting the last sample's chunk address.
    doc["floor_311plus_1call_us"] = by[("gather2", 1024 + 16384)]["us_median"]
    # <= 3.10: frames are heap objects linked by f_back, one dependent read each,
    doc["floor_pre311_us"] = one_tstate + 100 * by[("single", 1024)]["us_median"]
    # ... or all 101 ranges in one call, trusting the last sample's addresses.
    doc["floor_pre311_1call_us"] = by[("gather101", 101 * 512)]["us_median"]
    if shape:
        doc["read_set_us"] = by[("shape%d" % len(shape), sum(shape))]["us_median"]
        doc["read_set_ranges"] = len(shape)
    return doc


def throughput(wl: Workload, t0: float, t1: float, per_cpu: bool = False) -> Optional[float]:
    """Median iterations per wall second (or per CPU second of the target)
    over the window lines fully inside [t0, t1]."""
    window = wl.ready["window"]
    lines = wl.lines_between(t0 + window + 0.05, t1)
    if per_cpu:
        rates = [v[1] / v[2] for v in lines if len(v) > 2 and v[2] > 0]
    else:
        rates = [v[1] / window for v in lines]
    return statistics.median(rates) if rates else None


def measure_overhead(interp, pyflame, peers, args, outdir) -> dict:
    """Throughput of the CPU-bound loop unprofiled and profiled, interleaved:
    every profiled window is compared with the mean of the unprofiled windows
    just before and after it."""
    conditions = []
    for tool in [pyflame] + peers:
        for blocking in (False, True):
            for rate in OVERHEAD_RATES:
                conditions.append((tool, blocking, rate))
    results = {"conditions": []}
    with Workload(interp, ["--mode", "throughput", "--depth", "30"]) as wl:
        seconds = args.overhead_seconds

        def baseline():
            t0 = wl.clock()
            time.sleep(seconds)
            t1 = wl.clock()
            wl.wait_lines_until(t1)
            return throughput(wl, t0, t1), throughput(wl, t0, t1, per_cpu=True)

        base, base_cpu = baseline()
        results["baselines"] = [base]
        results["baselines_per_cpu"] = [base_cpu]
        for tool, blocking, rate in conditions:
            try:
                r = tool.record(wl, seconds, rate, blocking, outdir)
            except RuntimeError as e:
                results["conditions"].append({"tool": tool.name, "blocking": blocking,
                                              "rate": rate, "error": str(e)[:2000]})
                continue
            if r is None:
                continue
            wl.wait_lines_until(r["t1"])
            during = throughput(wl, r["t0"], r["t1"])
            during_cpu = throughput(wl, r["t0"], r["t1"], per_cpu=True)
            after, after_cpu = baseline()
            results["baselines"].append(after)
            results["baselines_per_cpu"].append(after_cpu)
            ref = [b for b in (base, after) if b]
            ratio = during / statistics.mean(ref) if during and ref else None
            ref_cpu = [b for b in (base_cpu, after_cpu) if b]
            ratio_cpu = during_cpu / statistics.mean(ref_cpu) if during_cpu and ref_cpu else None
            base, base_cpu = after, after_cpu
            results["conditions"].append({
                "tool": tool.name, "blocking": blocking, "rate": rate,
                "throughput": during, "ratio": ratio,
                "slowdown_pct": (1 - ratio) * 100 if ratio else None,
                "ratio_per_cpu": ratio_cpu,
                "achieved_rate": r.get("achieved_rate"), "samples": r.get("samples"),
                "cpu_seconds": r.get("cpu_seconds"),
                "cpu_s_per_1000": 1000 * r["cpu_seconds"] / r["samples"] if r.get("samples") else None,
            })
            log("  overhead %-8s %-11s %6d Hz: ratio %s" % (
                tool.name, "blocking" if blocking else "nonblocking", rate,
                "%.3f" % ratio if ratio else "-"))
    for key in ("baselines", "baselines_per_cpu"):
        bl = [b for b in results[key] if b]
        results[key.replace("baselines", "baseline_spread_pct")] = (
            100 * statistics.pstdev(bl) / statistics.mean(bl) if len(bl) > 1 else None)
    return results


def rate_at_slowdown(by_rate: Dict[int, dict], pct: float = 5.0) -> Optional[str]:
    """The rate at which the slowdown reaches PCT %, interpolated linearly in
    log(rate) between the measured rates; ">MAX" if it never does."""
    points = [(r, by_rate[r].get("slowdown_pct")) for r in sorted(by_rate)
              if by_rate[r].get("slowdown_pct") is not None]
    if not points:
        return None
    prev_r, prev_s = None, None
    for r, s in points:
        if s >= pct:
            if prev_r is None:
                return "<%d" % r
            f = (pct - prev_s) / (s - prev_s) if s != prev_s else 0.0
            return "%.0f" % math.exp(math.log(prev_r) + f * (math.log(r) - math.log(prev_r)))
        prev_r, prev_s = r, s
    return ">%d" % points[-1][0]


def measure_accuracy(interp, pyflame, peers, args, outdir) -> dict:
    functions = ["part_a", "part_b", "part_c"]
    results = {}
    with Workload(interp, ["--mode", "split"]) as wl:
        for tool in [pyflame] + peers:
            wl.wait_lines_until(wl.clock())  # a line before the recording starts
            try:
                r = tool.record(wl, args.accuracy_seconds, 1000, False, outdir)
            except RuntimeError as e:
                results[tool.name] = {"error": str(e)[:2000]}
                continue
            wl.wait_lines_until(r["t1"])
            lines = wl.lines_between(r["t0"] - 1, r["t1"] + 1)
            before = [v for v in lines if v[0] <= r["t0"]]
            after = [v for v in lines if v[0] >= r["t1"]]
            if not before or not after:
                results[tool.name] = {"error": "no workload lines around the recording"}
                continue
            spent = [after[0][i + 1] - before[-1][i + 1] for i in range(3)]
            measured = [s / sum(spent) for s in spent]
            counts = [0, 0, 0]
            for stack, count in r["collapsed"]:
                for i, fn in enumerate(functions):
                    if tool.part_of(stack, fn):
                        counts[i] += count
                        break
            total = sum(counts)
            sampled = [c / total for c in counts] if total else None
            err = max(abs(a - b) for a, b in zip(sampled, measured)) * 100 if sampled else None
            results[tool.name] = {"measured": measured, "sampled": sampled, "samples": total,
                                  "max_error_points": err}
            log("  accuracy %-8s measured %s sampled %s" % (
                tool.name, fmt_shares(measured), fmt_shares(sampled)))
    return results


class ChurnTarget:
    """test_churn.py's fixture as the profilers' record() expects a target."""

    def __init__(self, fixture):
        self.fixture = fixture
        self.pid, self.tmpdir = fixture.pid, fixture.tmpdir

    @staticmethod
    def clock() -> float:
        return time.monotonic()


class TachyonFrames:
    """Tachyon's collapsed stacks as the churn oracle's frames.

    Tachyon writes `tid:N;FILE:FUNCTION:LINE;...` with FILE the base name
    of the code's file and FUNCTION the code's name; the oracle's frames are
    (label, file as the interpreter sees it, line), the label a qualified
    name on 3.11+ (`Thread._bootstrap`). A frame is matched with the
    oracle's model: its file is the model's only file of that base name, and
    its label the model's only label in that file equal to FUNCTION or
    ending in `.FUNCTION`; a line of -1 (none) becomes None, as pyflame
    writes such a frame without a line. What matches nothing is left as Tachyon wrote it
    (the oracle then finds it impossible); where several labels match (none
    does on the fixture), the stack counts as possible if any choice makes
    it so."""

    def __init__(self, oracle):
        self.oracle = oracle
        labels: Dict[str, set] = {}
        model = oracle.model
        for f, name in model["roots"]:
            labels.setdefault(f, set()).add(name)
        for e in model["stdlib_edges"] + model["fixture_edges"]:
            labels.setdefault(e[0], set()).add(e[1])
            labels.setdefault(e[3], set()).add(e[4])
        for f, name, _, _ in model["functions"]:
            labels.setdefault(f, set()).add(name)
        self.labels = labels
        self.files: Dict[str, List[str]] = {}
        for f in labels:
            self.files.setdefault(os.path.basename(f), []).append(f)
        self.matched: Dict[str, int] = {}  # how frames matched -> frames x samples

    def candidates(self, part: str):
        """(the frames PART may stand for, how it matched)."""
        pieces = part.rsplit(":", 2)
        if len(pieces) != 3 or not pieces[2].lstrip("-").isdigit():
            return [(part, "<unknown>", None)], "unmatched"  # a special frame (<GC>)
        # -1: no line (an instruction without a location, as exception
        # cleanup code has); pyflame then writes no line, the oracle's None.
        base, function, line = pieces[0], pieces[1], int(pieces[2])
        line = line if line > 0 else None
        found = [(name, f, line) for f in self.files.get(base, []) for name in self.labels[f]
                 if name == function or name.endswith("." + function)]
        if not found:
            return [(function, base, line)], "unmatched"
        if len(found) > 1:
            return found, "ambiguous"
        return found, "same" if found[0][0] == function else "qualified"

    def convert(self, stack: str, count: int):
        """(frames root first, COUNT) of one collapsed line of Tachyon's."""
        parts = stack.split(";")
        if parts and parts[0].startswith("tid:"):
            parts = parts[1:]
        choices = []
        for part in parts:
            options, how = self.candidates(part)
            choices.append(options)
            self.matched[how] = self.matched.get(how, 0) + count
        frames = [c[0] for c in choices]
        if any(len(c) > 1 for c in choices) and self.oracle.why_impossible(frames):
            if math.prod(len(c) for c in choices) <= 256:
                for option in itertools.product(*choices):
                    if self.oracle.why_impossible(list(option)) is None:
                        frames = list(option)
                        break
        return frames, count


def measure_churn(interp, pyflame, peers, args, outdir) -> dict:
    """test_churn.py's fixture (stacks that change every few microseconds,
    each one known) recorded at the highest rate by each tool in turn; every
    sample is classified possible or impossible by test_churn.py's oracle."""
    import test_churn as tc  # the integration directory is on sys.path
    tools = [(pyflame, False)]
    baseline = baseline_for(interp, args)
    if baseline:
        tools.append((baseline, False))
    tools.append((pyflame, True))
    tools += [(p, False) for p in peers if p.name == "tachyon"]
    results = {}
    with tc.ChurnFixture(OwnMounts(interp)) as fixture:
        target = ChurnTarget(fixture)
        oracle = fixture.oracle
        for tool, blocking in tools:
            key = tool.name + ("_blocking" if blocking else "")
            try:
                r = tool.record(target, args.seconds, MAX_RATE, blocking, outdir)
            except RuntimeError as e:
                results[key] = {"error": str(e)[:2000]}
                continue
            if not fixture.alive():
                raise RuntimeError("the churn fixture died under %s" % key)
            if tool.name == "tachyon":
                frames = TachyonFrames(oracle)
                stacks = [frames.convert(stack, count) for stack, count in r["collapsed"]]
                matched = {"frames_matched": frames.matched}
            else:
                # A thread with no Python frame (started, not yet in
                # Python; or done) is no stack to classify: Tachyon leaves
                # such threads out of its output, pyflame --idle writes them
                # as one pseudo-frame. Counted apart.
                no_frames = sum(c for stack, c in r["collapsed"] if stack == NO_FRAMES)
                text = "".join("%s %d\n" % sc for sc in r["collapsed"] if sc[0] != NO_FRAMES)
                stacks = tc.parse_collapsed(text)
                matched = {"no_python_frames": no_frames}
            total, impossible, reasons = tc.classify_stacks(oracle, stacks)
            row = slim(r)
            row.update(matched)
            row.update({
                "thread_samples_classified": total, "impossible": impossible,
                "impossible_share": impossible / total if total else None,
                "retries_per_sample": r["retries"] / r["samples"]
                if r.get("retries") is not None and r.get("samples") else None,
                "impossible_reasons": {why: sum(c for c, _ in ex)
                                       for why, ex in reasons.items()},
            })
            results[key] = row
            log("  churn %-15s %7.0f samples/s, %d thread samples, %d impossible (%.3f%%)%s"
                % (key, r.get("achieved_rate") or 0, total, impossible,
                   100.0 * impossible / total if total else float("nan"),
                   ", torn %.3f%%" % (100 * r["torn_share"])
                   if r.get("torn_share") is not None else ""))
            if reasons:
                log("    " + tc.describe_impossible(reasons, 4))
    return results


def fmt_shares(shares) -> str:
    return "/".join("%.1f" % (100 * s) for s in shares) if shares else "-"


def measure_rss(interp, pyflame, peers, args, outdir) -> dict:
    """Peak RSS after about 100k and 1M samples of the varied workload."""
    results = {}
    with Workload(interp, ["--mode", "varied", "--depth", "20"]) as wl:
        for tool in [pyflame] + [p for p in peers if p.name == "tachyon"]:
            probe = tool.record(wl, 1.0, MAX_RATE, False, outdir)
            rate = probe.get("achieved_rate") or 1000
            row = {"probe_rate": rate}
            for target in args.rss_samples:
                seconds = min(args.rss_max_seconds, max(1.0, target / rate))
                try:
                    r = tool.record(wl, seconds, MAX_RATE, False, outdir)
                except RuntimeError as e:
                    row[str(target)] = {"error": str(e)[:2000]}
                    continue
                row[str(target)] = {"samples": r["samples"], "seconds": seconds,
                                    "max_rss_kb": r["max_rss_kb"],
                                    "max_rss_kb_stats": r.get("max_rss_kb_stats"),
                                    "distinct_stacks": len(r["collapsed"]),
                                    "capped": seconds >= args.rss_max_seconds}
                log("  rss %-8s %8d samples asked, %8d taken: %d KiB" % (
                    tool.name, target, r["samples"], r["max_rss_kb"]))
            results[tool.name] = row
    return results


# ------------------------------------------------------------------ report


def ratio(a, b) -> str:
    return "%.2f" % (a / b) if a and b else "-"


def num(v, f="%.1f") -> str:
    return f % v if isinstance(v, (int, float)) and v == v else "-"


def markdown(doc: dict) -> str:
    out = []
    m = doc["machine"]
    out.append("Machine: %s, %s, %d CPUs, kernel %s; load average at start %s\n" % (
        m["cpu"], m["os"], m["cpus"], m["kernel"], m["loadavg"]))
    before = doc.get("baseline_bin_dir") is not None
    out.append("### Cost per sample (highest rate asked: %d/s)\n" % MAX_RATE)
    out.append("| interpreter | workload | mode | pyflame median µs | p99 µs | samples/s "
               "| µs/sample at max | peer | peer µs/sample at max | peer samples/s "
               "| peer's own µs/sample | **pyflame/peer** |"
               + (" after / before, µs per sample |" if before else ""))
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if before else ""))
    for iname, res in doc["interpreters"].items():
        for wname, row in res.get("cost", {}).items():
            for mode in ("nonblocking", "blocking"):
                p = row.get("pyflame_" + mode) or {}
                b = row.get("pyflame_before_" + mode) or {}
                peer_keys = [k for k in row if k.endswith("_" + mode) and
                             not k.startswith("pyflame") and row[k] is not None]
                cells = [iname, wname, mode, num(p.get("us_median")), num(p.get("us_p99")),
                         num(p.get("achieved_rate"), "%.0f"), num(p.get("us_mean_at_max"))]
                ba = (row.get("pyflame_before_after_" + mode) or {}).get("us_median") or {}
                tail = [num(ba.get("ratio"), "%.2f")] if before else []
                if not peer_keys:
                    out.append("| " + " | ".join(cells + ["-", "-", "-", "-", "-"] + tail)
                               + " |")
                for k in peer_keys:
                    q = row[k] or {}
                    out.append("| " + " | ".join(cells + [
                        k.rsplit("_", 1)[0], num(q.get("us_mean_at_max")),
                        num(q.get("achieved_rate"), "%.0f"),
                        num(q.get("us_unwind_mean") or q.get("us_sample_mean")),
                        "**%s**" % ratio(p.get("us_mean_at_max"), q.get("us_mean_at_max"))]
                        + tail) + " |")
    if before:
        out.append("\n### Before / after (this build vs. %s; medians of %s interleaved "
                   "pairs on the same process)\n" % (
                       doc.get("baseline_commit") or doc["baseline_bin_dir"],
                       doc.get("baseline_rounds")))
        out.append("| interpreter | workload | mode | before median µs | after median µs "
                   "| **after / before** (range) | before µs/sample at max "
                   "| after µs/sample at max | after / before at max "
                   "| after: torn share % | after: retries / sample |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for iname, res in doc["interpreters"].items():
            for wname, row in res.get("cost", {}).items():
                for mode in ("nonblocking", "blocking"):
                    ba = row.get("pyflame_before_after_" + mode)
                    if not ba:
                        continue
                    med, at_max = ba["us_median"], ba["us_mean_at_max"]
                    torn = [t for t in ba["torn_share"] if t is not None]
                    retries = [t for t in ba["retries_per_sample"] if t is not None]
                    out.append("| %s | %s | %s | %s | %s | **%s** (%s) | %s | %s | %s | %s | %s |"
                               % (iname, wname, mode, num(med["before_median"]),
                                  num(med["after_median"]), num(med["ratio"], "%.2f"),
                                  "–".join("%.2f" % f(med["ratios"]) for f in (min, max))
                                  if med["ratios"] else "-",
                                  num(at_max["before_median"]), num(at_max["after_median"]),
                                  num(at_max["ratio"], "%.2f"),
                                  num(100 * max(torn) if torn else None, "%.3f"),
                                  num(max(retries) if retries else None, "%.3f")))
    out.append("\n### Default mode against --idle (nonblocking; medians of %s interleaved "
               "pairs on the same process)\n" % doc.get("default_vs_idle_rounds"))
    out.append("Without `--idle` pyflame keeps only the threads it finds running; "
               "mixed8 and mixed64 have 2 and 4 threads spinning, the rest blocked.\n")
    out.append("| interpreter | workload | --idle median µs | default median µs "
               "| **default / --idle** (range) | --idle µs/sample at max "
               "| default µs/sample at max | default / --idle at max "
               "| threads kept per sample: --idle / default |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for wname, row in res.get("cost", {}).items():
            dv = row.get("default_vs_idle")
            if not dv:
                continue
            med, at_max = dv["us_median"], dv["us_mean_at_max"]
            kept_i = [k for k in dv["threads_kept_idle"] if k is not None]
            kept_d = [k for k in dv["threads_kept_default"] if k is not None]
            out.append("| %s | %s | %s | %s | **%s** (%s) | %s | %s | %s | %s / %s |" % (
                iname, wname, num(med["idle_median"]), num(med["default_median"]),
                num(med["ratio"], "%.2f"),
                "–".join("%.2f" % f(med["ratios"]) for f in (min, max))
                if med["ratios"] else "-",
                num(at_max["idle_median"]), num(at_max["default_median"]),
                num(at_max["ratio"], "%.2f"),
                num(statistics.median(kept_i) if kept_i else None, "%.2f"),
                num(statistics.median(kept_d) if kept_d else None, "%.2f")))
    out.append("\n### Floor at depth 100 (process_vm_readv, median µs)\n")
    out.append("| interpreter | 1 read 64 B | 1 read 16 KiB | floor, 1 call (3.11+: 2 ranges; "
               "≤3.10: 101 ranges) | floor, dependent reads (3.11+: 2; ≤3.10: 101) "
               "| pyflame median | **pyflame / 1-call floor** | pyflame / dependent floor "
               "| pyflame's read set alone, 1 call (ranges) | pyflame / its read set "
               "| pyflame syscalls/sample: process_vm_readv + pread |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        row = res.get("cost", {}).get("depth100", {})
        f = row.get("floor")
        if not f or "reads" not in f:
            continue
        by = {(r["kind"], r["bytes"]): r["us_median"] for r in f["reads"]}
        modern = tuple(int(x) for x in res["minor"].split(".")) >= (3, 11)
        one_call = f["floor_311plus_1call_us"] if modern else f["floor_pre311_1call_us"]
        dependent = f["floor_311plus_us"] if modern else f["floor_pre311_us"]
        med = (row.get("pyflame_nonblocking") or {}).get("us_median")
        reads = ((row.get("pyflame_reads_per_sample") or {}).get("per_sample") or {})
        out.append("| %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s |" % (
            iname, num(by.get(("single", 64)), "%.2f"), num(by.get(("single", 16384)), "%.2f"),
            num(one_call, "%.2f"), num(dependent, "%.2f"), num(med), ratio(med, one_call),
            ratio(med, dependent),
            "%s (%s)" % (num(f.get("read_set_us"), "%.2f"), f.get("read_set_ranges"))
            if f.get("read_set_us") else "-",
            ratio(med, f.get("read_set_us")),
            "%s + %s" % (num(reads.get("process_vm_readv")), num(reads.get("pread64")))
            if reads else "-"))
    out.append("\n### Overhead on the target (throughput profiled / unprofiled; 1.00 = none)\n")
    out.append("| interpreter | tool | mode | 100 Hz | 1 kHz | 10 kHz | rate costing 5 % (Hz, est.) "
               "| CPU s / 1000 samples at 1 kHz | baseline spread % "
               "| per target CPU-second: 100 Hz / 1 kHz / 10 kHz (spread %) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        ov = res.get("overhead")
        if not ov:
            continue
        seen = {}
        for c in ov["conditions"]:
            seen.setdefault((c["tool"], c["blocking"]), {})[c["rate"]] = c
        for (tool, blocking), by_rate in seen.items():
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) |" % (
                iname, tool, "blocking" if blocking else "nonblocking",
                *[num((by_rate.get(r) or {}).get("ratio"), "%.3f") for r in OVERHEAD_RATES],
                rate_at_slowdown(by_rate) or "-",
                num((by_rate.get(1000) or {}).get("cpu_s_per_1000"), "%.3f"),
                num(ov.get("baseline_spread_pct")),
                " / ".join(num((by_rate.get(r) or {}).get("ratio_per_cpu"), "%.3f")
                           for r in OVERHEAD_RATES),
                num(ov.get("baseline_spread_pct_per_cpu"))))
    out.append("\n### Profiler cost at the highest rate (depth 100, nonblocking)\n")
    out.append("| interpreter | tool | samples | CPU s / 1000 samples | peak RSS KiB |")
    out.append("|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        row = res.get("cost", {}).get("depth100", {})
        for k in sorted(row):
            if k.endswith("_nonblocking") and isinstance(row[k], dict) and row[k].get("samples"):
                r = row[k]
                out.append("| %s | %s | %d | %s | %s |" % (
                    iname, k.rsplit("_", 1)[0], r["samples"],
                    num(1000 * r["cpu_seconds"] / r["samples"], "%.3f"),
                    num(r.get("max_rss_kb"), "%d")))
    out.append("\n### Peak RSS, varied stack (64 paths under 20 frames)\n")
    out.append("| interpreter | tool | samples (small) | stacks | RSS KiB | samples (large) | stacks "
               "| RSS KiB | growth |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for tool, row in (res.get("rss") or {}).items():
            keys = [k for k in row if k != "probe_rate"]
            if len(keys) < 2:
                continue
            a, b = row[keys[0]], row[keys[-1]]
            if "error" in a or "error" in b:
                continue
            out.append("| %s | %s | %d | %s | %d | %d%s | %s | %d | %s |" % (
                iname, tool, a["samples"], a.get("distinct_stacks", "-"), a["max_rss_kb"],
                b["samples"], " (capped)" if b.get("capped") else "",
                b.get("distinct_stacks", "-"), b["max_rss_kb"],
                "%+.1f%%" % (100.0 * (b["max_rss_kb"] - a["max_rss_kb"]) / a["max_rss_kb"])
                if a["max_rss_kb"] else "-"))
    out.append("\n### Accuracy (50/30/20 split; sampled vs measured share, %, 1 kHz)\n")
    out.append("| interpreter | tool | measured a/b/c | sampled a/b/c | max error (points) "
               "| samples |")
    out.append("|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for tool, r in (res.get("accuracy") or {}).items():
            if "error" in r:
                out.append("| %s | %s | error | | | |" % (iname, tool))
                continue
            out.append("| %s | %s | %s | %s | %s | %d |" % (
                iname, tool, fmt_shares(r["measured"]), fmt_shares(r["sampled"]),
                num(r["max_error_points"]), r["samples"]))
    out.append("\n### Churning stacks (test_churn.py's fixture, highest rate, "
               "impossible samples by its oracle)\n")
    out.append("| interpreter | tool | mode | samples/s | failed samples % | good samples/s "
               "| thread samples "
               "| CPU s / 1000 samples | torn share % | retries / sample "
               "| **impossible share %** | impossible |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for iname, res in doc["interpreters"].items():
        for key, r in (res.get("churn") or {}).items():
            if key == "error":
                out.append("| %s | error | | | | | | | | | | |" % iname)
                continue
            tool = key.replace("_blocking", "")
            tool = {"pyflame_before": "pyflame before (%s)" % (
                doc.get("baseline_commit") or "baseline")}.get(tool, tool)
            if "error" in r:
                out.append("| %s | %s | error | | | | | | | | | |" % (iname, tool))
                continue
            errors, samples = r.get("errors"), r.get("samples")
            failed = errors / samples if errors is not None and samples else None
            out.append("| %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | **%s** | %d |" % (
                iname, tool, "blocking" if r["blocking"] else "nonblocking",
                num(r.get("achieved_rate"), "%.0f"),
                num(100.0 * failed if failed is not None else None, "%.2f"),
                num(r["achieved_rate"] * (1 - failed) if failed is not None and
                    r.get("achieved_rate") else None, "%.0f"),
                r["thread_samples_classified"],
                num(1000 * r["cpu_seconds"] / samples if samples else None, "%.3f"),
                num(100 * r["torn_share"] if r.get("torn_share") is not None else None, "%.3f"),
                num(r.get("retries_per_sample"), "%.3f"),
                num(100 * r["impossible_share"] if r.get("impossible_share") is not None
                    else None, "%.3f"), r["impossible"]))
    return "\n".join(out) + "\n"


def machine() -> dict:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    osname = "Linux"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count() or 0, "kernel": platform.release(),
            "os": osname, "loadavg": " ".join("%.2f" % x for x in os.getloadavg())}


def git_describe(bin_dir: Optional[str]) -> Optional[str]:
    """The commit of the tree BIN_DIR was built from (build/bin in a
    checkout), if that is a git tree."""
    if not bin_dir:
        return None
    try:
        out = subprocess.run(["git", "-C", os.path.abspath(bin_dir), "describe", "--always",
                              "--dirty"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.decode().strip() or None if out.returncode == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", required=True, help="directory holding pyflameX.Y")
    ap.add_argument("--floor-bin", help="vm_readv_floor program")
    ap.add_argument("--baseline-bin-dir", help="directory holding an older build's "
                    "pyflameX.Y: the cost and churn steps also record it, right after "
                    "pyflame, and report after / before")
    ap.add_argument("--manifest", default=pt.DEFAULT_MANIFEST)
    ap.add_argument("--interp", action="append", default=[],
                    help="manifest name to run (repeatable); default: a representative set")
    ap.add_argument("--all", action="store_true", help="every provisioned interpreter")
    ap.add_argument("--workload", dest="workloads", action="append", default=[],
                    help="stack workload to run (repeatable): " +
                    ", ".join(w[0] for w in STACK_WORKLOADS))
    ap.add_argument("--only", action="append", default=[],
                    choices=["cost", "overhead", "accuracy", "rss", "churn"],
                    help="run only these figures (repeatable)")
    ap.add_argument("--seconds", type=float, default=2.0, help="per cost measurement")
    ap.add_argument("--overhead-seconds", type=float, default=2.0)
    ap.add_argument("--accuracy-seconds", type=float, default=3.0)
    ap.add_argument("--rss-interp", action="append", default=[],
                    help="interpreters to measure peak RSS on (default: sid-3.15, "
                    "else the last one run)")
    ap.add_argument("--rss-samples", default="100000,1000000",
                    help="sample counts for peak RSS, comma-separated")
    ap.add_argument("--rss-max-seconds", type=float, default=60.0,
                    help="cap on one RSS recording; the table says when it capped")
    ap.add_argument("--baseline-rounds", type=int, default=3,
                    help="pairs of recordings (this build, the baseline) per workload and "
                    "mode, and (default mode, --idle) per threaded workload; each ratio "
                    "is their median")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="1 s measurements, 3.11 and 3.15 only, 10k/100k RSS samples")
    ap.add_argument("--json", default="build/bench/results.json")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args()
    if args.quick:
        args.seconds = args.overhead_seconds = 1.0
        args.accuracy_seconds = 2.0
        args.rss_samples = "10000,100000"
        args.rss_max_seconds = 15.0
        if not args.interp and not args.all:
            args.interp = ["pyenv-3.11.7", "sid-3.15"]
    args.rss_samples = [int(x) for x in args.rss_samples.split(",") if x]
    if os.geteuid() != 0:
        log("bench: run as root (profilers read other processes; peers need namespaces)")
        return 2

    rows = pt.read_manifest(args.manifest)
    wanted = [r.name for r in rows] if args.all else (args.interp or DEFAULT_SET)
    interps = [r for r in rows if r.name in wanted]
    missing = [n for n in wanted if n not in {r.name for r in interps}]
    for n in missing:
        log("bench: SKIP %s: not in %s" % (n, args.manifest))
    rss_interps = args.rss_interp or (["sid-3.15"] if "sid-3.15" in [i.name for i in interps]
                                      else [interps[-1].name] if interps else [])
    austin = None if args.no_peers else shutil.which("austin")
    if not args.no_peers and not austin:
        log("bench: austin is not installed (test/tools/bench_peers.sh): no Austin figures")
    only = set(args.only) or {"cost", "overhead", "accuracy", "rss", "churn"}

    doc = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "max_rate": MAX_RATE, "interpreters": {},
           "bin_dir": args.bin_dir, "baseline_bin_dir": args.baseline_bin_dir,
           "baseline_rounds": args.baseline_rounds if args.baseline_bin_dir else None,
           "default_vs_idle_rounds": args.baseline_rounds,
           "commit": git_describe(args.bin_dir),
           "baseline_commit": git_describe(args.baseline_bin_dir)}
    outdir = tempfile.mkdtemp(prefix="pyflame-bench-")
    began = time.monotonic()
    try:
        for interp in interps:
            binary = os.path.join(args.bin_dir, "pyflame" + interp.minor)
            if not os.access(binary, os.X_OK):
                log("bench: SKIP %s: %s not built" % (interp.name, binary))
                continue
            log("== %s (%s)" % (interp.name, interp.version))
            pyflame = Pyflame(binary)
            peers = [] if args.no_peers else peers_for(interp, austin)
            res = {"minor": interp.minor, "version": interp.version, "mode": interp.mode,
                   "peers": [p.name for p in peers]}
            doc["interpreters"][interp.name] = res
            steps = [("cost", measure_cost), ("overhead", measure_overhead),
                     ("accuracy", measure_accuracy)]
            if interp.name in rss_interps:
                steps.append(("rss", measure_rss))
            if interp.minor in CHURN_MINORS:
                steps.append(("churn", measure_churn))
            for key, step in steps:
                if key not in only:
                    continue
                try:
                    res[key] = step(interp, pyflame, peers, args, outdir)
                except RuntimeError as e:
                    log("bench: %s %s failed: %s" % (interp.name, key, e))
                    res[key] = {"error": str(e)[:4000]}
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    doc["seconds"] = time.monotonic() - began
    table = markdown(doc)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    print(table)
    log("bench: %.0f s; JSON in %s" % (doc["seconds"], args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
