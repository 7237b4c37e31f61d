# SPDX-License-Identifier: Apache-2.0
"""The profilers measured: pyflame, CPython 3.15's Tachyon and Austin, each run the same way."""

from __future__ import annotations

from harness import *  # noqa: F401,F403


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
    if austin and interp.version_tuple <= AUSTIN_MAX_MINOR:
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
